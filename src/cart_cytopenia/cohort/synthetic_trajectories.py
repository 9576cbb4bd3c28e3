"""Step 6 of ``synthetic.generate_block``: each lineage's daily trajectory on the whole grid of
simulated days (ANC, platelets, haemoglobin), piecewise linear between knots drawn per patient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cart_cytopenia.cohort.synthetic_mix import (
    DAYS,
    IA,
    B,
    F,
    _dense,
)
from cart_cytopenia.cohort.synthetic_patients import Baseline, Gcsf, Neutropenia, Outcomes, Who


@dataclass(frozen=True)
class AncCurve:
    """The daily ANC, and what other curves and events share with it."""

    anc: F  # (n, N_DAYS)
    ldf: F  # lymphodepletion start day
    depth: F  # (n, 1): how far a next therapy brings the counts down
    tri: F  # (n, N_DAYS): the next therapy's dip, 0..1
    gdip: B  # G-CSF for the biphasic drop
    dip_start: F
    dip_down: F
    dip_hold: F
    dip_up: F


def anc_curve(
    rng: np.random.Generator, who: Who, base: Baseline, neu: Neutropenia, out: Outcomes, g: Gcsf
) -> AncCurve:
    """Daily ANC (piecewise linear in log scale): lymphodepletion nadir, recovery, the second dip
    after day 21 (intermittent), prolonged aplasia, and the drop of a next therapy."""
    n, ld_start, base_anc, score = who.n, who.ld_start, base.base_anc, base.score
    onset, nadir, aplastic, never = neu.onset, neu.nadir, neu.aplastic, neu.never
    plateau, intermittent = neu.plateau, neu.intermittent
    dur, recover_day, next_tx_day = g.dur, g.recover_day, out.next_tx_day
    log10 = np.log10
    ldf = ld_start.astype(float)
    b = np.maximum(base_anc, 700.0)
    s_half = np.minimum(4.0, np.maximum(dur, 1) / 2.5)
    rise = rng.uniform(3, 8, n)
    r = recover_day.astype(float)
    # knots: baseline, LD, crossing below 500, floor start, floor end, crossing above 500, plateau
    k_x = [ldf - 1, ldf + 2, onset - 0.5, onset - 0.5 + s_half, r - 0.5 - s_half, r - 0.5, r + rise]
    floor_end = nadir * np.exp(rng.uniform(0, 0.8, n))
    k_y = [
        log10(base_anc),
        log10(b * rng.uniform(0.8, 1.2, n)),
        np.full(n, log10(500.0)),
        log10(nadir),
        log10(np.where(aplastic, np.minimum(floor_end, 300), np.minimum(floor_end, 450))),
        np.full(n, log10(500.0)),
        log10(plateau),
    ]
    # never severe: a shallow nadir above 500 around day 5-8
    nd = rng.uniform(4, 9, n)
    never_x = [ldf - 1, ldf + 2, nd - 1, nd, nd + 1, nd + 3, nd + 7]
    never_y = [
        log10(base_anc),
        log10(b),
        log10(nadir * 1.25),
        log10(nadir),
        log10(nadir * 1.15),
        log10((nadir + plateau) / 2),
        log10(plateau),
    ]
    k_x = [np.where(never, a, c) for a, c in zip(never_x, k_x, strict=True)]
    k_y = [np.where(never, a, c) for a, c in zip(never_y, k_y, strict=True)]
    # after recovery: intermittent second dip after day 21; aplastic partial recovery with dips
    dip_start = np.maximum(r + rise + 2, rng.uniform(20, 42, n))
    dip_down = rng.uniform(3, 7, n)
    dip_hold = rng.uniform(2, 9, n)
    dip_up = rng.uniform(3, 10, n)
    dip_min = np.exp(rng.uniform(np.log(250), np.log(950), n) - 0.2 * (score - 2))
    dip_min = np.minimum(dip_min, 980)
    dip_min = np.where(aplastic, dip_min * 0.6, dip_min)
    has_dip = intermittent | (aplastic & (rng.random(n) < 0.4))
    gdip = has_dip & (dip_min < 750) & (rng.random(n) < 0.5)  # G-CSF for the biphasic drop
    dip_up = np.where(gdip, rng.uniform(2, 4, n), dip_up)
    plateau2 = np.exp(rng.uniform(np.log(1500), np.log(4000), n))
    plateau2 = np.where(aplastic, np.exp(rng.uniform(np.log(800), np.log(2200), n)), plateau2)
    late = np.exp(rng.uniform(np.log(1800), np.log(4500), n))
    no_dip_y = np.where(has_dip, 0.0, 1.0)
    k_x += [
        dip_start,
        dip_start + dip_down,
        dip_start + dip_down + dip_hold,
        dip_start + dip_down + dip_hold + dip_up,
        np.full(n, 180.0),
        np.full(n, 400.0),
    ]
    k_y += [
        log10(plateau),
        np.where(no_dip_y > 0, log10(plateau), log10(dip_min)),
        np.where(no_dip_y > 0, log10(plateau), log10(dip_min * rng.uniform(1.0, 1.4, n))),
        log10(plateau2),
        log10((plateau2 + late) / 2),
        log10(late),
    ]
    kx = np.stack(k_x, axis=1)
    ky = np.stack(k_y, axis=1)
    anc_log = _dense(kx, ky)
    depth, tri = _next_therapy_dip(rng, next_tx_day)
    anc = 10 ** (anc_log - depth * tri)
    return AncCurve(anc, ldf, depth, tri, gdip, dip_start, dip_down, dip_hold, dip_up)


def _next_therapy_dip(rng: np.random.Generator, next_tx_day: IA) -> tuple[F, F]:
    """A next therapy (salvage, bispecific, HCT conditioning) brings counts down again: its depth
    per patient (n, 1) and its shape on each day (n, N_DAYS), 0..1, deepest 9 days after it."""
    days = DAYS[None, :].astype(float)
    nt = next_tx_day.astype(float)[:, None]
    depth = rng.uniform(0.5, 1.6, next_tx_day.size)[:, None]
    tri = np.clip(1 - np.abs(days - (nt + 9)) / 10, 0, 1)
    return depth, tri


@dataclass(frozen=True)
class PlateletCurve:
    plt_int: F  # (n, N_DAYS), before transfusions
    tpo: B  # a TPO-receptor agonist given
    tpo_start: IA
    tpo_resp: B


def platelet_curve(
    rng: np.random.Generator,
    base: Baseline,
    neu: Neutropenia,
    out: Outcomes,
    a: AncCurve,
) -> PlateletCurve:
    """Daily platelets before transfusions, and a TPO-receptor agonist for persistent
    thrombocytopenia."""
    n, score, base_plt = neu.onset.size, base.score, base.base_plt
    sev, aplastic, intermittent = neu.sev, neu.aplastic, neu.intermittent
    end, boosted, boost_day = out.end, out.boosted, out.boost_day
    ldf, depth, tri = a.ldf, a.depth, a.tri
    # platelets: nadir day 7-16, depth by score and phenotype; slow recovery when aplastic
    mu = (
        -1.0
        - 0.14 * score
        - 0.35 * np.maximum(sev, 0)
        - np.where(aplastic, 0.85, np.where(intermittent, 0.25, 0.0))
    )
    p_nadir = np.clip(base_plt * np.exp(rng.normal(mu, 0.5, n)), 2, base_plt)
    p_nadir_day = rng.uniform(7, 15, n) + 4 * aplastic
    p_final = np.clip(base_plt * rng.uniform(0.6, 1.1, n), 60, 450)
    p_rec = np.where(
        aplastic,
        np.exp(rng.normal(np.log(75), 0.6, n)),
        np.where(intermittent, rng.uniform(12, 40, n), rng.uniform(6, 25, n)),
    )
    # TPO-receptor agonist for persistent thrombocytopenia beyond day 30
    tpo = (p_nadir < 40) & (p_nadir_day + p_rec > 45) & (rng.random(n) < 0.5)
    tpo_start = np.where(tpo, rng.integers(30, 61, n), 10_000).astype(np.int64)
    tpo_start = np.where(tpo_start <= end, tpo_start, 10_000)
    tpo = tpo_start < 10_000
    tpo_resp = tpo & (rng.random(n) < 0.6)
    p_rec = np.where(
        tpo_resp, np.minimum(p_rec, tpo_start - p_nadir_day + rng.uniform(14, 42, n)), p_rec
    )
    p_rec = np.where(
        boosted, np.minimum(p_rec, boost_day - p_nadir_day + rng.uniform(14, 30, n)), p_rec
    )
    p_rec = np.maximum(p_rec, 4)
    p_low_end = p_nadir * np.where(aplastic, rng.uniform(1.0, 2.2, n), rng.uniform(1.0, 1.5, n))
    pk_x = np.stack(
        [
            ldf - 1,
            ldf + 3,
            p_nadir_day - 3,
            p_nadir_day,
            p_nadir_day + 0.6 * p_rec,
            p_nadir_day + p_rec,
            p_nadir_day + p_rec + 30,
        ],
        axis=1,
    )
    pk_y = np.log(
        np.stack(
            [
                base_plt,
                base_plt * 0.95,
                (base_plt * p_nadir) ** 0.5,
                p_nadir,
                p_low_end,
                np.maximum(p_final * 0.7, p_low_end),
                p_final,
            ],
            axis=1,
        )
    )
    plt_int = np.exp(_dense(pk_x, pk_y) - 0.7 * depth * tri)

    return PlateletCurve(plt_int, tpo, tpo_start, tpo_resp)


def haemoglobin_curve(rng: np.random.Generator, base: Baseline, neu: Neutropenia, a: AncCurve) -> F:
    """Daily haemoglobin before transfusions."""
    n, score, base_hb = neu.onset.size, base.score, base.base_hb
    sev, aplastic = neu.sev, neu.aplastic
    ldf, depth, tri = a.ldf, a.depth, a.tri
    # haemoglobin: falls 1-4.5 g/dL to a nadir on day 8-25; recovers over weeks to months
    drop = np.clip(
        rng.normal(3.8 + 0.2 * score + 0.9 * aplastic + 0.3 * np.maximum(sev, 0), 0.9, n), 0.3, 6
    )
    h_nadir_day = rng.uniform(8, 25, n)
    h_rec = np.where(aplastic, rng.uniform(90, 250, n), rng.uniform(30, 120, n))
    hk_x = np.stack(
        [ldf - 1, ldf + 2, h_nadir_day, h_nadir_day + h_rec, h_nadir_day + h_rec + 60], axis=1
    )
    h_final = np.clip(base_hb + rng.uniform(-0.5, 1.5, n), 9.5, 16)
    hk_y = np.stack(
        [base_hb, base_hb - 0.2, np.maximum(base_hb - drop, 4.2), h_final - 0.5, h_final], axis=1
    )
    hb_int = _dense(hk_x, hk_y) - 0.6 * depth * tri

    return hb_int
