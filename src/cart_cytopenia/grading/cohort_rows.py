"""A cohort's rows indexed by patient position, for the grading engine (``engine.py``).

``index_cohort`` makes one pass over the lab rows (in slices, on the engine's worker threads):
each row's patient position, day, value and analyte code as numpy arrays, sorted by patient;
it picks the baseline CAR-HEMATOTOX markers and the early EASIX rows, and splits the events
into what the grading reads. ``CohortRows.chunk`` then hands one chunk of patients its rows
(``ChunkRows``): one row per patient, day and analyte (``DayRows``), the markers and the events,
with positions relative to the chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.domain.frames import ANALYTE_CODES, ANALYTE_ENUM, CohortFrames
from cart_cytopenia.errors import InputError, Location, Problem
from cart_cytopenia.grading import easix, gcsf_response, hematotox, icaht, iec_hs, tatma
from cart_cytopenia.rules import tables

I32 = NDArray[np.int32]
NO_DAY = icaht.NO_DAY
GRID_ANALYTES = ("anc", "platelets", "hb", "wbc", "alc")  # codes of the rows passed to chunks
Rows = NDArray[np.intp]  # positions of lab rows
ROWS_PER_TASK = 2_000_000  # lab rows indexed at a time by one thread


def _day_array(patients: pl.DataFrame, col: str) -> I32:
    return patients[col].fill_null(NO_DAY).to_numpy().astype(np.int32)


def _texts(patients: pl.DataFrame, col: str) -> NDArray[np.object_]:
    out: NDArray[np.object_] = patients[col].fill_null("unknown").to_numpy().astype(object)
    return out


@dataclass(frozen=True)
class PatientArrays:
    """The patient columns the grading reads, as arrays (made once per cohort, sliced per chunk);
    missing days are ``NO_DAY``, missing texts "unknown", a missing LD start day -5."""

    ids: pl.Series
    death: I32
    progression: I32
    next_therapy: I32
    followup: I32
    as_of_day: I32 | None  # the patient table's ``as_of_day`` column, when it has one
    ld_start: NDArray[np.int64]
    sex: NDArray[np.object_]
    disease: NDArray[np.object_]
    product: NDArray[np.object_]
    disease_product: NDArray[np.int64]  # the same number exactly when disease and product are
    age: NDArray[np.float64]  # NaN: unknown

    @classmethod
    def of(cls, patients: pl.DataFrame) -> PatientArrays:
        return cls(
            ids=patients["patient_id"],
            death=_day_array(patients, "death_day"),
            progression=_day_array(patients, "progression_day"),
            next_therapy=_day_array(patients, "next_therapy_day"),
            followup=_day_array(patients, "last_followup_day"),
            as_of_day=(
                patients["as_of_day"].to_numpy().astype(np.int32)
                if "as_of_day" in patients.columns
                else None
            ),
            ld_start=patients["ld_start_day"].fill_null(-5).to_numpy().astype(np.int64),
            sex=_texts(patients, "sex"),
            disease=_texts(patients, "disease"),
            product=_texts(patients, "product"),
            disease_product=patients.select(
                pl.struct(
                    pl.col("disease").fill_null("unknown"), pl.col("product").fill_null("unknown")
                ).rank("dense")
            )
            .to_series()
            .to_numpy()
            .astype(np.int64),
            age=patients["age_years"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
        )

    @property
    def n(self) -> int:
        return self.ids.len()

    def slice(self, lo: int, hi: int) -> PatientArrays:
        """Patients ``lo``..``hi - 1`` (every column sliced alike)."""
        changes: dict[str, Any] = {
            f.name: None if (v := getattr(self, f.name)) is None else v[lo:hi] for f in fields(self)
        }
        return replace(self, **changes)


@dataclass(frozen=True)
class PatientRows:
    """Rows of one kind (events of a type, baseline labs) sorted by patient position ``idx``,
    their other columns as arrays; ``chunk`` takes a chunk's rows with positions relative to it."""

    idx: NDArray[np.int64]
    cols: tuple[NDArray[np.generic], ...]

    @classmethod
    def of(cls, df: pl.DataFrame, *cols: str | pl.Expr) -> PatientRows:
        """From rows that carry ``gidx`` and are sorted by it (``_by_patient``)."""
        out = df.select(pl.col("gidx"), *cols)
        return cls(
            out["gidx"].to_numpy().astype(np.int64),
            tuple(out[c].to_numpy() for c in out.columns[1:]),
        )

    def chunk(self, lo: int, hi: int) -> tuple[NDArray[Any], ...]:
        """(position in the chunk, *columns) of the rows of patients lo..hi-1."""
        a, b = np.searchsorted(self.idx, np.array([lo, hi], self.idx.dtype))
        return (self.idx[a:b] - lo, *(c[a:b] for c in self.cols))

    def markers(self, lo: int, hi: int) -> hematotox.MarkerRows:
        """The chunk's rows of lab markers (columns day, value, marker)."""
        idx, day, value, marker = self.chunk(lo, hi)
        return hematotox.MarkerRows(idx, day, value, marker)


