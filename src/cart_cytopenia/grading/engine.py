"""The grading engine: every grading module over a cohort, in patient chunks (bounded memory).

``grade_cohort`` is the one implementation behind both ``cart-cytopenia grade`` (a cohort file)
and ``cart-cytopenia assess`` (one course, as a cohort of one). It builds daily grids per chunk of
patients, runs the vectorised modules (CTCAE, ICAHT, T-ICAHT, CAR-HEMATOTOX, phenotype, timing,
transfusion, G-CSF response) and returns a ``GradedChunk`` of arrays per chunk, or the
one-row-per-patient table of ``to_table``.

``as_of``: None grades retrospectively on all data (each patient's course is taken as complete),
unless the patient table has an ``as_of_day`` column, which then gives each row its own day (used
to replay one course day by day as a cohort of days);
an integer grades as of that day (data after it ignored, results on still-open windows marked
provisional), as a clinician would see it that morning.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.domain.frames import (
    ANALYTE_CODES,
    ANALYTE_ENUM,
    PATIENT_SCHEMA,
    CohortFrames,
    conform,
)
from cart_cytopenia.errors import InputError, Location, Problem
from cart_cytopenia.grading import (
    ctcae,
    easix,
    gcsf_response,
    hematotox,
    icaht,
    recovery_phenotype,
    ticaht,
    timing,
    transfusion,
)
from cart_cytopenia.grading.daily import DailyGrid, grid_from_cells, interpolate
from cart_cytopenia.grading.grade_table import chunk_table, empty_grade_table
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import Settings

I32 = NDArray[np.int32]
AnyT = TypeVar("AnyT", bound=np.generic)
NO_DAY = icaht.NO_DAY
GRID_ANALYTES = ("anc", "platelets", "hb", "wbc", "alc")  # codes of the rows passed to chunks
DENSE_ANALYTES = ("anc", "platelets", "hb")  # need daily grids (runs, interpolation, phases)
LINEAGE_GRID = {"neutrophils": "anc", "platelets": "platelets", "red_cells": "hb"}
TABLE_DURATIONS = ("anc", "platelets")  # lineages whose durations are grade-table columns
MAX_GRID_DAY = 730
DENSE_CELL_BUDGET = 1_000_000  # patients x days above which grids stop after the windows
DEFAULT_CHUNK = 5_000  # patients per chunk: grids of 5,000 x days stay cache-friendly


@dataclass(frozen=True)
class GradedChunk:
    patient_ids: list[str]
    as_of: I32
    complete: NDArray[np.bool_]
    grids: dict[str, DailyGrid]  # raw daily minimum
    anc_interp: DailyGrid
    ctcae_worst: dict[str, NDArray[np.int8]]
    ctcae_last: dict[str, NDArray[np.int8]]
    last_value: dict[str, NDArray[np.float64]]
    last_value_day: dict[str, I32]
    early: icaht.EarlyIcaht
    late: icaht.LateIcaht
    ticaht: ticaht.Ticaht
    phenotype: recovery_phenotype.Phenotype
    lineages: dict[str, timing.LineageTiming]
    transfusions: dict[str, transfusion.TransfusionBurden]
    gcsf: gcsf_response.GcsfResponse
    hematotox: hematotox.Hematotox
    easix: easix.Easix
    crs_max_grade: NDArray[np.int8]
    icans_max_grade: NDArray[np.int8]
    last_anc_day: I32
    sex: NDArray[np.object_]
    # per patient, whether the data behind a count or duration exist (``grade_table.MISSING_TEXT``
    # names the keys): without them the grade table leaves those columns empty, not 0
    seen: dict[str, NDArray[np.bool_]]


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


@dataclass(frozen=True)
class EventRows:
    """A cohort's events, split once into what the grading reads, by patient position."""

    start: PatientRows  # every event's start day (-1 when missing)
    transfusions: dict[str, PatientRows]  # per product: day, units (1 when not recorded)
    gcsf: PatientRows  # G-CSF courses from day 0: start, end (10**6 when open)
    graded: dict[str, PatientRows]  # CRS, ICANS with a grade: start day, grade

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
        )


