"""CPU cost of the ferritin trend (grading/ferritin_trend.py, 21-day look-back) against the
fixed 7-day window it replaced, on the ferritin rows of a synthetic cohort replicated to
``--patients`` patients. Alternates A/B rounds and reports CPU seconds (process_time) and the
load average. Usage:

    cart-cytopenia cohort generate --patients 2000 --seed 1 --out /tmp/c2000
    python benchmarks/ferritin_trend_cost.py /tmp/c2000 --patients 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cart_cytopenia.domain.analytes import resolve_analyte
from cart_cytopenia.grading import ferritin_trend
from cart_cytopenia.rules import tables


def rows(cohort: Path, patients: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labs = pd.read_parquet(cohort / "labs.parquet")
    codes = {a: resolve_analyte(a).code for a in labs.analyte.unique()}
    fer = labs[labs.analyte.map(codes) == "ferritin"]
    pid = fer.patient_id.astype("category").cat.codes.to_numpy(np.int64)
    n0 = int(pid.max()) + 1
    reps = -(-patients // n0)
    idx = np.concatenate([pid + r * n0 for r in range(reps)])
    day = np.tile(fer.day.to_numpy(np.int64), reps)
    val = np.tile(fer.value.to_numpy(np.float64), reps)
    order = np.lexsort((day, idx))
    return idx[order], day[order], val[order]


def fixed_window(idx: np.ndarray, day: np.ndarray, val: np.ndarray, w: int) -> np.ndarray:
    """The replaced convention: the lowest value of the ``w`` days before (its loop)."""
    prior = np.full(idx.size, np.nan)
    for k in range(1, idx.size):
        near = (idx[k:] == idx[:-k]) & (day[k:] - day[:-k] <= w)
        if not near.any():
            break
        near &= day[:-k] < day[k:]
        tail = prior[k:]
        tail[near] = np.fmin(tail[near], val[:-k][near])
    return prior


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cohort", type=Path)
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    t = tables.iec_hs()
    idx, day, val = rows(a.cohort, a.patients)
    since = np.full(idx.size, ferritin_trend.NO_LIMIT, np.int64)
    print(f"{idx.size:,} ferritin rows, {a.patients:,} patients; load {os.getloadavg()}")
    for r in range(a.rounds):
        t0 = time.process_time()
        fixed_window(idx, day, val, t.ferritin_rise_window_days)
        t1 = time.process_time()
        ferritin_trend.trend(idx, day, val, since, t)
        t2 = time.process_time()
        print(f"round {r + 1}: fixed 7-day window {t1 - t0:.3f} s CPU, rate trend {t2 - t1:.3f} s")


if __name__ == "__main__":
    main()
