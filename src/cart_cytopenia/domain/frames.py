"""The tabular (long-format) form of courses: one representation for one patient and a million.

``CohortFrames`` holds three polars DataFrames in canonical form:

- ``patients``: one row per patient. ``patient_id`` plus day-based dates (``*_day``, days since
  infusion: ``progression_day``, ``next_therapy_day``, ``last_followup_day``, ``death_day``,
  ``ld_start_day``) and descriptive fields (``age_years``, ``sex``, ``disease``, ``product`` ...).
- ``labs``: ``patient_id, day, analyte, value`` with ``analyte`` a catalogue code and ``value`` in
  the analyte's canonical unit, ``row`` the source row (for messages).
- ``events``: ``patient_id, type, start_day, end_day, grade, drug, product`` (see docs/data-formats.md).

``normalise_labs`` turns raw long rows (analyte name/LOINC, value, unit) into canonical rows,
vectorised, rejecting unknown analytes/units and implausible values with messages that name the
patient, the row and the likely mix-up. ``course_to_frames`` turns a validated ``Course`` into the
same frames, so ``assess`` (one course) and ``grade`` (a cohort) run the same grading code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from cart_cytopenia.domain.analytes import Analyte, implausibility, resolve_analyte
from cart_cytopenia.domain.catalogues import DrugClass, resolve_drug
from cart_cytopenia.domain.course import (
    CRS,
    HCT,
    ICANS,
    IECHS,
    Course,
    Dated,
    Infection,
    Medication,
    Span,
    StemCellBoost,
    Transfusion,
)
from cart_cytopenia.domain.units import resolve_unit
from cart_cytopenia.errors import (
    ImplausibleValueError,
    InputError,
    Location,
    Problem,
    UnitError,
    UnknownAnalyteError,
)

MAX_PROBLEMS_LISTED = 20

PATIENT_DAY_COLUMNS = (
    "progression_day",
    "next_therapy_day",
    "last_followup_day",
    "death_day",
    "ld_start_day",
)

PATIENT_SCHEMA: dict[str, Any] = {
    "patient_id": pl.String,
    "progression_day": pl.Int32,
    "next_therapy_day": pl.Int32,
    "last_followup_day": pl.Int32,
    "death_day": pl.Int32,
    "ld_start_day": pl.Int32,
    "age_years": pl.Float64,
    "sex": pl.String,
    "disease": pl.String,
    "product": pl.String,
    "prior_allo_hct": pl.Boolean,
    "prior_auto_hct": pl.Boolean,
}

LAB_SCHEMA: dict[str, Any] = {
    "patient_id": pl.String,
    "day": pl.Int32,
    "analyte": pl.String,
    "value": pl.Float64,
    "row": pl.Int64,
}

EVENT_SCHEMA: dict[str, Any] = {
    "patient_id": pl.String,
    "type": pl.String,
    "start_day": pl.Int32,
    "end_day": pl.Int32,
    "grade": pl.Int8,
    "drug": pl.String,
    "product": pl.String,
}


@dataclass(frozen=True)
class CohortFrames:
    patients: pl.DataFrame
    labs: pl.DataFrame
    events: pl.DataFrame

    @property
    def n_patients(self) -> int:
        return self.patients.height


def empty_events() -> pl.DataFrame:
    return pl.DataFrame(schema=EVENT_SCHEMA)


def conform(df: pl.DataFrame, schema: dict[str, Any]) -> pl.DataFrame:
    """Add missing optional columns (as nulls) and cast known ones to the canonical types."""
    exprs = []
    for name, dtype in schema.items():
        if name in df.columns:
            exprs.append(pl.col(name).cast(dtype))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    extra = [c for c in df.columns if c not in schema]
    return df.select([*exprs, *extra])


def _problem_list(rows: pl.DataFrame, make: Any) -> list[Problem]:
    return [make(r) for r in rows.head(MAX_PROBLEMS_LISTED).iter_rows(named=True)]


def normalise_labs(raw: pl.DataFrame, source: str | None = None) -> pl.DataFrame:
    """Raw long lab rows -> canonical rows. Columns: patient_id, day, analyte, value, unit[, row].

    Every unknown analyte, unknown/unfit unit, missing value and implausible value is reported
    together (the first 20 listed, with the count); nothing is returned half-normalised.
    """
    if "row" not in raw.columns:
        raw = raw.with_row_index("row", offset=1).with_columns(pl.col("row").cast(pl.Int64))
    missing_cols = [
        c for c in ("patient_id", "day", "analyte", "value", "unit") if c not in raw.columns
    ]
    if missing_cols:
        raise InputError(f"lab table lacks column(s) {', '.join(missing_cols)}")
    df = raw.select(
        pl.col("patient_id").cast(pl.String),
        pl.col("day").cast(pl.Int32),
        pl.col("analyte").cast(pl.String),
        pl.col("value").cast(pl.Float64),
        pl.col("unit").cast(pl.String).fill_null(""),
        pl.col("row").cast(pl.Int64),
    )

    def loc(r: dict[str, Any], field: str) -> Location:
        return Location(patient_id=r["patient_id"], row=r["row"], field=field, source=source)

    problems: list[Problem] = []
    nulls = df.filter(pl.any_horizontal(pl.col("patient_id", "day", "analyte", "value").is_null()))
    if nulls.height:
        problems += _problem_list(
            nulls,
            lambda r: Problem(
                "missing "
                + ", ".join(k for k in ("patient_id", "day", "analyte", "value") if r[k] is None)
                + " (a missing value is never read as normal: remove the row or fill it in)",
                loc(r, "value"),
            ),
        )
        if nulls.height > MAX_PROBLEMS_LISTED:
            problems.append(Problem(f"... {nulls.height} rows with missing fields in all"))
        df = df.drop_nulls(["patient_id", "day", "analyte", "value"])

    # resolve each distinct (analyte, unit) pair once
    pairs = df.select("analyte", "unit").unique()
    codes: list[str | None] = []
    factors: list[float | None] = []
    per_ul: list[bool] = []
    bad: dict[tuple[str, str], str] = {}
    resolved: dict[tuple[str, str], tuple[Analyte, Any]] = {}
    for name, unit_text in pairs.iter_rows():
        try:
            a = resolve_analyte(name)
            u = resolve_unit(unit_text)
            f = a.factor_from(u)
            resolved[(name, unit_text)] = (a, u)
            codes.append(a.code)
            factors.append(f)
            per_ul.append(u.ucum == "/uL" and a.canonical_unit.ucum in ("/uL", "10*3/uL"))
        except (UnknownAnalyteError, UnitError) as exc:
            bad[(name, unit_text)] = exc.message
            codes.append(None)
            factors.append(None)
            per_ul.append(False)
    lookup = pairs.with_columns(
        pl.Series("code", codes, dtype=pl.String),
        pl.Series("factor", factors, dtype=pl.Float64),
        pl.Series("per_ul", per_ul, dtype=pl.Boolean),
    )
    df = df.join(lookup, on=["analyte", "unit"], how="left")
    unresolved = df.filter(pl.col("code").is_null())
    if unresolved.height:
        problems += _problem_list(
            unresolved, lambda r: Problem(bad[(r["analyte"], r["unit"])], loc(r, "analyte/unit"))
        )
        if unresolved.height > MAX_PROBLEMS_LISTED:
            problems.append(
                Problem(f"... {unresolved.height} rows with an unknown analyte or unit in all")
            )
        df = df.filter(pl.col("code").is_not_null())

    df = df.with_columns((pl.col("value") * pl.col("factor")).alias("canonical"))
    # plausibility: canonical range per analyte; whole numbers for counts per microlitre
    ranges = pl.DataFrame(
        {
            "code": [a.code for a, _ in resolved.values()],
            "lo": [a.plausible_low for a, _ in resolved.values()],
            "hi": [a.plausible_high for a, _ in resolved.values()],
        },
        schema={"code": pl.String, "lo": pl.Float64, "hi": pl.Float64},
    ).unique("code")
    df = df.join(ranges, on="code", how="left")
    implausible = df.filter(
        (pl.col("canonical") < pl.col("lo"))
        | (pl.col("canonical") > pl.col("hi"))
        | pl.col("canonical").is_nan()
        | (pl.col("per_ul") & (pl.col("value") % 1 != 0))
    )
    if implausible.height:

        def msg(r: dict[str, Any]) -> Problem:
            a, u = resolved[(r["analyte"], r["unit"])]
            why = implausibility(a, r["value"], u) or "implausible value"
            p = Problem(f"implausible {a.label} ({a.code}): {why}", loc(r, "value"))
            p.kind = "ImplausibleValueError"
            return p

        problems += _problem_list(implausible, msg)
        if implausible.height > MAX_PROBLEMS_LISTED:
            problems.append(Problem(f"... {implausible.height} implausible values in all"))
    if problems:
        kinds = {p.kind for p in problems}
        cls = ImplausibleValueError if kinds == {"ImplausibleValueError"} else InputError
        n_bad = nulls.height + unresolved.height + implausible.height
        raise cls(f"{source or 'lab table'}: {n_bad} bad row(s); nothing was loaded", problems)
    return df.select(
        "patient_id",
        "day",
        pl.col("code").alias("analyte"),
        pl.col("canonical").alias("value"),
        "row",
    )


# --------------------------------------------------------------------------- course -> frames


def _event_rows(course: Course) -> list[dict[str, Any]]:
    pid = course.patient.id
    rows: list[dict[str, Any]] = []
    for ev in course.events:
        start = ev.day if isinstance(ev, Dated) else ev.start
        end = ev.day if isinstance(ev, Dated) else ev.end
        row: dict[str, Any] = {
            "patient_id": pid,
            "type": ev.type,
            "start_day": start,
            "end_day": end,
            "grade": None,
            "drug": None,
            "product": None,
        }
        if isinstance(ev, (CRS, ICANS)):
            row["grade"] = ev.max_grade
        elif isinstance(ev, IECHS):
            row["grade"] = ev.grade
        elif isinstance(ev, Medication):
            row["drug"] = ev.drug_id
        elif isinstance(ev, Transfusion):
            row["product"] = ev.product.value
            row["grade"] = ev.units
        elif isinstance(ev, Infection):
            row["product"] = ev.category.value
            row["grade"] = {"mild": 1, "moderate": 2, "severe": 3, "life-threatening": 4}.get(
                ev.severity.value if ev.severity else ""
            )
        elif isinstance(ev, (StemCellBoost, HCT)):
            row["product"] = ev.source.value if isinstance(ev, StemCellBoost) else ev.kind.value
        elif isinstance(ev, Span):
            pass
        rows.append(row)
    return rows


def course_to_frames(course: Course) -> CohortFrames:
    """A validated course as one-patient frames (labs already checked by the course model)."""
    pid = course.patient.id
    p = course.patient
    patients = pl.DataFrame(
        [
            {
                "patient_id": pid,
                "progression_day": course.relapse_day,
                "next_therapy_day": course.next_therapy_day,
                "last_followup_day": course.last_followup_day,
                "death_day": course.death_day,
                "ld_start_day": course.ld_start_day,
                "age_years": p.age_years,
                "sex": p.sex.value,
                "disease": p.disease.value,
                "product": course.product.id,
                "prior_allo_hct": p.prior_allo_hct,
                "prior_auto_hct": p.prior_auto_hct,
            }
        ],
        schema=PATIENT_SCHEMA,
    )
    raw_labs = [
        {
            "patient_id": pid,
            "day": lab.day,
            "analyte": lab.analyte,
            "value": lab.value,
            "unit": lab.unit,
            "row": i + 1,
        }
        for i, lab in enumerate([*course.baseline_labs, *course.labs])
    ]
    labs = (
        normalise_labs(
            pl.DataFrame(
                raw_labs,
                schema={
                    "patient_id": pl.String,
                    "day": pl.Int32,
                    "analyte": pl.String,
                    "value": pl.Float64,
                    "unit": pl.String,
                    "row": pl.Int64,
                },
            ),
            source=f"course {pid}",
        )
        if raw_labs
        else pl.DataFrame(schema=LAB_SCHEMA)
    )
    events = (
        pl.DataFrame(_event_rows(course), schema=EVENT_SCHEMA) if course.events else empty_events()
    )
    return CohortFrames(patients, labs, events)


def drug_class_expr(cls: DrugClass) -> pl.Expr:
    """Boolean expression: the event is a medication of the given class."""
    names = _drugs_in_class(cls)
    return (pl.col("type") == "medication") & pl.col("drug").str.to_lowercase().is_in(names)


def _drugs_in_class(cls: DrugClass) -> list[str]:
    from cart_cytopenia.domain.catalogues import drugs

    out = []
    for d in drugs().values():
        if cls in d.classes:
            out += [d.id, *d.aliases]
    return out


def resolve_drug_name(name: str) -> str:
    d = resolve_drug(name)
    return d.id if d else name
