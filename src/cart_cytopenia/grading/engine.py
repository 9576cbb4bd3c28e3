"""The grading engine: every grading module over a cohort, in patient chunks (bounded memory).

``grade_cohort`` is the one implementation behind both ``cart-cytopenia grade`` (a cohort file)
and ``cart-cytopenia assess`` (one course, as a cohort of one). It indexes the cohort's rows by patient
(``cohort_rows.py``), builds daily grids per chunk of patients, runs the vectorised modules (CTCAE, ICAHT, T-ICAHT, CAR-HEMATOTOX, phenotype, timing,
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
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.domain.frames import PATIENT_SCHEMA, CohortFrames, conform
from cart_cytopenia.grading import (
    ctcae,
    easix,
    gcsf_response,
    hematotox,
    icaht,
    iec_hs,
    recovery_phenotype,
    tatma,
    ticaht,
    timing,
    transfusion,
)
from cart_cytopenia.grading.cohort_rows import (
    GRID_ANALYTES,
    ChunkEvents,
    ChunkRows,
    DayRows,
    PatientArrays,
    index_cohort,
)
from cart_cytopenia.grading.daily import DailyGrid, grid_from_cells, interpolate
from cart_cytopenia.grading.grade_table import chunk_table, empty_grade_table
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import Settings

I32 = NDArray[np.int32]
NO_DAY = icaht.NO_DAY
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
    tatma: tatma.Tatma
    iechs_lab: iec_hs.LabFeatures  # the laboratory half (assess adds the course's findings)
    iechs: iec_hs.IecHs  # with the course-only findings unknown (a cohort table has none)
    crs_max_grade: NDArray[np.int8]
    icans_max_grade: NDArray[np.int8]
    last_anc_day: I32
    sex: NDArray[np.object_]
    # per patient, whether the data behind a count or duration exist (``grade_table.MISSING_TEXT``
    # names the keys): without them the grade table leaves those columns empty, not 0
    seen: dict[str, NDArray[np.bool_]]


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
        cohort = index_cohort(frames, patients, as_of, pool)
        last_day = max(min(cohort.max_day, MAX_GRID_DAY), tables.icaht().late_window_end, 100)
        until = None if as_of is None else min(as_of, last_day)
        people = PatientArrays.of(patients)  # the patients' columns as arrays

        def grade(lo: int) -> ResultT:
            hi = min(lo + chunk_size, people.n)
            rows = cohort.chunk(lo, hi, until)
            chunk = _grade_chunk(
                people.slice(lo, hi),
                rows,
                last_day,
                settings,
                as_of,
                detail,
                frames.events_recorded,
            )
            return finish(chunk)

        yield from _in_order(pool, grade, list(range(0, people.n, chunk_size)), workers)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _in_order(
    pool: ThreadPoolExecutor | None, grade: Callable[[int], ResultT], starts: list[int], ahead: int
) -> Iterator[ResultT]:
    """``grade`` of each chunk start, in order; on the pool, at most ``ahead + 1`` at once."""
    if pool is None or len(starts) <= 1:
        for lo in starts:
            yield grade(lo)
        return
    pending: deque[Future[ResultT]] = deque()
    for lo in starts:
        pending.append(pool.submit(grade, lo))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@dataclass(frozen=True)
class DailyLabs:
    """One chunk's lab values of the grid analytes as of each patient's grading day."""

    rows: dict[str, tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]]
    grids: dict[str, DailyGrid]  # raw daily minimum (dense analytes)
    lowest: dict[str, NDArray[np.float64]]  # per patient
    last: dict[str, tuple[NDArray[np.float64], I32]]  # per patient: last value, its day


def _tatma(
    rows: ChunkRows,
    labs: DailyLabs,
    patients: PatientArrays,
    as_of: I32,
    settings: Settings,
    events_recorded: bool,
) -> tatma.Tatma:
    """TA-TMA harmonised criteria from the chunk's rows, counts and events."""
    return tatma.from_chunk(
        rows.tma_rows,
        (labs.rows["hb"], labs.rows["platelets"]),
        (rows.events.tatma, rows.events.transfusions),
        (patients.age, patients.ld_start, as_of),
        settings.reference_ranges,
        events_recorded,
    )


