"""Steps 7-9 of ``synthetic.generate_block``: the lab schedule as in practice, transfusions
triggered by the measured counts, the value of each analyte at each draw, and the long lab rows
written in each patient's centre's analyte names, units and decimals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.cohort.synthetic_mix import (
    _A,
    _ANALYTES,
    _EXTRA,
    DAYS,
    IA,
    N_DAYS,
    OUTPATIENT_SHARE,
    PROFILES,
    B,
    F,
    _col,
    _interp_rows,
)
from cart_cytopenia.cohort.synthetic_patients import Baseline, CrsIcans, Outcomes, Who
from cart_cytopenia.domain.analytes import resolve_analyte


def lab_schedule(
    rng: np.random.Generator,
    who: Who,
    crs: CrsIcans,
    out: Outcomes,
    anc: F,
    plt_int: F,
    admit_until: IA,
) -> tuple[NDArray[np.bool_], IA]:
    """Step 7: which days each patient has labs drawn (daily to about day 14, 2-3 times a week
    to day 30, weekly to day 100, monthly after, more often while cytopenic), and the baseline
    draw's day. ``admit_until``: the last day an IEC-HS course keeps a patient in (-1: none)."""
    n, ld_start, weekday, profile = who.n, who.ld_start, who.weekday, who.profile
    product, paediatric = who.product, who.paediatric
    crs_grade, crs_start, crs_end = crs.crs_grade, crs.crs_start, crs.crs_end
    icans_grade, icans_end, end = crs.icans_grade, crs.icans_end, out.end
    sched = np.zeros((n, N_DAYS), bool)
    base_day = ld_start - rng.choice(np.array([0, 0, 0, 0, 0, 1, 2, 3]), n)
    sched[np.arange(n), _col(base_day)] = True
    dgrid = DAYS[None, :]
    wd = (weekday[:, None] + dgrid) % 7  # weekday of each day (0 = Monday)
    mwf = np.array([p.visits_mwf for p in PROFILES])[profile][:, None]
    visit_wd = (wd == 0) | np.where(mwf, (wd == 2) | (wd == 4), wd == 3)
    clinic_wd = rng.integers(0, 5, n)[:, None]
    # inpatient care to about day 14 (daily labs); some centres give the lower-risk products as
    # outpatients (labs three times a week) and admit for CRS / ICANS >= 2
    p_out = np.vectorize(OUTPATIENT_SHARE.get)(product, 0.0).astype(float)
    outpatient = (rng.random(n) < p_out) & ~paediatric
    admitted = (crs_grade >= 2) | (icans_grade >= 2) | (admit_until >= 0)
    adm_start = np.where(outpatient, np.where(admitted, crs_start, 10_000), 0)
    adm_end = np.where(admitted, np.maximum(crs_end, icans_end) + 2, 0)
    adm_end = np.maximum(adm_end, admit_until)
    adm_end = np.maximum(adm_end, np.where(outpatient, -1, 14))
    cytopenic = (anc <= 500) | (plt_int < 20)
    inpatient = (dgrid >= adm_start[:, None]) & (dgrid <= adm_end[:, None])
    daily = (dgrid >= 0) & inpatient & (rng.random((n, N_DAYS)) > 0.05)
    early = (dgrid >= 0) & ~inpatient & (dgrid <= 30) & visit_wd
    twice = (wd == 0) | (wd == 3)
    mid = (dgrid > 30) & (dgrid <= 100) & ((wd == clinic_wd) | (cytopenic & twice))
    month_phase = rng.integers(0, 30, n)[:, None]
    late_v = (dgrid > 100) & (((dgrid + month_phase) % 30 == 0) | (cytopenic & (wd == clinic_wd)))
    sched |= daily | early | mid | late_v
    sched[:, _col(-1)] |= rng.random(n) < 0.3  # a pre-infusion CBC on day -1 for some
    sched &= dgrid <= end[:, None]
    return sched, base_day


@dataclass(frozen=True)
class Transfused:
    """Step 8: the measured platelets and haemoglobin, with the transfusions they triggered."""

    plt_obs: F
    hb_obs: F
    p_units: NDArray[np.int8]  # (n, N_DAYS) platelet units given
    h_units: NDArray[np.int8]  # red-cell units


