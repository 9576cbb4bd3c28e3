"""Data-entry forms generated from the domain model, and errors mapped back to their fields.

The event form for a type is built from the pydantic model of that event (``CRS``,
``Medication`` ...), so a field added to the model appears in the form. Form values go to the
repository as the course JSON would carry them; validation is the domain model's, and each
problem is shown next to the field it names.
"""

from __future__ import annotations

import csv
import io
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel

from cart_cytopenia.domain.analytes import catalogue
from cart_cytopenia.domain.catalogues import drugs
from cart_cytopenia.domain.course import (
    CRS,
    GVHD,
    HCT,
    ICANS,
    IECHS,
    BoneMarrow,
    ClinicalFinding,
    Comparator,
    Death,
    Fever,
    Infection,
    Medication,
    NextTherapy,
    Relapse,
    StemCellBoost,
    Transfusion,
    lab_problems,
)
from cart_cytopenia.errors import InputError, Location, ParseError, Problem

EVENT_TYPES: dict[str, tuple[type[BaseModel], str]] = {
    "crs": (CRS, "Cytokine release syndrome (CRS)"),
    "icans": (ICANS, "ICANS"),
    "iec_hs": (IECHS, "IEC-associated HLH-like syndrome (IEC-HS)"),
    "medication": (Medication, "Medication (G-CSF, TPO-RA, prophylaxis, steroids ...)"),
    "transfusion": (Transfusion, "Transfusion"),
    "infection": (Infection, "Infection"),
    "fever": (Fever, "Fever"),
    "bone_marrow": (BoneMarrow, "Bone marrow biopsy"),
    "stem_cell_boost": (StemCellBoost, "Stem cell boost"),
    "hct": (HCT, "Haematopoietic cell transplant"),
    "gvhd": (GVHD, "GVHD"),
    "relapse": (Relapse, "Relapse / progression"),
    "next_therapy": (NextTherapy, "Next therapy"),
    "finding": (ClinicalFinding, "Clinical finding"),
    "death": (Death, "Death"),
}

TIMING = ("date", "day", "start_date", "start_day", "end_date", "end_day")
LABELS = {
    "date": "Date",
    "day": "or day since infusion",
    "start_date": "Start date",
    "start_day": "or start day",
    "end_date": "End date",
    "end_day": "or end day (empty: ongoing)",
    "max_grade": "Maximum grade (ASTCT)",
    "cd34_dose_per_kg": "CD34+ dose (×10⁶/kg)",
    "max_temp_c": "Maximum temperature (°C)",
    "cellularity_pct": "Cellularity (%)",
    "disease_pct": "Disease (%)",
    "blasts_pct": "Blasts (%)",
    "dose_unit": "Dose unit",
    "mrd": "MRD",
    "ngs": "NGS",
    "fish": "FISH",
}
UNITS = ("/uL", "10*3/uL", "10*9/L", "g/dL", "g/L", "mmol/L", "mg/dL", "mg/L", "ng/mL", "U/L", "%")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    kind: str  # text, number, integer, date, select, bool, textarea
    required: bool = False
    choices: tuple[tuple[str, str], ...] = ()
    help: str = ""
    datalist: tuple[str, ...] = ()


