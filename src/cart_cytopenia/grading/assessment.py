"""Assessment of one course on one day: every grade, with what it was based on.

``assess(course, day, settings)`` runs the cohort engine on the course as a cohort of one (the
same code as ``cart-cytopenia grade``) and turns the arrays into a typed ``Assessment``. Each
result is a grade, "normal", or "cannot grade" with the reason; results on windows still open on
``day`` are marked provisional. ``based_on`` lists the data, rule tables and settings used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl

from cart_cytopenia import __version__
from cart_cytopenia.domain.analytes import analyte, to_canonical
from cart_cytopenia.domain.catalogues import resolve_drug
from cart_cytopenia.domain.course import CRS, ICANS, Course, Medication
from cart_cytopenia.domain.frames import CohortFrames, course_to_frames, courses_to_frames
from cart_cytopenia.grading import iec_hs
from cart_cytopenia.grading.assessment_model import (
    Assessment,
    BasedOn,
    CtcaeItem,
    EarlyIcahtResult,
    EasixResult,
    GcsfStatus,
    GradeResult,
    GradeStatus,
    HematotoxIgnoredValue,
    HematotoxMarkerResult,
    HematotoxResult,
    IechsResult,
    InflammationStatus,
    LateIcahtResult,
    LineageStatus,
    PhenotypeResult,
    TicahtResult,
    TransfusionStatus,
)
from cart_cytopenia.grading.engine import GradedChunk, iter_chunks
from cart_cytopenia.grading.hematotox import Hematotox, IgnoredValues
from cart_cytopenia.grading.tatma_result import result as tatma_result
from cart_cytopenia.grading.timing import phase_of_days
from cart_cytopenia.grading.transfusion import BY_REGULAR, BY_SHORT_WINDOW, basis_text
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import Settings

# the result models are importable from here, beside ``assess``
__all__ = [
    "Assessment",
    "BasedOn",
    "CtcaeItem",
    "EarlyIcahtResult",
    "EasixResult",
    "GcsfStatus",
    "GradeResult",
    "GradeStatus",
    "HematotoxIgnoredValue",
    "HematotoxMarkerResult",
    "HematotoxResult",
    "IechsResult",
    "InflammationStatus",
    "LateIcahtResult",
    "LineageStatus",
    "PhenotypeResult",
    "TicahtResult",
    "TransfusionStatus",
    "assess",
    "assess_days",
    "default_day",
]


def _f(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _d(x: int, missing: int = -1) -> int | None:
    return None if int(x) <= missing else int(x)


def _ignored_value(ig: IgnoredValues, k: int, ht: tables.HematotoxTable) -> HematotoxIgnoredValue:
    a = ht.markers[int(ig.rows.marker[k])].analyte
    return HematotoxIgnoredValue(
        analyte=a,
        value=float(ig.rows.value[k]),
        unit=analyte(a).canonical_unit.ucum,
        day=int(ig.rows.day[k]),
        reason=ig.reason(k),
    )


DEPENDENT_BY: dict[int, Literal["short-window", "regular"]] = {
    BY_SHORT_WINDOW: "short-window",
    BY_REGULAR: "regular",
}


def _hematotox_result(course: Course, h: Hematotox, i: int, notes: list[str]) -> HematotoxResult:
    """Patient ``i``'s CAR-HEMATOTOX, with every baseline value not used named; ``notes`` gets
    what the score could not be completed for."""
    ht = tables.hematotox()
    late_baseline = _baseline_after_infusion(course, ht)
    markers = []
    for m in ht.markers:
        v = _f(h.values[m.analyte][i])
        band = m.bands.band_of(v) if v is not None else None
        markers.append(
            HematotoxMarkerResult(
                analyte=m.analyte,
                value=v,
                unit=analyte(m.analyte).canonical_unit.ucum,
                day=_d(h.value_days[m.analyte][i], -10_000),
                points=band.value if band else None,
                band=band.text if band else None,
            )
        )
    risk = {1: "high", 0: "low"}.get(int(h.high_risk[i]))
    hematotox = HematotoxResult(
        score=_d(h.score[i]),
        points_counted=int(h.points_counted[i]),
        max_score=ht.max_score,
        risk=risk,
        markers=markers,
        missing=list(h.missing[i]),
        warnings=[
            *h.warnings[i],
            *(h.ignored.text(k) for k in h.ignored.of(i)),
            *(_ignored_text(x) for x in late_baseline),
        ],
        ignored=[*(_ignored_value(h.ignored, k, ht) for k in h.ignored.of(i)), *late_baseline],
        rule=ht.meta.label,
    )
    if h.missing[i]:
        if risk == "high":
            notes.append(
                "CAR-HEMATOTOX: baseline "
                + ", ".join(h.missing[i])
                + " missing; the points present already make the risk high."
            )
        else:
            notes.append(
                "CAR-HEMATOTOX cannot be completed: baseline "
                + ", ".join(h.missing[i])
                + " missing."
            )
    return hematotox


def _baseline_after_infusion(
    course: Course, ht: tables.HematotoxTable
) -> list[HematotoxIgnoredValue]:
    """CAR-HEMATOTOX markers recorded among the course's baseline labs but drawn on or after the
    infusion: the score reads values before day 0 only, so each is named, never dropped."""
    wanted = {m.analyte for m in ht.markers}
    out = []
    for lab in course.baseline_labs:
        code = lab.analyte_code
        if code in wanted and lab.day is not None and lab.day >= 0:
            a, value = to_canonical(lab.analyte, lab.value, lab.unit)
            out.append(
                HematotoxIgnoredValue(
                    analyte=code,
                    value=value,
                    unit=a.canonical_unit.ucum,
                    day=lab.day,
                    reason=(
                        f"recorded as a baseline lab but drawn on day {lab.day}, on or after the "
                        "CAR-T infusion (day 0): not a pre-infusion value"
                    ),
                )
            )
    return out


def _ignored_text(x: HematotoxIgnoredValue) -> str:
    return (
        f"{analyte(x.analyte).label} {x.value:g} {x.unit} of day {x.day} not used for "
        f"CAR-HEMATOTOX: {x.reason}"
    )


def default_day(course: Course) -> int:
    d = course.last_data_day
    return d if d is not None and d >= 0 else 0


def assess(course: Course, day: int | None = None, settings: Settings | None = None) -> Assessment:
    """Assess ``course`` as of ``day`` (default: the last day with data)."""
    settings = settings or Settings()
    as_of = default_day(course) if day is None else day
    view = course.as_of(as_of)
    frames = course_to_frames(view)
    (chunk,) = list(iter_chunks(frames, settings, as_of=as_of))
    iechs = _iechs_of_chunk([(view, as_of)], chunk)
    return _to_assessment(view, chunk, as_of, settings, frames.labs.height, iechs)


def assess_many(
    pairs: Sequence[tuple[Course, int]], settings: Settings | None = None
) -> list[Assessment]:
    """``assess(course, day)`` for many courses at once, each on its own day: the courses are
    graded as one cohort (one pass of the vectorised engine, each row graded as of its day,
    as ``assess_days`` does for one course's days), then each is read out as ``assess`` does.
    The results equal calling ``assess`` course by course (tests/grading/test_assess_many.py);
    the worklist computes its rows with it, one course or ten thousand."""
    settings = settings or Settings()
    if not pairs:
        return []
    views = [course.as_of(day) for course, day in pairs]
    keys = [f"{i}" for i in range(len(views))]
    frames = courses_to_frames(views, keys)
    days = pl.Series("as_of_day", [day for _, day in pairs], dtype=pl.Int32)
    cohort = CohortFrames(frames.patients.with_columns(days), frames.labs, frames.events)
    out: list[Assessment] = []
    size = len(views)
    for chunk in iter_chunks(cohort, settings, as_of=None, chunk_size=size, workers=1):
        if chunk.patient_ids != keys:
            raise RuntimeError("the engine returned the courses out of order")
        rows = [(view, day) for view, (_, day) in zip(views, pairs, strict=True)]
        iechs = _iechs_of_chunk(rows, chunk)
        for i, (view, day) in enumerate(rows):
            n_labs = len(view.baseline_labs) + len(view.labs)
            out.append(_to_assessment(view, chunk, day, settings, n_labs, iechs, i))
    return out


def assess_days(
    course: Course, days: list[int], settings: Settings | None = None
) -> list[Assessment]:
    """``assess(course, d)`` for every ``d`` in ``days`` in one pass of the engine.

    The course is graded as a cohort of days: one row per day, each seeing only what was known
    on that day (the same rules as ``Course.as_of``), so the results equal calling ``assess``
    day by day.
    """
    settings = settings or Settings()
    if not days:
        return []
    frames = course_to_frames(course)
    rid = [f"{course.patient.id}@{d}" for d in days]
    day_map = pl.DataFrame(
        {"rid": rid, "as_of_day": days}, schema={"rid": pl.String, "as_of_day": pl.Int32}
    )

    def unknown_after(col: str) -> pl.Expr:
        return (
            pl.when(pl.col(col) > pl.col("as_of_day")).then(None).otherwise(pl.col(col)).alias(col)
        )

    patients = (
        frames.patients.join(day_map, how="cross")
        .with_columns(
            pl.col("rid").alias("patient_id"),
            *(
                unknown_after(c)
                for c in ("progression_day", "next_therapy_day", "last_followup_day", "death_day")
            ),
        )
        .drop("rid")
    )
    labs = (
        frames.labs.join(day_map, how="cross")
        .filter(pl.col("day") <= pl.col("as_of_day"))
        .with_columns(pl.col("rid").alias("patient_id"))
        .select(frames.labs.columns)
    )
    events = (
        frames.events.join(day_map, how="cross")
        .filter(pl.col("start_day") <= pl.col("as_of_day"))
        .with_columns(pl.col("rid").alias("patient_id"))
        .select(frames.events.columns)
    )
    cohort = CohortFrames(patients, labs, events)
    out: list[Assessment] = []
    lab_days = sorted(lab.day for lab in course.labs if lab.day is not None)
    n_baseline = len(course.baseline_labs)
    for chunk in iter_chunks(cohort, settings, as_of=None, chunk_size=max(len(days), 1), workers=1):
        rows = [(course.as_of(d), d) for d in days]
        iechs = _iechs_of_chunk(rows, chunk)
        for i, (view, d) in enumerate(rows):
            n_labs = n_baseline + sum(1 for x in lab_days if x <= d)
            out.append(_to_assessment(view, chunk, d, settings, n_labs, iechs, i))
    return out


def _ticaht(c: GradedChunk, i: int, notes: list[str]) -> TicahtResult:
    tt = tables.ticaht()
    e, lt = c.ticaht.early, c.ticaht.late
    out = TicahtResult(
        early=GradeResult.of(int(e.grade[i]), tt.meta.label, e.reason[i], bool(e.provisional[i])),
        early_window=(tt.early_window[0], int(min(e.window_end[i], tt.early_window[1]))),
        early_days_plt_lt_50=int(e.days_lt_50[i]),
        early_days_plt_lt_20=int(e.days_lt_20[i]),
        late=GradeResult.of(int(lt.grade[i]), tt.meta.label, lt.reason[i], bool(lt.provisional[i])),
        late_window_start=tt.late_window_start,
        late_window_end=int(lt.window_end[i]),
        late_plt_1=_f(lt.plt_1[i]),
        late_plt_2=_f(lt.plt_2[i]),
        late_days_plt_lt_20=int(lt.days_lt_20[i]),
        recovery_day=_d(c.ticaht.recovery_day[i]),
        not_recovered=bool(c.ticaht.not_recovered[i]),
        post_transfusion_counts=int(c.ticaht.post_transfusion_counts[i]),
    )
    if out.post_transfusion_counts:
        notes.append(
            f"T-ICAHT: {out.post_transfusion_counts} platelet count(s) within 2 days of a platelet "
            "transfusion were not taken as recovery (post-transfusion)."
        )
    if e.provisional[i]:
        notes.append("Early T-ICAHT is provisional: the day 0-30 window is still open.")
    return out


def _easix(c: GradedChunk, i: int) -> EasixResult:
    t, z = tables.easix(), c.easix

    def parts(name: str) -> list[str]:
        text = z.baseline_missing[name][i]
        return text.split(";") if text else []

    above = int(z.above_cutoff[i])
    return EasixResult(
        easix_baseline=_f(z.baseline["easix"][i]),
        m_easix_baseline=_f(z.baseline["m_easix"][i]),
        missing_easix=parts("easix"),
        missing_m_easix=parts("m_easix"),
        baseline_after_ld_start=bool(z.baseline_not_pre_ld[i]),
        above_cutoff=None if above < 0 else bool(above),
        cutoff=t.baseline_cutoff,
        cutoff_outcome=t.cutoff_outcome,
        cutoff_source=t.cutoff_source,
        easix_d0_3=_f(z.early["easix"][i]),
        easix_d0_3_day=_d(z.early_day["easix"][i]),
        m_easix_d0_3=_f(z.early["m_easix"][i]),
        m_easix_d0_3_day=_d(z.early_day["m_easix"][i]),
        rule=t.meta.label,
    )


def _inflammation(course: Course, day: int, crs_max: int, icans_max: int) -> InflammationStatus:
    """CRS/ICANS on the day: known ongoing, resolved (its end day), or end unknown.

    A record without an end day is ongoing only within ``crs_record.open_read_as_ongoing_days`` of
    its start (timing table); after that its end is unknown, never silently "ongoing".
    """
    ongoing_days = tables.timing().crs_open_read_as_ongoing_days

    def known_ongoing(x: CRS | ICANS) -> bool:
        return x.active_on(day) and (x.end_day is not None or day - x.start <= ongoing_days)

    crs = course.events_of(CRS)
    open_unknown = [x.start for x in crs if x.active_on(day) and not known_ongoing(x)]
    crs_active = any(known_ongoing(x) for x in crs)
    crs_ends = [x.end_day for x in crs if x.end_day is not None and x.end_day <= day]
    resolved = max(crs_ends) if crs_ends and not crs_active and not open_unknown else None
    return InflammationStatus(
        crs_max_grade=crs_max,
        icans_max_grade=icans_max,
        crs_active=crs_active,
        icans_active=any(known_ongoing(x) for x in course.events_of(ICANS)),
        crs_resolved_day=resolved,
        crs_end_unknown=bool(open_unknown) and not crs_active,
        crs_end_unknown_since_day=min(open_unknown) if open_unknown and not crs_active else None,
    )


def _to_assessment(
    course: Course,
    c: GradedChunk,
    day: int,
    settings: Settings,
    n_labs: int,
    iechs: ChunkIechs,
    i: int = 0,
) -> Assessment:
    """Patient ``i`` of the graded chunk ``c`` (its IEC-HS classes: ``iechs``) as the typed
    ``Assessment`` of ``course`` on ``day``; every caveat found on the way goes into its notes,
    in the order of the sections."""
    tt = tables.timing()
    notes: list[str] = []
    lineages = [_lineage_status(c, i, lin, day, notes) for lin in tt.lineages]
    early_icaht = _early_icaht(c, i, day, notes)
    ticaht = _ticaht(c, i, notes)
    hematotox = _hematotox_result(course, c.hematotox, i, notes)
    meds = course.events_of(Medication)
    unknown_drugs = sorted({m.drug for m in meds if resolve_drug(m.drug) is None})
    notes.extend(_course_caveats(course, unknown_drugs))
    phase = tt.phase_of(day)
    return Assessment(
        patient_id=course.patient.id,
        day=day,
        phase=phase.id if phase else None,
        ctcae_version=settings.ctcae_version,
        ctcae=_ctcae_items(c, i, settings),
        lineages=lineages,
        early_icaht=early_icaht,
        late_icaht=_late_icaht(c, i),
        ticaht=ticaht,
        hematotox=hematotox,
        easix=_easix(c, i),
        tatma=tatma_result(c.tatma, i, settings.reference_ranges),
        iechs=_iechs(c, i, iechs, settings),
        phenotype=_phenotype(c, i),
        gcsf=_gcsf_status(c, i, meds, day),
        inflammation=_inflammation(course, day, int(c.crs_max_grade[i]), int(c.icans_max_grade[i])),
        notes=notes,
        based_on=_based_on(course, day, settings, n_labs, unknown_drugs),
    )


ChunkIechs = tuple[iec_hs.Clinical, iec_hs.IecHs]  # every course of a graded chunk


def _iechs_of_chunk(rows: Sequence[tuple[Course, int]], c: GradedChunk) -> ChunkIechs:
    """The IEC-HS classes of every course of the graded chunk (row ``i``: ``rows[i]``, each as
    known on its day): the engine's laboratory half with the courses' findings added, in one
    vectorised pass (once per course cost ~200 us of a ~3.2 ms course, measured)."""
    t = tables.iec_hs()
    clin = iec_hs.clinical_of_courses(rows, c.iechs_lab, t)
    return clin, iec_hs.classify(c.iechs_lab, clin, t)


def _iechs(c: GradedChunk, i: int, every: ChunkIechs, settings: Settings) -> IechsResult:
    """The IEC-HS read-outs of patient ``i`` (``every``: the chunk's, ``_iechs_of_chunk``)."""
    t, ranges = tables.iec_hs(), settings.reference_ranges
    lf, clin, r = c.iechs_lab.take(i), every[0].take(i), every[1].take(i)
    status = iec_hs.STATUS[int(r.status[0])]
    carhlh, at = int(r.carhlh[0]), int(r.hscore_at_cutoff[0])
    onset = _d(int(r.onset_day[0]))
    missing = iec_hs.names(int(r.missing[0]), iec_hs.ASTCT_MISSING)
    h_items = int(r.hscore_items[0])
    summary = (
        f"ASTCT IEC-HS criteria (Hines 2023): {status}"
        + (f", onset day {onset}" if onset is not None else "")
        + (f" (missing: {'; '.join(missing)})" if missing else "")
        + f"; grade not computed; carHLH {({1: 'met', 0: 'not met'}).get(carhlh, 'incomplete')}"
        + f"; HScore {int(r.hscore[0])}"
        + ("" if h_items == 9 else f" ({h_items} of 9 items)")
        + f", cut-off {t.hscore_cutoff} "
        + {1: "reached", 0: "not reached"}.get(at, "undecided")
    )
    return IechsResult(
        status=status,
        grade=None,
        grade_note="IEC-HS grade not computed: the grading table of Hines 2023 was not read",
        onset_day=onset,
        onset_relative_to_crs=iec_hs.TIMING[int(lf.timing_reason[0])]
        if onset is not None
        else None,
        evidence=iec_hs.evidence(lf, clin, t, ranges),
        missing=missing,
        carhlh={1: "met", 0: "not met"}.get(carhlh, "incomplete"),
        carhlh_organ_criteria=int(r.carhlh_organs[0]),
        carhlh_missing=iec_hs.names(int(r.carhlh_missing[0]), iec_hs.CARHLH_MISSING),
        hscore=int(r.hscore[0]),
        hscore_max=int(r.hscore_max[0]),
        hscore_items=int(r.hscore_items[0]),
        hscore_at_cutoff=None if at < 0 else bool(at),
        hscore_cutoff=t.hscore_cutoff,
        hscore_missing=iec_hs.names(int(r.hscore_missing[0]), iec_hs.HSCORE_ITEMS),
        guidance_level=t.guidance_level.get(status),
        summary=summary,
        rule=t.meta.label,
    )


def _ctcae_items(c: GradedChunk, i: int, settings: Settings) -> list[CtcaeItem]:
    """The current (last value) and worst CTCAE grade of each counted analyte."""
    ct = tables.ctcae(settings.ctcae_version)
    items = []
    for a in ("anc", "platelets", "hb", "wbc", "alc"):
        crit = ct.criteria.get(a)
        if crit is None:
            reason = f"not a CTCAE v{settings.ctcae_version} term"
            term = f"{analyte(a).label} (not in CTCAE v{settings.ctcae_version})"
        else:
            reason = "no value up to this day"
            term = crit.term
        items.append(
            CtcaeItem(
                analyte=a,
                term=term,
                unit=analyte(a).canonical_unit.ucum,
                last_value=_f(c.last_value[a][i]),
                last_value_day=_d(c.last_value_day[a][i]),
                current=GradeResult.of(int(c.ctcae_last[a][i]), ct.meta.label, reason),
                worst=GradeResult.of(int(c.ctcae_worst[a][i]), ct.meta.label, reason),
            )
        )
    return items


LINEAGE_PRODUCT = {"neutrophils": None, "platelets": "platelets", "red_cells": "rbc"}


def _lineage_status(
    c: GradedChunk, i: int, lin: tables.Lineage, day: int, notes: list[str]
) -> LineageStatus:
    """One lineage on the day: its last value, the current episode, nadir, days below the
    cut-points and transfusion dependence; ``notes`` gets a missing or stale last value."""
    tt = tables.timing()
    lt = c.lineages[lin.id]
    lv = _f(c.last_value[lin.analyte][i])
    product = LINEAGE_PRODUCT[lin.id]
    if lt.episode_start is None or lt.days_significant is None or lt.days_severe is None:
        raise RuntimeError("assessment needs the engine's detail (iter_chunks detail=True)")
    episode = _d(lt.episode_start[i])
    status = LineageStatus(
        lineage=lin.id,
        analyte=lin.analyte,
        unit=analyte(lin.analyte).canonical_unit.ucum,
        last_value=lv,
        last_value_day=_d(c.last_value_day[lin.analyte][i]),
        ctcae_grade=_d(c.ctcae_last[lin.analyte][i]),
        significant=lv is not None and lv < lin.significant_below,
        significant_below=lin.significant_below,
        phase=phase_of_days(np.array([day]), tt)[0] if episode is not None else None,
        episode_start_day=episode,
        nadir=_f(lt.nadir[i]),
        nadir_day=_d(lt.nadir_day[i]),
        days_significant_d0_60=int(lt.days_significant[i]),
        days_severe_d0_60=int(lt.days_severe[i]),
        transfusion=_transfusion_status(c, i, product) if product else None,
    )
    label = analyte(lin.analyte).label.lower()
    last_day = int(c.last_value_day[lin.analyte][i])
    if lv is None:
        notes.append(f"No {label} value up to day {day}: its status is unknown, not normal.")
    elif last_day < day - 7:
        notes.append(
            f"The last {label} is from day {last_day}, {day - last_day} days before day {day}."
        )
    return status


def _transfusion_status(c: GradedChunk, i: int, product: str) -> TransfusionStatus:
    """Transfusions of ``product`` and whether the lineage is transfusion-dependent."""
    tt = tables.timing()
    b = c.transfusions[product]
    has_long = b.long_units[i] >= 0
    return TransfusionStatus(
        product=product,
        in_window=int(b.in_window[i]),
        window_days=tt.td_window_days,
        dependent=bool(b.dependent[i]),
        last_day=_d(b.last_day[i], -10_000),
        units_in_long_window=int(b.long_units[i]) if has_long else None,
        episodes_in_long_window=int(b.long_episodes[i]) if has_long else None,
        long_window_days=tt.regular.window_days if has_long else None,
        dependent_by=DEPENDENT_BY.get(int(b.basis[i])),
        basis=basis_text(b, i, product, tt),
    )


def _early_icaht(c: GradedChunk, i: int, day: int, notes: list[str]) -> EarlyIcahtResult:
    """Early ICAHT (day 0-30); ``notes`` gets unknown days joined into a run and an open
    window."""
    it, e = tables.icaht(), c.early
    out = EarlyIcahtResult(
        result=GradeResult.of(int(e.grade[i]), it.meta.label, e.reason[i], bool(e.provisional[i])),
        window=it.early_window,
        days_anc_le_500=int(e.days_le_500[i]),
        days_anc_le_100=int(e.days_le_100[i]),
        never_recovered=bool(e.never_recovered[i]),
        unknown_days_in_runs=int(e.unknown_days[i]),
    )
    if e.unknown_days[i] > 0:
        notes.append(
            f"Early ICAHT: {int(e.unknown_days[i])} day(s) without an interpolable ANC lie inside a neutropenic "
            "run; the run was joined across them (no recovery documented)."
        )
    if e.provisional[i]:
        notes.append(f"Early ICAHT is provisional: the day 0-30 window is still open on day {day}.")
    return out


def _late_icaht(c: GradedChunk, i: int) -> LateIcahtResult:
    """Late ICAHT (from day 31 to the end of its window, and why it ended there)."""
    it, lt = tables.icaht(), c.late
    return LateIcahtResult(
        result=GradeResult.of(
            int(lt.grade[i]), it.meta.label, lt.reason[i], bool(lt.provisional[i])
        ),
        window_start=it.late_window_start,
        window_end=int(lt.window_end[i]),
        window_end_reason=str(lt.window_end_reason[i]),
        anc_1=_f(lt.anc_1[i]),
        anc_2=_f(lt.anc_2[i]),
        n_values=int(lt.n_values[i]),
    )


def _phenotype(c: GradedChunk, i: int) -> PhenotypeResult:
    """The neutrophil recovery phenotype to the end of the late ICAHT window."""
    p = c.phenotype
    return PhenotypeResult(
        phenotype=p.phenotype[i],
        reason=p.reason[i],
        first_recovery_day=_d(p.first_recovery_day[i]),
        second_dip_day=_d(p.second_dip_day[i]),
        sustained_recovery_day=_d(p.sustained_recovery_day[i]),
        longest_severe_run_days=int(p.longest_severe_run[i]),
        rule=tables.recovery_phenotype().meta.label,
    )


def _gcsf_status(c: GradedChunk, i: int, meds: list[Medication], day: int) -> GcsfStatus:
    """G-CSF given so far, the ANC response to it, and whether a course is running on the day."""
    g = c.gcsf
    return GcsfStatus(
        first_day=_d(g.first_day[i]),
        days_given=int(g.days_given[i]),
        response=g.response[i],
        anc_at_start=_f(g.anc_at_start[i]),
        active_on_day=any(m.active_on(day) for m in meds if "gcsf" in {k.value for k in m.classes}),
    )


def _course_caveats(course: Course, unknown_drugs: list[str]) -> list[str]:
    """What the course's data could not support: drugs outside the catalogue, no counts after
    infusion, an unknown age."""
    notes = []
    if unknown_drugs:
        notes.append(
            "Not in the drug catalogue, so not reasoned about: " + ", ".join(unknown_drugs) + "."
        )
    if not any(lab.day is not None for lab in course.labs):
        notes.append("No laboratory values after infusion: nothing can be graded from counts.")
    if course.patient.age_years is None and course.patient.birth_date is None:
        notes.append("Age unknown: paediatric considerations cannot be decided.")
    return notes


def _based_on(
    course: Course, day: int, settings: Settings, n_labs: int, unknown_drugs: list[str]
) -> BasedOn:
    """The data, rule tables and settings the assessment was made from."""
    ct = tables.ctcae(settings.ctcae_version)
    lab_days = [lab.day for lab in course.labs if lab.day is not None]
    return BasedOn(
        software=f"cart-cytopenia {__version__}",
        as_of_day=day,
        retrospective=False,
        n_labs=n_labs,
        n_events=len(course.events),
        lab_days=(min(lab_days), max(lab_days)) if lab_days else None,
        rule_tables=[m.label for m in tables.all_tables() if not m.id.startswith("ctcae")]
        + [ct.meta.label],
        settings=settings.in_force(),
        settings_changed=settings.changed_from_defaults(),
        drugs_not_reasoned_about=unknown_drugs,
    )