def transfuse(
    rng: np.random.Generator, who: Who, plt_int: F, hb_int: F, sched: NDArray[np.bool_]
) -> Transfused:
    """Step 8: transfusions triggered by the day's measured count, raising the following counts."""
    n, profile = who.n, who.profile
    rbc_thr = np.array([p.rbc_threshold for p in PROFILES])[profile]
    plt_obs = np.empty_like(plt_int)
    hb_obs = np.empty_like(hb_int)
    res_p = np.zeros(n)
    res_h = np.zeros(n)
    last_p = np.full(n, -99)
    last_h = np.full(n, -99)
    p_units = np.zeros((n, N_DAYS), np.int8)
    h_units = np.zeros((n, N_DAYS), np.int8)
    inc_p = rng.uniform(15, 35, n)
    decay_p = np.exp(-np.log(2) / 2.5)
    decay_h = np.exp(-np.log(2) / 25)
    start_c = int(_col(0))
    # the measured counts (analyser variation): transfusions are decided on what was measured
    noise_p = np.exp(rng.normal(0, 0.07, (n, N_DAYS)))
    noise_h = rng.normal(0, 0.25, (n, N_DAYS))
    plt_obs[:, :start_c] = np.maximum(plt_int[:, :start_c] * noise_p[:, :start_c], 1)
    hb_obs[:, :start_c] = np.clip(hb_int[:, :start_c] + noise_h[:, :start_c], 3.5, 20)
    for c in range(start_c, N_DAYS):
        res_p *= decay_p
        res_h *= decay_h
        plt_obs[:, c] = np.maximum((plt_int[:, c] + res_p) * noise_p[:, c], 1)
        hb_obs[:, c] = np.clip(hb_int[:, c] + res_h + noise_h[:, c], 3.5, 20)
        lab = sched[:, c]
        d = DAYS[c]
        need_p = lab & (np.round(plt_obs[:, c]) < 10) & (d - last_p >= 1)
        need_h = lab & (hb_obs[:, c] < rbc_thr) & (d - last_h >= 4)
        if need_p.any():
            res_p[need_p] += inc_p[need_p]
            last_p[need_p] = d
            p_units[need_p, c] = 1
        if need_h.any():
            u_h = np.where(hb_obs[:, c] < rbc_thr - 1, 2, 1)
            res_h[need_h] += 1.0 * u_h[need_h]
            last_h[need_h] = d
            h_units[need_h, c] = u_h[need_h]

    return Transfused(plt_obs, hb_obs, p_units, h_units)


