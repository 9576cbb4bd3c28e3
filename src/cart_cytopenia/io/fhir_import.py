"""FHIR R4 -> courses: Bundles (transaction, batch, collection, searchset) or bulk NDJSON.

Every resource is parsed with the ``fhir.resources`` R4B models (FHIR 4.3, wire-compatible with
R4 for the resources read here), then mapped:

- Patient -> patient (sex, birth date, death); Condition -> the malignancy, CRS / ICANS / IEC-HS
  with their ASTCT grade, infections, GVHD, relapse, clinical findings;
- Observation -> labs (LOINC via the analyte catalogue, UCUM units, comparators such as ``<0.1``),
  fevers (body temperature), weight, project-coded facts and marrow findings;
- MedicationAdministration / MedicationRequest -> medications (RxNorm or text via the drug
  catalogue), the CAR-T product (-> infusion), lymphodepleting agents (-> lymphodepletion);
- Procedure -> CAR-T infusion (day 0 and product), lymphodepletion, transfusion, marrow
  evaluation, stem cell boost, HCT (before day 0: prior HCT), next therapy.

Nothing is dropped silently: a resource that cannot be mapped is listed in
``FhirImport.unmapped`` with the reason; a choice made on incomplete data is listed in
``FhirImport.warnings``; a patient whose resources do not make a valid course (no CAR-T
infusion, a timeline contradiction ...) is listed in ``FhirImport.failed`` with every problem.
The mapping and every code recognised are documented in docs/interoperability.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_json

from cart_cytopenia.domain.analytes import Analyte, implausibility, resolve_analyte
from cart_cytopenia.domain.catalogues import (
    Drug,
    Product,
    drug_by_rxnorm,
    drugs,
    products,
    resolve_drug,
)
from cart_cytopenia.domain.course import Course, parse_course
from cart_cytopenia.domain.units import dose_ucum, resolve_unit
from cart_cytopenia.errors import InputError, ParseError, Problem
from cart_cytopenia.io.fhir_codes import SYSTEM_NAMES, Concept, FhirCodes, codes
from cart_cytopenia.io.fhir_duplicates import deduplicate
from cart_cytopenia.io.fhir_status import invalid_status
from cart_cytopenia.io.therapy_codes import TherapyCode, therapy_codes

# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Unmapped:
    """A resource (or part of one) that did not become part of a course, and why."""

    resource: str  # "Observation/abc" (or the entry location when it has no id)
    reason: str
    source: str = ""  # file / Bundle entry it came from
    group: str = ""  # the reason without the resource's own values, when it holds any

    def __str__(self) -> str:
        where = f" ({self.source})" if self.source else ""
        return f"{self.resource}{where}: {self.reason}"


@dataclass(frozen=True)
class ImportWarning:
    """A choice the importer made on incomplete or conflicting data."""

    resource: str
    message: str

    def __str__(self) -> str:
        return f"{self.resource}: {self.message}"


@dataclass(frozen=True)
class FailedPatient:
    """A patient whose resources do not make a valid course."""

    patient: str
    message: str
    problems: tuple[Problem, ...] = ()

    def __str__(self) -> str:
        lines = [f"Patient/{self.patient}: {self.message}"]
        lines += [f"  - {p}" for p in self.problems[:20]]
        return "\n".join(lines)


@dataclass
class FhirImport:
    """The outcome of an import: courses, and everything that did not map."""

    courses: list[Course] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)
    warnings: list[ImportWarning] = field(default_factory=list)
    failed: list[FailedPatient] = field(default_factory=list)
    resources_read: dict[str, int] = field(default_factory=dict)

    def unmapped_by_reason(self) -> dict[str, int]:
        """Counts of unmapped resources per reason (reasons without resource-specific text)."""
        out: dict[str, int] = defaultdict(int)
        for u in self.unmapped:
            out[u.group or _generic_reason(u.reason)] += 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def report(self) -> dict[str, Any]:
        """A JSON-ready report (for the CLI and the API)."""
        return {
            "courses": [c.patient.id for c in self.courses],
            "resources_read": dict(sorted(self.resources_read.items())),
            "unmapped": [
                {"resource": u.resource, "source": u.source, "reason": u.reason}
                for u in self.unmapped
            ],
            "unmapped_by_reason": self.unmapped_by_reason(),
            "warnings": [{"resource": w.resource, "message": w.message} for w in self.warnings],
            "failed": [
                {
                    "patient": f.patient,
                    "message": f.message,
                    "problems": [str(p) for p in f.problems],
                }
                for f in self.failed
            ],
        }


def _generic_reason(reason: str) -> str:
    """A reason as counted in the summary: quoted text (the resource's own: references to a
    patient, values, statuses) masked; the figures of the reason itself (thresholds, grades,
    codes) kept."""
    return re.sub(r"'[^']*'|\"[^\"]*\"", "…", reason)


# --------------------------------------------------------------------------- reading documents


@dataclass
class RawResource:
    data: dict[str, Any]
    where: str
    full_url: str | None = None


def resources_from_json(doc: Any, where: str) -> Iterator[RawResource]:
    """Resources of a parsed JSON document: a Bundle (flattened, nested too) or one resource."""
    if not isinstance(doc, dict) or "resourceType" not in doc:
        raise ParseError(f"{where}: not a FHIR resource (no resourceType); expected a Bundle")
    if doc["resourceType"] != "Bundle":
        yield RawResource(doc, where)
        return
    btype = doc.get("type")
    if btype not in ("transaction", "batch", "collection", "searchset", "document"):
        raise ParseError(
            f"{where}: Bundle type {btype!r} is not imported; use a transaction, batch, "
            "collection or searchset Bundle (or bulk NDJSON)"
        )
    entries = doc.get("entry") or []
    if not isinstance(entries, list):
        raise ParseError(f"{where}: Bundle.entry must be a list")
    for i, e in enumerate(entries):
        loc = f"{where} entry[{i}]"
        if not isinstance(e, dict):
            raise ParseError(f"{loc}: a Bundle entry must be an object")
        request, url = e.get("request"), e.get("fullUrl")
        if not isinstance(request, dict | None) or not isinstance(url, str | None):
            raise ParseError(f"{loc}: a Bundle entry's request is an object, its fullUrl a text")
        if (request or {}).get("method") == "DELETE":
            yield RawResource({"resourceType": "_delete"}, loc, url)
            continue
        res = e.get("resource")
        if res is None:
            yield RawResource({"resourceType": "_empty"}, loc, url)
            continue
        if not isinstance(res, dict):
            raise ParseError(f"{loc}: a Bundle entry's resource must be an object")
        if res.get("resourceType") == "Bundle":
            yield from resources_from_json(res, loc)
            continue
        yield RawResource(res, loc, url)


def resources_from_text(text: str | bytes, source: str) -> list[RawResource]:
    """Resources from JSON text (a Bundle or a resource) or NDJSON (one resource a line)."""
    try:
        return _resources_from_text(text, source)
    except RecursionError:  # (JSON nested thousands deep: no FHIR resource is)
        raise ParseError(f"{source}: the JSON is nested too deeply to be FHIR") from None


def _resources_from_text(text: str | bytes, source: str) -> list[RawResource]:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError(f"{source} is not UTF-8 text (expected FHIR JSON or NDJSON)") from None
    stripped = text.lstrip("\ufeff").strip()
    if not stripped:
        raise ParseError(f"{source} is empty")
    if stripped.startswith("<"):
        raise ParseError(
            f"{source} looks like XML (FHIR XML?): cart-cytopenia reads FHIR JSON (a Bundle or a "
            "resource) or bulk NDJSON, not FHIR XML; convert it to FHIR JSON first (a FHIR server "
            "answers in JSON when asked with _format=json or Accept: application/fhir+json)"
        )
    try:
        doc = json.loads(stripped)
    except json.JSONDecodeError as first:
        # NDJSON: one resource a line
        out: list[RawResource] = []
        for n, line in enumerate(stripped.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                if n == 1:
                    raise ParseError(
                        f"{source} is neither JSON nor NDJSON: {first.msg} (line {first.lineno})"
                    ) from None
                raise ParseError(f"{source} line {n} is not valid JSON: {exc.msg}") from None
            out.extend(resources_from_json(item, f"{source} line {n}"))
        return out
    return list(resources_from_json(doc, source))


# --------------------------------------------------------------------------- validated models by content


class ModelCache:
    """Validated ``fhir.resources`` models by content: a bounded, thread-safe LRU.

    The key is a SHA-256 of the resource's JSON serialisation (key order included), so the same
    resource sent again (a chart opened again after one new lab result) is validated once and
    a changed resource (any value, any key) is validated afresh. Only resources that validate
    are kept: an invalid one is validated, and reported, every time. The models are shared
    between imports and must be treated as read-only (the importer never changes them). Each
    entry holds about 5 KB (a lab Observation); ``max_entries`` bounds the memory.
    """

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("a ModelCache holds at least one entry")
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[bytes, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @staticmethod
    def key(data: dict[str, Any]) -> bytes | None:
        """The content key of a resource (None when it is not plain JSON data)."""
        try:
            return hashlib.sha256(to_json(data)).digest()
        except (PydanticSerializationError, TypeError, ValueError):
            return None

    def validate(self, cls: Any, data: dict[str, Any]) -> Any:
        """``cls.model_validate(data)``, answered from memory for content seen before."""
        key = self.key(data)
        if key is None:
            return cls.model_validate(data)
        with self._lock:
            model = self._items.get(key)
            if model is not None and type(model) is cls:
                self._items.move_to_end(key)
                self.hits += 1
                return model
        model = cls.model_validate(data)  # raises ValidationError: nothing is kept
        with self._lock:
            self.misses += 1
            self._items[key] = model
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return model


# --------------------------------------------------------------------------- helpers


def ref_key(rt: str, rid: str) -> str:
    return f"{rt}/{rid}"


def _texts_of(cc: Any) -> list[str]:
    """Text and coding displays of a CodeableConcept (model or None)."""
    if cc is None:
        return []
    out = []
    if getattr(cc, "text", None):
        out.append(cc.text)
    for c in getattr(cc, "coding", None) or []:
        if c.display:
            out.append(c.display)
    return out


def _codings(cc: Any) -> list[tuple[str | None, str | None]]:
    if cc is None:
        return []
    return [(c.system, c.code) for c in (getattr(cc, "coding", None) or [])]


def _as_date(value: Any) -> dt.date | None:
    """A date from a FHIR date/dateTime value (model type); None for partial dates."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return None