def _grade_chunk(
    patients: PatientArrays,
    rows: ChunkRows,
    last_day: int,
    settings: Settings,
    as_of_day: int | None,
    detail: bool = True,
    events_recorded: bool = True,
) -> GradedChunk:
    n = patients.n
    as_of, row_limit, retrospective = _grading_days(patients, as_of_day, last_day)
    gap = icaht.effective_conventions(tables.icaht(), settings.icaht).max_interpolation_gap_days
    labs = _daily_labs(rows.analytes, n, row_limit, last_day, _dense_last(n, last_day, gap), detail)
    if retrospective:
        complete = np.ones(n, bool)
    else:
        complete = (patients.death <= as_of) | (patients.followup <= as_of)
    anc_interp = interpolate(labs.grids["anc"], gap)
    plt_interp = interpolate(labs.grids["platelets"], gap)
    early, late = _neutropenia(labs, patients, as_of, complete, anc_interp, settings)
    thrombo = _thrombocytopenia(labs, rows.events, late, as_of, complete, plt_interp, gap)
    last_anc = _last_day_or_none(labs.last["anc"][1])
    last_anc = np.where(last_anc > as_of, as_of, last_anc).astype(np.int32)
    worst, last_grade = _ctcae_grades(labs, patients.sex, settings, detail)
    lineages = _lineage_timing(labs, n, anc_interp, plt_interp, as_of, gap, detail)
    ev_idx = rows.events.start[0]
    on_day = _reference_day(labs, rows.events, last_anc, as_of)
    tt = tables.timing()
    tx = {
        p: transfusion.burden(rows_p[0], rows_p[1], on_day, tt, rows_p[2], p)
        for p, rows_p in rows.events.transfusions.items()
    }
    gc_idx, gc_start, gc_end = rows.events.gcsf
    gc = gcsf_response.response(
        (gc_idx, gc_start, gc_end),
        anc_interp,
        np.minimum(as_of, on_day + 1000).astype(np.int32),
        tt,
        _anc_series(anc_interp, labs.rows["anc"], gap),
        anc_interp.last_day - gap - 1,
    )
    phen = _recovery_phenotype(anc_interp, late, gc, as_of, last_anc)
    ih_lab, ih = _iec_hs(rows, labs, as_of, settings, events_recorded)
    return GradedChunk(
        patient_ids=patients.ids.to_list(),
        as_of=as_of,
        complete=complete,
        grids=labs.grids,
        anc_interp=anc_interp,
        ctcae_worst=worst,
        ctcae_last=last_grade,
        last_value={a: last[0] for a, last in labs.last.items()},
        last_value_day={a: last[1] for a, last in labs.last.items()},
        early=early,
        late=late,
        ticaht=thrombo,
        phenotype=phen,
        lineages=lineages,
        transfusions=tx,
        gcsf=gc,
        hematotox=hematotox.score(
            rows.markers,
            patients.ld_start,
            patients.disease,
            patients.product,
            tables.hematotox(),
            patients.disease_product,
        ),
        easix=easix.score(rows.score_rows, patients.ld_start, as_of, tables.easix()),
        tatma=_tatma(rows, labs, patients, as_of, settings, events_recorded),
        iechs_lab=ih_lab,
        iechs=ih,
        crs_max_grade=_event_max(rows.events.graded["crs"], as_of),
        icans_max_grade=_event_max(rows.events.graded["icans"], as_of),
        last_anc_day=last_anc,
        sex=patients.sex,
        seen=_data_seen(n, labs.rows, (rows.markers.idx, ev_idx), events_recorded),
    )


def _iec_hs(
    rows: ChunkRows, labs: DailyLabs, as_of: I32, settings: Settings, events_recorded: bool
) -> tuple[iec_hs.LabFeatures, iec_hs.IecHs]:
    """IEC-HS's laboratory half and its read-outs with the course-only findings unknown (a
    cohort table has none; ``assess`` adds them from the course)."""
    t = tables.iec_hs()
    lab = iec_hs.lab_features(
        rows.iechs_rows,
        {a: labs.rows[a] for a in iec_hs.COUNTS},
        rows.events.crs_spans,
        events_recorded,
        as_of,
        t,
        settings.reference_ranges,
    )
    return lab, iec_hs.classify(lab, iec_hs.Clinical.unknown(as_of.size), t)