@dataclass(frozen=True)
class ChunkEvents:
    """One chunk's ``EventRows``: (position in the chunk, *columns) of each kind."""

    start: tuple[NDArray[Any], ...]
    transfusions: dict[str, tuple[NDArray[Any], ...]]
    gcsf: tuple[NDArray[Any], ...]
    graded: dict[str, tuple[NDArray[Any], ...]]
    tatma: dict[str, tuple[NDArray[Any], ...]]  # the events TA-TMA reads
    crs_spans: tuple[NDArray[Any], ...]


@dataclass(frozen=True)
class EventRows:
    """A cohort's events, split once into what the grading reads, by patient position."""

    start: PatientRows  # every event's start day (-1 when missing)
    transfusions: dict[str, PatientRows]  # per product: day, units (1 when not recorded)
    gcsf: PatientRows  # G-CSF courses from day 0: start, end (10**6 when open)
    graded: dict[str, PatientRows]  # CRS, ICANS with a grade: start day, grade
    tatma: dict[str, PatientRows]  # the events TA-TMA reads (``tatma.event_tables``)
    crs_spans: PatientRows  # CRS with a start day: start, end (iec_hs.OPEN_END when not recorded)

    @classmethod
    def of(cls, events: pl.DataFrame) -> EventRows:
        """``events``: rows with ``gidx``, sorted by it."""
        tx = events.filter(pl.col("type") == "transfusion")
        return cls(
            start=PatientRows.of(events, pl.col("start_day").fill_null(-1).cast(pl.Int64)),
            transfusions={
                p: PatientRows.of(
                    tx.filter(pl.col("product") == p).drop_nulls("start_day"),
                    "start_day",
                    pl.col("grade").fill_null(1).cast(pl.Int64),  # (a transfusion's units)
                )
                for p in ("rbc", "platelets")
            },
            gcsf=PatientRows.of(
                gcsf_response.gcsf_courses(events),
                "start_day",
                pl.col("end_day").fill_null(10**6).cast(pl.Int64),
            ),
            graded={
                k: PatientRows.of(
                    events.filter(
                        (pl.col("type") == k)
                        & pl.col("grade").is_not_null()
                        & pl.col("start_day").is_not_null()
                    ),
                    "start_day",
                    "grade",
                )
                for k in ("crs", "icans")
            },
            tatma={
                k: PatientRows.of(df, *cols)
                for k, (df, cols) in tatma.event_tables(events, tables.tatma()).items()
            },
            crs_spans=PatientRows.of(
                events.filter((pl.col("type") == "crs") & pl.col("start_day").is_not_null()),
                pl.col("start_day").cast(pl.Int64),
                pl.col("end_day").fill_null(iec_hs.OPEN_END).cast(pl.Int64),
            ),
        )

    def chunk(self, lo: int, hi: int) -> ChunkEvents:
        """The events of patients lo..hi-1."""
        return ChunkEvents(
            start=self.start.chunk(lo, hi),
            transfusions={p: r.chunk(lo, hi) for p, r in self.transfusions.items()},
            gcsf=self.gcsf.chunk(lo, hi),
            graded={k: r.chunk(lo, hi) for k, r in self.graded.items()},
            tatma={k: r.chunk(lo, hi) for k, r in self.tatma.items()},
            crs_spans=self.crs_spans.chunk(lo, hi),
        )