def lab_values(
    rng: np.random.Generator,
    seed: int,
    block: int,
    sched: NDArray[np.bool_],
    base_day: IA,
    curves: tuple[F, F, F],
    base: Baseline,
    crs: CrsIcans,
    ldf: F,
) -> tuple[IA, IA, dict[str, F], B]:
    """Step 9: the value of each analyte at each scheduled draw (row patient ``pi``, day ``dd``),
    with analyser variation; lymphocytes, CRP and ferritin follow their own courses; the
    baseline draw carries the baseline values. Also which rows are the baseline draw."""
    anc, plt_obs, hb_obs = curves
    n = sched.shape[0]
    base_crp, base_ferr, base_alc = base.base_crp, base.base_ferr, base.base_alc
    crs_start, crs_grade = crs.crs_start, crs.crs_grade
    pi, ci = np.nonzero(sched)
    dd = DAYS[ci]
    m = pi.size
    vals: dict[str, F] = {}
    noise = rng.normal(0, 1, (5, m))
    vals["anc"] = anc[pi, ci] * np.exp(0.13 * noise[0])
    vals["platelets"] = plt_obs[pi, ci]
    vals["hb"] = hb_obs[pi, ci]
    # lymphocytes: lymphodepleted to ~30-150/uL, CAR-T expansion around day 7-14, slow recovery
    alc_n = np.exp(rng.uniform(np.log(30), np.log(160), n))
    alc_pk = np.where(
        rng.random(n) < 0.5, np.exp(rng.uniform(np.log(300), np.log(2500), n)), alc_n * 2
    )
    pk_day = rng.uniform(7, 14, n)
    ak_x = np.stack(
        [ldf - 1, np.full(n, 1.0), pk_day, pk_day + 10, np.full(n, 100.0), np.full(n, 365.0)],
        axis=1,
    )
    ak_y = np.log(
        np.stack(
            [base_alc, alc_n, alc_pk, np.maximum(alc_n * 3, 250), base_alc * 0.7, base_alc], axis=1
        )
    )
    vals["alc"] = np.exp(_interp_rows(dd.astype(float), pi, ak_x, ak_y) + 0.2 * noise[3])
    mono = 0.12 * vals["anc"] + 60 * np.exp(0.3 * noise[4])
    vals["wbc"] = (vals["anc"] + vals["alc"] + mono) / 1000.0
    # CRP (mg/dL) and ferritin (ng/mL): baseline and CRS peak (an IEC-HS course after the CRS
    # is added by ``synthetic_iechs.panel_values``)
    t = dd.astype(float)
    cs = crs_start[pi].astype(float)
    amp = np.array([1.5, 7, 14, 20, 24], float)[crs_grade[pi]] * np.exp(0.3 * rng.normal(0, 1, m))
    since = t - (cs + 1)
    crs_curve = np.where(
        since < -1,
        0,
        np.where(since < 0, amp * (since + 1), amp * np.exp(-np.maximum(since, 0) / 3.0)),
    )
    vals["crp"] = np.clip(base_crp[pi] * np.where(t < 0, 1, 0.6) + crs_curve, 0.02, 60) * np.exp(
        0.15 * rng.normal(0, 1, m)
    )
    f_amp = base_ferr[pi] * np.array([0.6, 2, 5, 9, 14], float)[crs_grade[pi]]
    fs = t - (cs + 4)
    f_curve = np.where(
        fs < -4, 0, np.where(fs < 0, f_amp * (fs + 4) / 4, f_amp * np.exp(-np.maximum(fs, 0) / 14))
    )
    vals["ferritin"] = np.clip(base_ferr[pi] + f_curve, 5, 1_500_000) * np.exp(
        0.1 * rng.normal(0, 1, m)
    )
    is_base = dd == base_day[pi]
    _baseline_draw(vals, is_base, pi, base)
    _easix_analytes(vals, seed, block, pi, t, cs, crs_grade[pi], n)

    return pi, dd, vals, is_base


def _baseline_draw(vals: dict[str, F], is_base: B, pi: IA, base: Baseline) -> None:
    """The baseline draw carries the baseline values (the ones the score was computed from)."""
    base_anc, base_alc = base.base_anc, base.base_alc
    for a in ("anc", "platelets", "hb", "crp", "ferritin", "alc"):
        key = {
            "anc": base_anc,
            "platelets": base.base_plt,
            "hb": base.base_hb,
            "crp": base.base_crp,
            "ferritin": base.base_ferr,
            "alc": base_alc,
        }[a]
        vals[a] = np.where(is_base, key[pi], vals[a])
    vals["wbc"] = np.where(is_base, (base_anc[pi] + base_alc[pi]) / 1000 + 0.45, vals["wbc"])


def reported(
    rng: np.random.Generator, dd: IA, pi: IA, is_base: B, base: Baseline
) -> tuple[dict[str, B], B]:
    """Step 9: which analytes each draw reports, and the draws repeated on the same day."""
    m = pi.size
    miss_crp, miss_ferr = base.miss_crp, base.miss_ferr
    # which analytes each draw reports
    want = {
        "anc": np.ones(m, bool),
        "wbc": np.ones(m, bool),
        "platelets": np.ones(m, bool),
        "hb": np.ones(m, bool),
        # the differential's lymphocyte count: weekly to day 28, then at a third of the visits
        "alc": is_base | np.isin(dd, (0, 7, 14, 21, 28)) | ((dd > 30) & (rng.random(m) < 0.3)),
        # CRP daily in the first week, then twice weekly to day 30; ferritin twice weekly
        "crp": is_base
        | ((dd >= 0) & (dd <= 7))
        | ((dd > 7) & (dd <= 30) & (dd % 3 == 0))
        | (rng.random(m) < 0.04),
        "ferritin": is_base | np.isin(dd, (0, 3, 7, 10, 14, 21, 28)),
        # LDH and creatinine (EASIX): at baseline, daily to day 3, then weekly to day 28
        "ldh": is_base | np.isin(dd, (0, 1, 2, 3, 7, 14, 21, 28)),
        "creatinine": is_base | np.isin(dd, (0, 1, 2, 3, 7, 14, 21, 28)),
    }
    want["crp"] &= ~(is_base & miss_crp[pi])
    want["ferritin"] &= ~(is_base & miss_ferr[pi])
    # a repeat draw on the same day for a few draws (the grading takes the day's lowest)
    repeat = (rng.random(m) < 0.015) & (dd >= 0)

    return want, repeat