@dataclass(frozen=True)
class ChunkEvents:
    """One chunk's ``EventRows``: (position in the chunk, *columns) of each kind."""

    start: tuple[NDArray[Any], ...]
    transfusions: dict[str, tuple[NDArray[Any], ...]]
    gcsf: tuple[NDArray[Any], ...]
    graded: dict[str, tuple[NDArray[Any], ...]]


def _event_max(rows: tuple[NDArray[Any], ...], as_of: I32) -> NDArray[np.int8]:
    """Highest grade per patient of events starting on or before ``as_of`` (0: none)."""
    idx, start, grade = rows
    out = np.full(as_of.size, 0, np.int8)
    if idx.size:
        ok = start <= as_of[idx]
        np.maximum.at(out, idx[ok], grade.astype(np.int8)[ok])
    return out


def check_orphans(
    frames: CohortFrames, labs_checked: bool = False, events_checked: bool = False
) -> None:
    """Every lab and event row belongs to a patient of the patient table, each listed once.

    ``labs_checked``, ``events_checked``: the caller has already found every lab (event) row's
    patient (the engine does it while indexing the rows), so those are not searched again."""
    known = frames.patients.select("patient_id")
    tables = [("labs", frames.labs)] if not labs_checked else []
    if not events_checked:
        tables.append(("events", frames.events))
    for name, df in tables:
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


def iter_chunks(
    frames: CohortFrames,
    settings: Settings,
    as_of: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    workers: int = 1,
    detail: bool = True,
) -> Iterator[GradedChunk]:
    """Grade every patient, ``chunk_size`` patients at a time, in order.

    ``workers`` > 1 grades that many chunks at once in threads (numpy and polars release the
    GIL in their kernels); at most ``workers + 1`` chunks are held in memory.
    ``detail``: also what only a patient's assessment reads (current CTCAE grades, the current
    episode of each lineage, red-cell durations and daily grid); without it those fields are
    empty/None (``grids`` has ANC and platelets only) and the grade table (``chunk_table``) is
    the same.
    """
    return _graded(frames, settings, as_of, chunk_size, workers, lambda c: c, detail)


ResultT = TypeVar("ResultT")
ItemT = TypeVar("ItemT")


def _pmap(
    pool: ThreadPoolExecutor | None, fn: Callable[[ItemT], ResultT], items: list[ItemT]
) -> list[ResultT]:
    """``fn`` over ``items``, on the pool's threads when there is more than one item."""
    if pool is None or len(items) <= 1:
        return [fn(x) for x in items]
    return list(pool.map(fn, items))


ROWS_PER_TASK = 2_000_000  # lab rows indexed at a time by one thread


