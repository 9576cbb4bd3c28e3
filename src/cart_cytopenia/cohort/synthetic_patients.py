"""Who the synthetic patients are and what happens to them: steps 1-5 of ``synthetic.generate_block``.

Each step draws, for a whole block of patients at once, from the block's one random stream in
the order below (the order is part of the cohort a seed gives): who is treated, the baseline
labs and CAR-HEMATOTOX, the neutropenia, competing events and follow-up, CRS/ICANS and G-CSF.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cart_cytopenia.cohort.synthetic_mix import (
    APLASTIC,
    DATA_CUT,
    IA,
    IECHS_AFTER_ALLO,
    IECHS_APLASTIC,
    IECHS_PAEDIATRIC,
    IECHS_RISK,
    INFUSION_FIRST,
    INFUSION_LAST,
    INTERMITTENT,
    MAX_DAY,
    PROFILES,
    QUICK,
    STRATA,
    B,
    F,
    _choice,
    _logistic,
    _trunc_normal,
)
from cart_cytopenia.rules import tables


@dataclass(frozen=True)
class Who:
    """Step 1: product, disease, demographics, prior therapy, centre (one entry per patient)."""

    stratum: IA  # index into STRATA
    product: NDArray[np.object_]
    disease: NDArray[np.object_]
    paediatric: B
    age: F
    male: B
    prior_auto: B
    prior_allo: B
    stored_auto: B
    profile: IA  # index into PROFILES
    infusion: NDArray[Any]  # datetime64[D]
    weekday: IA  # of the infusion, 0 = Monday
    ld_start: IA
    status: NDArray[np.object_]

    @property
    def n(self) -> int:
        return int(self.stratum.size)

    def sv(self, attr: str) -> F:
        """A characteristic of each patient's stratum."""
        return _of_stratum(self.stratum, attr)


def _of_stratum(stratum: IA, attr: str) -> F:
    """A characteristic (``Stratum`` field) of each patient's stratum."""
    return np.array([getattr(s, attr) for s in STRATA], dtype=float)[stratum]


