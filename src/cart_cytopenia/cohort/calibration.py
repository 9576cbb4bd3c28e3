"""Published aggregates the synthetic cohort is calibrated against, and how they are measured.

Source: Rejeski et al., CAR-HEMATOTOX, Blood 2021;138(24):2499-2513 (clinical-definitions.md
section 4): the pooled cohort (n = 235, Table 2) and the pooled validation cohorts by risk group
(high n = 83, low n = 97, Table 3). Those patients had large B-cell lymphoma treated with
axi-cel or tisa-cel, so the metrics are measured on the synthetic patients of that setting
(``calibration_subset``); the other strata follow documented assumptions (docs/cohort.md).

Every metric is read from the output of the grading engine (``grade_cohort``), so the
calibration also exercises the engine; only "ANC <= 1000 on or after day 21" is read from the
canonical lab rows, as it is not a graded quantity.

Tolerances: for a share, the half-width of the binomial 95% confidence interval of the published
estimate at the published sample size (1.96 * sqrt(p(1-p)/n)), rounded up to a whole
percentage point: a synthetic value inside the tolerance is statistically compatible with the
published one. For medians (no interval published): 2 days (pooled), 3 days (high-risk group),
2.5 days (low-risk group). For the AUC of the score: 0.05.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from cart_cytopenia.domain.frames import CohortFrames

SOURCE = "Rejeski K et al. CAR-HEMATOTOX. Blood 2021;138(24):2499-2513"


@dataclass(frozen=True)
class Target:
    id: str
    label: str
    published: float  # share (0-1), days, or AUC
    n_published: int | None  # sample size the published value comes from (shares)
    kind: str  # "share" | "median" | "auc"
    group: str  # "all" | "high" | "low"
    where: str  # table of the paper
    tolerance: float

    def ok(self, value: float) -> bool:
        return not math.isnan(value) and abs(value - self.published) <= self.tolerance + 1e-12


def _share_tol(p: float, n: int) -> float:
    return math.ceil(100 * 1.96 * math.sqrt(p * (1 - p) / n)) / 100


def _share(
    id_: str, label: str, p: float, n: int, group: str = "all", where: str = "Table 2"
) -> Target:
    return Target(id_, label, p, n, "share", group, where, _share_tol(p, n))


TARGETS: tuple[Target, ...] = (
    _share("anc_le_500", "ANC <= 500/uL (day 0-30)", 0.91, 235),
    _share("anc_le_100", "ANC <= 100/uL (day 0-30)", 0.72, 235),
    _share("anc_le_500_7d", "ANC <= 500/uL for >= 7 days (day 0-60)", 0.68, 235),
    _share("anc_le_100_7d", "ANC <= 100/uL for >= 7 days (day 0-30)", 0.26, 235),
    _share("anc_le_1000_d21", "ANC <= 1000/uL on or after day 21 (to day 60)", 0.64, 235),
    _share("plt_lt_50", "Platelets < 50 x10^9/L", 0.62, 235),
    _share("hb_lt_8_or_rbc", "Hb < 8 g/dL or red-cell transfusion", 0.69, 235),
    _share("severe_14d", "Severe neutropenia (ANC <= 500/uL) >= 14 days (day 0-60)", 0.29, 235),
    Target(
        "median_severe_days",
        "Median duration of severe neutropenia, day 0-60 (days)",
        9,
        None,
        "median",
        "all",
        "Table 2",
        2,
    ),
    _share("high_risk", "CAR-HEMATOTOX high risk (score >= 2)", 83 / 180, 180, where="Table 3"),
    _share(
        "severe_14d_high", "Severe neutropenia >= 14 days, high risk", 0.48, 83, "high", "Table 3"
    ),
    _share("severe_14d_low", "Severe neutropenia >= 14 days, low risk", 0.05, 97, "low", "Table 3"),
    Target(
        "median_high",
        "Median severe-neutropenia days, high risk",
        12,
        None,
        "median",
        "high",
        "Table 3",
        3,
    ),
    Target(
        "median_low",
        "Median severe-neutropenia days, low risk",
        5.5,
        None,
        "median",
        "low",
        "Table 3",
        2.5,
    ),
    _share("anc_le_100_7d_high", "ANC <= 100/uL >= 7 days, high risk", 0.47, 83, "high", "Table 3"),
    _share("anc_le_100_7d_low", "ANC <= 100/uL >= 7 days, low risk", 0.05, 97, "low", "Table 3"),
    _share("plt_lt_50_high", "Platelets < 50 x10^9/L, high risk", 0.87, 83, "high", "Table 3"),
    _share("plt_lt_50_low", "Platelets < 50 x10^9/L, low risk", 0.34, 97, "low", "Table 3"),
    Target(
        "auc",
        "AUC of the score for severe neutropenia >= 14 days",
        0.89,
        None,
        "auc",
        "all",
        "Results (pooled validation)",
        0.05,
    ),
    _share(
        "sensitivity",
        "Sensitivity of high risk for >= 14 days",
        0.89,
        45,
        where="Results (pooled validation)",
    ),
    _share(
        "specificity",
        "Specificity of high risk for >= 14 days",
        0.68,
        135,
        where="Results (pooled validation)",
    ),
)


def calibration_subset(graded: pl.DataFrame, patients: pl.DataFrame) -> pl.DataFrame:
    """Graded rows of the published setting: LBCL treated with axi-cel or tisa-cel."""
    keep = patients.filter(
        (pl.col("disease") == "LBCL") & pl.col("product").is_in(["axi-cel", "tisa-cel"])
    ).select("patient_id")
    return graded.join(keep, on="patient_id", how="semi")


def _auc(score: np.ndarray, outcome: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted one half)."""
    pos, neg = score[outcome], score[~outcome]
    if not pos.size or not neg.size:
        return math.nan
    values = np.concatenate([pos, neg])
    is_pos = np.concatenate([np.ones(pos.size, bool), np.zeros(neg.size, bool)])
    # average ranks (1-based), ties sharing the mean of their ranks
    _, inv, counts = np.unique(values, return_inverse=True, return_counts=True)
    cum = np.cumsum(counts)
    ranks = (cum - (counts - 1) / 2.0)[inv]
    r_pos = is_pos
    u = ranks[r_pos].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def measure(graded: pl.DataFrame, frames: CohortFrames) -> pl.DataFrame:
    """Each target's synthetic value on the calibration subset: one row per target."""
    sub = calibration_subset(graded, frames.patients)
    late_low = (
        frames.labs.filter(
            (pl.col("analyte") == "anc")
            & pl.col("day").is_between(21, 60)
            & (pl.col("value") <= 1000)
        )
        .select("patient_id")
        .unique()
    )
    sub = sub.with_columns(
        pl.col("patient_id").is_in(late_low["patient_id"].implode()).alias("_anc_le_1000_d21")
    )
    d60 = sub["days_anc_le_500_d0_60"].to_numpy()
    early500 = sub["early_days_anc_le_500"].to_numpy()
    early100 = sub["early_days_anc_le_100"].to_numpy()
    plt_nadir = sub["platelet_nadir"].fill_null(np.nan).to_numpy()
    hb_nadir = sub["hb_nadir"].fill_null(np.nan).to_numpy()
    rbc = (sub["rbc_transfusions_d0_30"] + sub["rbc_transfusions_d31_100"]).to_numpy()
    risk = sub["hematotox_risk"].to_numpy()
    score = sub["hematotox_score"].fill_null(-1).to_numpy()
    high, low = risk == "high", risk == "low"
    known = high | low
    groups = {"all": np.ones(sub.height, bool), "high": high, "low": low}
    with np.errstate(invalid="ignore"):
        flags = {
            "anc_le_500": early500 >= 1,
            "anc_le_100": early100 >= 1,
            "anc_le_500_7d": d60 >= 7,
            "anc_le_100_7d": early100 >= 7,
            "anc_le_1000_d21": sub["_anc_le_1000_d21"].to_numpy(),
            "plt_lt_50": plt_nadir < 50,
            "hb_lt_8_or_rbc": (hb_nadir < 8) | (rbc > 0),
            "severe_14d": d60 >= 14,
        }
    rows = []
    for t in TARGETS:
        g = groups[t.group]
        base = t.id.removesuffix("_high").removesuffix("_low")
        if t.id == "high_risk":
            value = float(high[known].mean()) if known.any() else math.nan
            n = int(known.sum())
        elif t.kind == "median":
            value = float(np.median(d60[g])) if g.any() else math.nan
            n = int(g.sum())
        elif t.id == "auc":
            ok = score >= 0
            value = _auc(score[ok].astype(float), (d60 >= 14)[ok])
            n = int(ok.sum())
        elif t.id == "sensitivity":
            pos = known & (d60 >= 14)
            value = float(high[pos].mean()) if pos.any() else math.nan
            n = int(pos.sum())
        elif t.id == "specificity":
            neg = known & (d60 < 14)
            value = float(low[neg].mean()) if neg.any() else math.nan
            n = int(neg.sum())
        else:
            f = flags[base]
            value = float(f[g].mean()) if g.any() else math.nan
            n = int(g.sum())
        rows.append(
            {
                "id": t.id,
                "metric": t.label,
                "group": t.group,
                "kind": t.kind,
                "published": t.published,
                "tolerance": t.tolerance,
                "synthetic": value,
                "n_synthetic": n,
                "within_tolerance": t.ok(value),
                "source": f"{SOURCE}, {t.where}",
            }
        )
    return pl.DataFrame(rows)