def _graded(
    frames: CohortFrames,
    settings: Settings,
    as_of: int | None,
    chunk_size: int,
    workers: int,
    finish: Callable[[GradedChunk], ResultT],
    detail: bool = True,
) -> Iterator[ResultT]:
    """``iter_chunks`` with ``finish`` applied to each chunk in the thread that graded it."""
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        patients = conform(frames.patients, PATIENT_SCHEMA)
        labs = frames.labs
        required = ["patient_id", "day", "analyte", "value"]
        if any(labs[c].null_count() for c in required):  # read_cohort never returns such rows
            labs = labs.drop_nulls(required)
        # every row's analyte as its position in the catalogue (-1: not in it)
        codes = {a: i for i, a in enumerate(ANALYTE_CODES)}
        index_all = (
            patients.select("patient_id")
            .with_row_index("gidx")
            .with_columns(pl.col("gidx").cast(pl.Int64))
        )
        enum_codes = labs.schema["analyte"] == ANALYTE_ENUM
        markers = [m.analyte for m in tables.hematotox().markers]
        grid_codes = [ANALYTE_CODES.index(a) for a in GRID_ANALYTES]
        marker_codes = [ANALYTE_CODES.index(a) for a in markers]
        easix_codes = [ANALYTE_CODES.index(a) for a in easix.ANALYTES]
        easix_last = tables.easix().early_days[1]
        # One pass over the rows, in slices on the worker threads: each lab row's patient position
        # (rows usually come grouped by patient, so the ids are matched once per run of rows of one
        # patient, not once per row), its day, value and analyte code as numpy arrays.
        n_rows = labs.height
        tasks = [
            (n_rows * k // n_tasks, n_rows * (k + 1) // n_tasks)
            for n_tasks in [max(1, -(-n_rows // ROWS_PER_TASK))]
            for k in range(n_tasks)
        ]
        g_idx = np.empty(n_rows, np.int32)
        value = labs["value"]
        one_chunk = value.n_chunks() == 1  # (then read in place, without a copy)
        g_v = value.to_numpy().astype(np.float64, copy=False) if one_chunk else np.empty(n_rows)
        g_day = np.empty(n_rows, np.int32)
        g_a: NDArray[np.integer] = np.empty(n_rows, np.uint8 if enum_codes else np.int16)

        def index_rows(ab: tuple[int, int]) -> tuple[bool, bool]:
            """Fills the slice's rows: (every row's patient is in the patient table, the slice's
            rows are grouped by patient in the patient table's order)."""
            a, b = ab
            part = labs.slice(a, b - a)
            found = _run_positions(part, index_all)
            if found is None:
                return False, False
            run_idx, run_len = found
            g_idx[a:b] = np.repeat(run_idx.astype(np.int32), run_len)
            g_day[a:b] = part["day"].to_numpy()
            if not one_chunk:
                g_v[a:b] = part["value"].to_numpy()
            g_a[a:b] = (
                part["analyte"].to_physical().to_numpy()
                if enum_codes
                else part["analyte"]
                .cast(pl.String)
                .replace_strict(codes, default=-1, return_dtype=pl.Int16)
                .to_numpy()
            )
            return True, bool((run_idx[1:] >= run_idx[:-1]).all())

        def index_events() -> tuple[EventRows, bool]:
            """The events sorted by patient once and split into what the grading reads, so that
            each chunk takes a slice of them (``EventRows``); False when an event's patient is
            unknown."""
            by = _by_patient(frames.events, index_all)
            return EventRows.of(by), by.height == frames.events.height

        # the events are indexed on one thread while the lab rows start on the other
        events_job = pool.submit(index_events) if pool is not None else None
        indexed = _pmap(pool, index_rows, tasks)
        events, events_known = events_job.result() if events_job is not None else index_events()
        check_orphans(frames, labs_checked=all(k for k, _ in indexed), events_checked=events_known)
        in_order = all(o for _, o in indexed) and all(
            g_idx[a] >= g_idx[a - 1] for a, _ in tasks[1:] if a > 0
        )
        if not in_order:  # not grouped by patient: sort
            order = np.argsort(g_idx, kind="stable")
            g_idx, g_day, g_a, g_v = g_idx[order], g_day[order], g_a[order], g_v[order]
            del order

        def scan_rows(ab: tuple[int, int]) -> tuple[int, NDArray[np.intp], NDArray[np.intp]]:
            """The slice's last day with a value of a grid analyte (up to as_of; -1: none), its
            rows of CAR-HEMATOTOX markers before infusion (CAR-HEMATOTOX reads nothing else) and
            its rows of EASIX analytes up to the end of EASIX's early window."""
            a, b = ab
            day, code = g_day[a:b], g_a[a:b]
            # (membership by comparisons: a lookup table would hold the GIL or widen every code)
            in_grid = _one_of(code, grid_codes) & (day >= 0)
            if as_of is not None:
                in_grid &= day <= as_of
            # (a reduction with ``where``: indexing by the mask would copy the selected days first)
            last = int(np.max(day, where=in_grid, initial=-1))
            rows = np.flatnonzero(_one_of(code, marker_codes) & (day < 0)) + a
            scores = np.flatnonzero(_one_of(code, easix_codes) & (day <= easix_last)) + a
            return last, rows, scores

        scanned = _pmap(pool, scan_rows, tasks)
        max_day = max([0, *(last for last, _, _ in scanned)])

        def picked(
            scanned: list[tuple[int, NDArray[np.intp], NDArray[np.intp]]], k: int, wanted: list[int]
        ) -> PatientRows:
            """The rows the scans picked (``k``: which list) with each row's analyte numbered
            by its position in ``wanted`` (read from the arrays: a filter would copy every lab
            column)."""
            at = np.concatenate([found[k] for found in scanned])
            position = np.full(len(ANALYTE_CODES), -1, np.int8)
            position[wanted] = np.arange(len(wanted))
            return PatientRows(
                g_idx[at].astype(np.int64),
                (g_day[at], g_v[at], position[g_a[at].astype(np.intp)]),
            )

        baseline = picked(scanned, 1, marker_codes)  # CAR-HEMATOTOX markers before infusion
        score_rows = picked(scanned, 2, easix_codes)  # EASIX analytes up to day 3
        del scanned
        last_day = max(min(max_day, MAX_GRID_DAY), tables.icaht().late_window_end, 100)
        n_all = patients.height
        people = PatientArrays.of(patients)  # the patients' columns as arrays

        def grade(lo: int) -> ResultT:
            hi = min(lo + chunk_size, n_all)
            # the bounds in the arrays' own dtypes: numpy would otherwise cast the whole array
            # (16.9M rows) to the bounds' int64 on every call
            a0, a1 = np.searchsorted(g_idx, np.array([lo, hi], g_idx.dtype))
            b_idx, b_day, b_value, b_marker = baseline.chunk(lo, hi)
            s_idx, s_day, s_value, s_marker = score_rows.chunk(lo, hi)
            return finish(
                _grade_chunk(
                    people.slice(lo, hi),
                    hematotox.MarkerRows(b_idx, b_day, b_value, b_marker),
                    hematotox.MarkerRows(s_idx, s_day, s_value, s_marker),
                    ChunkEvents(
                        start=events.start.chunk(lo, hi),
                        transfusions={p: r.chunk(lo, hi) for p, r in events.transfusions.items()},
                        gcsf=events.gcsf.chunk(lo, hi),
                        graded={k: r.chunk(lo, hi) for k, r in events.graded.items()},
                    ),
                    _split_by_analyte(
                        g_idx[a0:a1] - lo,
                        g_day[a0:a1],
                        g_a[a0:a1],
                        g_v[a0:a1],
                        None if as_of is None else min(as_of, last_day),
                    ),
                    last_day,
                    settings,
                    as_of,
                    detail,
                    frames.events_recorded,
                )
            )

        starts = list(range(0, n_all, chunk_size))
        if pool is None or len(starts) <= 1:
            for lo in starts:
                yield grade(lo)
            return
        pending: deque[Future[ResultT]] = deque()
        for lo in starts:
            pending.append(pool.submit(grade, lo))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _one_of(code: NDArray[np.integer], wanted: list[int]) -> NDArray[np.bool_]:
    """``code`` is one of ``wanted``: by a range comparison when they are consecutive, else
    one comparison each (numpy releases the GIL in comparisons, not in table lookups)."""
    w = sorted(wanted)
    if not w:
        return np.zeros(code.shape, bool)
    out: NDArray[np.bool_]
    if w == list(range(w[0], w[-1] + 1)):
        out = (code >= w[0]) & (code <= w[-1])
        return out
    out = code == w[0]
    for c in w[1:]:
        out |= code == c
    return out


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


def _split_by_analyte(
    idx: NDArray[np.integer],
    day: NDArray[np.int32],
    code: NDArray[np.integer],
    value: NDArray[np.float64],
    until: int | None = None,
) -> dict[str, DayRows]:
    """A chunk's lab rows (patient position, day, analyte's catalogue position, value) -> ``DayRows`` per
    analyte (made per chunk: small arrays stay in cache, and chunks run in parallel).

    Rows usually come sorted by patient and day; each analyte's rows are picked in that order,
    and only rows out of order are sorted further. Several values of one patient on one day are
    reduced to the lowest. Rows of other analytes (a negative code), before day 0 or after
    ``until`` are left out."""
    # one byte per row: the analyte's catalogue position, 255 for a row left out (a negative
    # code wraps to it)
    out_of_days = day < 0
    if until is not None:
        out_of_days |= day > until
    which = np.where(out_of_days, 255, code.astype(np.uint8))
    out = {}
    for name in GRID_ANALYTES:
        take = np.flatnonzero(which == ANALYTE_CODES.index(name))
        ai, ad, av = idx[take], day[take], value[take]
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
        out[name] = DayRows(ai.astype(np.int64, copy=False), ad.astype(np.int32, copy=False), av)
    return out


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


def _grade_chunk(
    patients: PatientArrays,
    markers: hematotox.MarkerRows,
    score_rows: hematotox.MarkerRows,
    events: ChunkEvents,
    analyte_rows: dict[str, DayRows],
    last_day: int,
    settings: Settings,
    as_of_day: int | None,
    detail: bool = True,
    events_recorded: bool = True,
) -> GradedChunk:
    n = patients.n
    grids: dict[str, DailyGrid] = {}
    sparse_min: dict[str, NDArray[np.float64]] = {}
    sparse_last: dict[str, tuple[NDArray[np.float64], I32]] = {}
    # the day each patient is graded as of: the given day, else the patient table's own
    # ``as_of_day`` (a replay), else all data (retrospective, each course complete)
    own_days = patients.as_of_day if as_of_day is None else None
    as_of: I32
    row_limit: NDArray[np.int64] | int
    if own_days is not None:
        as_of = own_days
        row_limit = own_days.astype(np.int64)
    else:
        as_of = np.full(n, NO_DAY if as_of_day is None else as_of_day, np.int32)
        row_limit = last_day if as_of_day is None else min(last_day, as_of_day)
    retrospective = as_of_day is None and own_days is None
    conv = icaht.effective_conventions(tables.icaht(), settings.icaht)
    # Dense daily grids are needed up to the end of the windows the grading reads (late ICAHT
    # and the phenotype end by day 100; interpolating day 100 needs values up to max_gap days
    # later). Everything past that is read from the rows. Small chunks (one course, a replay)
    # keep the whole span so that the current episode of each lineage can be traced.
    dense_last = last_day
    if n * (last_day + 1) > DENSE_CELL_BUDGET:
        dense_last = min(
            last_day, tables.icaht().late_window_end + conv.max_interpolation_gap_days + 1
        )
    rows: dict[str, tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]] = {}
    for name in GRID_ANALYTES:
        r = analyte_rows[name].limited(row_limit, last_day)
        # one row per patient and day (the day's lowest value): the grading reads nothing else
        rows[name] = (r.idx, r.day.astype(np.int64), r.value)
        if name in DENSE_ANALYTES and (detail or name in TABLE_DURATIONS):
            d = r.day <= dense_last
            grids[name] = grid_from_cells(
                n, 0, dense_last + 1, r.idx[d], r.day[d].astype(np.intp), r.value[d]
            )
        # worst and last values from the rows themselves (no pass over patients x days)
        sparse_min[name], sparse_last[name] = r.min_and_last(n)

    death = patients.death
    if retrospective:
        complete = np.ones(n, bool)
    else:
        complete = (death <= as_of) | (patients.followup <= as_of)

    icaht_t = tables.icaht()
    anc = grids["anc"]
    anc_interp = interpolate(anc, conv.max_interpolation_gap_days)
    early = icaht.grade_early(anc, as_of, complete, icaht_t, settings.icaht, anc_interp)
    late = icaht.grade_late(
        anc,
        icaht_t,
        patients.progression,
        patients.next_therapy,
        patients.followup,
        death,
        as_of,
        complete,
    )
    plt_interp = interpolate(grids["platelets"], conv.max_interpolation_gap_days)
    plt_tx = events.transfusions["platelets"]
    ticaht_t = tables.ticaht()
    thrombo = ticaht.grade(
        grids["platelets"],
        (plt_tx[0], plt_tx[1]),
        (late.window_end, late.window_end_reason),
        as_of,
        complete,
        ticaht_t,
        # (the same interpolation unless the ICAHT settings changed its gap)
        plt_interp
        if ticaht_t.conventions.max_interpolation_gap_days == conv.max_interpolation_gap_days
        else None,
    )
    last_anc = _last_day_or_none(sparse_last["anc"][1])
    last_anc = np.where(last_anc > as_of, as_of, last_anc).astype(np.int32)

    ct = tables.ctcae(settings.ctcae_version)
    sex = patients.sex
    worst, last_grade, last_val, last_val_day = {}, {}, {}, {}
    for a in GRID_ANALYTES:
        a_sex = sex if a == "hb" else None
        worst[a] = ctcae.grade_values(sparse_min[a], a, ct, settings.reference_ranges, a_sex)
        lv, lday = sparse_last[a]
        last_val[a], last_val_day[a] = lv, lday
        if detail:
            last_grade[a] = ctcae.grade_values(lv, a, ct, settings.reference_ranges, a_sex)

    tt = tables.timing()
    lineages = {}
    for lin_id, a in LINEAGE_GRID.items():
        # (without ``detail`` the red cells have no grid: their nadir and phase come from the rows)
        g = grids[a] if a in grids else DailyGrid(0, np.empty((n, 0)))
        gi: DailyGrid | None = anc_interp if a == "anc" else plt_interp
        if a == "hb":  # (the grade table reads no red-cell duration: not interpolated for it)
            gi = (
                interpolate(g, conv.max_interpolation_gap_days)
                if detail or a in TABLE_DURATIONS
                else None
            )
        lineages[lin_id] = timing.lineage_timing(
            g, gi, tt.lineage(lin_id), as_of, tt, rows[a], episode=detail
        )

    ev_last = np.full(n, -1, np.int64)
    ev_idx, ev_start = events.start
    if ev_idx.size:
        np.maximum.at(ev_last, ev_idx, ev_start)
    data_end = np.maximum(
        np.maximum(
            _last_day_or_none(sparse_last["hb"][1]), _last_day_or_none(sparse_last["platelets"][1])
        ),
        last_anc,
    )
    on_day = np.where(as_of == NO_DAY, np.maximum(data_end, ev_last), as_of).astype(np.int32)
    tx = {
        p: transfusion.burden(rows_p[0], rows_p[1], on_day, tt, rows_p[2], p)
        for p, rows_p in events.transfusions.items()
    }
    gc_idx, gc_start, gc_end = events.gcsf
    gc = gcsf_response.response(
        (gc_idx, gc_start, gc_end),
        anc_interp,
        np.minimum(as_of, on_day + 1000).astype(np.int32),
        tt,
        _anc_series(anc_interp, rows["anc"], conv.max_interpolation_gap_days),
        anc_interp.last_day - conv.max_interpolation_gap_days - 1,
    )
    # the recovery phenotype describes the course to the end of the late ICAHT window (day 100,
    # censored at relapse/progression, next therapy, follow-up or death)
    horizon = np.minimum(as_of, np.maximum(late.window_end, 0)).astype(np.int32)
    phen = recovery_phenotype.classify(
        anc_interp,
        horizon,
        np.minimum(last_anc, horizon).astype(np.int32),
        tables.recovery_phenotype(),
        (gc.response == gcsf_response.REFRACTORY) & (gc.first_day <= horizon),
    )

    ht = hematotox.score(
        markers,
        patients.ld_start,
        patients.disease,
        patients.product,
        tables.hematotox(),
        patients.disease_product,
    )

    ez = easix.score(score_rows, patients.ld_start, as_of, tables.easix())

    return GradedChunk(
        patient_ids=patients.ids.to_list(),
        as_of=as_of,
        complete=complete,
        grids=grids,
        anc_interp=anc_interp,
        ctcae_worst=worst,
        ctcae_last=last_grade,
        last_value=last_val,
        last_value_day=last_val_day,
        early=early,
        late=late,
        ticaht=thrombo,
        phenotype=phen,
        lineages=lineages,
        transfusions=tx,
        gcsf=gc,
        hematotox=ht,
        easix=ez,
        crs_max_grade=_event_max(events.graded["crs"], as_of),
        icans_max_grade=_event_max(events.graded["icans"], as_of),
        last_anc_day=last_anc,
        sex=sex,
        seen=_data_seen(n, rows, (markers.idx, ev_idx), events_recorded),
    )


def _data_seen(
    n: int,
    rows: dict[str, tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]],
    other_idx: tuple[NDArray[np.integer], ...],
    events_recorded: bool,
) -> dict[str, NDArray[np.bool_]]:
    """Which patients have the data each count or duration of the grade table needs
    (``rows``: the graded rows from day 0, as of the grading day; ``other_idx``: patients of
    baseline marker rows and events)."""

    def within(name: str, window: tuple[int, int]) -> NDArray[np.bool_]:
        idx, day, _ = rows[name]
        out = np.zeros(n, bool)
        out[idx[(day >= window[0]) & (day <= window[1])]] = True
        return out

    any_data = np.zeros(n, bool)
    for idx in (*(r[0] for r in rows.values()), *other_idx):
        any_data[idx] = True
    duration = tables.timing().duration_window
    return {
        "anc_early": within("anc", tables.icaht().early_window),
        "anc_duration": within("anc", duration),
        "platelets_duration": within("platelets", duration),
        "events": any_data & events_recorded,
    }


def _last_day_or_none(day: I32) -> I32:
    """Last-value days with -10_000 for "none" (as the grade table's ``last_anc_day`` expects)."""
    return np.where(day >= 0, day, -10_000).astype(np.int32)


def _anc_series(
    interp: DailyGrid,
    rows: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]],
    max_gap: int,
) -> Callable[[int, int, int], NDArray[np.float64]]:
    """Interpolated ANC of one patient for days lo..hi: from the grid where it reaches, otherwise
    rebuilt from the patient's rows over a margin wide enough for the same interpolation."""
    from_grid = gcsf_response.grid_series(interp)
    ridx, rday, rval = rows

    def get(i: int, lo: int, hi: int) -> NDArray[np.float64]:
        if hi + max_gap + 1 <= interp.last_day:  # the grid holds every value these days need
            return from_grid(i, lo, hi)
        a, b = lo - max_gap - 1, hi + max_gap + 1
        m = (ridx == i) & (rday >= a) & (rday <= b)
        local = np.full((1, b - a + 1), np.nan)
        np.fmin.at(local, (np.zeros(int(m.sum()), np.int64), rday[m] - a), rval[m])
        li = interpolate(DailyGrid(a, local), max_gap)
        return li.values[0, lo - a : hi - a + 1]

    return get


def grade_cohort(
    frames: CohortFrames,
    settings: Settings,
    as_of: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    workers: int | None = None,
) -> pl.DataFrame:
    """Grade a whole cohort; one row per patient (see ``chunk_table``).

    ``workers``: chunks graded at once (default: up to 2, the cores of the reference machine).
    """
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    # each chunk's table is made in the thread that graded it
    parts = list(
        _graded(
            frames,
            settings,
            as_of,
            chunk_size,
            workers,
            lambda c: chunk_table(c, settings),
            detail=False,
        )
    )
    if not parts:
        return empty_grade_table()
    return pl.concat(parts, how="vertical")
