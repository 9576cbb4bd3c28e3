"""The FHIR codes cart-cytopenia writes and recognises (``io/data/fhir_codes.toml``).

One data file holds every mapping: code system URIs, the project's own code system (concepts
without a standard code, e.g. CAR-T infusion as day 0, exported grades), external codes that are
recognised for each concept (ICD-10-CM, CPT, SNOMED CT, with a ``verified`` flag), text patterns
used when no recognised code is present, diseases, infection categories and the vital-sign LOINC
codes. ``project_code_system()`` renders the project concepts as a FHIR CodeSystem resource.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from cart_cytopenia.domain.catalogues import drugs
from cart_cytopenia.errors import RuleTableError
from cart_cytopenia.io.therapy_codes import therapy_codes

DATA_FILE = "data/fhir_codes.toml"


@dataclass(frozen=True)
class CodeMatch:
    """External codes recognised for a concept: exact codes, prefixes, or codes with a grade."""

    system: str  # URI
    codes: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    exclude_prefixes: tuple[str, ...] = ()
    graded: dict[str, int] = field(default_factory=dict)
    verified: bool = False

    def matches(self, system: str | None, code: str | None) -> bool:
        if system != self.system or not code:
            return False
        c = code.strip().upper()
        if c in self.codes or c in self.graded:
            return True
        if any(c.startswith(p) for p in self.exclude_prefixes):
            return False
        return any(c.startswith(p) for p in self.prefixes)

    def grade_of(self, code: str) -> int | None:
        """The grade a graded code stands for (0 = grade not specified), or None."""
        return self.graded.get(code.strip().upper())


@dataclass(frozen=True)
class Concept:
    code: str
    display: str
    definition: str
    kind: str
    matches: tuple[CodeMatch, ...] = ()
    text: tuple[re.Pattern[str], ...] = ()
    meddra: str | None = None
    meddra_verified: bool = False

    def matches_text(self, text: str) -> bool:
        return any(p.search(text) for p in self.text)


@dataclass(frozen=True)
class DiseaseCodes:
    disease: str
    icd10_prefixes: tuple[str, ...]
    icd10_export: str | None
    snomed: frozenset[str]
    text: tuple[re.Pattern[str], ...]
    verified: bool = False  # the ICD-10(-CM) prefixes, export code and SNOMED CT codes


@dataclass(frozen=True)
class FindingCodes:
    finding: str
    icd10_prefixes: tuple[str, ...]
    snomed: frozenset[str]
    text: tuple[re.Pattern[str], ...]
    verified: bool = False  # the ICD-10(-CM) prefixes and SNOMED CT codes


@dataclass(frozen=True)
class FhirCodes:
    version: str
    source: str
    project_system: str
    guidance_system: str
    extension_base: str
    systems: dict[str, str]
    concepts: dict[str, Concept]
    values: dict[str, str]  # project value code -> display
    diseases: tuple[DiseaseCodes, ...]
    findings: tuple[FindingCodes, ...]
    infection_ranges: tuple[tuple[str, str, str], ...]
    infection_snomed: dict[str, str]
    infection_text: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...]
    severity_snomed: dict[str, str]
    body_temperature: frozenset[str]
    body_weight: frozenset[str]
    lab_panels: tuple[str, ...]
    fever_threshold_c: float
    ld_window_days: int
    ld_agents: dict[str, str]
    ld_regimens: dict[str, str]
    # verification state of the infection ranges (by (from, to)) and of code groups ([verified])
    infection_range_verified: dict[tuple[str, str], bool] = field(default_factory=dict)
    verified_groups: dict[str, bool] = field(default_factory=dict)

    def system(self, name: str) -> str:
        return self.systems[name]

    def concept(self, code: str) -> Concept:
        return self.concepts[code]

    def extension(self, name: str) -> str:
        return self.extension_base + name

    def infection_category_of_icd(self, code: str) -> str | None:
        """Infection category of an ICD-10(-CM) code from the configured ranges."""
        c = code.strip().upper().replace(".", "")
        if len(c) < 3:
            return None
        # the first range that holds the code; each bound compares with as many characters
        # of the code as it has ("A630" holds A63.0 and A63.09, not A63.8)
        for lo, hi, cat in self.infection_ranges:
            lo_, hi_ = lo.replace(".", ""), hi.replace(".", "")
            if lo_ <= c[: len(lo_)] and c[: len(hi_)] <= hi_:
                return cat
        return None


def _patterns(raw: list[str], where: str) -> tuple[re.Pattern[str], ...]:
    out = []
    for t in raw:
        try:
            out.append(re.compile(t, re.IGNORECASE))
        except re.error as exc:
            raise RuleTableError(f"{DATA_FILE}: {where}: invalid pattern {t!r}: {exc}") from exc
    return tuple(out)


@cache
def codes() -> FhirCodes:
    """Load and check the FHIR code mappings shipped with the package."""
    text = resources.files("cart_cytopenia.io").joinpath(DATA_FILE).read_text(encoding="utf-8")
    raw: dict[str, Any] = tomllib.loads(text)
    systems: dict[str, str] = dict(raw["systems"])
    concepts = _concepts(raw, systems)
    values = _value_codes(raw, concepts)
    diseases = tuple(
        DiseaseCodes(
            disease=d["disease"],
            icd10_prefixes=tuple(x.upper() for x in d.get("icd10_prefixes", [])),
            icd10_export=d.get("icd10_export"),
            snomed=frozenset(d.get("snomed", [])),
            text=_patterns(d.get("text", []), f"disease {d['disease']}"),
            verified=bool(d.get("verified", False)),
        )
        for d in raw["disease"]
    )
    findings = tuple(
        FindingCodes(
            finding=f["finding"],
            icd10_prefixes=tuple(x.upper() for x in f.get("icd10_prefixes", [])),
            snomed=frozenset(f.get("snomed", [])),
            text=_patterns(f.get("text", []), f"finding {f['finding']}"),
            verified=bool(f.get("verified", False)),
        )
        for f in raw.get("finding", [])
    )
    vitals = raw["vitals"]
    ld = raw["lymphodepletion"]
    meta = raw["meta"]
    return FhirCodes(
        version=meta["version"],
        source=meta["source"],
        project_system=meta["project_system"],
        guidance_system=meta["guidance_system"],
        extension_base=meta["extension_base"],
        systems=systems,
        concepts=concepts,
        values=values,
        diseases=diseases,
        findings=findings,
        infection_ranges=tuple(
            (r["from"].upper(), r["to"].upper(), r["category"]) for r in raw["infection_category"]
        ),
        infection_snomed=dict(raw["infection_snomed"]),
        infection_text=tuple(
            (t["category"], _patterns(t["text"], f"infection_text {t['category']}"))
            for t in raw["infection_text"]
        ),
        severity_snomed=dict(raw["severity_snomed"]),
        body_temperature=frozenset(vitals["body_temperature"]),
        body_weight=frozenset(vitals["body_weight"]),
        lab_panels=tuple(raw["lab_panels"]["loinc"]),
        fever_threshold_c=float(vitals["fever_threshold_c"]),
        ld_window_days=int(ld["window_days"]),
        ld_agents=dict(ld["agents"]),
        ld_regimens=dict(ld["regimens"]),
        infection_range_verified={
            (r["from"].upper(), r["to"].upper()): bool(r.get("verified", False))
            for r in raw["infection_category"]
        },
        verified_groups={k: bool(v) for k, v in raw.get("verified", {}).items()},
    )


def _concepts(raw: dict[str, Any], systems: dict[str, str]) -> dict[str, Concept]:
    """The project concepts with the codes (by system) and texts that name them."""
    concepts: dict[str, Concept] = {}
    for c in raw["concept"]:
        matches = []
        for m in c.get("match", []):
            if m["system"] not in systems:
                raise RuleTableError(
                    f"{DATA_FILE}: concept {c['code']}: unknown system {m['system']}"
                )
            matches.append(
                CodeMatch(
                    system=systems[m["system"]],
                    codes=frozenset(x.upper() for x in m.get("codes", [])),
                    prefixes=tuple(x.upper() for x in m.get("prefixes", [])),
                    exclude_prefixes=tuple(x.upper() for x in m.get("exclude_prefixes", [])),
                    graded={k.upper(): int(v) for k, v in m.get("graded", {}).items()},
                    verified=bool(m.get("verified", False)),
                )
            )
        if c["code"] in concepts:
            raise RuleTableError(f"{DATA_FILE}: concept {c['code']} defined twice")
        concepts[c["code"]] = Concept(
            code=c["code"],
            display=c["display"],
            definition=c["definition"],
            kind=c["kind"],
            matches=tuple(matches),
            text=_patterns(c.get("text", []), f"concept {c['code']}"),
            meddra=c.get("meddra"),
            meddra_verified=bool(c.get("meddra_verified", False)),
        )
    return concepts


def _value_codes(raw: dict[str, Any], concepts: dict[str, Concept]) -> dict[str, str]:
    """The value codes (prefix + item) and their displays; none may clash with a concept."""
    values: dict[str, str] = {}
    for v in raw.get("value", []):
        for item in v["values"]:
            code = v["prefix"] + item
            if code in concepts or code in values:
                raise RuleTableError(f"{DATA_FILE}: value code {code} clashes with another code")
            values[code] = v["display"].format(v=item)
    return values


# A qualitative result (valueCodeableConcept) of a presence analyte (DAT, schistocytes) as 1 / 0,
# read from the codings' displays and the text: the negative words first ("not detected"
# contains "detected"). Anything else is not read as either.
_ABSENT = re.compile(r"\b(absent|negative|not (detected|seen|present)|none( seen)?|nil)\b", re.I)
_PRESENT = re.compile(r"\b(present|positive|detected|seen|few|occasional|many|[1-4]\+)", re.I)


def presence_value(texts: list[str]) -> float | None:
    """1.0 for a result that reads present/positive/detected, 0.0 for absent/negative/not
    detected, None when the texts say neither (or both)."""
    absent = any(_ABSENT.search(t) for t in texts)
    present = any(_PRESENT.search(_ABSENT.sub("", t)) for t in texts)
    if absent == present:
        return None
    return 1.0 if present else 0.0


def project_display(code: str) -> str:
    """Display text of a project code (concept or value code)."""
    c = codes()
    if code in c.concepts:
        return c.concepts[code].display
    if code in c.values:
        return c.values[code]
    raise KeyError(f"{code!r} is not a code of {c.project_system}")


def project_coding(code: str) -> dict[str, str]:
    """A FHIR Coding of the project code system (KeyError for a code it does not define)."""
    return {"system": codes().project_system, "code": code, "display": project_display(code)}


def project_code_system() -> dict[str, Any]:
    """The project code system as a FHIR R4 CodeSystem resource (JSON)."""
    c = codes()
    concepts: list[dict[str, Any]] = [
        {"code": k.code, "display": k.display, "definition": k.definition}
        for k in c.concepts.values()
    ]
    concepts += [{"code": k, "display": v} for k, v in c.values.items()]
    return {
        "resourceType": "CodeSystem",
        "id": "cart-cytopenia",
        "url": c.project_system,
        "version": c.version,
        "name": "CartCytopenia",
        "title": "cart-cytopenia concepts",
        "status": "active",
        "experimental": False,
        "publisher": "cart-cytopenia developers",
        "description": (
            "Concepts of the cart-cytopenia course model and its exported grades that have no "
            "standard code (see docs/interoperability.md)."
        ),
        "caseSensitive": True,
        "content": "complete",
        "count": len(concepts),
        "concept": concepts,
    }


SYSTEM_NAMES = {
    "icd10cm": "ICD-10-CM",
    "icd10": "ICD-10",
    "cpt": "CPT",
    "snomed": "SNOMED CT",
    "loinc": "LOINC",
    "rxnorm": "RxNorm",
    "hcpcs": "HCPCS",
    "icd10pcs": "ICD-10-PCS",
}


def _therapy_codes_markdown() -> list[str]:
    """The shared therapy-code table (io/data/therapy_codes.toml) as Markdown."""
    t = therapy_codes()
    names = SYSTEM_NAMES
    rows: dict[tuple[str, str, str], list[str]] = {}
    for e in t.codes.values():
        rows.setdefault((e.kind, names[e.system], e.product or "—"), []).append(e.code)
    out = [
        "### CAR-T administration, transfusion and clinical-drug codes (FHIR and OMOP)",
        "",
        f"One table read by the FHIR importer and the OMOP reader alike, with the source of every "
        f"code: `src/cart_cytopenia/io/data/therapy_codes.toml` (version {t.version}).",
        "",
        "| meaning | system | codes | product |",
        "|---|---|---|---|",
    ]
    kinds = {"car_t": "CAR-T administration (day 0)", "transfusion": "transfusion"}
    for (kind, system, product), found in rows.items():
        out.append(f"| {kinds[kind]} | {system} | {', '.join(found)} | {product} |")
    out += ["", "| RxNorm | term type | name | read as |", "|---|---|---|---|"]
    for d in t.clinical_drugs.values():
        out.append(f"| {d.rxcui} | {d.tty} | {d.name} | {d.ingredient} |")
    return out


def codes_markdown() -> str:
    """The code tables of docs/interoperability.md, generated from the data file."""
    c = codes()
    sections = [
        _intro_md(c),
        _concepts_md(c),
        _therapy_codes_markdown(),
        _diseases_md(c),
        _infections_md(c),
        _findings_md(c),
        _other_codes_md(c),
        _code_system_md(c),
    ]
    out = [line for section in sections for line in ("", *section)][1:]
    return "\n".join(out) + "\n"


def _esc(t: str) -> str:
    """Text for a Markdown table cell (a '|' escaped)."""
    return t.replace("|", "\\|")


def _intro_md(c: FhirCodes) -> list[str]:
    """Where the tables come from; the project code system and the extension base."""
    out: list[str] = [
        f"Generated from `src/cart_cytopenia/io/data/fhir_codes.toml` (version {c.version}) by "
        "`python -m cart_cytopenia.io.fhir_codes`; external codes marked † are pending "
        "verification against the terminology (docs/sources-verification.md).",
        "",
        f"Project code system: `{c.project_system}`; guidance items: `{c.guidance_system}` "
        f"(the codes are the guidance item ids); extensions: `{c.extension_base}<name>`.",
    ]
    return out


def _concepts_md(c: FhirCodes) -> list[str]:
    """Course concepts (procedures, conditions) with the codes and texts recognised for them."""
    out: list[str] = [
        "### Course concepts and the codes recognised for them",
        "",
        "| project code | meaning | also recognised (code) | also recognised (text, regular expressions) |",
        "|---|---|---|---|",
    ]
    names = {uri: SYSTEM_NAMES.get(k, k) for k, uri in c.systems.items()}
    for k in c.concepts.values():
        if k.kind not in ("procedure", "condition"):
            continue
        recog = []
        for m in k.matches:
            mark = "" if m.verified else "†"
            sys_name = names.get(m.system, m.system)
            items = sorted(m.codes) + [f"{p}*" for p in m.prefixes]
            items += [f"{code} (grade {g or 'unspecified'})" for code, g in m.graded.items()]
            if m.exclude_prefixes:
                items.append("not " + ", ".join(f"{p}*" for p in m.exclude_prefixes))
            recog.append(f"{sys_name}{mark}: " + ", ".join(items))
        text = ", ".join(f"`{_esc(p.pattern)}`" for p in k.text)
        out.append(
            f"| `{k.code}` | {_esc(k.display)} | {'; '.join(recog) or '—'} | {text or '—'} |"
        )
    return out


def _diseases_md(c: FhirCodes) -> list[str]:
    """Malignancies: ICD-10 prefixes (and the code written on export), SNOMED CT, text."""
    out: list[str] = [
        "### Malignancy (Condition)",
        "",
        "| disease | ICD-10(-CM) prefixes (written on export) | SNOMED CT | text |",
        "|---|---|---|---|",
    ]
    for d in c.diseases:
        mark = "" if d.verified else "†"
        icd = ", ".join(f"{p}*" for p in d.icd10_prefixes) + (
            f" ({d.icd10_export})" if d.icd10_export else ""
        )
        snomed = ", ".join(sorted(d.snomed))
        text = ", ".join(f"`{_esc(p.pattern)}`" for p in d.text)
        out.append(f"| {d.disease} | {icd}{mark} | {snomed + mark if snomed else '—'} | {text} |")
    return out


def _infections_md(c: FhirCodes) -> list[str]:
    """Infection categories: ICD-10 ranges (first match wins), SNOMED CT, text."""
    out: list[str] = [
        "### Infection category",
        "",
        "ICD-10 ranges are checked in the data file's order and the first that holds a code "
        "wins: "
        + ", ".join(f"{lo}–{hi} ({k})" for lo, hi, k in c.infection_ranges)
        + ". A bound compares with as many characters of the code as it has (A63.0 holds "
        "A63.0x, not A63.8).",
        "",
        "| category | ICD-10 ranges | SNOMED CT (also written on export) | text (checked in this order) |",
        "|---|---|---|---|",
    ]
    texts = dict(c.infection_text)
    snomed_mark = "" if c.verified_groups.get("infection_snomed") else "†"
    for cat, snomed in c.infection_snomed.items():
        ranges = (
            ", ".join(
                f"{lo}–{hi}{'' if c.infection_range_verified.get((lo, hi)) else '†'}"
                for lo, hi, k in c.infection_ranges
                if k == cat
            )
            or "—"
        )
        pats = ", ".join(f"`{_esc(p.pattern)}`" for p in texts.get(cat, ())) or "—"
        out.append(f"| {cat} | {ranges} | {snomed}{snomed_mark} | {pats} |")
    return out


def _findings_md(c: FhirCodes) -> list[str]:
    """Clinical findings: ICD-10 prefixes, SNOMED CT, text."""
    out: list[str] = [
        "### Clinical findings (Condition)",
        "",
        "| finding | ICD-10(-CM) prefixes | SNOMED CT | text |",
        "|---|---|---|---|",
    ]
    for f in c.findings:
        mark = "" if f.verified else "†"
        icd = ", ".join(f.icd10_prefixes)
        snomed = ", ".join(sorted(f.snomed))
        out.append(
            f"| {f.finding} | {icd + mark if icd else '—'} | {snomed + mark if snomed else '—'} | "
            + (", ".join(f"`{_esc(p.pattern)}`" for p in f.text) or "—")
            + " |"
        )
    return out


def _other_codes_md(c: FhirCodes) -> list[str]:
    """Vital signs, panels, lymphodepleting agents, severity, labs and medications."""
    out: list[str] = [
        "### Other codes",
        "",
        f"- Body temperature (LOINC): {', '.join(sorted(c.body_temperature))}; a fever is "
        f"≥ {c.fever_threshold_c:g} °C (highest value per day).",
        f"- Body weight (LOINC): {', '.join(sorted(c.body_weight))}.",
        f"- Blood count panels (LOINC; asked for by the `labs` prefetch, components read one by "
        f"one): {', '.join(c.lab_panels)}.",
        f"- Lymphodepleting agents (administrations within {c.ld_window_days} days before day 0 "
        f"are read as lymphodepletion): {', '.join(c.ld_agents)}.",
        "- Infection severity (SNOMED CT qualifier values; Condition.severity is bound, as preferred, "
        "to the FHIR condition-severity value set of severe, moderate and mild, so other codes are "
        "allowed)"
        + ("" if c.verified_groups.get("severity_snomed") else "†")
        + ": "
        + ", ".join(f"{k} {v}" for k, v in c.severity_snomed.items())
        + ".",
        "- Laboratory tests: the LOINC codes of the analyte catalogue "
        "(`src/cart_cytopenia/domain/data/analytes.toml`, docs/data-formats.md).",
        "- Medications: RxNorm RXCUIs of the drug catalogue "
        "(`src/cart_cytopenia/domain/data/drugs.toml`, `rxnorm`) and the catalogue's names; "
        "RXCUIs not yet verified: "
        + (
            ", ".join(
                f"{d.id} {'/'.join(d.rxnorm)}†"
                for d in drugs().values()
                if d.rxnorm and not d.rxnorm_verified
            )
            or "none"
        )
        + ".",
    ]
    return out


def _code_system_md(c: FhirCodes) -> list[str]:
    """The project code system: concepts and value codes."""
    out: list[str] = [
        "### Project code system (concepts and value codes)",
        "",
        "| code | display | definition |",
        "|---|---|---|",
    ]
    for k in c.concepts.values():
        extra = f" MedDRA {k.meddra}{'' if k.meddra_verified else '†'}." if k.meddra else ""
        out.append(f"| `{k.code}` | {_esc(k.display)} | {_esc(k.definition)}{extra} |")
    for code, display in c.values.items():
        out.append(f"| `{code}` | {_esc(display)} | value code |")
    return out


if __name__ == "__main__":
    import sys

    sys.stdout.write(codes_markdown())