def _grading_days(
    patients: PatientArrays, as_of_day: int | None, last_day: int
) -> tuple[I32, NDArray[np.int64] | int, bool]:
    """The day each patient is graded as of: the given day, else the patient table's own
    ``as_of_day`` (a replay), else all data (retrospective, each course complete). Also the
    last day of rows read (one, or one per patient) and whether the grading is retrospective."""
    own_days = patients.as_of_day if as_of_day is None else None
    if own_days is not None:
        return own_days, own_days.astype(np.int64), False
    as_of = np.full(patients.n, NO_DAY if as_of_day is None else as_of_day, np.int32)
    row_limit = last_day if as_of_day is None else min(last_day, as_of_day)
    return as_of, row_limit, as_of_day is None


def _dense_last(n: int, last_day: int, gap: int) -> int:
    """The last day of the dense daily grids. They are needed up to the end of the windows the
    grading reads (late ICAHT and the phenotype end by day 100; interpolating day 100 needs
    values up to ``gap`` days later). Everything past that is read from the rows. Small chunks
    (one course, a replay) keep the whole span so that the current episode of each lineage can
    be traced."""
    if n * (last_day + 1) > DENSE_CELL_BUDGET:
        return min(last_day, tables.icaht().late_window_end + gap + 1)
    return last_day


def _daily_labs(
    analyte_rows: dict[str, DayRows],
    n: int,
    row_limit: NDArray[np.int64] | int,
    last_day: int,
    dense_last: int,
    detail: bool,
) -> DailyLabs:
    """Each grid analyte's rows as of the grading day, its daily grid (the dense analytes the
    grading reads), and each patient's lowest and last value, read from the rows themselves
    (no pass over patients x days)."""
    rows, grids, lowest, last = {}, {}, {}, {}
    for name in GRID_ANALYTES:
        r = analyte_rows[name].limited(row_limit, last_day)
        # one row per patient and day (the day's lowest value): the grading reads nothing else
        rows[name] = (r.idx, r.day.astype(np.int64), r.value)
        if name in DENSE_ANALYTES and (detail or name in TABLE_DURATIONS):
            d = r.day <= dense_last
            grids[name] = grid_from_cells(
                n, 0, dense_last + 1, r.idx[d], r.day[d].astype(np.intp), r.value[d]
            )
        lowest[name], last[name] = r.min_and_last(n)
    return DailyLabs(rows, grids, lowest, last)


def _neutropenia(
    labs: DailyLabs,
    patients: PatientArrays,
    as_of: I32,
    complete: NDArray[np.bool_],
    anc_interp: DailyGrid,
    settings: Settings,
) -> tuple[icaht.EarlyIcaht, icaht.LateIcaht]:
    """Early and late ICAHT from the daily ANC."""
    icaht_t = tables.icaht()
    anc = labs.grids["anc"]
    early = icaht.grade_early(anc, as_of, complete, icaht_t, settings.icaht, anc_interp)
    late = icaht.grade_late(
        anc,
        icaht_t,
        patients.progression,
        patients.next_therapy,
        patients.followup,
        patients.death,
        as_of,
        complete,
    )
    return early, late


def _thrombocytopenia(
    labs: DailyLabs,
    events: ChunkEvents,
    late: icaht.LateIcaht,
    as_of: I32,
    complete: NDArray[np.bool_],
    plt_interp: DailyGrid,
    gap: int,
) -> ticaht.Ticaht:
    """T-ICAHT from the daily platelets and the platelet transfusions, in the late ICAHT
    window's span."""
    plt_tx = events.transfusions["platelets"]
    ticaht_t = tables.ticaht()
    return ticaht.grade(
        labs.grids["platelets"],
        (plt_tx[0], plt_tx[1]),
        (late.window_end, late.window_end_reason),
        as_of,
        complete,
        ticaht_t,
        # (the same interpolation unless the ICAHT settings changed its gap)
        plt_interp if ticaht_t.conventions.max_interpolation_gap_days == gap else None,
    )