@dataclass
class FormState:
    """Values as typed (to show again) and errors per field ('' = the whole form)."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str | None, message: str) -> None:
        self.errors.setdefault(name or "", []).append(message)

    @property
    def ok(self) -> bool:
        return not self.errors


def _unwrap(ann: Any) -> tuple[Any, bool]:
    """(inner annotation, optional?)"""
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        return (args[0] if len(args) == 1 else ann), True
    return ann, False


def _label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


def event_fields(event_type: str) -> list[FieldSpec]:
    model, _ = EVENT_TYPES[event_type]
    out: list[FieldSpec] = []
    for name, info in model.model_fields.items():
        if name == "type":
            continue
        ann, _optional = _unwrap(info.annotation)
        required = info.is_required()
        desc = info.description or ""
        if name in ("date", "start_date", "end_date"):
            out.append(FieldSpec(name, _label(name), "date", help=desc))
        elif isinstance(ann, type) and issubclass(ann, Enum):
            choices = tuple((m.value, m.value) for m in ann)
            out.append(FieldSpec(name, _label(name), "select", required, choices, desc))
        elif typing.get_origin(ann) is Literal:
            choices = tuple((str(v), str(v)) for v in typing.get_args(ann))
            out.append(FieldSpec(name, _label(name), "select", required, choices, desc))
        elif ann is bool:
            out.append(FieldSpec(name, _label(name), "bool", required, help=desc))
        elif ann is int:
            out.append(FieldSpec(name, _label(name), "integer", required, help=desc))
        elif ann is float:
            out.append(FieldSpec(name, _label(name), "number", required, help=desc))
        elif name == "drug":
            names = tuple(sorted({d.id for d in drugs().values()}))
            out.append(FieldSpec(name, "Drug", "text", True, help=desc, datalist=names))
        elif name in ("notes", "detail", "description"):
            out.append(FieldSpec(name, _label(name), "textarea", required, help=desc))
        else:
            out.append(FieldSpec(name, _label(name), "text", required, help=desc))
    return out


def lab_fields() -> list[FieldSpec]:
    analytes = tuple((a.code, f"{a.label} ({a.canonical_unit.ucum})") for a in catalogue().analytes)
    return [
        FieldSpec("date", "Date drawn", "date"),
        FieldSpec("day", "or day since infusion", "integer"),
        FieldSpec("analyte", "Analyte", "select", True, analytes),
        FieldSpec(
            "comparator",
            "Comparator",
            "select",
            False,
            tuple((c.value, c.value) for c in Comparator),
            "For censored results such as '<0.1'",
        ),
        FieldSpec("value", "Value", "number", True),
        FieldSpec("unit", "Unit", "text", True, help="e.g. /uL, 10*9/L, g/dL", datalist=UNITS),
    ]


def form_to_dict(specs: list[FieldSpec], form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """(document dict for the domain model, values as typed) from submitted form data."""
    doc: dict[str, Any] = {}
    typed: dict[str, str] = {}
    for spec in specs:
        raw = form.get(spec.name)
        text = raw.strip() if isinstance(raw, str) else ""
        typed[spec.name] = text
        if text == "":
            continue
        if spec.kind == "bool":
            doc[spec.name] = text == "yes"
        else:
            doc[spec.name] = text
    return doc, typed


def apply_errors(
    state: FormState, exc: InputError, known: set[str], typed: Mapping[str, Any] | None = None
) -> None:
    """Each problem next to its field (or above the form when the form has no such field).

    With ``typed`` (the values the user typed), a problem with a day since infusion that was
    computed from a typed date is shown next to the date.
    """
    for p in exc.problems:
        f = p.location.field
        if typed is not None and f in ("start_day", "day") and not typed.get(f):
            f = "start_date" if f == "start_day" else "date"
        state.add(f if f in known else None, p.message if f in known else str(p))


def timing_problems(doc: dict[str, Any], dated: bool) -> list[Problem]:
    key_date, key_day = ("date", "day") if dated else ("start_date", "start_day")
    if key_date not in doc and key_day not in doc:
        return [Problem("give a date or a day since infusion", Location(field=key_day))]
    return []


# --------------------------------------------------------------------------- lab CSV upload

CSV_COLUMNS = ("date", "day", "analyte", "value", "unit", "comparator", "patient_id")


def parse_lab_csv(
    data: bytes, filename: str, patient_pseudonym: str
) -> tuple[list[dict[str, Any]], list[int]]:
    """Lab rows of one patient from CSV; (labs in course JSON form, CSV row numbers).

    Columns: ``date`` or ``day``, ``analyte``, ``value``, ``unit``, optional ``comparator`` and
    ``patient_id`` (which must then be this patient's). Values such as ``<0.1`` set the
    comparator. Every problem is reported with its row and column; nothing is saved on error.
    """
    reader = _csv_reader(data, filename)
    labs: list[dict[str, Any]] = []
    rows: list[int] = []
    problems: list[Problem] = []
    for row in reader:
        i = reader.line_num  # the file's line (blank lines are skipped by the reader)
        cells = {k: (v or "").strip() for k, v in row.items() if k}
        if not any(cells.values()):
            continue

        def loc(f: str, i: int = i) -> Location:
            return Location(patient_id=patient_pseudonym, row=i, field=f, source=filename)

        pid = cells.get("patient_id")
        if pid and pid != patient_pseudonym:
            problems.append(
                Problem(
                    f"row is for patient {pid!r}, this page is patient {patient_pseudonym!r}",
                    loc("patient_id"),
                )
            )
            continue
        lab, row_problems = _csv_lab(cells, loc)
        problems += row_problems
        labs.append(lab)
        rows.append(i)
    if problems:
        raise ParseError(f"{filename}: {len(problems)} problem(s); nothing was saved", problems)
    if not labs:
        raise ParseError(
            f"{filename} has no lab rows",
            [Problem("the file has no data rows", Location(source=filename))],
        )
    return labs, rows


def _csv_reader(data: bytes, filename: str) -> csv.DictReader[str]:
    """The CSV's rows by lower-case column name (delimiter sniffed: comma, semicolon or tab),
    refused with what to fix when it is not UTF-8, empty or lacks a needed column."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ParseError(
            f"{filename} is not UTF-8 text",
            [Problem("save the file as CSV (UTF-8)", Location(source=filename))],
        ) from None
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if not header:
        raise ParseError(
            f"{filename} is empty",
            [Problem("the file has no header row", Location(source=filename))],
        )
    reader.fieldnames = header
    missing = [c for c in ("analyte", "value", "unit") if c not in header]
    if "date" not in header and "day" not in header:
        missing.append("date or day")
    if missing:
        raise ParseError(
            f"{filename}: missing column(s) {', '.join(missing)}",
            [
                Problem(
                    f"missing column '{c}' (found: {', '.join(header)})",
                    Location(source=filename, row=1, field=c),
                )
                for c in missing
            ],
        )
    return reader