def _partial(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _period_dates(p: Any) -> tuple[dt.date | None, dt.date | None]:
    if p is None:
        return None, None
    return _as_date(p.start), _as_date(p.end)


def _num(x: Any) -> float:
    return float(x) if isinstance(x, Decimal | int | float) else float(str(x))


_GRADE_TEXT = re.compile(r"\bgrade\s*([0-5])\b|^\s*([0-5])\s*$", re.IGNORECASE)


@cache
def _name_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    alts = sorted({n.lower() for n in names if n}, key=len, reverse=True)
    return re.compile(
        r"(?<![a-z0-9])(" + "|".join(re.escape(a) for a in alts) + r")(?![a-z0-9])", re.I
    )


T = TypeVar("T")


@cache
def _drug_names() -> dict[str, Drug]:
    out: dict[str, Drug] = {}
    for d in drugs().values():
        for n in (d.id, *d.aliases):
            out[n.lower()] = d
    return out


@cache
def _product_names() -> dict[str, Product]:
    out: dict[str, Product] = {}
    for p in products().values():
        for n in (p.id, p.generic, p.brand, *p.aliases):
            out[n.lower()] = p
    return out


def _longest_name(names: Mapping[str, T], texts: Iterable[str]) -> T | None:
    """The entry of ``names`` (lower-case names) named in any of ``texts``; the longest name
    wins (so "pegfilgrastim" beats "filgrastim")."""
    pat = _name_pattern(tuple(names))
    best: str | None = None
    for t in texts:
        for m in pat.finditer(t):
            hit = m.group(1).lower()
            if best is None or len(hit) > len(best):
                best = hit
    return names[best] if best else None


def match_drug_text(texts: Iterable[str]) -> Drug | None:
    """The catalogue drug named in any of ``texts`` (longest name wins), or None."""
    return _longest_name(_drug_names(), texts)


def match_product_text(texts: Iterable[str]) -> Product | None:
    """The CAR-T product named in any of ``texts`` (longest name wins), or None."""
    return _longest_name(_product_names(), texts)


def _grade_from_stage(cond: Any) -> int | None:
    cs = codes()
    for st in cond.stage or []:
        for system, code in _codings(st.summary):
            if system == cs.project_system and code and code.startswith("grade-"):
                return int(code.split("-")[1])
        for t in _texts_of(st.summary):
            m = _GRADE_TEXT.search(t)
            if m:
                return int(m.group(1) or m.group(2))
    return None


def _extension(res: Any, name: str) -> Any:
    url = codes().extension(name)
    for e in getattr(res, "extension", None) or []:
        if e.url == url:
            return e
    return None


def _concept_by_code(cc: Any, kinds: tuple[str, ...]) -> tuple[Concept | None, int | None]:
    """The project concept a CodeableConcept names by code: (concept, graded-code grade)."""
    cs = codes()
    for system, code in _codings(cc):
        if system == cs.project_system and code in cs.concepts and cs.concepts[code].kind in kinds:
            return cs.concepts[code], None
    for concept in cs.concepts.values():
        if concept.kind not in kinds:
            continue
        for m in concept.matches:
            for system, code in _codings(cc):
                if m.matches(system, code):
                    return concept, m.grade_of(code or "")
    return None, None


def _therapy_code_of(system: str | None, code: str | None) -> TherapyCode | None:
    table = therapy_codes()
    return table.lookup(table.system_of_uri(system), code)


def _therapy_code(cc: Any) -> TherapyCode | None:
    """The shared therapy-code entry (CAR-T administration, transfusion) a concept is coded with."""
    return next((h for s, c in _codings(cc) if (h := _therapy_code_of(s, c)) is not None), None)


def _code_names(cc: Any) -> list[str]:
    """'CPT 12345'-style names of a concept's codings (system URI when not a known one)."""
    cs, table = codes(), therapy_codes()
    short = {uri: name for name, uri in cs.systems.items()} | table.fhir_systems
    names = {k: SYSTEM_NAMES.get(v, v) for k, v in short.items()}
    return [f"{names.get(s or '', s or 'no system')} {c}" for s, c in _codings(cc) if c]


def _label(cc: Any) -> str:
    """What a concept says it is, for a report: its text, else its codes marked as unknown."""
    texts = _texts_of(cc)[:1]
    names = _code_names(cc)
    if names:
        texts.append(f"code {', '.join(names)} not in the code tables")
    return "; ".join(texts) or "no code or text"


def unidentified_medication(
    res: Any, by_ref: Mapping[str, Any], resolve: Callable[[str | None], str | None]
) -> str:
    """Why the medication of a request/administration cannot be identified."""
    cc = res.medicationCodeableConcept
    if cc is not None:
        names = _code_names(cc)
        if names:
            return (
                f"medication coded {', '.join(names)}: not in the drug catalogue or the "
                "clinical-drug code table, and no medication name is given"
            )
        return "medication without a code or name"
    target = res.medicationReference.reference if res.medicationReference else None
    if target and not target.startswith("#") and resolve(target) not in by_ref:
        return (
            f"medicationReference {target!r} is not in the data given (no such Medication "
            "resource), and no medication name is given"
        )
    return "the referenced Medication has no code or name cart-cytopenia recognises"


# --------------------------------------------------------------------------- per-patient builder


@dataclass
class _Dated:
    ref: str
    when: dt.date | None
    payload: dict[str, Any]
    end: dt.date | None = None
    open_end: bool = False
    merge: bool = False  # an administration: consecutive days may join into one span


@dataclass
class _Builder:
    pid: str
    patient: Any = None
    patient_ref: str | None = None
    diseases: list[_Dated] = field(default_factory=list)
    infusions: list[_Dated] = field(default_factory=list)
    ld: list[_Dated] = field(default_factory=list)
    ld_agents: list[_Dated] = field(default_factory=list)
    labs: list[_Dated] = field(default_factory=list)
    temps: list[_Dated] = field(default_factory=list)
    weights: list[_Dated] = field(default_factory=list)
    events: list[_Dated] = field(default_factory=list)  # payload has "type"
    hcts: list[_Dated] = field(default_factory=list)
    relapse_candidates: list[_Dated] = field(default_factory=list)
    meds: list[_Dated] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    marrow_findings: dict[str, _Dated] = field(default_factory=dict)  # Procedure ref -> findings
    marrow_findings_unlinked: list[_Dated] = field(default_factory=list)
    last_followup: dt.date | None = None


class Importer:
    def __init__(self, cache: ModelCache | None = None) -> None:
        self.cache = cache
        self.cs: FhirCodes = codes()
        self.result = FhirImport()
        self.by_ref: dict[str, Any] = {}
        self.urls: dict[str, str] = {}  # fullUrl -> "Type/id"
        self.builders: dict[str, _Builder] = {}
        self.superseded: set[str] = set()
        self.patient_identifiers: dict[tuple[str | None, str], str] = {}

    # ---- bookkeeping

    def unmapped(self, ref: str, reason: str, source: str = "", group: str = "") -> None:
        self.result.unmapped.append(Unmapped(ref, reason, source, group))

    def warn(self, ref: str, message: str) -> None:
        self.result.warnings.append(ImportWarning(ref, message))

    def builder(self, pid: str) -> _Builder:
        b = self.builders.get(pid)
        if b is None:
            b = self.builders[pid] = _Builder(pid)
        return b

    def resolve(self, reference: str | None) -> str | None:
        """'Type/id' for a reference (relative, absolute, urn:uuid, versioned), or None."""
        if not reference:
            return None
        if reference in self.urls:
            return self.urls[reference]
        ref = reference.split("/_history/")[0]
        parts = ref.rstrip("/").split("/")
        if len(parts) >= 2:
            return f"{parts[-2]}/{parts[-1]}"
        return None

    def subject_of(self, res: Any, ref: str, source: str) -> _Builder | None:
        r = getattr(res, "subject", None) or getattr(res, "patient", None)
        if r is not None and (r.reference or "").startswith("#"):
            return self._contained_subject(res, r.reference, ref, source)
        target = self.resolve(r.reference if r is not None else None)
        if target is None or not target.startswith("Patient/"):
            why = (
                "has no subject"
                if r is None
                else f"subject {getattr(r, 'reference', None)!r} is not a Patient reference"
            )
            self.unmapped(ref, f"{why}; cannot tell whose it is", source)
            return None
        return self.builder(target.split("/", 1)[1])

    def _contained_subject(
        self, res: Any, reference: str, ref: str, source: str
    ) -> _Builder | None:
        """The patient of a resource whose subject is a Patient contained in it ('#p1').

        A contained resource has no identity outside its container, so it is joined with the
        patient's other data through a business identifier (system and value) that one Patient
        of the import also has; without one, the resource is reported."""
        inner = next(
            (c for c in getattr(res, "contained", None) or [] if c.id == reference[1:]), None
        )
        if inner is None or inner.get_resource_type() != "Patient":
            what = "no contained resource" if inner is None else f"a {inner.get_resource_type()}"
            self.unmapped(ref, f"subject {reference!r} is {what}, not a contained Patient", source)
            return None
        idents = [(i.system, i.value) for i in inner.identifier or [] if i.value]
        pids = {self.patient_identifiers[i] for i in idents if i in self.patient_identifiers}
        if len(pids) == 1:
            return self.builder(pids.pop())
        why = (
            "identifiers that name several Patients"
            if pids
            else "no identifier shared with a Patient resource of the import"
            if idents
            else "no identifier"
        )
        self.unmapped(
            ref,
            f"subject is a Patient contained in the resource ({reference}) with {why}: a "
            "contained resource has no identity of its own, so it cannot be joined with the "
            "patient's other data; reference the Patient resource (Patient/<id>) or send the "
            "Patient with the same identifier",
            source,
        )
        return None

    # ---- pipeline

    def run(self, raws: Iterable[RawResource]) -> FhirImport:
        counts: dict[str, int] = defaultdict(int)
        unique = deduplicate(raws)
        for ref, where, first in unique.merged:
            counts[ref.split("/", 1)[0]] += 1
            self.unmapped(ref, f"duplicate of the same resource ({first}): read once", where)
        for ref, message in unique.chosen:
            self.warn(ref, message)
        parsed: list[tuple[Any, str, str]] = []
        for raw in unique.raws:
            counts[str(raw.data.get("resourceType", ""))] += 1
            found = self._parse(raw)
            if found is not None:
                parsed.append((*found, raw.where))
        self.result.resources_read = dict(counts)
        self._index(parsed)
        for model, ref, where in parsed:
            handler = getattr(self, "_" + model.get_resource_type(), None)
            if handler is None:
                self.unmapped(
                    ref, f"{model.get_resource_type()} is not used by cart-cytopenia", where
                )
                continue
            handler(model, ref, where)
        for pid in sorted(self.builders):
            self._finish(self.builders[pid])
        return self.result

    def _parse(self, raw: RawResource) -> tuple[Any, str] | None:
        """(validated model, 'Type/id') of a raw resource, or None after reporting why not."""
        rt = str(raw.data.get("resourceType", ""))
        if rt == "_delete":
            self.unmapped(
                raw.full_url or raw.where,
                "DELETE request in a transaction: nothing to import",
                raw.where,
            )
            return None
        if rt == "_empty":
            self.unmapped(raw.full_url or raw.where, "Bundle entry without a resource", raw.where)
            return None
        rid = raw.data.get("id")
        ref = ref_key(rt, str(rid)) if rid else (raw.full_url or raw.where)
        try:
            cls = get_fhir_model_class(rt)
        except ValueError:
            self.unmapped(ref, f"'{rt}' is not a FHIR R4 resource type", raw.where)
            return None
        try:
            model = (
                cls.model_validate(raw.data)
                if self.cache is None
                else self.cache.validate(cls, raw.data)
            )
        except ValidationError as exc:
            errs = "; ".join(
                f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]
            )
            self.unmapped(ref, f"not valid FHIR {rt}: {errs}", raw.where, f"not valid FHIR {rt}")
            return None
        bad_status = invalid_status(rt, raw.data.get("status"))
        if bad_status is not None:
            self.unmapped(ref, f"not valid FHIR {rt}: {bad_status}", raw.where)
            return None
        if rid:
            self.by_ref[ref] = model
        if raw.full_url:
            self.urls[raw.full_url] = ref
        return model, ref

    def _index(self, parsed: list[tuple[Any, str, str]]) -> None:
        """What the handlers look up across resources: Patients by business identifier (for
        contained Patient subjects) and the requests that administrations fulfil."""
        for model, _ref, _w in parsed:
            if model.get_resource_type() == "Patient":
                for ident in model.identifier or []:
                    if ident.value:
                        self.patient_identifiers[(ident.system, ident.value)] = model.id
            elif (
                model.get_resource_type() == "MedicationAdministration"
                and model.request is not None
            ):
                target = self.resolve(model.request.reference)
                if target:
                    self.superseded.add(target)

    # ---- resource handlers

    def _Patient(self, res: Any, ref: str, where: str) -> None:
        b = self.builder(res.id)
        b.patient = res
        b.patient_ref = ref

    def _OperationOutcome(self, res: Any, ref: str, where: str) -> None:
        msgs = []
        for i in res.issue or []:
            text = (i.details.text if i.details else None) or i.diagnostics or i.code
            msgs.append(f"{i.severity}: {text}")
        self.unmapped(
            ref,
            "OperationOutcome from the sender (data may be incomplete): " + "; ".join(msgs),
            where,
            "OperationOutcome from the sender (data may be incomplete)",
        )

    def _Medication(self, res: Any, ref: str, where: str) -> None:
        pass  # resolved when referenced by a MedicationRequest / MedicationAdministration

    def _Observation(self, res: Any, ref: str, where: str) -> None:
        b = self.subject_of(res, ref, where)
        if b is None:
            return
        cs = self.cs
        status = res.status
        if status not in ("final", "amended", "corrected", "preliminary"):
            self.unmapped(
                ref,
                f"status '{status}': only final, amended, corrected or preliminary results are used",
                where,
            )
            return
        when = _as_date(res.effectiveDateTime) or _as_date(res.effectiveInstant)
        if when is None and res.effectivePeriod is not None:
            when = _period_dates(res.effectivePeriod)[0]
        loincs = [c for s, c in _codings(res.code) if s == cs.system("loinc") and c]
        project = [c for s, c in _codings(res.code) if s == cs.project_system and c]
        if project:
            self._project_observation(b, res, ref, where, project[0], when)
            return
        if any(c in cs.body_temperature for c in loincs):
            self._temperature(b, res, ref, where, when)
            return
        if any(c in cs.body_weight for c in loincs):
            self._weight(b, res, ref, where, when)
            return
        if when is None:
            partial = res.effectiveDateTime if _partial(res.effectiveDateTime) else None
            why = (
                f"effective date '{partial}' is not a full date"
                if partial
                else "no effective date/time"
            )
            self.unmapped(ref, f"{why}; a lab needs the day it was drawn", where)
            return
        a = self._analyte(res, loincs)
        if a is None:
            if res.component and not res.valueQuantity and not res.valueString:
                self._components(b, res, ref, where, when)
                return
            label = "; ".join(_texts_of(res.code)[:1]) or "no text"
            codes_s = ", ".join(loincs) if loincs else "no LOINC code"
            self.unmapped(
                ref, f"not a laboratory test cart-cytopenia uses ({codes_s}: {label})", where
            )
            return
        self._lab_value(b, ref, where, when, a, res)

    def _analyte(self, res: Any, loincs: list[str]) -> Analyte | None:
        for code in loincs:
            try:
                return resolve_analyte(code)
            except InputError:
                continue
        if loincs:
            return None
        for t in _texts_of(res.code):
            try:
                return resolve_analyte(t)
            except InputError:
                continue
        return None

    def _components(self, b: _Builder, res: Any, ref: str, where: str, when: dt.date) -> None:
        used = 0
        for i, comp in enumerate(res.component or []):
            loincs = [c for s, c in _codings(comp.code) if s == self.cs.system("loinc") and c]
            a = self._analyte(comp, loincs)
            cref = f"{ref} component[{i}]"
            if a is None:
                self.unmapped(cref, "component is not a laboratory test cart-cytopenia uses", where)
                continue
            self._lab_value(b, cref, where, when, a, comp)
            used += 1
        if not res.component:
            self.unmapped(ref, "observation without a value", where)

    _VALUE_STRING = re.compile(r"^\s*(<=|>=|<|>|≤|≥)?\s*([0-9]+(?:[.,][0-9]+)?)\s*(.*?)\s*$")

    def _lab_value(
        self, b: _Builder, ref: str, where: str, when: dt.date, a: Analyte, res: Any
    ) -> None:
        q = res.valueQuantity
        absent = getattr(res, "dataAbsentReason", None)
        comparator: str | None = None
        if q is not None and q.value is not None:
            value = _num(q.value)
            unit_text = (
                q.code
                if (q.code and q.system == self.cs.system("ucum"))
                else (q.unit or q.code or "")
            )
            comparator = q.comparator
        elif getattr(res, "valueString", None):
            m = self._VALUE_STRING.match(res.valueString)
            if not m:
                self.unmapped(ref, f"{a.label}: value '{res.valueString}' is not a number", where)
                return
            comparator = {"≤": "<=", "≥": ">="}.get(m.group(1) or "", m.group(1))
            value = float(m.group(2).replace(",", "."))
            unit_text = m.group(3)
            if not unit_text:
                self.unmapped(ref, f"{a.label}: value '{res.valueString}' has no unit", where)
                return
        elif absent is not None:
            reason = "; ".join(_texts_of(absent)) or ", ".join(c for _s, c in _codings(absent) if c)
            self.unmapped(
                ref,
                f"{a.label}: no value (dataAbsentReason: {reason}); missing is not normal",
                where,
            )
            return
        else:
            self.unmapped(ref, f"{a.label}: no numeric value (valueQuantity or valueString)", where)
            return
        if comparator == "ad":
            self.unmapped(
                ref,
                f"{a.label}: comparator 'ad' (sufficient to achieve) is not a measured value",
                where,
            )
            return
        try:
            unit = resolve_unit(unit_text or "")
            a.factor_from(unit)
        except InputError as exc:
            self.unmapped(ref, f"{a.label}: {exc.message}", where)
            return
        why = implausibility(a, value, unit)
        if why is not None:
            self.unmapped(ref, f"implausible {a.label}: {why}", where, f"implausible {a.label}")
            return
        lab: dict[str, Any] = {"analyte": a.code, "value": value, "unit": unit.ucum}
        if comparator:
            lab["comparator"] = comparator
        b.labs.append(_Dated(ref, when, lab))

    def _temperature(
        self, b: _Builder, res: Any, ref: str, where: str, when: dt.date | None
    ) -> None:
        q = res.valueQuantity
        if when is None or q is None or q.value is None:
            self.unmapped(ref, "body temperature without a date or a value", where)
            return
        unit = (q.code or q.unit or "").strip()
        v = _num(q.value)
        if unit in ("[degF]", "degF", "°F", "F"):
            v = (v - 32) * 5 / 9
        elif unit not in ("Cel", "°C", "C", "cel", "degC"):
            self.unmapped(
                ref, f"body temperature in unknown unit '{unit}' (use Cel or [degF])", where
            )
            return
        if not 30 <= v <= 45:
            self.unmapped(
                ref,
                f"implausible body temperature {v:.1f} °C",
                where,
                "implausible body temperature",
            )
            return
        if v < self.cs.fever_threshold_c:
            self.unmapped(
                ref,
                f"body temperature below {self.cs.fever_threshold_c:g} °C: a course records fevers only",
                where,
            )
            return
        b.temps.append(_Dated(ref, when, {"max_temp_c": round(v, 2)}))

    def _weight(self, b: _Builder, res: Any, ref: str, where: str, when: dt.date | None) -> None:
        q = res.valueQuantity
        if q is None or q.value is None:
            self.unmapped(ref, "body weight without a value", where)
            return
        unit = (q.code or q.unit or "").strip()
        factor = {
            "kg": 1.0,
            "g": 0.001,
            "[lb_av]": 0.45359237,
            "lb": 0.45359237,
            "lbs": 0.45359237,
        }.get(unit)
        if factor is None:
            self.unmapped(
                ref, f"body weight in unknown unit '{unit}' (use kg, g or [lb_av])", where
            )
            return
        b.weights.append(_Dated(ref, when, {"kg": round(_num(q.value) * factor, 3)}))

    def _project_observation(
        self, b: _Builder, res: Any, ref: str, where: str, code: str, when: dt.date | None
    ) -> None:
        f = b.facts
        if code == "disease-status":
            for s, c in _codings(res.valueCodeableConcept):
                if s == self.cs.project_system and c and c.startswith("disease-status-"):
                    f["disease_status"] = c.removeprefix("disease-status-")
                    return
        elif code == "marrow-involvement" and res.valueQuantity is not None:
            f["marrow_involvement_pct"] = _num(res.valueQuantity.value)
            return
        elif code == "clonal-haematopoiesis":
            if res.valueBoolean is not None:
                f["chip"] = res.valueBoolean
            genes = [c.valueString for c in res.component or [] if c.valueString]
            if genes:
                f["chip_genes"] = genes
            return
        elif (
            code in ("pre-existing-dysplasia", "pre-existing-fibrosis")
            and res.valueBoolean is not None
        ):
            f[code.replace("-", "_")] = res.valueBoolean
            return
        elif code == "stored-autologous-cells":
            stored = f.setdefault("stored_cells", {})
            if res.valueBoolean is not None:
                stored["autologous"] = res.valueBoolean
            if res.note:
                stored["notes"] = "\n".join(n.text for n in res.note if n.text)
            return
        elif code == "allogeneic-donor-available" and res.valueBoolean is not None:
            f.setdefault("stored_cells", {})["allogeneic_donor"] = res.valueBoolean
            return
        elif code == "disease-genetics" and res.valueString:
            f.setdefault("genetics", []).append(res.valueString)
            return
        elif code == "last-follow-up":
            d = _as_date(res.valueDateTime)
            if d is not None:
                b.last_followup = max(d, b.last_followup) if b.last_followup else d
                return
        elif code == "bone-marrow-findings":
            findings = self._marrow_findings(res)
            item = _Dated(ref, when, findings)
            linked = False
            for p in res.partOf or []:
                target = self.resolve(p.reference)
                if target:
                    b.marrow_findings[target] = item
                    linked = True
            if not linked:
                b.marrow_findings_unlinked.append(item)
            return
        self.unmapped(ref, f"project observation '{code}' has no usable value", where)

    def _marrow_findings(self, res: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        names = {
            "bm-cellularity-pct": "cellularity_pct",
            "bm-disease-pct": "disease_pct",
            "bm-blasts-pct": "blasts_pct",
            "bm-dysplasia": "dysplasia",
            "bm-fibrosis": "fibrosis",
            "bm-disease-present": "disease_present",
            "bm-haemophagocytosis": "haemophagocytosis",
            "bm-cytogenetics": "cytogenetics",
            "bm-fish": "fish",
            "bm-ngs": "ngs",
            "bm-mrd": "mrd",
        }
        for comp in res.component or []:
            code = next((c for s, c in _codings(comp.code) if s == self.cs.project_system), None)
            if code == "bm-cellularity":
                for s, c in _codings(comp.valueCodeableConcept):
                    if s == self.cs.project_system and c and c.startswith("cellularity-"):
                        out["cellularity"] = c.removeprefix("cellularity-")
            elif code in names:
                if comp.valueQuantity is not None:
                    out[names[code]] = _num(comp.valueQuantity.value)
                elif comp.valueBoolean is not None:
                    out[names[code]] = comp.valueBoolean
                elif comp.valueString:
                    out[names[code]] = comp.valueString
        if res.note:
            out["notes"] = "\n".join(n.text for n in res.note if n.text)
        return out

    # ---- conditions

    def _Condition(self, res: Any, ref: str, where: str) -> None:
        b = self.subject_of(res, ref, where)
        if b is None:
            return
        ver = next((c for _s, c in _codings(res.verificationStatus) if c), None)
        if ver in ("refuted", "entered-in-error"):
            self.unmapped(ref, f"verification status '{ver}'", where)
            return
        if ver == "differential":
            self.unmapped(ref, "a differential diagnosis, not a diagnosis", where)
            return
        clinical = next((c for _s, c in _codings(res.clinicalStatus) if c), None)
        onset = _as_date(res.onsetDateTime) or (
            _period_dates(res.onsetPeriod)[0] if res.onsetPeriod else None
        )
        end = _as_date(res.abatementDateTime) or (
            _period_dates(res.abatementPeriod)[1] or _period_dates(res.abatementPeriod)[0]
            if res.abatementPeriod
            else None
        )
        texts = _texts_of(res.code)
        concept, code_grade = _concept_by_code(res.code, ("condition",))
        finding = self._finding(res.code, texts)
        disease = self._disease(res.code, texts)
        if concept is None and finding is None and disease is None:
            concept = next(
                (
                    c
                    for c in self.cs.concepts.values()
                    if c.kind == "condition" and any(c.matches_text(t) for t in texts)
                ),
                None,
            )
        if concept is None and finding is None and disease is None:
            finding = self._finding(None, texts, text_only=True)
        if onset is None and res.recordedDate is not None and (concept or finding):
            onset = _as_date(res.recordedDate)
            if onset is not None:
                self.warn(ref, "no onset date: the recorded date is taken as the onset")
        resolved = clinical in ("resolved", "inactive", "remission")
        item = _Dated(ref, onset, {}, end=end)
        if disease is not None and (concept is None or concept.code == "relapse"):
            relapse_text = self.cs.concepts["relapse"].matches_text(" ".join(texts))
            item.payload = {
                "disease": disease,
                "relapse": (concept is not None and concept.code == "relapse") or relapse_text,
                "clinical": clinical,
                "texts": texts,
                "codes": [c for _s, c in _codings(res.code) if c],
            }
            b.diseases.append(item)
            return
        if concept is None and finding is None:
            label = (
                "; ".join(texts[:1])
                or ", ".join(c for _s, c in _codings(res.code) if c)
                or "no code or text"
            )
            self.unmapped(ref, f"condition not used by cart-cytopenia ({label})", where)
            return
        if onset is None:
            self.unmapped(ref, "no onset date: cannot place it on the course timeline", where)
            return
        if finding is not None:
            detail = "\n".join(n.text for n in res.note or [] if n.text) or None
            payload: dict[str, Any] = {"type": "finding", "finding": finding}
            if detail:
                payload["detail"] = detail
            b.events.append(_Dated(ref, onset, payload))
            return
        assert concept is not None
        if end is None and resolved:
            end = onset
            self.warn(
                ref,
                f"{concept.display} is '{clinical}' without an abatement date: taken as ending on its onset day",
            )
        item.end = end
        code = concept.code
        if code in ("crs", "icans", "iec-hs", "gvhd"):
            grade = _grade_from_stage(res)
            if grade is None and code_grade:
                grade = code_grade
            if code in ("crs", "icans"):
                if grade is None:
                    self.unmapped(
                        ref,
                        f"{concept.display} without an ASTCT grade (give it in Condition.stage.summary)",
                        where,
                    )
                    return
                if grade == 5:
                    self.unmapped(
                        ref,
                        f"{concept.display} grade 5 (fatal): the course grades 1-4; record the death (Patient.deceasedDateTime)",
                        where,
                    )
                    return
                item.payload = {"type": code, "max_grade": grade}
            elif code == "iec-hs":
                item.payload = {"type": "iec_hs"}
                if grade:
                    item.payload["grade"] = grade
            else:
                item.payload = {"type": "gvhd"}
                if grade:
                    if grade > 4:
                        self.warn(ref, f"GVHD grade {grade} is outside 1-4: grade not imported")
                    else:
                        item.payload["grade"] = grade
                organs = [bs.text for bs in res.bodySite or [] if bs.text]
                if organs:
                    item.payload["organ"] = organs[0]
            b.events.append(item)
        elif code == "infection":
            item.payload = self._infection(res, texts)
            b.events.append(item)
        elif code == "relapse":
            payload = {"type": "relapse"}
            sites = [bs.text for bs in res.bodySite or [] if bs.text]
            if sites:
                payload["site"] = sites[0]
            notes = "\n".join(n.text for n in res.note or [] if n.text)
            if notes:
                payload["notes"] = notes
            item.payload = payload
            b.relapse_candidates.append(item)

    def _finding(self, cc: Any, texts: list[str], text_only: bool = False) -> str | None:
        cs = self.cs
        if not text_only:
            for s, c in _codings(cc):
                if s == cs.project_system and c and c.startswith("finding-"):
                    return c.removeprefix("finding-")
                for f in cs.findings:
                    if c and (
                        (
                            s in (cs.system("icd10cm"), cs.system("icd10"))
                            and any(c.upper().startswith(p) for p in f.icd10_prefixes)
                        )
                        or (s == cs.system("snomed") and c in f.snomed)
                    ):
                        return f.finding
            return None
        for f in cs.findings:
            if any(p.search(t) for t in texts for p in f.text):
                return f.finding
        return None

    def _disease(self, cc: Any, texts: list[str]) -> str | None:
        cs = self.cs
        for s, c in _codings(cc):
            if not c:
                continue
            if (
                s == cs.project_system
                and c.startswith("disease-")
                and not c.startswith("disease-status")
            ):
                return c.removeprefix("disease-")
            for d in cs.diseases:
                if s in (cs.system("icd10cm"), cs.system("icd10")) and any(
                    c.upper().startswith(p) for p in d.icd10_prefixes
                ):
                    return d.disease
                if s == cs.system("snomed") and c in d.snomed:
                    return d.disease
        for d in cs.diseases:
            if any(p.search(t) for t in texts for p in d.text):
                return d.disease
        return None

    def _infection(self, res: Any, texts: list[str]) -> dict[str, Any]:
        cs = self.cs
        out: dict[str, Any] = {"type": "infection"}
        category = None
        snomed_cat = {v: k for k, v in cs.infection_snomed.items()}
        for s, c in _codings(res.code):
            if not c:
                continue
            if s == cs.system("snomed") and c in snomed_cat:
                category = snomed_cat[c]
            elif s in (cs.system("icd10cm"), cs.system("icd10")):
                category = category or cs.infection_category_of_icd(c)
            if s == cs.project_system and c == "viral-reactivation":
                out["reactivation"] = True
        organism_ext = _extension(res, "infection-organism")
        organism = organism_ext.valueString if organism_ext is not None else None
        if category in (None, "unknown"):
            for cat, pats in cs.infection_text:
                if any(p.search(t) for t in texts + ([organism] if organism else []) for p in pats):
                    category = cat
                    break
        out["category"] = category or "unknown"
        if organism:
            out["organism"] = organism
        if any(re.search(r"reactivat", t, re.I) for t in texts):
            out["reactivation"] = True
        sites = [bs.text for bs in res.bodySite or [] if bs.text]
        if sites:
            out["site"] = sites[0]
        sev = {v: k for k, v in cs.severity_snomed.items()}
        for s, c in _codings(res.severity):
            if s == cs.system("snomed") and c in sev:
                out["severity"] = sev[c]
        return out

    # ---- procedures

    _PROCEDURE_ORDER = (
        "car-t-infusion",
        "lymphodepletion",
        "stem-cell-boost",
        "hct",
        "bone-marrow-evaluation",
        "transfusion",
        "next-therapy",
    )

    def _procedure_concept(self, res: Any) -> Concept | None:
        hit = _therapy_code(res.code)
        if hit is not None:
            return self.cs.concepts["car-t-infusion" if hit.kind == "car_t" else "transfusion"]
        concept, _ = _concept_by_code(res.code, ("procedure",))
        if concept is not None:
            return concept
        texts = _texts_of(res.code)
        for code in self._PROCEDURE_ORDER:
            c = self.cs.concepts[code]
            if any(c.matches_text(t) for t in texts):
                return c
        return None

    def _Procedure(self, res: Any, ref: str, where: str) -> None:
        b = self.subject_of(res, ref, where)
        if b is None:
            return
        if res.status not in ("completed", "in-progress"):
            self.unmapped(
                ref,
                f"status '{res.status}': only completed or in-progress procedures are used",
                where,
            )
            return
        concept = self._procedure_concept(res)
        if concept is None:
            self.unmapped(ref, f"procedure not used by cart-cytopenia ({_label(res.code)})", where)
            return
        when = _as_date(res.performedDateTime) or (
            _period_dates(res.performedPeriod)[0] if res.performedPeriod else None
        )
        used_texts = [t for u in res.usedCode or [] for t in _texts_of(u)]
        code = concept.code
        if code == "hct":
            kind = self._graft_source(res, used_texts + _texts_of(res.code))
            if kind is None:
                self.unmapped(ref, "HCT without its kind (autologous or allogeneic)", where)
                return
            payload: dict[str, Any] = {"kind": kind}
            donor = _extension(res, "donor-type")
            if donor is not None:
                payload["donor_type"] = donor.valueCode
            b.hcts.append(_Dated(ref, when, payload))
            return
        if when is None:
            self.unmapped(ref, f"{concept.display} without a performed date", where)
            return
        if code == "car-t-infusion":
            product = match_product_text(used_texts + _texts_of(res.code))
            coded = _therapy_code(res.code)
            payload = {
                "product": product.id if product else (coded.product if coded else None),
                "texts": used_texts,
            }
            t = _extension(res, "product-target")
            c = _extension(res, "product-costimulatory")
            if t is not None:
                payload["target"] = t.valueString
            if c is not None:
                payload["costimulatory"] = c.valueString
            dd = _extension(res, "product-donor-derived")
            if dd is not None:
                payload["donor_derived"] = dd.valueBoolean
            b.infusions.append(_Dated(ref, when, payload))
        elif code == "lymphodepletion":
            b.ld.append(_Dated(ref, when, {"regimen": used_texts[0] if used_texts else None}))
        elif code == "transfusion":
            coded = _therapy_code(res.code)
            blood = self._transfusion_product(res, used_texts + _texts_of(res.code)) or (
                coded.product if coded is not None and coded.kind == "transfusion" else None
            )
            if blood is None:
                self.unmapped(
                    ref,
                    "transfusion without a recognised product (red cells, platelets, plasma, granulocytes)",
                    where,
                )
                return
            units_ext = _extension(res, "transfusion-units")
            units = (
                int(units_ext.valueInteger)
                if units_ext is not None and units_ext.valueInteger
                else 1
            )
            b.events.append(
                _Dated(ref, when, {"type": "transfusion", "product": blood, "units": units})
            )
        elif code == "bone-marrow-evaluation":
            b.events.append(_Dated(ref, when, {"type": "bone_marrow", "_ref": ref}))
        elif code == "stem-cell-boost":
            source = self._graft_source(res, used_texts + _texts_of(res.code))
            if source is None:
                self.unmapped(
                    ref, "stem cell boost without its source (autologous or allogeneic)", where
                )
                return
            payload = {"type": "stem_cell_boost", "source": source}
            dose = _extension(res, "cd34-dose")
            if dose is not None and dose.valueQuantity is not None:
                payload["cd34_dose_per_kg"] = _num(dose.valueQuantity.value)
            manip = _extension(res, "graft-manipulation")
            if manip is not None:
                payload["manipulation"] = manip.valueCode
            b.events.append(_Dated(ref, when, payload))
        elif code == "next-therapy":
            desc = (
                res.code.text
                if res.code and res.code.text and res.code.text != concept.display
                else None
            )
            payload = {"type": "next_therapy"}
            if desc:
                payload["description"] = desc
            b.events.append(_Dated(ref, when, payload))

    def _graft_source(self, res: Any, texts: list[str]) -> str | None:
        ext = _extension(res, "graft-source")
        if ext is not None and ext.valueCode in ("autologous", "allogeneic"):
            return str(ext.valueCode)
        for s, c in _codings(res.code):
            if s == self.cs.system("cpt"):
                if c == "38240":
                    return "allogeneic"
                if c == "38241":
                    return "autologous"
        joined = " ".join(texts).lower()
        if re.search(r"\ballo", joined):
            return "allogeneic"
        if re.search(r"\bauto", joined):
            return "autologous"
        return None

    _TRANSFUSION_TEXT = (
        ("rbc", re.compile(r"red (blood )?cell|\brbcs?\b|\bprbcs?\b|packed|erythrocyte", re.I)),
        ("platelets", re.compile(r"platelet|\bplts?\b|thrombocyte", re.I)),
        ("granulocytes", re.compile(r"granulocyte", re.I)),
        ("plasma", re.compile(r"plasma|\bffp\b|cryoprecipitate", re.I)),
    )

    def _transfusion_product(self, res: Any, texts: list[str]) -> str | None:
        for u in res.usedCode or []:
            for s, c in _codings(u):
                if s == self.cs.project_system and c and c.startswith("transfusion-"):
                    return c.removeprefix("transfusion-")
        for product, pat in self._TRANSFUSION_TEXT:
            if any(pat.search(t) for t in texts):
                return product
        return None

    # ---- medications

    def _medication_concept(
        self, res: Any, ref: str
    ) -> tuple[Drug | None, Product | None, str | None, list[str]]:
        """(catalogue drug, CAR-T product, name as written, texts) of a request/administration."""
        cc = res.medicationCodeableConcept
        texts: list[str] = []
        codings: list[tuple[str | None, str | None]] = []
        if cc is not None:
            texts += _texts_of(cc)
            codings += _codings(cc)
        elif res.medicationReference is not None:
            target = res.medicationReference.reference or ""
            med = None
            if target.startswith("#"):
                for c in res.contained or []:
                    if getattr(c, "id", None) == target[1:]:
                        med = c
            else:
                key = self.resolve(target)
                med = self.by_ref.get(key or "")
            if res.medicationReference.display:
                texts.append(res.medicationReference.display)
            if med is not None:
                texts += _texts_of(med.code)
                codings += _codings(med.code)
                for ing in med.ingredient or []:
                    texts += _texts_of(ing.itemCodeableConcept)
                    codings += _codings(ing.itemCodeableConcept)
        by_code = None
        named_by_code: list[str] = []
        for s, c in codings:
            if s == self.cs.system("rxnorm") and c:
                by_code = drug_by_rxnorm(c)
                if by_code:
                    break
                clinical = therapy_codes().clinical_drug(c)
                if clinical is not None:  # a clinical-drug code: read as its ingredient
                    named_by_code.append(clinical.name)
                    by_code = resolve_drug(clinical.ingredient)
                    if by_code:
                        break
        texts += named_by_code
        by_text = match_drug_text(texts)
        drug = by_text or by_code
        if by_code and by_text and by_code.id != by_text.id:
            self.warn(
                ref,
                f"RxNorm code names {by_code.id} but the text names {by_text.id}: the text was used",
            )
        product = match_product_text(texts)
        coded = next(
            (h for h in (_therapy_code_of(sy, c) for sy, c in codings) if h and h.product), None
        )
        if product is None and coded is not None and coded.kind == "car_t":
            product = products().get(coded.product or "")
        name = cc.text if cc is not None and cc.text else (texts[0] if texts else None)
        return drug, product, name, texts

    def _MedicationRequest(self, res: Any, ref: str, where: str) -> None:
        b = self.subject_of(res, ref, where)
        if b is None:
            return
        if ref in self.superseded:
            self.unmapped(ref, "superseded by the MedicationAdministrations that fulfil it", where)
            return
        if res.status not in ("active", "completed", "stopped", "on-hold"):
            self.unmapped(ref, f"status '{res.status}': not given", where)
            return
        if res.intent in ("proposal", "plan", "option"):
            self.unmapped(ref, f"intent '{res.intent}': a proposal or plan, not an order", where)
            return
        start = end = None
        dosage = (res.dosageInstruction or [None])[0]
        timing = dosage.timing if dosage is not None else None
        repeat = timing.repeat if timing is not None else None
        if repeat is not None and repeat.boundsPeriod is not None:
            start, end = _period_dates(repeat.boundsPeriod)
        if (
            start is None
            and res.dispenseRequest is not None
            and res.dispenseRequest.validityPeriod is not None
        ):
            start, end = _period_dates(res.dispenseRequest.validityPeriod)
        if start is None:
            start = _as_date(res.authoredOn)
        if start is None:
            self.unmapped(
                ref, "no start date (dosage bounds, validity period or authoredOn)", where
            )
            return
        if end is None and repeat is not None and repeat.count == 1:
            end = start
        if end is None and res.status in ("completed", "stopped"):
            end = start
            self.warn(ref, f"'{res.status}' without an end date: taken as ending on its start day")
        self._medication_item(b, res, ref, where, start, end, dosage, kind="request")

    def _MedicationAdministration(self, res: Any, ref: str, where: str) -> None:
        b = self.subject_of(res, ref, where)
        if b is None:
            return
        if res.status not in ("completed", "in-progress", "stopped"):
            self.unmapped(ref, f"status '{res.status}': not given", where)
            return
        start = _as_date(res.effectiveDateTime)
        end = start
        if start is None and res.effectivePeriod is not None:
            start, end = _period_dates(res.effectivePeriod)
            end = end or (None if res.status == "in-progress" else start)
        if start is None:
            self.unmapped(ref, "no effective date/time", where)
            return
        self._medication_item(b, res, ref, where, start, end, res.dosage, kind="administration")

    def _medication_item(
        self,
        b: _Builder,
        res: Any,
        ref: str,
        where: str,
        start: dt.date,
        end: dt.date | None,
        dosage: Any,
        kind: str,
    ) -> None:
        drug, product, name, texts = self._medication_concept(res, ref)
        if product is not None and drug is None:
            b.infusions.append(
                _Dated(ref, start, {"product": product.id, "texts": texts, "medication": True})
            )
            return
        lower = " ".join(texts).lower()
        ld_agent = next(
            (
                short
                for agent, short in self.cs.ld_agents.items()
                if re.search(rf"\b{agent}\b", lower)
            ),
            None,
        )
        if drug is None and not name:
            self.unmapped(ref, unidentified_medication(res, self.by_ref, self.resolve), where)
            return
        payload: dict[str, Any] = {"type": "medication", "drug": drug.id if drug else str(name)}
        if dosage is not None:
            dq = None
            if kind == "administration":
                dq = dosage.dose
                route = dosage.route
            else:
                dar = (dosage.doseAndRate or [None])[0]
                dq = dar.doseQuantity if dar is not None else None
                route = dosage.route
            if dq is not None and dq.value is not None:
                payload["dose"] = _num(dq.value)
                # the UCUM code ("ug"), not its display ("mcg"); a display alone is read as the
                # UCUM code it stands for when it is a known dose unit
                ucum = dq.code if dq.code and dq.system == self.cs.system("ucum") else None
                written = dq.unit or dq.code
                if ucum or written:
                    payload["dose_unit"] = ucum or dose_ucum(written) or written
            rtexts = _texts_of(route)
            if rtexts:
                payload["route"] = rtexts[0]
            freq = self._frequency(dosage) if kind == "request" else None
            if freq:
                payload["frequency"] = freq
        reasons = [t for rc in getattr(res, "reasonCode", None) or [] for t in _texts_of(rc)]
        for rc in getattr(res, "reasonCode", None) or []:
            for s, c in _codings(rc):
                if s == self.cs.project_system and c in ("prophylaxis", "treatment"):
                    payload["purpose"] = c
        if "purpose" not in payload:
            dtexts = [dosage.text] if dosage is not None and getattr(dosage, "text", None) else []
            if any(self.cs.concepts["prophylaxis"].matches_text(t) for t in reasons + dtexts):
                payload["purpose"] = "prophylaxis"
        item = _Dated(
            ref, start, payload, end=end, open_end=end is None, merge=kind == "administration"
        )
        if ld_agent is not None:
            item.payload = {**payload, "_ld_agent": ld_agent}
            b.ld_agents.append(item)
            return
        b.meds.append(item)

    @staticmethod
    def _frequency(dosage: Any) -> str | None:
        t = dosage.timing
        if t is None:
            return None
        if t.code is not None and t.code.text:
            return str(t.code.text)
        r = t.repeat
        if r is None:
            return None
        if r.count == 1:
            return "once"
        key: tuple[Any, ...] = (
            r.frequency,
            _num(r.period) if r.period is not None else None,
            r.periodUnit,
        )
        names: dict[tuple[Any, ...], str] = {
            (1, 1.0, "d"): "daily",
            (2, 1.0, "d"): "twice daily",
            (1, 1.0, "wk"): "weekly",
            (1, 2.0, "d"): "every other day",
        }
        return names.get(key)

    # ---- assemble

    def _finish(self, b: _Builder) -> None:
        cs = self.cs
        pid = b.pid
        pref = b.patient_ref or f"Patient/{pid}"
        if b.patient is None:
            self.warn(pref, "no Patient resource: sex and birth date unknown")
        # day 0
        infusions = sorted(b.infusions, key=lambda x: x.when or dt.date.max)
        procs = [i for i in infusions if not i.payload.get("medication")]
        candidates = procs or infusions
        chosen = candidates[0] if candidates else None
        if chosen is None or chosen.when is None:
            self.result.failed.append(
                FailedPatient(
                    pid,
                    "no CAR-T infusion found (a Procedure or MedicationAdministration naming the CAR-T product): "
                    "day 0 is unknown, so no course was made",
                )
            )
            return
        infusion = chosen.when
        for other in infusions:
            if other is chosen:
                continue
            if other.when == infusion:
                if other.payload.get("product") and not chosen.payload.get("product"):
                    chosen.payload["product"] = other.payload["product"]
                continue
            self.unmapped(
                other.ref,
                f"another CAR-T infusion ({other.when}) than day 0 ({infusion}): a course covers one infusion",
            )
        product = chosen.payload.get("product")
        product_ref: dict[str, Any] = {"name": product or "unknown"}
        if product is None:
            if chosen.payload.get("target") or chosen.payload.get("costimulatory"):
                product_ref = {
                    "name": "custom",
                    "target": chosen.payload.get("target"),
                    "costimulatory": chosen.payload.get("costimulatory"),
                }
            self.warn(
                chosen.ref, "CAR-T product not recognised: product-specific rules cannot apply"
            )
        if chosen.payload.get("donor_derived") is not None:
            product_ref["donor_derived"] = chosen.payload["donor_derived"]

        def day(d: dt.date | None) -> int | None:
            return None if d is None else (d - infusion).days

        # malignancy and relapse
        disease = None
        status = b.facts.get("disease_status")
        before = [d for d in b.diseases if d.when is None or d.when <= infusion]
        after = [d for d in b.diseases if d.when is not None and d.when > infusion]
        pick = sorted(before or b.diseases, key=lambda x: x.when or dt.date.min)
        if pick:
            disease = pick[-1].payload["disease"]
            others = {d.payload["disease"] for d in b.diseases} - {disease}
            if others:
                self.warn(
                    pick[-1].ref,
                    f"several malignancies ({', '.join(sorted(others | {disease}))}): {disease} used",
                )
            if status is None:
                p = pick[-1].payload
                joined = " ".join(p["texts"]).lower()
                if (
                    p["clinical"] in ("relapse", "recurrence")
                    or any(
                        c.upper().endswith("2") and c.upper()[:3] in ("C90", "C91")
                        for c in p["codes"]
                    )
                    or "relapsed" in joined
                ):
                    status = "relapsed"
                elif "refractory" in joined:
                    status = "refractory"
        relapses = list(b.relapse_candidates)
        for d in after:
            if d.payload["relapse"] or d.payload["clinical"] in ("relapse", "recurrence"):
                relapses.append(_Dated(d.ref, d.when, {"type": "relapse"}))
            else:
                self.unmapped(
                    d.ref, "malignancy recorded after day 0 without relapse/progression: not used"
                )
        if disease is None:
            disease = "other"
            self.warn(
                pref,
                "no malignancy Condition found: disease recorded as 'other' (disease-specific guidance cannot apply)",
            )

        patient: dict[str, Any] = {"id": pid, "disease": disease}
        p = b.patient
        deaths: list[dict[str, Any]] = []
        if p is not None:
            if p.gender in ("male", "female", "other", "unknown"):
                patient["sex"] = p.gender
            birth = _as_date(p.birthDate)
            if birth is not None:
                patient["birth_date"] = birth.isoformat()
                age = (infusion - birth).days / 365.25
                patient["age_years"] = round(age, 1)
            elif _partial(p.birthDate):
                self.warn(pref, f"birth date '{p.birthDate}' is partial: age not derived from it")
            age_ext = _extension(p, "age-at-infusion")
            if (
                age_ext is not None
                and age_ext.valueAge is not None
                and age_ext.valueAge.value is not None
            ):
                patient["age_years"] = _num(age_ext.valueAge.value)
            w_ext = _extension(p, "weight-at-infusion")
            if w_ext is not None and w_ext.valueQuantity is not None:
                patient["weight_kg"] = _num(w_ext.valueQuantity.value)
            death = _as_date(p.deceasedDateTime)
            cause = _extension(p, "cause-of-death")
            if death is not None:
                dd: dict[str, Any] = {"type": "death", "date": death.isoformat()}
                if cause is not None and cause.valueString:
                    dd["cause"] = cause.valueString
                deaths.append(dd)
            elif p.deceasedBoolean:
                self.warn(pref, "deceased without a date: no death event (its date is needed)")
        if "weight_kg" not in patient and b.weights:
            dated = [w for w in b.weights if w.when is not None]
            before_w = [w for w in dated if w.when is not None and w.when <= infusion]
            chosen_w = (
                max(before_w, key=lambda x: x.when or dt.date.min)
                if before_w
                else (dated or b.weights)[0]
            )
            patient["weight_kg"] = chosen_w.payload["kg"]
            for w in b.weights:
                if w is not chosen_w:
                    self.unmapped(w.ref, "body weight: only the one nearest before day 0 is used")
        if status:
            patient["disease_status"] = status
        for k in (
            "marrow_involvement_pct",
            "chip",
            "chip_genes",
            "pre_existing_dysplasia",
            "pre_existing_fibrosis",
            "genetics",
            "stored_cells",
        ):
            if k in b.facts:
                patient[k] = b.facts[k]
        prior = []
        events: list[dict[str, Any]] = []
        for h in b.hcts:
            if h.when is None or h.when < infusion:
                ph = {"kind": h.payload["kind"]}
                if h.when is not None:
                    ph["date"] = h.when.isoformat()
                if "donor_type" in h.payload:
                    ph["donor_type"] = h.payload["donor_type"]
                prior.append(ph)
            else:
                ev = {"type": "hct", "kind": h.payload["kind"], "date": h.when.isoformat()}
                if "donor_type" in h.payload:
                    ev["donor_type"] = h.payload["donor_type"]
                events.append(ev)
        if prior:
            patient["prior_hct"] = prior

        # lymphodepletion
        ld: dict[str, Any] | None = None
        if b.ld:
            first = min(b.ld, key=lambda x: x.when or dt.date.max)
            ld = {
                "regimen": first.payload["regimen"] or "unknown",
                "start_date": first.when.isoformat() if first.when else None,
            }
        window = [
            a
            for a in b.ld_agents
            if a.when is not None and -cs.ld_window_days <= (day(a.when) or 0) < 0
        ]
        for a in b.ld_agents:
            if a not in window:
                a.payload = {k: v for k, v in a.payload.items() if k != "_ld_agent"}
                b.meds.append(a)
        if window:
            agents = frozenset(a.payload["_ld_agent"] for a in window)
            named = {frozenset(k.split("+")): v for k, v in cs.ld_regimens.items()}
            regimen = named.get(agents, "+".join(sorted(agents)))
            start = min(a.when for a in window if a.when is not None)
            if ld is None:
                ld = {"regimen": regimen, "start_date": start.isoformat()}
            for a in window:
                self.unmapped(
                    a.ref,
                    "lymphodepleting agent before day 0: read as lymphodepletion, not as a medication event",
                )

        # labs
        baseline: list[dict[str, Any]] = []
        labs: list[dict[str, Any]] = []
        for lab in b.labs:
            entry = {**lab.payload, "date": lab.when.isoformat() if lab.when else None}
            (baseline if (day(lab.when) or 0) < 0 else labs).append(entry)
        # fevers: one per day (the highest)
        fevers: dict[dt.date, float] = {}
        for t in b.temps:
            if t.when is not None:
                fevers[t.when] = max(fevers.get(t.when, 0.0), t.payload["max_temp_c"])
        for fever_day, v in sorted(fevers.items()):
            events.append({"type": "fever", "date": fever_day.isoformat(), "max_temp_c": v})
        # other events
        for e in b.events:
            payload = dict(e.payload)
            if payload.get("type") == "bone_marrow":
                ref = payload.pop("_ref")
                findings = b.marrow_findings.pop(ref, None)
                if findings is None:
                    same_day = [f for f in b.marrow_findings_unlinked if f.when == e.when]
                    if same_day:
                        findings = same_day[0]
                        b.marrow_findings_unlinked.remove(findings)
                if findings is not None:
                    payload.update(findings.payload)
            start_s = e.when.isoformat() if e.when else None
            if payload["type"] in ("crs", "icans", "iec_hs", "gvhd", "infection"):
                payload["start_date"] = start_s
                if e.end is not None:
                    payload["end_date"] = e.end.isoformat()
            else:
                payload["date"] = start_s
            events.append(payload)
        for f in [*b.marrow_findings.values(), *b.marrow_findings_unlinked]:
            self.unmapped(f.ref, "bone marrow findings without their marrow Procedure")
        for r in relapses:
            if r.when is None or r.when <= infusion:
                self.unmapped(
                    r.ref, "relapse/progression on or before day 0: not a relapse after CAR-T"
                )
                continue
            events.append({**r.payload, "date": r.when.isoformat()})
        events += self._merged_meds(b.meds)
        events += deaths

        doc: dict[str, Any] = {
            "description": "Imported from FHIR R4 by cart-cytopenia.",
            "patient": patient,
            "product": product_ref,
            "infusion_date": infusion.isoformat(),
            "baseline_labs": baseline,
            "labs": labs,
            "events": events,
        }
        if ld is not None:
            doc["lymphodepletion"] = {k: v for k, v in ld.items() if v is not None}
        if b.last_followup is not None:
            doc["last_followup_date"] = b.last_followup.isoformat()
        try:
            course = parse_course(doc, source=pref)
        except InputError as exc:
            self.result.failed.append(FailedPatient(pid, exc.message, tuple(exc.problems)))
            return
        self.result.courses.append(course)

    @staticmethod
    def _med_event(
        payload: dict[str, Any], start: dt.date | None, end: dt.date | None, open_end: bool
    ) -> dict[str, Any]:
        ev = dict(payload)
        ev["start_date"] = start.isoformat() if start else None
        if end is not None and not open_end:
            ev["end_date"] = end.isoformat()
        return ev

    def _merged_meds(self, meds: list[_Dated]) -> list[dict[str, Any]]:
        """Administrations of the same drug and dose on consecutive days become one span."""
        keyed: dict[tuple[Any, ...], list[_Dated]] = defaultdict(list)
        for m in meds:
            p = m.payload
            key = (
                p["drug"],
                p.get("dose"),
                p.get("dose_unit"),
                p.get("route"),
                p.get("frequency"),
                p.get("purpose"),
            )
            keyed[key].append(m)
        out: list[dict[str, Any]] = []
        for items in keyed.values():
            items.sort(key=lambda x: x.when or dt.date.min)
            spans: list[_Dated] = []
            for m in items:
                last = spans[-1] if spans else None
                if (
                    last is not None
                    and last.merge
                    and m.merge
                    and not last.open_end
                    and not m.open_end
                    and last.end is not None
                    and m.when is not None
                    and m.end is not None
                    and (m.when - last.end).days <= 1
                    and m.payload == last.payload
                ):
                    last.end = max(last.end, m.end)
                    continue
                spans.append(
                    _Dated(
                        m.ref,
                        m.when,
                        dict(m.payload),
                        end=m.end,
                        open_end=m.open_end,
                        merge=m.merge,
                    )
                )
            for s in spans:
                out.append(self._med_event(s.payload, s.when, s.end, s.open_end))
        return out


def import_resources(raws: Iterable[RawResource], cache: ModelCache | None = None) -> FhirImport:
    """Map FHIR resources (from ``resources_from_text`` / ``resources_from_json``) to courses.

    With ``cache``, resources validated before (same content) are not validated again (the CDS
    Hooks service, where the same chart is sent again and again); the result is the same.
    """
    return Importer(cache).run(raws)


def import_text(text: str | bytes, source: str = "FHIR document") -> FhirImport:
    """Import a FHIR JSON document (Bundle or resource) or bulk NDJSON given as text."""
    return import_resources(resources_from_text(text, source))