@dataclass(frozen=True)
class DayRows:
    """One analyte's values, one row per patient and day (the lowest value of the day), sorted
    by patient position then day: ``idx`` (patient, relative to the chunk), ``day``, ``value``."""

    idx: NDArray[np.int64]
    day: NDArray[np.int32]
    value: NDArray[np.float64]

    def limited(self, limit: NDArray[np.int64] | int, last_day: int) -> DayRows:
        """Rows on or before ``last_day`` and each patient's ``limit`` (a day, or one per patient)."""
        if not self.idx.size:
            return self
        keep = self.day <= min(last_day, limit) if isinstance(limit, int) else None
        if keep is None:
            keep = (self.day <= last_day) & (self.day <= np.asarray(limit)[self.idx])
        elif keep.all():
            return self
        return DayRows(self.idx[keep], self.day[keep], self.value[keep])

    def min_and_last(self, n: int) -> tuple[NDArray[np.float64], tuple[NDArray[np.float64], I32]]:
        """Per patient: the lowest value, and the (lowest) value of the last day with one and
        that day (NaN and -1 when the patient has none)."""
        lowest = np.full(n, np.nan)
        last_val = np.full(n, np.nan)
        last_day = np.full(n, -1, np.int32)
        if self.idx.size:
            starts = np.flatnonzero(np.r_[True, self.idx[1:] != self.idx[:-1]])
            ends = np.r_[starts[1:], self.idx.size] - 1
            who = self.idx[starts]
            lowest[who] = np.minimum.reduceat(self.value, starts)
            last_val[who] = self.value[ends]
            last_day[who] = self.day[ends]
        return lowest, (last_val, last_day)


@dataclass(frozen=True)
class ChunkRows:
    """Everything one chunk of patients is graded from, positions relative to the chunk."""

    analytes: dict[str, DayRows]  # grid analytes: one row per patient and day
    markers: hematotox.MarkerRows  # CAR-HEMATOTOX markers before infusion
    score_rows: hematotox.MarkerRows  # EASIX analytes up to the end of its early window
    tma_rows: hematotox.MarkerRows  # TA-TMA's rows besides the counts after infusion
    iechs_rows: hematotox.MarkerRows  # IEC-HS analytes from the ferritin baseline window on
    events: ChunkEvents


@dataclass(frozen=True)
class LabArrays:
    """Every lab row as arrays: patient position, day, analyte's catalogue position, value."""

    idx: NDArray[np.int32]
    day: NDArray[np.int32]
    code: NDArray[np.integer]
    value: NDArray[np.float64]

    def sorted_by_patient(self) -> LabArrays:
        order = np.argsort(self.idx, kind="stable")
        return LabArrays(self.idx[order], self.day[order], self.code[order], self.value[order])

    def picked(self, at: NDArray[np.intp], wanted: list[int]) -> PatientRows:
        """Rows ``at`` with each row's analyte numbered by its position in ``wanted`` (read from
        the arrays: a filter would copy every lab column)."""
        position = np.full(len(ANALYTE_CODES), -1, np.int8)
        position[wanted] = np.arange(len(wanted))
        return PatientRows(
            self.idx[at].astype(np.int64),
            (self.day[at], self.value[at], position[self.code[at].astype(np.intp)]),
        )


@dataclass(frozen=True)
class CohortRows:
    """A cohort's rows indexed by patient position (``index_cohort``)."""

    labs: LabArrays  # sorted by patient
    events: EventRows
    baseline: PatientRows  # CAR-HEMATOTOX markers before infusion
    score_rows: PatientRows  # EASIX analytes up to the end of its early window
    tma_rows: PatientRows  # TA-TMA's rows besides the counts after infusion (``tatma.ANALYTES``)
    iechs_rows: PatientRows  # IEC-HS analytes from the ferritin baseline window on
    max_day: int  # the last day with a value of a grid analyte (up to as_of; 0: none)

    def chunk(self, lo: int, hi: int, until: int | None) -> ChunkRows:
        """The rows of patients lo..hi-1; lab rows after ``until`` left out."""
        labs = self.labs
        # the bounds in the arrays' own dtypes: numpy would otherwise cast the whole array
        # (16.9M rows) to the bounds' int64 on every call
        a0, a1 = np.searchsorted(labs.idx, np.array([lo, hi], labs.idx.dtype))
        return ChunkRows(
            _split_by_analyte(
                labs.idx[a0:a1] - lo, labs.day[a0:a1], labs.code[a0:a1], labs.value[a0:a1], until
            ),
            self.baseline.markers(lo, hi),
            self.score_rows.markers(lo, hi),
            self.tma_rows.markers(lo, hi),
            self.iechs_rows.markers(lo, hi),
            self.events.chunk(lo, hi),
        )


