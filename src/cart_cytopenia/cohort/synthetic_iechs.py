"""IEC-HS courses and the routine liver / coagulation panel of synthetic patients.

Who develops IEC-HS is drawn with CRS (``synthetic_patients.draw_crs_icans``, risks in
``synthetic_mix.IECHS_RISK``); this module draws the rest from its own random stream seeded by
``(seed, block)``, so a seed's output stays deterministic:

1. ``draw_iechs``: each IEC-HS patient's course after CRS resolves: the day the ferritin starts
   to rise, how high (fold over its post-CRS level) and how fast it falls again under treatment;
   falling fibrinogen, rising AST/ALT, bilirubin, triglycerides and LDH; new or worsening
   cytopenias; anakinra / corticosteroid / ruxolitinib treatment; a marrow, sometimes showing
   haemophagocytosis.
2. ``worsen_counts``: the cytopenias, on the daily ANC / platelet / haemoglobin grids (before
   transfusions are decided on the measured counts).
3. ``panel_values`` / ``panel_reported``: AST, ALT, bilirubin, fibrinogen and triglycerides for
   every patient (values in range, moving a little with CRS) at the usual CAR-T schedule, and
   the daily IEC-HS work-up around the onset; the IEC-HS course on ferritin and LDH.
4. ``treatment_events``: the IEC-HS treatment as medication events.

Every number here is the generator's assumption (docs/cohort.md, "IEC-HS"), not a fitted value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cart_cytopenia.cohort.synthetic_mix import DAYS, IA, B, F
from cart_cytopenia.cohort.synthetic_patients import CrsIcans

STREAM_COURSE, STREAM_VALUES = 0x1EC5, 0x1EC6

# the routine panel (canonical units): log-normal medians and log-sd of each patient's own level
PANEL_BASE = {
    "ast": (24.0, 0.30),  # U/L
    "alt": (22.0, 0.40),  # U/L
    "bilirubin": (0.55, 0.35),  # mg/dL
    "fibrinogen": (340.0, 0.18),  # mg/dL
    "triglycerides": (140.0, 0.35),  # mg/dL
}
PANEL_NOISE = {
    "ast": 0.10,
    "alt": 0.10,
    "bilirubin": 0.10,
    "fibrinogen": 0.06,
    "triglycerides": 0.08,
}
# how much each analyte moves with CRS (x (1 + k * grade) at the CRS, fading over ~5 days):
# transaminases a little, fibrinogen up as an acute-phase protein
PANEL_CRS = {"ast": 0.15, "alt": 0.12, "bilirubin": 0.05, "fibrinogen": 0.12, "triglycerides": 0.05}
PANEL = tuple(PANEL_BASE)
# the usual CAR-T schedule: the chemistry panel with LDH and creatinine (baseline, daily to
# day 3, then weekly to day 28), fibrinogen with the coagulation screen on the ferritin days;
# triglycerides only in the IEC-HS work-up
CHEMISTRY_DAYS = (0, 1, 2, 3, 7, 14, 21, 28)
COAGULATION_DAYS = (0, 3, 7, 10, 14, 21, 28)
WORKUP_BEFORE, WORKUP_AFTER = 2, 14  # daily work-up from 2 days before the onset to 14 after


@dataclass(frozen=True)
class IecHsCourse:
    """Step 5b: each patient's IEC-HS course (values meaningful where ``has``)."""

    has: B  # the truth: synthetic IEC-HS
    onset: IA  # first day of the ferritin rise (after CRS resolved)
    peak: IA  # day of the worst values
    fall: F  # e-folding days of the recovery under treatment
    ferritin_fold: F  # x the post-CRS ferritin at the peak
    fibrinogen_nadir: F  # mg/dL
    ast_fold: F
    alt_fold: F
    bilirubin_fold: F
    triglycerides_fold: F
    ldh_fold: F
    count_depth: F  # ANC and platelets x this at the worst
    hb_drop: F  # g/dL at the worst
    anakinra: B
    steroid: B
    ruxolitinib: B
    marrow_day: IA  # -1: no marrow
    haemophagocytosis: B  # on that marrow


def _lognormal(
    rng: np.random.Generator, median: float, sd: float, n: int, lo: float, hi: float
) -> F:
    out: F = np.clip(np.exp(rng.normal(np.log(median), sd, n)), lo, hi)
    return out


