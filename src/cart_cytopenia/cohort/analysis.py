"""Cohort analysis: one pass of the grading engine, plus recovery end points and plot samples.

``analyse(frames, settings)`` runs the engine (``grading.engine.iter_chunks``, the same code as
``cart-cytopenia grade``) chunk by chunk and keeps, besides the one-row-per-patient grades:

- competing-risk data for three recovery end points (time from day 0, cause), built from the
  engine's daily grids with the engine's run scanner (``grading.daily.scan_runs``):

  * neutrophil recovery: the first day of the first stretch of 3 consecutive days with ANC
    > 500/uL (days between values interpolated over gaps of up to 7 days, as for ICAHT) after
    ANC <= 500/uL (CIBMTR neutrophil engraftment definition); patients whose ANC was never
    <= 500/uL from day 0 are not at risk and are left out of this end point;
  * platelet recovery >= 20 and >= 50 x10^9/L, unsupported: the first day of 3 consecutive days
    at or above the level, none of them within 7 days after a platelet transfusion (CIBMTR
    platelet engraftment definition for 20; 50 as often reported after CAR-T); patients never
    below the level from day 0 are left out;
  * competing events: relapse / progression or next therapy (cause 2), death (cause 3), which
    ever comes first before recovery, when it comes at most 31 days after the last value of the
    count (later, recovery in between could have gone unseen); otherwise censored at the last
    value of the count (or the last follow-up, whichever is earlier);

- a reproducible sample of patients' daily counts (the daily minimum, and the same series with
  gaps of up to 7 days interpolated as the grading does) for the swimmer plot, the heat map and
  the trajectories.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.domain.frames import CohortFrames
from cart_cytopenia.grading.daily import DailyGrid, interpolate, scan_runs
from cart_cytopenia.grading.engine import NO_DAY, GradedChunk, iter_chunks
from cart_cytopenia.grading.grade_table import chunk_table
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import Settings

RECOVERY, RELAPSE, DEATH, CENSORED = 1, 2, 3, 0
CAUSES = {
    RECOVERY: "recovery",
    RELAPSE: "relapse / next therapy",
    DEATH: "death",
    CENSORED: "censored",
}
SUPPORT_DAYS = 7  # days after a platelet transfusion during which a count is "supported"
MIN_RECOVERED = 3
COMPETING_WITHIN_DAYS = 31  # a competing event this long after the last count still counts


@dataclass(frozen=True)
class Endpoint:
    id: str
    label: str
    analyte: str
    level: float  # recovery means value > level (ANC) or >= level (platelets)
    strict: bool  # True: recovered when value > level; False: when value >= level
    definition: str


ENDPOINTS = (
    Endpoint(
        "neutrophil",
        "Neutrophil recovery (ANC > 500/µL)",
        "anc",
        500.0,
        True,
        "first of 3 consecutive days with ANC > 500/µL after ANC ≤ 500/µL (CIBMTR)",
    ),
    Endpoint(
        "platelet20",
        "Platelet recovery (≥ 20 ×10⁹/L unsupported)",
        "platelets",
        20.0,
        False,
        "first of 3 consecutive days with platelets ≥ 20 ×10⁹/L, none within 7 days after a "
        "platelet transfusion, after a count < 20 (CIBMTR)",
    ),
    Endpoint(
        "platelet50",
        "Platelet recovery (≥ 50 ×10⁹/L unsupported)",
        "platelets",
        50.0,
        False,
        "first of 3 consecutive days with platelets ≥ 50 ×10⁹/L, none within 7 days after a "
        "platelet transfusion, after a count < 50",
    ),
)


@dataclass
class CohortAnalysis:
    graded: pl.DataFrame  # the engine's one-row-per-patient table (grade output)
    endpoints: pl.DataFrame  # patient_id, endpoint, time, cause
    samples: pl.DataFrame  # patient_id, day, anc, platelets (daily minimum), *_interp (gaps <= 7 d)
    sample_days: int
    n_patients: int
    notes: list[str] = field(default_factory=list)


def _day(patients: pl.DataFrame, col: str) -> NDArray[np.int64]:
    return patients[col].fill_null(NO_DAY).to_numpy().astype(np.int64)


def _supported_mask(
    events: pl.DataFrame, index: pl.DataFrame, n: int, n_days: int
) -> NDArray[np.bool_]:
    """Days (0 .. n_days-1) within SUPPORT_DAYS after a platelet transfusion, per patient."""
    mask = np.zeros((n, n_days + SUPPORT_DAYS + 1), bool)
    tx = (
        events.filter((pl.col("type") == "transfusion") & (pl.col("product") == "platelets"))
        .join(index, on="patient_id", how="inner")
        .select("idx", "start_day")
        .filter(pl.col("start_day").is_between(-SUPPORT_DAYS, n_days - 1))
    )
    if tx.height:
        idx = tx["idx"].to_numpy()
        day = tx["start_day"].to_numpy().astype(np.int64)
        for k in range(SUPPORT_DAYS + 1):  # the transfusion day and the 7 days after it
            d = day + k
            ok = (d >= 0) & (d < n_days)
            mask[idx[ok], d[ok]] = True
    return mask[:, :n_days]


def _endpoint_rows(
    ep: Endpoint,
    c: GradedChunk,
    pats: pl.DataFrame,
    events: pl.DataFrame,
    index: pl.DataFrame,
    gap: int,
) -> pl.DataFrame:
    raw = c.grids[ep.analyte]
    n = raw.values.shape[0]
    grid = c.anc_interp if ep.analyte == "anc" else interpolate(raw, gap)
    values = grid.values
    if ep.analyte == "platelets":
        supported = _supported_mask(events, index, n, grid.n_days)
        values = np.where(supported, np.nan, values)  # a supported count is not a recovery
    threshold = ep.level if ep.strict else float(np.nextafter(ep.level, -np.inf))
    comp = np.minimum(_day(pats, "progression_day"), _day(pats, "next_therapy_day"))
    death = _day(pats, "death_day")
    follow = _day(pats, "last_followup_day")
    obs = ~np.isnan(raw.values)
    last_obs = np.where(obs.any(axis=1), raw.n_days - 1 - np.argmax(obs[:, ::-1], axis=1), -1)
    last = np.minimum(last_obs, follow)
    stop = np.minimum.reduce([comp - 1, death, last]).astype(np.int32)
    scan = scan_runs(
        DailyGrid(grid.first_day, values), threshold, MIN_RECOVERED, (0, 10**6), 0, stop
    )
    at_risk = scan.first_start >= 0
    rec = scan.first_recovery.astype(np.int64)
    t = np.full(n, np.nan)
    cause = np.zeros(n, np.int8)
    has_rec = rec >= 0
    t[has_rec] = rec[has_rec]
    cause[has_rec] = RECOVERY
    first_comp = np.minimum(comp, death)
    is_death = death <= comp
    # a competing event counts when it follows the last count closely enough that recovery in
    # between would have been seen; otherwise the patient is censored at the last count
    ended = ~has_rec & (first_comp < NO_DAY) & (first_comp <= last + COMPETING_WITHIN_DAYS)
    t[ended] = first_comp[ended]
    cause[ended] = np.where(is_death[ended], DEATH, RELAPSE)
    cens = ~has_rec & ~ended
    t[cens] = np.maximum(last[cens], 0)
    return (
        pl.DataFrame(
            {
                "patient_id": c.patient_ids,
                "endpoint": ep.id,
                "time": t,
                "cause": cause,
                "at_risk": at_risk,
            }
        )
        .filter(pl.col("at_risk"))
        .drop("at_risk")
    )


def analyse(
    frames: CohortFrames,
    settings: Settings,
    as_of: int | None = None,
    sample_size: int = 400,
    sample_days: int = 180,
    seed: int = 0,
) -> CohortAnalysis:
    """Grade the cohort and derive the recovery end points and the plot sample (one pass)."""
    gap = tables.icaht().conventions.max_interpolation_gap_days
    if settings.icaht.max_interpolation_gap_days is not None:
        gap = settings.icaht.max_interpolation_gap_days
    ids = frames.patients["patient_id"]
    rng = np.random.default_rng(seed)
    chosen = (
        set(ids.gather(rng.permutation(ids.len())[:sample_size]).to_list()) if ids.len() else set()
    )
    pats_all = frames.patients
    parts, eps, samples = [], [], []
    for c in iter_chunks(frames, settings, as_of, detail=False):  # (the grade table, grids)
        table = chunk_table(c, settings)
        parts.append(table)
        index = (
            pl.DataFrame({"patient_id": c.patient_ids})
            .with_row_index("idx")
            .with_columns(pl.col("idx").cast(pl.Int64))
        )
        pats = index.join(pats_all, on="patient_id", how="left").sort("idx")
        chunk_events = frames.events.join(index.select("patient_id"), on="patient_id", how="semi")
        for ep in ENDPOINTS:
            eps.append(_endpoint_rows(ep, c, pats, chunk_events, index, gap))
        pick = [i for i, p in enumerate(c.patient_ids) if p in chosen]
        if pick:
            days = min(sample_days, c.grids["anc"].n_days - 1)
            cols = {
                "anc": c.grids["anc"].values,
                "platelets": c.grids["platelets"].values,
                "anc_interp": c.anc_interp.values,
                "platelets_interp": interpolate(c.grids["platelets"], gap).values,
            }
            frame: dict[str, object] = {
                "patient_id": np.repeat(np.array(c.patient_ids, dtype=object)[pick], days + 1),
                "day": np.tile(np.arange(days + 1, dtype=np.int32), len(pick)),
            }
            for k, v in cols.items():
                frame[k] = v[pick, : days + 1].ravel()
            samples.append(pl.DataFrame(frame).with_columns(pl.col(k).fill_nan(None) for k in cols))
    graded = pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame()
    endpoints = (
        pl.concat(eps)
        if eps
        else pl.DataFrame(
            schema={
                "patient_id": pl.String,
                "endpoint": pl.String,
                "time": pl.Float64,
                "cause": pl.Int8,
            }
        )
    )
    sample = (
        pl.concat(samples)
        if samples
        else pl.DataFrame(
            schema={
                "patient_id": pl.String,
                "day": pl.Int32,
                "anc": pl.Float64,
                "platelets": pl.Float64,
            }
        )
    )
    return CohortAnalysis(graded, endpoints, sample, sample_days, frames.n_patients)