ResultT = TypeVar("ResultT")
ItemT = TypeVar("ItemT")


def pmap(
    pool: ThreadPoolExecutor | None, fn: Callable[[ItemT], ResultT], items: list[ItemT]
) -> list[ResultT]:
    """``fn`` over ``items``, on the pool's threads when there is more than one item."""
    if pool is None or len(items) <= 1:
        return [fn(x) for x in items]
    return list(pool.map(fn, items))


def index_cohort(
    frames: CohortFrames,
    patients: pl.DataFrame,
    as_of: int | None,
    pool: ThreadPoolExecutor | None,
) -> CohortRows:
    """Index the lab rows and events of ``frames`` by the position of their patient in
    ``patients``; an ``InputError`` when a row's patient is not in the table (or listed twice)."""
    labs = frames.labs
    required = ["patient_id", "day", "analyte", "value"]
    if any(labs[c].null_count() for c in required):  # read_cohort never returns such rows
        labs = labs.drop_nulls(required)
    index_all = (
        patients.select("patient_id")
        .with_row_index("gidx")
        .with_columns(pl.col("gidx").cast(pl.Int64))
    )
    tasks = _row_slices(labs.height)
    # the events are indexed on one thread while the lab rows start on the other
    events_job = pool.submit(_index_events, frames.events, index_all) if pool is not None else None
    arrays, labs_known, in_order = _index_labs(labs, index_all, tasks, pool)
    events, events_known = (
        events_job.result() if events_job is not None else _index_events(frames.events, index_all)
    )
    check_orphans(frames, labs_checked=labs_known, events_checked=events_known)
    if not in_order:  # not grouped by patient: sort
        arrays = arrays.sorted_by_patient()
    max_day, baseline, score_rows, tma_rows, iechs_rows = _scan_labs(arrays, tasks, as_of, pool)
    return CohortRows(arrays, events, baseline, score_rows, tma_rows, iechs_rows, max_day)