def draw_who(rng: np.random.Generator, n: int) -> Who:
    """Step 1: who is treated (the real-world mix of ``STRATA``), where and when."""
    st_idx = _choice(rng, [s.weight for s in STRATA], n)

    def sv(attr: str) -> F:
        return _of_stratum(st_idx, attr)

    product = np.array([s.product for s in STRATA], dtype=object)[st_idx]
    disease = np.array([s.disease for s in STRATA], dtype=object)[st_idx]
    paediatric = np.array([s.paediatric for s in STRATA])[st_idx]
    age = _trunc_normal(rng, sv("age_mean"), sv("age_sd"), sv("age_min"), sv("age_max"))
    age = np.round(age, 1)
    male = rng.random(n) < sv("male")
    prior_auto = rng.random(n) < sv("prior_auto")
    prior_allo = rng.random(n) < sv("prior_allo")
    stored_auto = prior_auto & (rng.random(n) < np.where(disease == "MM", 0.7, 0.45))
    profile = _choice(rng, [p.weight for p in PROFILES], n)
    span_days = (INFUSION_LAST - INFUSION_FIRST).days
    infusion_off = rng.integers(0, span_days + 1, n)
    infusion = np.datetime64(INFUSION_FIRST.isoformat()) + infusion_off.astype("timedelta64[D]")
    weekday = (infusion.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 0 = Monday
    ld_start = rng.choice(np.array([-6, -5, -5, -5, -5, -4]), n)
    status = np.array(["refractory", "relapsed", "PR", "SD", "PD", "CR"], dtype=object)[
        _choice(rng, [0.35, 0.30, 0.12, 0.08, 0.12, 0.03], n)
    ]

    return Who(
        st_idx, product, disease, paediatric, age, male, prior_auto, prior_allo, stored_auto,
        profile, infusion, weekday, ld_start, status,
    )  # fmt: skip


@dataclass(frozen=True)
class Baseline:
    """Step 2: the latent factors, baseline (pre-lymphodepletion) labs and CAR-HEMATOTOX."""

    z_r: F  # marrow reserve (higher: worse)
    z_i: F  # inflammation
    base_plt: F
    base_anc: F
    base_hb: F
    base_crp: F
    base_ferr: F
    base_alc: F
    score: F  # CAR-HEMATOTOX, with the project's rule table
    miss_crp: B  # baseline CRP never drawn
    miss_ferr: B


def draw_baseline(rng: np.random.Generator, who: Who) -> Baseline:
    """Step 2: latent factors -> baseline labs -> CAR-HEMATOTOX (with the project's rule table)."""
    n, sv, age, status = who.n, who.sv, who.age, who.status
    prior_auto, prior_allo, paediatric = who.prior_auto, who.prior_allo, who.paediatric
    z_r = rng.normal(0, 1, n) + sv("marrow") + 0.25 * prior_auto + 0.3 * prior_allo
    z_r += np.where(age > 70, 0.15, 0.0)
    z_i = 0.3 * z_r + np.sqrt(1 - 0.09) * rng.normal(0, 1, n)
    z_i += np.where(np.isin(status, ["refractory", "PD"]), 0.25, 0.0)
    base_plt = np.exp(np.log(185) - 0.42 * z_r - 0.08 * z_i + rng.normal(0, 0.33, n))
    base_anc = np.exp(np.log(3300) - 0.35 * z_r + rng.normal(0, 0.45, n))
    base_hb = 11.4 - 0.85 * z_r - 0.3 * z_i + rng.normal(0, 1.0, n)
    base_hb = np.where(paediatric, base_hb + 0.3, base_hb)
    base_crp = np.exp(np.log(1.15) + 0.95 * z_i + rng.normal(0, 0.75, n))
    base_ferr = np.exp(np.log(600) + 0.65 * z_i + 0.2 * z_r + rng.normal(0, 0.6, n))
    base_alc = np.exp(np.log(750) - 0.2 * z_r + rng.normal(0, 0.6, n))
    base_plt = np.clip(base_plt, 8, 900)
    base_anc = np.clip(base_anc, 150, 30000)
    base_hb = np.clip(base_hb, 6.5, 17.5)
    base_crp = np.clip(base_crp, 0.02, 40)
    base_ferr = np.clip(base_ferr, 8, 60000)
    base_alc = np.clip(base_alc, 60, 8000)
    ht = tables.hematotox()
    baseline = {
        "platelets": base_plt,
        "anc": base_anc,
        "hb": base_hb,
        "crp": base_crp,
        "ferritin": base_ferr,
    }
    score = np.zeros(n)
    for marker in ht.markers:
        score += np.maximum(marker.bands.evaluate(baseline[marker.analyte].astype(float)), 0)
    # a few baseline markers are never drawn (the score then cannot be completed)
    miss_crp = rng.random(n) < 0.02
    miss_ferr = rng.random(n) < 0.03

    return Baseline(
        z_r, z_i, base_plt, base_anc, base_hb, base_crp, base_ferr, base_alc, score, miss_crp,
        miss_ferr,
    )  # fmt: skip


@dataclass(frozen=True)
class Neutropenia:
    """Step 3: the neutrophil recovery phenotype and the depth and duration of neutropenia."""

    sev: F  # the patient's haematotoxicity severity (stratum, marrow, chance)
    aplastic: B
    intermittent: B
    phen: NDArray[np.object_]
    never: B  # never severe (ANC always > 500)
    onset: F  # first day with ANC <= 500
    dur: F  # days with ANC <= 500
    nadir: F
    plateau: F  # ANC after recovery


def draw_neutropenia(rng: np.random.Generator, who: Who, base: Baseline) -> Neutropenia:
    """Step 3: phenotype, depth and duration of neutropenia, rising with the score."""
    n, sv, z_r, score = who.n, who.sv, base.z_r, base.score
    sev = sv("severity") + 0.25 * rng.normal(0, 1, n) + 0.15 * z_r
    p_aplastic = _logistic(-4.7 + 1.4 * score + 1.0 * sev)
    u = rng.random(n)
    aplastic = u < p_aplastic
    p_inter = np.clip(0.78 + 0.04 * score + 0.1 * sev, 0.2, 0.95)
    intermittent = ~aplastic & (rng.random(n) < p_inter)
    phen = np.where(aplastic, APLASTIC, np.where(intermittent, INTERMITTENT, QUICK)).astype(object)
    # never severe (ANC always > 500): mostly low scores
    p_never = _logistic(-1.5 - 0.9 * score - 0.8 * sev)
    never = ~aplastic & (rng.random(n) < p_never)
    onset = rng.choice(np.array([0, 1, 1, 2, 2, 2, 3, 3, 4]), n).astype(float)
    d_short = np.round(
        np.exp(np.log(5.6 + 1.6 * score + 1.5 * np.maximum(sev, -1)) + rng.normal(0, 0.42, n))
    )
    d_short = np.clip(np.where(d_short > 13, 26 - d_short, d_short), 1, 13)  # no pile-up at 13
    d_long = 14 + np.round(np.exp(np.log(13) + 0.12 * score + 0.3 * sev + rng.normal(0, 1.0, n)))
    dur = np.where(aplastic, d_long, np.where(never, 0, d_short))
    nadir = np.where(
        aplastic,
        np.exp(rng.uniform(np.log(4), np.log(110), n)),
        np.minimum(
            np.exp(rng.uniform(np.log(3), np.log(260), n) - 0.25 * (score - 2) - 0.05 * (dur - 7)),
            450,
        ),
    )
    nadir = np.where(never, rng.uniform(560, 1500, n), nadir)
    plateau = np.exp(rng.uniform(np.log(1500), np.log(4200), n))
    plateau = np.where(aplastic, np.exp(rng.uniform(np.log(650), np.log(1600), n)), plateau)

    return Neutropenia(sev, aplastic, intermittent, phen, never, onset, dur, nadir, plateau)


@dataclass(frozen=True)
class Outcomes:
    """Step 4: competing events, follow-up and a stem cell boost (days; 10_000: none)."""

    relapse_day: IA
    next_tx_day: IA
    consolid: B  # consolidative allogeneic HCT without relapse
    death_day: IA
    last_fu: IA
    end: IA  # last day with labs and treatment records
    boost_day: IA
    boosted: B
    recover_day: F  # first day with ANC > 500 (if ever), after a boost
    dur: F


def draw_outcomes(rng: np.random.Generator, who: Who, neu: Neutropenia) -> Outcomes:
    """Step 4: relapse, next therapy, death, return to the referring centre, the data cut."""
    n, sv, infusion, status, disease, age = (
        who.n,
        who.sv,
        who.infusion,
        who.status,
        who.disease,
        who.age,
    )
    stored_auto, prior_allo = who.stored_auto, who.prior_allo
    aplastic, dur, onset = neu.aplastic, neu.dur, neu.onset
    followup_cut = np.minimum(
        (np.datetime64(DATA_CUT.isoformat()) - infusion).astype(np.int64), MAX_DAY
    )
    r1y = sv("relapse_1y")
    relapses = rng.random(n) < np.clip(r1y * 1.15 + 0.05 * (status == "PD"), 0, 0.95)
    relapse_day = np.round(np.exp(rng.normal(np.log(95), 0.75, n))).astype(np.int64)
    relapse_day = np.where(relapses, np.clip(relapse_day, 14, 10_000), 10_000)
    next_tx_day = np.where(
        relapse_day < 10_000, relapse_day + rng.integers(3, 35, n), 10_000
    ).astype(np.int64)
    next_tx_day = np.where(rng.random(n) < 0.88, next_tx_day, 10_000)
    # consolidative allogeneic HCT after remission in B-ALL (a next therapy without relapse)
    consolid = (disease == "B-ALL") & (relapse_day >= 10_000) & (rng.random(n) < 0.25)
    next_tx_day = np.where(consolid, rng.integers(55, 130, n), next_tx_day)
    nrm = rng.random(n) < np.where(aplastic, 0.16, 0.03) + 0.02 * (age > 70)
    nrm_day = np.where(
        aplastic,
        np.clip(np.round(np.exp(rng.normal(np.log(55), 0.6, n))), 12, 700),
        np.clip(np.round(np.exp(rng.normal(np.log(120), 0.9, n))), 8, 700),
    ).astype(np.int64)
    relapse_death = np.where(
        relapse_day < 10_000,
        relapse_day + np.round(np.exp(rng.normal(np.log(170), 0.8, n))).astype(np.int64),
        10_000,
    )
    relapse_death = np.where(rng.random(n) < 0.8, relapse_death, 10_000)
    death_day = np.minimum(np.where(nrm, nrm_day, 10_000), relapse_death)
    # return to the referring centre once counts allow (about day 28-45, or after day 90): the
    # centre's labs stop there; registry follow-up of outcomes continues for most patients,
    # the others are lost to follow-up on the day they leave
    transfer = np.where(
        ~aplastic & (rng.random(n) < 0.5),
        rng.integers(28, 46, n),
        np.where(rng.random(n) < 0.4, rng.integers(90, 200, n), 10_000),
    )
    registry = rng.random(n) < 0.75
    labs_end = np.minimum.reduce([followup_cut, transfer, death_day]).astype(np.int64)
    last_fu = np.where(registry, np.minimum(followup_cut, death_day), labs_end).astype(np.int64)
    last_fu = np.maximum(last_fu, 0)
    death_day = np.where(death_day <= last_fu, death_day, 10_000)
    relapse_day = np.where(relapse_day <= last_fu, relapse_day, 10_000)
    next_tx_day = np.where(next_tx_day <= last_fu, next_tx_day, 10_000)
    end = np.maximum(labs_end, 0)  # last day with labs and treatment records

    # aplastic patients with stored cells (or an allo donor) may get a stem cell boost
    boost_ok = aplastic & (stored_auto | prior_allo) & (dur > 28) & (rng.random(n) < 0.45)
    boost_day = np.where(boost_ok, onset + rng.integers(25, 55, n), 10_000).astype(np.int64)
    boost_day = np.where(boost_day <= end, boost_day, 10_000)
    recover_day = onset + dur  # first day with ANC > 500 (if ever)
    boosted = boost_day < 10_000
    recover_day = np.where(
        boosted, np.minimum(recover_day, boost_day + rng.integers(9, 17, n)), recover_day
    )
    dur = recover_day - onset

    return Outcomes(
        relapse_day, next_tx_day, consolid, death_day, last_fu, end, boost_day, boosted,
        recover_day, dur,
    )  # fmt: skip


@dataclass(frozen=True)
class CrsIcans:
    """Step 5: CRS, ICANS and IEC-HS (grades, first and last days)."""

    crs_grade: IA
    crs_start: IA
    crs_end: IA
    icans_grade: IA
    icans_start: IA
    icans_end: IA
    iechs: B
    iechs_day: IA


def draw_crs_icans(
    rng: np.random.Generator, who: Who, base: Baseline, neu: Neutropenia
) -> CrsIcans:
    """Step 5: CRS and ICANS per product, correlated with inflammation and severity."""
    n, sv, z_i, sev, aplastic = who.n, who.sv, base.z_i, neu.sev, neu.aplastic
    crs_any = rng.random(n) < np.clip(sv("crs_any") + 0.05 * z_i, 0, 0.99)
    p_sev = np.clip(sv("crs_severe") * np.exp(0.45 * z_i + 0.3 * sev), 0, 0.9)
    crs_grade = np.where(
        crs_any,
        np.where(
            rng.random(n) < p_sev / np.maximum(sv("crs_any"), 1e-9),
            3 + (rng.random(n) < 0.2),
            1 + (rng.random(n) < 0.45),
        ),
        0,
    ).astype(np.int64)
    crs_start = np.clip(np.round(sv("crs_onset") + rng.normal(0, 1.5, n)), 0, 14).astype(np.int64)
    crs_len = np.clip(np.round(2 + 1.6 * crs_grade + rng.exponential(1.5, n)), 1, 20).astype(
        np.int64
    )
    crs_end = crs_start + crs_len - 1
    icans_any = rng.random(n) < np.clip(sv("icans_any") * np.exp(0.3 * (crs_grade - 1.5)), 0, 0.98)
    p_isev = np.clip(
        sv("icans_severe") / np.maximum(sv("icans_any"), 1e-9) * np.exp(0.3 * (crs_grade - 1.5)),
        0,
        0.95,
    )
    icans_grade = np.where(
        icans_any,
        np.where(rng.random(n) < p_isev, 3 + (rng.random(n) < 0.15), 1 + (rng.random(n) < 0.5)),
        0,
    ).astype(np.int64)
    icans_start = crs_start + rng.integers(1, 5, n)
    icans_end = (
        icans_start
        + np.clip(np.round(1 + 1.8 * icans_grade + rng.exponential(2, n)), 1, 25).astype(np.int64)
        - 1
    )
    iechs = (rng.random(n) < iechs_risk(who, aplastic)) & (crs_grade > 0)
    iechs_day = crs_end + rng.integers(1, 8, n)

    return CrsIcans(
        crs_grade, crs_start, crs_end, icans_grade, icans_start, icans_end, iechs, iechs_day
    )


def iechs_risk(who: Who, aplastic: B) -> F:
    """Each patient's IEC-HS risk given CRS (``synthetic_mix.IECHS_RISK``)."""
    risk = np.vectorize(IECHS_RISK.get)(who.disease, 0.015).astype(float)
    risk = np.where(who.paediatric, IECHS_PAEDIATRIC, risk)
    out: F = risk * np.where(who.prior_allo, IECHS_AFTER_ALLO, 1.0) + IECHS_APLASTIC * aplastic
    return out


@dataclass(frozen=True)
class Gcsf:
    """Step 5: G-CSF given, and the recovery it brings."""

    gets_gcsf: B
    g_start: IA
    g_end: IA
    recover_day: F  # first day with ANC > 500 (if ever), final
    dur: F  # days with ANC <= 500, final


def draw_gcsf(rng: np.random.Generator, neu: Neutropenia, out: Outcomes, crs: CrsIcans) -> Gcsf:
    """Step 5: G-CSF and the response to it."""
    n = neu.onset.size
    onset, never, aplastic = neu.onset, neu.never, neu.aplastic
    recover_day, end, crs_grade, crs_end = out.recover_day, out.end, crs.crs_grade, crs.crs_end
    # G-CSF: started on day 7-12 (or later) while ANC <= 500, not during CRS >= 2
    g_start = np.maximum(onset + rng.integers(4, 8, n), rng.integers(7, 13, n))
    crs_block = (crs_grade >= 2) & (g_start <= crs_end)
    g_start = np.where(crs_block, crs_end + 1, g_start)
    gets_gcsf = (recover_day > g_start + 1) & (rng.random(n) < 0.85) & ~never
    # responders recover within the 7-day response window; aplastic patients mostly do not
    responds = gets_gcsf & ~aplastic & (rng.random(n) < 0.8)
    recover_day = np.where(
        responds & (recover_day > g_start + 7), g_start + rng.integers(3, 8, n), recover_day
    )
    dur = np.where(never, 0, recover_day - onset)
    g_end = np.where(
        aplastic,
        np.minimum(recover_day + 2, g_start + rng.integers(14, 35, n)),
        recover_day + rng.integers(0, 3, n),
    )
    g_end = np.minimum(g_end, end)
    gets_gcsf &= g_start <= end

    return Gcsf(gets_gcsf, g_start, g_end, recover_day, dur)