def _easix_analytes(
    vals: dict[str, F], seed: int, block: int, pi: IA, t: F, cs: F, grade: IA, n: int
) -> None:
    """LDH (U/L) and creatinine (mg/dL) for each draw, from their own random stream: a patient's
    baseline (LDH log-normal around 230 U/L, creatinine around 0.9 mg/dL) rising with CRS."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(block), 0xEA51]))
    base_ldh = np.exp(rng.normal(np.log(230), 0.45, n))
    base_cr = np.clip(rng.normal(0.9, 0.25, n), 0.35, 3.5)
    m = pi.size
    since = np.clip(t - cs, 0, None)
    crs = np.where(t >= cs, (1 + 0.35 * grade) * np.exp(-since / 5), 1.0)
    vals["ldh"] = base_ldh[pi] * np.maximum(crs, 1.0) * np.exp(0.12 * rng.normal(0, 1, m))
    vals["creatinine"] = np.clip(
        base_cr[pi]
        * (1 + 0.1 * np.maximum(grade - 1, 0) * (crs > 1))
        * np.exp(0.06 * rng.normal(0, 1, m)),
        0.3,
        8.0,
    )


PLAUSIBLE_MARGIN = 0.05  # kept inside the bounds by this share, so that rounding stays inside


def _plausible(code: str, canonical: F) -> F:
    """Values (canonical unit) kept within the catalogue's plausible range, the one ``grade``
    checks: the generator never writes a value its own validator rejects (the 1M seed-11 cohort
    had a CRP of 1070 mg/L, past the 1000 mg/L the catalogue allows)."""
    a = resolve_analyte(code)
    low, high = a.plausible_low * (1 + PLAUSIBLE_MARGIN), a.plausible_high * (1 - PLAUSIBLE_MARGIN)
    return np.clip(canonical, low, high)


def _lab_rows(
    pi: IA,
    dd: IA,
    vals: dict[str, F],
    want: dict[str, B],
    repeat: B,
    profile: IA,
    ids: NDArray[np.object_],
    rng: np.random.Generator,
) -> pl.DataFrame:
    """Long lab rows in each patient's centre's names, units and decimals (vectorised)."""
    pids: list[IA] = []
    days: list[IA] = []
    names: list[IA] = []
    values: list[F] = []
    prof_of_row = profile[pi]
    for a in _ANALYTES:
        sel = want[a]
        for rep in (False, True):
            if rep and a in _EXTRA:
                continue
            s = sel & repeat if rep else sel
            if not s.any():
                continue
            v = vals[a][s]
            if rep:  # the repeat draw: a second value, within the analyser's variation
                v = v * np.exp(rng.normal(0, 0.08, v.size))
            v = _plausible(a, v)
            prof = prof_of_row[s]
            fac = np.array([p.factor[a] for p in PROFILES])[prof]
            dec = np.array([p.decimals[a] for p in PROFILES])[prof]
            out = v * fac
            scale = 10.0**dec
            out = np.round(out * scale) / scale
            pids.append(pi[s])
            days.append(dd[s])
            names.append(prof * len(_ANALYTES) + _A[a])  # index into the name / unit tables
            values.append(out)
    name_table = [p.names[a] for p in PROFILES for a in _ANALYTES]
    unit_table = [p.units[a] for p in PROFILES for a in _ANALYTES]
    p_all = np.concatenate(pids)
    d_all = np.concatenate(days)
    order = np.lexsort((d_all, p_all))
    df = pl.DataFrame(
        {
            "patient_id": pl.Series(ids.tolist(), dtype=pl.String).gather(p_all[order]),
            "day": pl.Series(d_all[order], dtype=pl.Int32),
            "analyte": pl.Series(name_table, dtype=pl.String).gather(np.concatenate(names)[order]),
            "value": pl.Series(np.concatenate(values)[order], dtype=pl.Float64),
            "unit": pl.Series(unit_table, dtype=pl.String).gather(np.concatenate(names)[order]),
        }
    )
    return df