def _csv_lab(
    cells: dict[str, str], loc: Callable[[str], Location]
) -> tuple[dict[str, Any], list[Problem]]:
    """One CSV row as a lab in course JSON form, with its problems: a date or day, a number
    (``<0.1`` sets the comparator; a decimal comma is read), analyte and unit, and the checks
    the course makes of one lab (date, analyte, unit, plausible value)."""
    problems: list[Problem] = []
    lab: dict[str, Any] = {}
    if cells.get("date"):
        lab["date"] = cells["date"][:10]
    if cells.get("day"):
        lab["day"] = cells["day"]
    if "date" not in lab and "day" not in lab:
        problems.append(Problem("a date or a day is needed", loc("date")))
    value = cells.get("value", "")
    for c in (">=", "<=", "<", ">"):
        if value.startswith(c):
            lab["comparator"] = c
            value = value[len(c) :].strip()
            break
    if cells.get("comparator"):
        lab["comparator"] = cells["comparator"]
    try:
        lab["value"] = (
            float(value.replace(",", "."))
            if value.count(",") == 1 and "." not in value
            else float(value)
        )
    except ValueError:
        problems.append(Problem(f"'{cells.get('value', '')}' is not a number", loc("value")))
    row_problems = [
        Problem(f"'{f}' is empty", loc(f)) for f in ("analyte", "unit") if not cells.get(f)
    ]
    lab |= {f: cells[f] for f in ("analyte", "unit") if cells.get(f)}
    if not row_problems and "value" in lab and ("date" in lab or "day" in lab):
        # the row on its own as the course will check it (date, analyte, unit, plausible):
        # every bad row of the file is listed at once
        row_problems = lab_problems(lab, loc("value"))
    return lab, problems + row_problems
