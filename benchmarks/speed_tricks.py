"""Do the engine's last hand-written speed tricks pay? (issue 16: keep one only if it buys >= 10%)

    python benchmarks/speed_tricks.py [--patients 100000] [--seed 42] [--rounds 5] [--results F]

The engine uses the plain versions (what a reader writes first); this script holds the tricks
they replaced, as they were in the engine before (commit c194620), and swaps them in for the
runs that measure them:

- ``split``: ``cohort_rows._split_by_analyte`` numbering each lab row by one byte (``which``:
  the analyte's catalogue position, 255 for a row before day 0 or after ``until``) and comparing
  that, instead of a per-analyte mask ``(code == c) & in_days``;
- ``scan``: the lab scan (``cohort_rows._scan_labs``, one pass per instrument) testing analyte
  membership by comparison chains (``_one_of``: "numpy releases the GIL in comparisons, not in
  table lookups") instead of ``np.isin``;
- ``runs``: ``daily._recovery_starts`` (the separators of the run scan) finding the stretches of
  ``min_recovered`` days above the threshold by a loop of shifted ANDs, instead of each
  stretch's length by ``cumsum`` + ``bincount``.

The cohort ``benchmarks/run.py`` caches in benchmarks/data/ (generated when missing) is read
once; then each round grades it (``engine.grade_cohort``, two worker threads, as ``grade``) once
per mode (``plain``, each trick alone on top of the plain code, all tricks), the modes' order
rotating between rounds, so that a change of the machine's load hits every mode alike. Per run:
the wall time, the process's CPU time (``time.process_time``: every thread) and the time spent
inside the three functions, summed over the calls (``TIMED``: the row split and the recovery
streaks by their thread's CPU clock, the lab scan by the process's CPU clock and the wall
clock). Every mode's grade table must equal the plain mode's cell for cell (retrospective, and
as of day 20), or the script stops. The figures are printed as a Markdown table with the load
average, and appended to ``--results`` when given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from polars.testing import assert_frame_equal

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from issue12_cost import commit, load_average  # noqa: E402
from run import ensure_cohort  # noqa: E402

from cart_cytopenia.domain.frames import ANALYTE_CODES  # noqa: E402
from cart_cytopenia.grading import cohort_rows, daily, engine  # noqa: E402
from cart_cytopenia.grading.cohort_rows import GRID_ANALYTES, DayRows  # noqa: E402
from cart_cytopenia.io.tables import read_cohort  # noqa: E402
from cart_cytopenia.rules.settings import Settings  # noqa: E402

# ---- the tricks, as they were in the engine (c194620) ----


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


class NumpyWithOneOf:
    """numpy for ``cohort_rows``, its ``isin`` (called only by the lab scan) replaced by the
    comparison chains of ``_one_of``."""

    isin = staticmethod(_one_of)

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


def trick_split_by_analyte(
    idx: NDArray[np.integer],
    day: NDArray[np.int32],
    code: NDArray[np.integer],
    value: NDArray[np.float64],
    until: int | None = None,
) -> dict[str, DayRows]:
    # one byte per row: the analyte's catalogue position, 255 for a row left out (a negative
    # code wraps to it)
    out_of_days = day < 0
    if until is not None:
        out_of_days |= day > until
    which = np.where(out_of_days, 255, code.astype(np.uint8))
    out = {}
    for name in GRID_ANALYTES:
        take = np.flatnonzero(which == ANALYTE_CODES.index(name))
        out[name] = cohort_rows._one_row_per_day(idx[take], day[take], value[take])
    return out


def trick_recovery_starts(
    above: NDArray[np.bool_], cont: NDArray[np.bool_], min_recovered: int
) -> NDArray[np.bool_]:
    a_start = above & ~cont
    k = above.size
    # stretches of at least ``min_recovered`` days separate runs: a stretch's first cell is
    # followed by min_recovered - 1 continuing cells
    long_enough = a_start.copy()
    for j in range(1, max(min_recovered, 1)):
        if j >= k:
            long_enough[:] = False
            break
        long_enough[: k - j] &= cont[j:]
        long_enough[k - j :] = False
    return long_enough


# ---- swapping and timing ----

SWAPS: dict[str, tuple[Any, str, Any]] = {
    "split": (cohort_rows, "_split_by_analyte", trick_split_by_analyte),
    "scan": (cohort_rows, "np", NumpyWithOneOf()),
    "runs": (daily, "_recovery_starts", trick_recovery_starts),
}
# what is timed, by which CPU clock: the row split and the recovery streaks run inside the
# chunks, on both worker threads at once (each call timed on its own thread); the lab scan runs
# while nothing else does and hands its slices to the worker threads (timed for the whole
# process, and by the wall clock)
TIMED: dict[str, tuple[Any, str, Callable[[], float]]] = {
    "split": (cohort_rows, "_split_by_analyte", time.thread_time),
    "scan": (cohort_rows, "_scan_labs", time.process_time),
    "runs": (daily, "_recovery_starts", time.thread_time),
}
ORIGINAL = {(mod, attr): getattr(mod, attr) for mod, attr, _ in [*SWAPS.values(), *TIMED.values()]}
MODES = {"plain": (), **{f"+{k}": (k,) for k in SWAPS}, "all tricks": tuple(SWAPS)}
inside = dict.fromkeys([*TIMED, "scan wall"], 0.0)  # seconds inside each timed function


def timed(name: str, clock: Callable[[], float], fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0, w0 = clock(), time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            inside[name] += clock() - t0  # (+= on a float: atomic enough under the GIL)
            if name == "scan":
                inside["scan wall"] += time.perf_counter() - w0

    return wrapper


def use(mode: str) -> None:
    """The mode's functions in place, each timed function wrapped once."""
    for (mod, attr), original in ORIGINAL.items():
        setattr(mod, attr, original)
    for name, (mod, attr, trick) in SWAPS.items():
        setattr(mod, attr, trick if name in MODES[mode] else ORIGINAL[mod, attr])
    for name, (mod, attr, clock) in TIMED.items():
        setattr(mod, attr, timed(name, clock, getattr(mod, attr)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--results", type=Path, help="Markdown file to append the figures to")
    args = ap.parse_args()
    cohort, _ = ensure_cohort(args.patients, args.seed)
    frames = read_cohort(
        cohort / "labs.parquet", cohort / "patients.parquet", cohort / "events.parquet"
    )
    settings = Settings()
    load_before = load_average()
    use("plain")
    expected = {w: engine.grade_cohort(frames, settings, as_of=w) for w in (None, 20)}
    for mode in MODES:  # every mode's output first (and a warm-up run of each)
        use(mode)
        for w, table in expected.items():
            assert_frame_equal(engine.grade_cohort(frames, settings, as_of=w), table)
    runs: dict[str, list[tuple[float, float, dict[str, float]]]] = {m: [] for m in MODES}
    order = list(MODES)
    for r in range(args.rounds):
        for mode in order[r % len(order) :] + order[: r % len(order)]:
            use(mode)
            inside.update(dict.fromkeys(inside, 0.0))
            c0, w0 = time.process_time(), time.perf_counter()
            engine.grade_cohort(frames, settings)
            runs[mode].append((time.perf_counter() - w0, time.process_time() - c0, dict(inside)))
        print(f"round {r + 1} done, load {load_average()}", flush=True)
    text = report(args, frames.labs.height, runs, load_before, load_average())
    print(text)
    if args.results:
        with args.results.open("a", encoding="utf-8") as f:
            f.write(text + "\n")


def report(
    args: argparse.Namespace,
    n_rows: int,
    runs: dict[str, list[tuple[float, float, dict[str, float]]]],
    load_before: str,
    load_after: str,
) -> str:
    base_wall = statistics.median(w for w, _, _ in runs["plain"])
    base_cpu = statistics.median(c for _, c, _ in runs["plain"])
    lines = [
        "",
        "## Speed tricks against the plain code (benchmarks/speed_tricks.py)",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC at commit `{commit()}`, "
        f"{args.patients:,} patients (seed {args.seed}, {n_rows:,} lab rows), grading in "
        f"process with two worker threads, {args.rounds} rounds with the modes' order rotated; "
        f"load average (1, 5, 15 min) {load_before} before, {load_after} after; "
        "every mode's grade table equal to the plain one (retrospective and as of day 20).",
        "",
        "| mode | wall, median (runs) | CPU, median (runs) | vs plain (wall / CPU) "
        "| time inside the timed functions, median (CPU; scan also wall) |",
        "|---|---|---|---|---|",
    ]
    for mode, rs in runs.items():
        wall = statistics.median(w for w, _, _ in rs)
        cpu = statistics.median(c for _, c, _ in rs)
        in_fn = "; ".join(f"{k} {statistics.median(i[k] for _, _, i in rs):.3f} s" for k in inside)
        lines.append(
            f"| {mode} | {wall:.2f} s ({' / '.join(f'{w:.2f}' for w, _, _ in rs)}) "
            f"| {cpu:.2f} s ({' / '.join(f'{c:.2f}' for _, c, _ in rs)}) "
            f"| {100 * (wall / base_wall - 1):+.1f}% / {100 * (cpu / base_cpu - 1):+.1f}% "
            f"| {in_fn} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