def _ctcae_grades(
    labs: DailyLabs, sex: NDArray[np.object_], settings: Settings, detail: bool
) -> tuple[dict[str, NDArray[np.int8]], dict[str, NDArray[np.int8]]]:
    """CTCAE grade of each analyte's lowest value and (with ``detail``) of its last value."""
    ct = tables.ctcae(settings.ctcae_version)
    worst, last_grade = {}, {}
    for a in GRID_ANALYTES:
        a_sex = sex if a == "hb" else None
        worst[a] = ctcae.grade_values(labs.lowest[a], a, ct, settings.reference_ranges, a_sex)
        if detail:
            last_value = labs.last[a][0]
            last_grade[a] = ctcae.grade_values(last_value, a, ct, settings.reference_ranges, a_sex)
    return worst, last_grade


def _lineage_timing(
    labs: DailyLabs,
    n: int,
    anc_interp: DailyGrid,
    plt_interp: DailyGrid,
    as_of: I32,
    gap: int,
    detail: bool,
) -> dict[str, timing.LineageTiming]:
    """Nadir, durations, phases (and with ``detail`` the current episode) of each lineage."""
    tt = tables.timing()
    lineages = {}
    for lin_id, a in LINEAGE_GRID.items():
        # (without ``detail`` the red cells have no grid: their nadir and phase come from the rows)
        g = labs.grids[a] if a in labs.grids else DailyGrid(0, np.empty((n, 0)))
        gi: DailyGrid | None = anc_interp if a == "anc" else plt_interp
        if a == "hb":  # (the grade table reads no red-cell duration: not interpolated for it)
            gi = interpolate(g, gap) if detail or a in TABLE_DURATIONS else None
        lineages[lin_id] = timing.lineage_timing(
            g, gi, tt.lineage(lin_id), as_of, tt, labs.rows[a], episode=detail
        )
    return lineages


def _reference_day(labs: DailyLabs, events: ChunkEvents, last_anc: I32, as_of: I32) -> I32:
    """The day transfusion burden and G-CSF response are read on: the grading day, or
    retrospectively the last day with a count or an event."""
    ev_last = np.full(as_of.size, -1, np.int64)
    ev_idx, ev_start = events.start
    if ev_idx.size:
        np.maximum.at(ev_last, ev_idx, ev_start)
    data_end = np.maximum(
        np.maximum(
            _last_day_or_none(labs.last["hb"][1]), _last_day_or_none(labs.last["platelets"][1])
        ),
        last_anc,
    )
    out: I32 = np.where(as_of == NO_DAY, np.maximum(data_end, ev_last), as_of).astype(np.int32)
    return out


def _recovery_phenotype(
    anc_interp: DailyGrid,
    late: icaht.LateIcaht,
    gc: gcsf_response.GcsfResponse,
    as_of: I32,
    last_anc: I32,
) -> recovery_phenotype.Phenotype:
    """The recovery phenotype describes the course to the end of the late ICAHT window (day
    100, censored at relapse/progression, next therapy, follow-up or death)."""
    horizon = np.minimum(as_of, np.maximum(late.window_end, 0)).astype(np.int32)
    return recovery_phenotype.classify(
        anc_interp,
        horizon,
        np.minimum(last_anc, horizon).astype(np.int32),
        tables.recovery_phenotype(),
        (gc.response == gcsf_response.REFRACTORY) & (gc.first_day <= horizon),
    )


def _event_max(rows: tuple[NDArray[Any], ...], as_of: I32) -> NDArray[np.int8]:
    """Highest grade per patient of events starting on or before ``as_of`` (0: none)."""
    idx, start, grade = rows
    out = np.full(as_of.size, 0, np.int8)
    if idx.size:
        ok = start <= as_of[idx]
        np.maximum.at(out, idx[ok], grade.astype(np.int8)[ok])
    return out


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