def draw_iechs(seed: int, block: int, crs: CrsIcans) -> IecHsCourse:
    """Step 5b: the IEC-HS course of each patient ``crs.iechs`` marks (onset ``crs.iechs_day``,
    1-7 days after CRS resolved), from the course stream."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(block), STREAM_COURSE]))
    has, onset = crs.iechs, crs.iechs_day.astype(np.int64)
    n = has.size
    peak = onset + rng.integers(3, 8, n)
    marrow = has & (rng.random(n) < 0.45)
    return IecHsCourse(
        has=has,
        onset=onset,
        peak=peak,
        fall=rng.uniform(4, 9, n),
        ferritin_fold=_lognormal(rng, 10, 0.6, n, 4, 80),
        fibrinogen_nadir=_lognormal(rng, 115, 0.35, n, 45, 240),
        ast_fold=_lognormal(rng, 7, 0.7, n, 2, 40),
        alt_fold=_lognormal(rng, 6, 0.7, n, 2, 40),
        bilirubin_fold=_lognormal(rng, 3, 0.6, n, 1.2, 15),
        triglycerides_fold=_lognormal(rng, 2.3, 0.35, n, 1.3, 6),
        ldh_fold=_lognormal(rng, 2.5, 0.4, n, 1.3, 8),
        count_depth=rng.uniform(0.12, 0.5, n),
        hb_drop=rng.uniform(0.5, 2.0, n),
        anakinra=has & (rng.random(n) < 0.8),
        steroid=has & (rng.random(n) < 0.7),
        ruxolitinib=has & (rng.random(n) < 0.12),
        marrow_day=np.where(marrow, onset + rng.integers(2, 7, n), -1),
        haemophagocytosis=marrow & (rng.random(n) < 0.6),
    )


def intensity(c: IecHsCourse, pi: IA, t: F, slow: float = 1.0) -> F:
    """0..1 per (patient ``pi``, day ``t``): 0 before the onset, rising log-linearly from 0.1 on
    the onset day to 1 at the peak, then falling (``slow`` x the course's e-folding days)."""
    on, pk = c.onset[pi].astype(float), c.peak[pi].astype(float)
    up = np.exp(np.log(0.1) * np.clip(pk - t, 0, None) / np.maximum(pk - on, 1))
    down = np.exp(-np.clip(t - pk, 0, None) / (slow * c.fall[pi]))
    r = np.where(t < on, 0.0, np.where(t <= pk, up, down))
    out: F = np.where(c.has[pi], r, 0.0)
    return out


def worsen_counts(c: IecHsCourse, anc: F, plt: F, hb: F) -> tuple[F, F, F]:
    """The daily grids with the IEC-HS cytopenias (new copies; others' rows unchanged)."""
    who = np.nonzero(c.has)[0]
    if not who.size:
        return anc, plt, hb
    anc, plt, hb = anc.copy(), plt.copy(), hb.copy()
    r = intensity(c, who[:, None], DAYS[None, :].astype(float), slow=2.0)
    keep = 1 - (1 - c.count_depth[who, None]) * r
    anc[who] *= keep
    plt[who] *= keep
    hb[who] -= c.hb_drop[who, None] * r
    return anc, plt, hb


def panel_values(
    vals: dict[str, F], seed: int, block: int, pi: IA, t: F, crs: CrsIcans, c: IecHsCourse
) -> None:
    """The routine panel's value at every draw (added to ``vals``), and the IEC-HS course on
    the panel, ferritin and LDH (from the values stream)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(block), STREAM_VALUES]))
    n, m = c.has.size, pi.size
    grade, cs, ce = crs.crs_grade[pi], crs.crs_start[pi].astype(float), crs.crs_end[pi]
    fade = np.where(t >= cs, np.exp(-np.clip(t - ce, 0, None) / 5.0), 0.0) * (grade > 0)
    r = intensity(c, pi, t)
    for a in PANEL:
        median, sd = PANEL_BASE[a]
        own = np.exp(rng.normal(np.log(median), sd, n))[pi]
        v = own * (1 + PANEL_CRS[a] * grade * fade) * np.exp(PANEL_NOISE[a] * rng.normal(0, 1, m))
        if a == "fibrinogen":  # falls towards the course's nadir
            v = v * (1 - r) + c.fibrinogen_nadir[pi] * r * np.exp(0.06 * rng.normal(0, 1, m))
        else:
            v = v * (1 + (getattr(c, f"{a}_fold")[pi] - 1) * r)
        vals[a] = v
    vals["ferritin"] = vals["ferritin"] * (1 + (c.ferritin_fold[pi] - 1) * r)
    vals["ldh"] = vals["ldh"] * (1 + (c.ldh_fold[pi] - 1) * r)


def panel_reported(want: dict[str, B], dd: IA, pi: IA, is_base: B, c: IecHsCourse) -> None:
    """Which draws report the panel (added to ``want``): the usual schedule, and every draw of
    the IEC-HS work-up (ferritin, LDH and the panel daily, triglycerides every other day)."""
    on = c.onset[pi]
    workup = c.has[pi] & (dd >= on - WORKUP_BEFORE) & (dd <= on + WORKUP_AFTER)
    chemistry = is_base | np.isin(dd, CHEMISTRY_DAYS) | workup
    for a in ("ast", "alt", "bilirubin"):
        want[a] = chemistry
    want["fibrinogen"] = is_base | np.isin(dd, COAGULATION_DAYS) | workup
    want["triglycerides"] = workup & ((dd - on) % 2 == 0)
    want["ferritin"] = want["ferritin"] | workup
    want["ldh"] = want["ldh"] | workup


def admitted_until(c: IecHsCourse) -> IA:
    """The last inpatient day the IEC-HS course needs (-1: none): to the end of the work-up."""
    out: IA = np.where(c.has, c.onset + WORKUP_AFTER, -1)
    return out


@dataclass(frozen=True)
class Treatment:
    """One IEC-HS medication: who, drug, first day after the onset (low, high), days (low, high)."""

    given: B
    drug: str
    start: tuple[int, int]
    days: tuple[int, int]


def treatment_events(c: IecHsCourse, seed: int, block: int) -> list[tuple[Treatment, IA, IA]]:
    """The IEC-HS treatment (anakinra, dexamethasone, ruxolitinib): per drug (treatment, start
    day, end day), drawn from the course stream's second half."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(block), STREAM_COURSE, 1]))
    n = c.has.size
    out = []
    for tr in (
        Treatment(c.anakinra, "anakinra", (0, 2), (7, 22)),
        Treatment(c.steroid, "dexamethasone", (0, 2), (5, 11)),
        Treatment(c.ruxolitinib, "ruxolitinib", (4, 11), (14, 29)),
    ):
        start = c.onset + rng.integers(*tr.start, n)
        out.append((tr, start, start + rng.integers(*tr.days, n)))
    return out
