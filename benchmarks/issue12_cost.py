"""Cost of the issue-12 columns (T-ICAHT, EASIX / m-EASIX) in grading a 100,000-patient cohort.

    python benchmarks/issue12_cost.py [--patients 100000] [--seed 42] [--repeat 3]

Reads the cohort ``benchmarks/run.py`` caches in benchmarks/data/ (generated when missing) and
grades it in this process, on one thread (``workers=1``, so that the time spent inside a module
adds up to wall time), three ways:

1. as ``grade`` does, with the time spent inside ``ticaht.grade`` and ``easix.score`` summed;
2. without computing them: both functions replaced by a replay of the results of run 1, chunk by
   chunk (the same chunks in the same order), so everything else, including writing their grade
   table columns, is unchanged; the difference 1 - 2 is the cost of computing them;
3. for reference, as the CLI grades (two worker threads).

It also counts the lab rows only EASIX reads (LDH, creatinine), which reading pays for. The
figures are appended to ``--results`` (benchmarks/RESULTS.md, after ``benchmarks/run.py``
rewrote it, as ``make bench`` runs them) with the machine's load average: the machine is shared,
so wall times carry that load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import ensure_cohort  # noqa: E402

from cart_cytopenia.grading import easix, engine, ticaht  # noqa: E402
from cart_cytopenia.io.tables import read_cohort  # noqa: E402
from cart_cytopenia.rules.settings import Settings  # noqa: E402

MODULES: dict[str, tuple[Any, str]] = {"T-ICAHT": (ticaht, "grade"), "EASIX": (easix, "score")}


class Instrumented:
    """Wraps the issue-12 functions: sums the time spent in each (recording the results of the
    first run), or replays the recorded results instead of computing them."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(MODULES, 0.0)
        self.recorded: dict[str, list[Any]] = {name: [] for name in MODULES}
        self.originals = {name: getattr(mod, fn) for name, (mod, fn) in MODULES.items()}
        self.recording = True

    def timed(self, name: str) -> Callable[..., Any]:
        original = self.originals[name]

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            out = original(*args, **kwargs)
            self.seconds[name] += time.perf_counter() - t0
            if self.recording:
                self.recorded[name].append(out)
            return out

        return wrapper

    def replayed(self, name: str) -> Callable[..., Any]:
        recorded = iter(self.recorded[name])
        return lambda *args, **kwargs: next(recorded)

    def install(self, how: str) -> None:
        self.seconds = dict.fromkeys(MODULES, 0.0)
        for name, (mod, fn) in MODULES.items():
            setattr(mod, fn, self.timed(name) if how == "timed" else self.replayed(name))

    def restore(self) -> None:
        for name, (mod, fn) in MODULES.items():
            setattr(mod, fn, self.originals[name])


def best_of(repeat: int, run: Callable[[], object]) -> tuple[float, list[float]]:
    walls = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        walls.append(time.perf_counter() - t0)
    return min(walls), walls


def load_average() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def commit() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE.parent
    )
    return out.stdout.strip() or "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = ap.parse_args()
    cohort, _ = ensure_cohort(args.patients, args.seed)
    frames = read_cohort(
        cohort / "labs.parquet", cohort / "patients.parquet", cohort / "events.parquet"
    )
    settings = Settings()
    easix_only = frames.labs.filter(pl.col("analyte").cast(pl.String).is_in(["ldh", "creatinine"]))
    load_before = load_average()

    inst = Instrumented()
    # an untimed first run records the results to replay (and warms up caches and imports)
    inst.install("timed")
    table = engine.grade_cohort(frames, settings, workers=1)
    inst.recording = False
    with_times: list[float] = []
    without_times: list[float] = []
    module_s: list[dict[str, float]] = []
    for _ in range(args.repeat):  # interleaved, so that a change of load hits both alike
        inst.install("timed")
        t0 = time.perf_counter()
        engine.grade_cohort(frames, settings, workers=1)
        with_times.append(time.perf_counter() - t0)
        module_s.append(dict(inst.seconds))
        inst.install("replay")
        t0 = time.perf_counter()
        replayed = engine.grade_cohort(frames, settings, workers=1)
        without_times.append(time.perf_counter() - t0)
        assert replayed.equals(table), "the replay changed the grade table"
    inst.restore()
    best = min(range(args.repeat), key=lambda k: with_times[k])

    two, two_runs = best_of(args.repeat, lambda: engine.grade_cohort(frames, settings))
    load_after = load_average()
    with_best, without_best = min(with_times), min(without_times)
    ms = module_s[best]
    lines = [
        "",
        "## Cost of the issue-12 columns (T-ICAHT, EASIX / m-EASIX; benchmarks/issue12_cost.py)",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC at commit `{commit()}`; method in "
        "the script's docstring (in process, one thread; 'without' replays their results so that "
        "everything else is unchanged).",
        "",
        f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"shared with other jobs: load average (1, 5, 15 min) {load_before} before, "
        f"{load_after} after. Run under `nice`; wall times include that load.",
        f"- Cohort: {frames.patients.height:,} synthetic patients (seed {args.seed}), "
        f"{frames.labs.height:,} lab rows, of which {easix_only.height:,} "
        f"({100 * easix_only.height / frames.labs.height:.1f}%) are LDH or creatinine, read "
        "only for EASIX; frames read once, before timing (reading not included).",
        "",
        f"| grading in process, one thread (best of {args.repeat}) | wall time | runs |",
        "|---|---|---|",
        f"| with T-ICAHT and EASIX (as `grade`) | {with_best:.2f} s | "
        + " / ".join(f"{w:.2f}" for w in with_times)
        + " |",
        f"| without computing them (results replayed) | {without_best:.2f} s | "
        + " / ".join(f"{w:.2f}" for w in without_times)
        + " |",
        f"| difference | {with_best - without_best:+.2f} s "
        f"({100 * (with_best - without_best) / with_best:+.1f}%) | |",
        f"| two worker threads (as the CLI), with them | {two:.2f} s | "
        + " / ".join(f"{w:.2f}" for w in two_runs)
        + " |",
        "",
        "Time inside the modules in the fastest run with them: "
        + "; ".join(
            f"{name} {s:.2f} s ({100 * s / with_times[best]:.1f}% of {with_times[best]:.2f} s)"
            for name, s in ms.items()
        )
        + ".",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    with args.results.open("a", encoding="utf-8") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