def _row_slices(n_rows: int) -> list[tuple[int, int]]:
    """The lab rows cut into slices of at most ``ROWS_PER_TASK`` rows, one task each."""
    n_tasks = max(1, -(-n_rows // ROWS_PER_TASK))
    return [(n_rows * k // n_tasks, n_rows * (k + 1) // n_tasks) for k in range(n_tasks)]


def _index_events(events: pl.DataFrame, index_all: pl.DataFrame) -> tuple[EventRows, bool]:
    """The events sorted by patient once and split into what the grading reads, so that each
    chunk takes a slice of them (``EventRows``); False when an event's patient is unknown."""
    by = _by_patient(events, index_all)
    return EventRows.of(by), by.height == events.height


def _index_labs(
    labs: pl.DataFrame,
    index_all: pl.DataFrame,
    tasks: list[tuple[int, int]],
    pool: ThreadPoolExecutor | None,
) -> tuple[LabArrays, bool, bool]:
    """One pass over the rows, in slices on the worker threads: each lab row's patient position
    (rows usually come grouped by patient, so the ids are matched once per run of rows of one
    patient, not once per row), its day, value and analyte code as numpy arrays. Also: whether
    every row's patient is in the patient table, and whether the rows are grouped by patient in
    the patient table's order."""
    n_rows = labs.height
    enum_codes = labs.schema["analyte"] == ANALYTE_ENUM
    # every row's analyte as its position in the catalogue (-1: not in it)
    codes = {a: i for i, a in enumerate(ANALYTE_CODES)}
    value = labs["value"]
    one_chunk = value.n_chunks() == 1  # (then read in place, without a copy)
    out = LabArrays(
        np.empty(n_rows, np.int32),
        np.empty(n_rows, np.int32),
        np.empty(n_rows, np.uint8 if enum_codes else np.int16),
        value.to_numpy().astype(np.float64, copy=False) if one_chunk else np.empty(n_rows),
    )

    def index_rows(ab: tuple[int, int]) -> tuple[bool, bool]:
        """Fills the slice's rows: (every row's patient is in the patient table, the slice's
        rows are grouped by patient in the patient table's order)."""
        a, b = ab
        part = labs.slice(a, b - a)
        found = _run_positions(part, index_all)
        if found is None:
            return False, False
        run_idx, run_len = found
        out.idx[a:b] = np.repeat(run_idx.astype(np.int32), run_len)
        out.day[a:b] = part["day"].to_numpy()
        if not one_chunk:
            out.value[a:b] = part["value"].to_numpy()
        out.code[a:b] = (
            part["analyte"].to_physical().to_numpy()
            if enum_codes
            else part["analyte"]
            .cast(pl.String)
            .replace_strict(codes, default=-1, return_dtype=pl.Int16)
            .to_numpy()
        )
        return True, bool((run_idx[1:] >= run_idx[:-1]).all())

    indexed = pmap(pool, index_rows, tasks)
    in_order = all(o for _, o in indexed) and all(
        out.idx[a] >= out.idx[a - 1] for a, _ in tasks[1:] if a > 0
    )
    return out, all(k for k, _ in indexed), in_order


def _scan_labs(
    labs: LabArrays,
    tasks: list[tuple[int, int]],
    as_of: int | None,
    pool: ThreadPoolExecutor | None,
) -> tuple[int, PatientRows, PatientRows, PatientRows, PatientRows]:
    """The last day with a value of a grid analyte (up to as_of; 0: none), the rows of
    CAR-HEMATOTOX markers before infusion (CAR-HEMATOTOX reads nothing else), the rows of
    EASIX analytes up to the end of EASIX's early window, TA-TMA's rows besides the counts
    after infusion (those come from the graded rows) and the rows of IEC-HS analytes from the
    ferritin baseline window on; in slices on the worker threads."""
    grid_codes = [ANALYTE_CODES.index(a) for a in GRID_ANALYTES]
    marker_codes = [ANALYTE_CODES.index(m.analyte) for m in tables.hematotox().markers]
    easix_codes = [ANALYTE_CODES.index(a) for a in easix.ANALYTES]
    easix_last = tables.easix().early_days[1]
    tma_codes = [ANALYTE_CODES.index(a) for a in tatma.ANALYTES]
    tma_blood = [c for c in tma_codes if c in grid_codes]
    tma_other = [c for c in tma_codes if c not in grid_codes]
    iechs_codes = [ANALYTE_CODES.index(a) for a in iec_hs.ANALYTES]
    iechs_first = -tables.iec_hs().ferritin_baseline_window_days

    def scan_rows(ab: tuple[int, int]) -> tuple[int, Rows, Rows, Rows, Rows]:
        a, b = ab
        day, code = labs.day[a:b], labs.code[a:b]
        in_grid = np.isin(code, grid_codes) & (day >= 0)
        if as_of is not None:
            in_grid &= day <= as_of
        last = int(day[in_grid].max(initial=-1))
        rows = np.flatnonzero(np.isin(code, marker_codes) & (day < 0)) + a
        scores = np.flatnonzero(np.isin(code, easix_codes) & (day <= easix_last)) + a
        tma = np.isin(code, tma_other) | (np.isin(code, tma_blood) & (day < 0))
        iechs_at = np.flatnonzero(np.isin(code, iechs_codes) & (day >= iechs_first)) + a
        return last, rows, scores, np.flatnonzero(tma) + a, iechs_at

    scanned = pmap(pool, scan_rows, tasks)
    max_day = max([0, *(s[0] for s in scanned)])
    baseline = labs.picked(np.concatenate([s[1] for s in scanned]), marker_codes)
    score_rows = labs.picked(np.concatenate([s[2] for s in scanned]), easix_codes)
    tma_rows = labs.picked(np.concatenate([s[3] for s in scanned]), tma_codes)
    iechs_rows = labs.picked(np.concatenate([s[4] for s in scanned]), iechs_codes)
    return max_day, baseline, score_rows, tma_rows, iechs_rows


def _split_by_analyte(
    idx: NDArray[np.integer],
    day: NDArray[np.int32],
    code: NDArray[np.integer],
    value: NDArray[np.float64],
    until: int | None = None,
) -> dict[str, DayRows]:
    """A chunk's lab rows (patient position, day, analyte's catalogue position, value) ->
    ``DayRows`` per grid analyte (made per chunk: small arrays stay in cache, and chunks run in
    parallel). Rows of other analytes (a negative code), before day 0 or after ``until`` are
    left out."""
    in_days = day >= 0
    if until is not None:
        in_days &= day <= until
    out = {}
    for name in GRID_ANALYTES:
        take = np.flatnonzero((code == ANALYTE_CODES.index(name)) & in_days)
        out[name] = _one_row_per_day(idx[take], day[take], value[take])
    return out


def _one_row_per_day(
    ai: NDArray[np.integer], ad: NDArray[np.int32], av: NDArray[np.float64]
) -> DayRows:
    """One analyte's rows as ``DayRows``: sorted by patient and day, several values of one
    patient on one day reduced to the lowest. Rows usually come sorted by patient and day; only
    rows out of order are sorted."""
    if ai.size > 1:
        step_i = ai[1:] - ai[:-1]
        step_d = ad[1:] - ad[:-1]
        if (step_i < 0).any() or ((step_i == 0) & (step_d < 0)).any():
            o = np.lexsort((ad, ai))
            ai, ad, av = ai[o], ad[o], av[o]
            step_i = ai[1:] - ai[:-1]
            step_d = ad[1:] - ad[:-1]
        new_day = (step_i != 0) | (step_d != 0)
        if not new_day.all():
            starts = np.flatnonzero(np.r_[True, new_day])
            av = np.minimum.reduceat(av, starts)
            ai, ad = ai[starts], ad[starts]
    return DayRows(ai.astype(np.int64, copy=False), ad.astype(np.int32, copy=False), av)


def _run_positions(
    df: pl.DataFrame, index_all: pl.DataFrame
) -> tuple[NDArray[np.int64], NDArray[np.integer]] | None:
    """The runs of consecutive rows of one patient in ``df``: each run's patient position
    (``gidx`` of ``index_all``) and length; None when a row's patient is not in ``index_all``.
    Rows usually come grouped by patient, so the ids are matched once per run, not per row."""
    runs = df.select(pl.col("patient_id").rle()).unnest("patient_id")
    pos = runs.join(
        index_all, left_on="value", right_on="patient_id", how="left", maintain_order="left"
    )["gidx"]
    if pos.null_count() or pos.len() != runs.height:
        return None
    return pos.to_numpy().astype(np.int64, copy=False), runs["len"].to_numpy()


def _by_patient(df: pl.DataFrame, index_all: pl.DataFrame) -> pl.DataFrame:
    """Rows of ``df`` with the patient's position (``gidx``), sorted by it (order kept within);
    rows of patients not in ``index_all`` are left out."""
    found = _run_positions(df, index_all) if df.height else None
    if found is not None:
        gidx = np.repeat(*found)
        out = df.rechunk().with_columns(pl.Series("gidx", gidx, dtype=pl.Int64))
        return out if out["gidx"].is_sorted() else out.sort("gidx", maintain_order=True)
    return df.join(index_all, on="patient_id", how="inner").sort("gidx", maintain_order=True)


def check_orphans(
    frames: CohortFrames, labs_checked: bool = False, events_checked: bool = False
) -> None:
    """Every lab and event row belongs to a patient of the patient table, each listed once.

    ``labs_checked``, ``events_checked``: the caller has already found every lab (event) row's
    patient (the engine does it while indexing the rows), so those are not searched again."""
    known = frames.patients.select("patient_id")
    to_search = [("labs", frames.labs)] if not labs_checked else []
    if not events_checked:
        to_search.append(("events", frames.events))
    for name, df in to_search:
        if not df.height:
            continue
        orphans = df.join(known, on="patient_id", how="anti")
        if orphans.height:
            ids = orphans["patient_id"].unique().head(10).to_list()
            problems = [
                Problem(
                    f"{name} rows for patient '{p}', who is not in the patient table",
                    Location(patient_id=p),
                )
                for p in ids
            ]
            raise InputError(
                f"{orphans.height} {name} row(s) belong to patients missing from the patient table",
                problems,
            )
    pid = frames.patients["patient_id"]
    if pid.n_unique() != pid.len():
        dup = frames.patients.group_by("patient_id").len().filter(pl.col("len") > 1)
        raise InputError(
            "patient ids must be unique",
            [
                Problem("appears more than once in the patient table", Location(patient_id=p))
                for p in dup["patient_id"].head(10)
            ],
        )
