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

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.domain.analytes import Analyte, implausibility, resolve_analyte
from cart_cytopenia.domain.analytes import catalogue as analyte_catalogue
from cart_cytopenia.domain.catalogues import DrugClass
from cart_cytopenia.domain.units import resolve_unit
from cart_cytopenia.errors import (
    ImplausibleValueError,
    InputError,
    Location,
    Problem,
    UnitError,
    UnknownAnalyteError,
)

if TYPE_CHECKING:  # (the course model is imported where courses are converted: reading and
    # grading a cohort file does not need it)
    from cart_cytopenia.domain.course import Course

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

ANALYTE_CODES: list[str] = [a.code for a in analyte_catalogue().analytes]
ANALYTE_ENUM = pl.Enum(ANALYTE_CODES)
if len(ANALYTE_CODES) > 256:  # rows carry their analyte's catalogue position as one byte
    raise RuntimeError("the analyte catalogue outgrew one-byte codes (domain/frames.py)")

LAB_SCHEMA: dict[str, Any] = {
    "patient_id": pl.String,
    "day": pl.Int32,
    "analyte": ANALYTE_ENUM,
    "value": pl.Float64,
    "row": pl.Int64,
}

# raw long lab rows, before ``normalise_labs`` (analyte and unit as written)
RAW_LAB_SCHEMA: dict[str, Any] = {
    "patient_id": pl.String,
    "day": pl.Int32,
    "analyte": pl.String,
    "value": pl.Float64,
    "unit": pl.String,
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
    # False when the cohort came without an event table: transfusions, CRS and ICANS are then
    # unknown (empty in the grade table), not "none"
    events_recorded: bool = True

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


T = TypeVar("T")
R = TypeVar("R")
ROWS_PER_SLICE = 2_000_000  # rows converted at a time by one thread in ``normalise_labs``
ALL_PAIRS_UP_TO = 1 << 16  # resolve every (analyte text, unit text) pair up to this many


def _row_slices(n: int) -> list[tuple[int, int]]:
    k = max(1, -(-n // ROWS_PER_SLICE))
    bounds = [n * i // k for i in range(k + 1)]
    return list(itertools.pairwise(bounds))


def _resolved_once(cache: dict[str, Any], text: str, resolve: Callable[[str], Any]) -> Any:
    """``resolve(text)``, or the UnknownAnalyteError/UnitError it raised, kept per text."""
    if text not in cache:
        try:
            cache[text] = resolve(text)
        except (UnknownAnalyteError, UnitError) as exc:
            cache[text] = exc
    found = cache[text]
    if isinstance(found, (UnknownAnalyteError, UnitError)):
        raise found
    return found


def normalise_labs(
    raw: pl.DataFrame,
    source: str | None = None,
    coded: dict[str, Sequence[str]] | None = None,
    skipped: list[Problem] | None = None,
) -> pl.DataFrame:
    """Raw long lab rows -> canonical rows. Columns: patient_id, day, analyte, value, unit[, row].

    Every unknown analyte, unknown/unfit unit, missing value and implausible value is reported
    together (the first 20 listed, with the count); nothing is returned half-normalised.
    ``skipped``: given a list, bad rows are left out instead and reported into it (a summary
    problem with the count, then the listed problems), for ``grade --on-bad-row skip``.
    Each distinct (analyte, unit) pair is resolved once; rows are converted by a table lookup,
    so the cost per row is a few array operations (see benchmarks/).

    ``coded``: the ``analyte`` and/or ``unit`` columns named here hold unsigned integer codes
    into the given distinct texts, without missing values (io.tables reads a Parquet file's texts
    so, from its dictionary pages); the rows are read exactly as if they held the texts.
    """
    coded_texts = _checked_codes(raw, coded)
    df, is_coded = _lab_columns(raw, coded_texts)
    nulls, problems = _missing_fields(df, source)
    if nulls.height:
        df = df.drop_nulls(["patient_id", "day", "analyte", "value"])
    conv = _convert(df, coded_texts, is_coded)
    problems += _conversion_problems(df, conv, source)
    if problems:
        kinds = {p.kind for p in problems}
        cls = ImplausibleValueError if kinds == {"ImplausibleValueError"} else InputError
        n_bad = nulls.height + int(conv.unresolved.sum()) + int(conv.implausible.sum())
        if skipped is None:
            raise cls(f"{source or 'lab table'}: {n_bad} bad row(s); nothing was loaded", problems)
        skipped.append(Problem(f"{source or 'lab table'}: {n_bad} bad row(s) left out"))
        skipped.extend(problems)
        keep = ~(conv.unresolved | conv.implausible)
        df, canonical, codes = df.filter(pl.Series(keep)), conv.canonical[keep], conv.codes[keep]
    else:
        canonical, codes = conv.canonical, conv.codes
    return pl.DataFrame(
        {
            "patient_id": df["patient_id"],
            "day": df["day"],
            # (positions handed to ``gather`` as a Series: from a numpy array they are first
            # converted one by one, ~0.1 s for 16.9M rows)
            "analyte": pl.Series(ANALYTE_CODES, dtype=ANALYTE_ENUM).gather(pl.Series(codes)),
            "value": canonical,
            "row": df["row"],
        }
    )


def _checked_codes(
    raw: pl.DataFrame, coded: dict[str, Sequence[str]] | None
) -> dict[str, Sequence[str]]:
    """The ``coded`` columns checked: lab text columns of unsigned codes into their texts."""
    coded_texts = dict(coded or {})
    for col, texts_of_col in coded_texts.items():
        if col not in ("analyte", "unit") or col not in raw.columns:
            raise ValueError(f"coded column {col!r} is not a lab text column of the table")
        if not raw.schema[col].is_unsigned_integer() or raw[col].null_count():
            raise ValueError(f"coded column {col!r} must be unsigned integer codes, none missing")
        if raw.height and int(raw[col].max()) >= len(texts_of_col):  # type: ignore[arg-type]
            raise ValueError(f"coded column {col!r} has codes beyond its {len(texts_of_col)} texts")
    return coded_texts


def _lab_columns(
    raw: pl.DataFrame, coded_texts: dict[str, Sequence[str]]
) -> tuple[pl.DataFrame, dict[str, bool]]:
    """The lab columns in their types (a ``row`` number added when missing), and whether the
    analyte and unit columns are codes (``coded_texts`` gets the texts of Enum columns)."""
    if "row" not in raw.columns:
        raw = raw.with_row_index("row", offset=1).with_columns(pl.col("row").cast(pl.Int64))
    missing_cols = [
        c for c in ("patient_id", "day", "analyte", "value", "unit") if c not in raw.columns
    ]
    if missing_cols:
        raise InputError(f"lab table lacks column(s) {', '.join(missing_cols)}")
    # analyte and unit stay codes when they come as such (``coded``; an Enum column is read
    # through its own codes and texts); anything else is read as text
    unit_nulls = raw["unit"].null_count()
    for c in ("analyte", "unit"):
        dtype = raw.schema[c]
        if isinstance(dtype, pl.Enum) and not (c == "unit" and unit_nulls):
            coded_texts[c] = list(dtype.categories)
            raw = raw.with_columns(pl.col(c).to_physical())
    # (a missing unit is read as the text "")
    is_coded = {c: c in coded_texts for c in ("analyte", "unit")}
    df = raw.select(
        pl.col("patient_id").cast(pl.String),
        pl.col("day").cast(pl.Int32),
        pl.col("analyte") if is_coded["analyte"] else pl.col("analyte").cast(pl.String),
        pl.col("value").cast(pl.Float64),
        (
            pl.col("unit")
            if is_coded["unit"]
            else pl.col("unit").cast(pl.String).fill_null("")
            if unit_nulls
            else pl.col("unit").cast(pl.String)  # no copy of every unit text when none is missing
        ),
        pl.col("row").cast(pl.Int64),
    )
    return df, is_coded


def _location(r: dict[str, Any], field: str, source: str | None) -> Location:
    return Location(patient_id=r["patient_id"], row=r["row"], field=field, source=source)


def _missing_fields(df: pl.DataFrame, source: str | None) -> tuple[pl.DataFrame, list[Problem]]:
    """The rows missing a required field, and a problem for each (the first ones listed)."""
    problems: list[Problem] = []
    required = ("patient_id", "day", "analyte", "value")
    has_nulls = any(df[c].null_count() for c in required)
    nulls = df.filter(pl.any_horizontal(pl.col(*required).is_null())) if has_nulls else df.clear()
    if nulls.height:
        problems += _problem_list(
            nulls,
            lambda r: Problem(
                "missing "
                + ", ".join(k for k in ("patient_id", "day", "analyte", "value") if r[k] is None)
                + " (a missing value is never read as normal: remove the row or fill it in)",
                _location(r, "value", source),
            ),
        )
        if nulls.height > MAX_PROBLEMS_LISTED:
            problems.append(Problem(f"... {nulls.height} rows with missing fields in all"))
    return nulls, problems


@dataclass(frozen=True)
class _PairTable:
    """Each (analyte text, unit text) pair resolved once: the factor to the canonical unit, the
    plausible range, whether counts per microlitre must be whole, the analyte's catalogue
    position; or why the pair does not resolve (``bad``)."""

    factor: NDArray[np.float64]
    lo: NDArray[np.float64]
    hi: NDArray[np.float64]
    per_ul: NDArray[np.bool_]
    code_idx: NDArray[np.uint8]
    bad: dict[tuple[int, int], str]
    resolved: dict[tuple[int, int], tuple[Analyte, Any]]


def _resolve_pairs(
    analyte_texts: list[str], unit_texts: list[str], to_resolve: Sequence[int]
) -> _PairTable:
    """Resolve the pairs ``to_resolve`` (positions in the analyte x unit table)."""
    shape = (len(analyte_texts), len(unit_texts))
    factor = np.full(shape, np.nan)
    lo = np.full(shape, np.nan)
    hi = np.full(shape, np.nan)
    per_ul = np.zeros(shape, bool)
    code_idx = np.zeros(shape, np.uint8)  # (pairs that do not resolve are never read)
    bad: dict[tuple[int, int], str] = {}
    resolved: dict[tuple[int, int], tuple[Analyte, Any]] = {}
    analyte_of: dict[str, Any] = {}  # each text resolved once (or its error)
    unit_of: dict[str, Any] = {}
    for key in to_resolve:
        ai, ui = divmod(int(key), shape[1])
        try:
            a = _resolved_once(analyte_of, analyte_texts[ai], resolve_analyte)
            u = _resolved_once(unit_of, unit_texts[ui], resolve_unit)
            factor[ai, ui] = a.factor_from(u)
        except (UnknownAnalyteError, UnitError) as exc:
            bad[(ai, ui)] = exc.message
            continue
        resolved[(ai, ui)] = (a, u)
        lo[ai, ui], hi[ai, ui] = a.plausible_low, a.plausible_high
        per_ul[ai, ui] = u.ucum == "/uL" and a.canonical_unit.ucum in ("/uL", "10*3/uL")
        code_idx[ai, ui] = ANALYTE_CODES.index(a.code)

    return _PairTable(factor, lo, hi, per_ul, code_idx, bad, resolved)


@dataclass(frozen=True)
class _Converted:
    """Every row converted: canonical value, analyte's catalogue position, whether its pair did
    not resolve or its value is implausible, and (when a row is bad) each row's pair."""

    canonical: NDArray[np.float64]
    codes: NDArray[np.uint8]
    unresolved: NDArray[np.bool_]
    implausible: NDArray[np.bool_]
    pair: NDArray[np.int32]
    n_units: int  # a pair is analyte position * n_units + unit position
    table: _PairTable


def _convert(
    df: pl.DataFrame, coded_texts: dict[str, Sequence[str]], is_coded: dict[str, bool]
) -> _Converted:
    """Convert every row by a table lookup: distinct analyte and unit texts -> small integer
    codes -> a (analyte x unit) lookup table. The per-row work runs on slices of the rows in
    parallel threads (polars and numpy release the GIL); each slice's temporaries are small and
    made one at a time."""
    slices = _row_slices(df.height)
    # one course (a single slice) is converted in the calling thread: no pool to start
    pool = ThreadPoolExecutor(max_workers=2) if len(slices) > 1 else None

    def pmap(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return list(pool.map(fn, items)) if pool is not None else [fn(x) for x in items]

    try:

        def texts(col: str) -> list[str]:
            if is_coded[col]:  # the codes index these texts
                return list(coded_texts[col])
            parts = pmap(lambda ab: df[col].slice(ab[0], ab[1] - ab[0]).unique(), slices)
            return sorted(set().union(*(p.to_list() for p in parts)))

        analyte_texts, unit_texts = texts("analyte"), texts("unit")
        pairs_of = _pair_codes(df, analyte_texts, unit_texts, is_coded)
        # Which (analyte, unit) pairs to resolve: every combination of the texts when there are
        # few (then the rows are read once, below), else those present (one more pass first)
        n_pairs = len(analyte_texts) * len(unit_texts)
        pair_parts: list[NDArray[np.int32]] | None = None
        if n_pairs <= ALL_PAIRS_UP_TO:
            to_resolve: Sequence[int] = range(n_pairs)
        else:
            pair_parts = pmap(pairs_of, slices)
            present = np.zeros(n_pairs, bool)
            for pr in pair_parts:
                present[pr] = True
            to_resolve = np.flatnonzero(present).tolist()
        table = _resolve_pairs(analyte_texts, unit_texts, to_resolve)
        canonical = np.empty(df.height)
        unresolved = np.empty(df.height, bool)
        implausible = np.empty(df.height, bool)
        codes = np.empty(df.height, np.uint8)  # catalogue position of each row's analyte
        values_all = df["value"]

        def convert(k: int) -> None:
            factor, lo, hi, per_ul = table.factor, table.lo, table.hi, table.per_ul
            a0, a1 = slices[k]
            part = pair_parts[k] if pair_parts is not None else pairs_of(slices[k])
            pr = part.astype(np.intp)  # widened once for the five lookups below
            values = values_all.slice(a0, a1 - a0).to_numpy()
            can = canonical[a0:a1]
            np.take(factor.ravel(), pr, out=can)
            unres = unresolved[a0:a1]
            np.isnan(can, out=unres)
            can *= values
            imp = implausible[a0:a1]
            with np.errstate(invalid="ignore"):
                np.less(can, lo.ravel()[pr], out=imp)
                imp |= can > hi.ravel()[pr]
                imp |= np.isnan(can)
                whole = np.flatnonzero(per_ul.ravel()[pr])  # counts per microlitre: whole numbers
                imp[whole] |= values[whole] % 1 != 0
                imp &= ~unres
            np.take(table.code_idx.ravel(), pr, out=codes[a0:a1])

        pmap(convert, range(len(slices)))
    finally:
        if pool is not None:
            pool.shutdown()
    # each row's pair, only to name the pairs of bad rows
    pair = (
        np.concatenate(pair_parts or [pairs_of(ab) for ab in slices])
        if unresolved.any() or implausible.any()
        else np.empty(0, np.int32)
    )
    return _Converted(canonical, codes, unresolved, implausible, pair, len(unit_texts), table)


def _pair_codes(
    df: pl.DataFrame, analyte_texts: list[str], unit_texts: list[str], is_coded: dict[str, bool]
) -> Callable[[tuple[int, int]], NDArray[np.int32]]:
    """For a slice of the rows, each row's (analyte, unit) pair as one int32 index into the
    small lookup tables."""
    n_units = len(unit_texts)
    a_enum, u_enum = pl.Enum(analyte_texts), pl.Enum(unit_texts)

    def codes_of(s: pl.Series, enum: pl.Enum) -> NDArray[np.int32]:
        return (s if is_coded[s.name] else s.cast(enum).to_physical()).to_numpy().astype(np.int32)

    def pairs_of(ab: tuple[int, int]) -> NDArray[np.int32]:
        sub = df.slice(ab[0], ab[1] - ab[0])
        pr = codes_of(sub["analyte"], a_enum)
        pr *= n_units
        pr += codes_of(sub["unit"], u_enum)
        return pr

    return pairs_of


def _conversion_problems(df: pl.DataFrame, conv: _Converted, source: str | None) -> list[Problem]:
    """A problem for each row whose analyte or unit is unknown or unfit, and for each
    implausible value naming the likely mix-up (the first ones listed, then the count)."""
    problems: list[Problem] = []
    unresolved, implausible, pair = conv.unresolved, conv.implausible, conv.pair
    bad, resolved, n_units = conv.table.bad, conv.table.resolved, conv.n_units
    if unresolved.any():
        rows = df.filter(pl.Series(unresolved))
        keys = [divmod(int(k), n_units) for k in pair[unresolved][:MAX_PROBLEMS_LISTED]]
        problems += [
            Problem(bad[(int(ai), int(ui))], _location(r, "analyte/unit", source))
            for r, (ai, ui) in zip(
                rows.head(MAX_PROBLEMS_LISTED).iter_rows(named=True), keys, strict=True
            )
        ]
        if rows.height > MAX_PROBLEMS_LISTED:
            problems.append(
                Problem(f"... {rows.height} rows with an unknown analyte or unit in all")
            )
    if implausible.any():
        rows = df.filter(pl.Series(implausible))
        keys = [divmod(int(k), n_units) for k in pair[implausible][:MAX_PROBLEMS_LISTED]]
        for r, (ai, ui) in zip(
            rows.head(MAX_PROBLEMS_LISTED).iter_rows(named=True), keys, strict=True
        ):
            a, u = resolved[(int(ai), int(ui))]
            why = implausibility(a, r["value"], u) or "implausible value"
            problems.append(
                Problem(
                    f"implausible {a.label} ({a.code}): {why}",
                    _location(r, "value", source),
                    kind="ImplausibleValueError",
                )
            )
        if rows.height > MAX_PROBLEMS_LISTED:
            problems.append(Problem(f"... {rows.height} implausible values in all"))
    return problems


def _event_rows(course: Course) -> list[dict[str, Any]]:
    from cart_cytopenia.domain.course import (
        CRS,
        GVHD,
        HCT,
        ICANS,
        IECHS,
        ClinicalFinding,
        Dated,
        Infection,
        Medication,
        Span,
        StemCellBoost,
        Transfusion,
    )

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
        elif isinstance(ev, ClinicalFinding):  # the finding in ``product``, 1 present / 0 absent
            row["product"] = ev.finding.value
            row["grade"] = int(ev.present)
        elif isinstance(ev, GVHD):
            row["grade"] = ev.grade
        elif isinstance(ev, (StemCellBoost, HCT)):
            row["product"] = ev.source.value if isinstance(ev, StemCellBoost) else ev.kind.value
        elif isinstance(ev, Span):
            pass
        rows.append(row)
    return rows


def course_to_frames(course: Course) -> CohortFrames:
    """A validated course as one-patient frames (labs already checked by the course model)."""
    return courses_to_frames([course], [course.patient.id])


def _patient_row(course: Course, key: str) -> dict[str, Any]:
    p = course.patient
    return {
        "patient_id": key,
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


def courses_to_frames(courses: Sequence[Course], keys: Sequence[str]) -> CohortFrames:
    """Validated courses as one cohort's frames, course ``i`` as patient ``keys[i]`` (unique:
    two courses of one patient need two keys), in the order given. One course or many, the
    rows are built and normalised the same way (``course_to_frames`` is the case of one)."""
    if len(set(keys)) != len(keys) or len(keys) != len(courses):
        raise ValueError("one unique key per course")
    patients = pl.DataFrame(
        [_patient_row(c, k) for c, k in zip(courses, keys, strict=True)], schema=PATIENT_SCHEMA
    )
    cols: dict[str, list[Any]] = {k: [] for k in ("patient_id", "day", "analyte", "value", "unit")}
    row: list[int] = []
    for course, key in zip(courses, keys, strict=True):
        given = [*course.baseline_labs, *course.labs]
        cols["patient_id"] += [key] * len(given)
        for name in ("day", "analyte", "value", "unit"):
            cols[name] += [getattr(lab, name) for lab in given]
        row += range(1, len(given) + 1)
    source = f"course {courses[0].patient.id}" if len(courses) == 1 else "courses"
    labs = (
        normalise_labs(
            pl.DataFrame({**cols, "row": row}, schema={**RAW_LAB_SCHEMA, "row": pl.Int64}), source
        )
        if row
        else pl.DataFrame(schema=LAB_SCHEMA)
    )
    event_rows = [
        {**event, "patient_id": key}
        for course, key in zip(courses, keys, strict=True)
        for event in _event_rows(course)
    ]
    events = pl.DataFrame(event_rows, schema=EVENT_SCHEMA) if event_rows else empty_events()
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
