"""Cost of the issue-12 instruments (T-ICAHT, EASIX / m-EASIX, TA-TMA, IEC-HS) in grading a
100,000-patient cohort, in CPU time, and what their analytes add to the generated cohort.

    python benchmarks/issue12_cost.py [--patients 100000] [--seed 42] [--rounds 3]

Reads the cohort ``benchmarks/run.py`` caches in benchmarks/data/ (generated when missing; the
cache name carries the generator version) and grades it in this process, one chunk at a time
(``workers=1``), in rounds. Each round grades the cohort

- **A**: as ``grade`` does, every instrument computed, with the CPU time spent inside each;
- **B(X)**, once per instrument X: without X. Its function is replaced by a replay of its results
  from the first (untimed) run, chunk by chunk, and the lab rows that only X reads are left out
  of the frames (so their share of the lab scan is saved too); everything else, including
  writing X's grade-table columns, is unchanged, and the grade table is checked equal to A's;
- **B(all)**: without all four.

A and the Bs alternate within each round, so that a change of the machine's load hits them
alike; the figure per configuration is its lowest CPU time (``time.process_time``: all threads
of this process; polars scans on its own threads). Wall times and the load average are recorded
beside them. The difference A - B(X) is X's cost. The cohort's size: lab rows and Parquet bytes
per instrument's analytes. The figures are appended to ``--results`` (benchmarks/RESULTS.md).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import ensure_cohort  # noqa: E402

from cart_cytopenia.domain.frames import CohortFrames  # noqa: E402
from cart_cytopenia.grading import easix, engine, ticaht  # noqa: E402
from cart_cytopenia.io.tables import read_cohort  # noqa: E402
from cart_cytopenia.rules.settings import Settings  # noqa: E402

# instrument -> (module, function replaced, analytes only it reads)
MODULES: dict[str, tuple[Any, str, tuple[str, ...]]] = {
    "T-ICAHT": (ticaht, "grade", ()),
    "EASIX": (easix, "score", ()),
    "TA-TMA": (engine, "_tatma", ("sbp", "dbp", "upcr", "sc5b9", "schistocytes")),
    "IEC-HS": (engine, "_iec_hs", ("ast", "alt", "bilirubin", "fibrinogen", "triglycerides")),
}
# read by no other part of the engine once all four are left out (LDH and creatinine are shared
# by EASIX, TA-TMA and IEC-HS; ferritin stays: CAR-HEMATOTOX reads it)
ONLY_ISSUE12 = ("ldh", "creatinine")
ALL = "all four"


class Instrumented:
    """Wraps the instruments' functions: sums the CPU time spent in each (recording the results
    of the first run), or replays the recorded results instead of computing them."""

    def __init__(self) -> None:
        self.cpu = dict.fromkeys(MODULES, 0.0)
        self.recorded: dict[str, list[Any]] = {name: [] for name in MODULES}
        self.originals = {name: getattr(mod, fn) for name, (mod, fn, _) in MODULES.items()}
        self.recording = True

    def timed(self, name: str) -> Callable[..., Any]:
        original = self.originals[name]

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            out = original(*args, **kwargs)
            self.cpu[name] += time.process_time() - t0
            if self.recording:
                self.recorded[name].append(out)
            return out

        return wrapper

    def replayed(self, name: str) -> Callable[..., Any]:
        recorded = iter(self.recorded[name])
        return lambda *args, **kwargs: next(recorded)

    def install(self, without: set[str]) -> None:
        self.cpu = dict.fromkeys(MODULES, 0.0)
        for name, (mod, fn, _) in MODULES.items():
            setattr(mod, fn, self.replayed(name) if name in without else self.timed(name))

    def restore(self) -> None:
        for name, (mod, fn, _) in MODULES.items():
            setattr(mod, fn, self.originals[name])


@dataclass
class Runs:
    cpu: list[float]
    wall: list[float]
    inside: list[dict[str, float]]

    def best(self) -> int:
        return min(range(len(self.cpu)), key=lambda k: self.cpu[k])


def left_out(name: str) -> tuple[str, ...]:
    if name == ALL:
        return tuple(a for _, _, only in MODULES.values() for a in only) + ONLY_ISSUE12
    return MODULES[name][2]


def without_rows(frames: CohortFrames, analytes: tuple[str, ...]) -> CohortFrames:
    if not analytes:
        return frames
    labs = frames.labs.filter(~pl.col("analyte").cast(pl.String).is_in(list(analytes)))
    return CohortFrames(frames.patients, labs, frames.events)


def load_average() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def commit() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE.parent
    )
    return out.stdout.strip() or "?"


def measure(frames: CohortFrames, rounds: int) -> tuple[dict[str, Runs], list[str]]:
    """The alternating A/B rounds (see the module docstring); also the load average per round."""
    settings = Settings()
    inst = Instrumented()
    inst.install(set())  # an untimed first run records the results to replay (and warms up)
    table = engine.grade_cohort(frames, settings, workers=1)
    inst.recording = False
    configs = ["A", *MODULES, ALL]
    inputs = {c: without_rows(frames, () if c == "A" else left_out(c)) for c in configs}
    runs = {c: Runs([], [], []) for c in configs}
    loads = []
    for _ in range(rounds):
        for c in configs:
            inst.install(set() if c == "A" else set(MODULES) if c == ALL else {c})
            w0, c0 = time.perf_counter(), time.process_time()
            out = engine.grade_cohort(inputs[c], settings, workers=1)
            runs[c].cpu.append(time.process_time() - c0)
            runs[c].wall.append(time.perf_counter() - w0)
            runs[c].inside.append(dict(inst.cpu))
            assert out.equals(table), f"without {c}: the grade table changed"
        loads.append(load_average())
    inst.restore()
    return runs, loads


def cohort_size(cohort: Path, frames: CohortFrames) -> list[str]:
    """Lab rows and (approximate, by row share) Parquet bytes of each instrument's analytes."""
    counts = dict(frames.labs.group_by(pl.col("analyte").cast(pl.String)).len().iter_rows())
    total = frames.labs.height
    size = (cohort / "labs.parquet").stat().st_size
    groups = {
        "EASIX / m-EASIX (LDH, creatinine; LDH also TA-TMA and IEC-HS)": ONLY_ISSUE12,
        "TA-TMA work-up (BP, UPCR, sC5b-9, schistocytes)": MODULES["TA-TMA"][2],
        "IEC-HS panel and work-up (AST, ALT, bilirubin, fibrinogen, triglycerides)": MODULES[
            "IEC-HS"
        ][2],
    }
    lines = ["| analytes | lab rows | share of rows | ~ Parquet MB |", "|---|---|---|---|"]
    added = 0
    for label, analytes in groups.items():
        k = sum(counts.get(a, 0) for a in analytes)
        added += k
        lines.append(f"| {label} | {k:,} | {100 * k / total:.1f}% | {size * k / total / 1e6:.1f} |")
    lines.append(
        f"| all issue-12 analytes | {added:,} | {100 * added / total:.1f}% | "
        f"{size * added / total / 1e6:.1f} |"
    )
    lines.append(f"| the whole labs table | {total:,} | 100% | {size / 1e6:.1f} |")
    return lines


def report(runs: dict[str, Runs], loads: list[str], rounds: int, before: str) -> list[str]:
    a = runs["A"]
    a_cpu = min(a.cpu)
    lines = [
        f"| grading in process, one chunk at a time (lowest of {rounds} rounds) | CPU time | "
        "cost (A - B) | wall time | CPU per round |",
        "|---|---|---|---|---|",
        f"| A: every instrument (as `grade`) | {a_cpu:.2f} s | | {a.wall[a.best()]:.2f} s | "
        + " / ".join(f"{x:.2f}" for x in a.cpu)
        + " |",
    ]
    for c, r in runs.items():
        if c == "A":
            continue
        b = min(r.cpu)
        what = ", ".join(left_out(c)) or "none"
        lines.append(
            f"| B: without {c} (rows left out: {what}) | {b:.2f} s | {a_cpu - b:+.2f} s "
            f"({100 * (a_cpu - b) / a_cpu:+.1f}%) | {r.wall[r.best()]:.2f} s | "
            + " / ".join(f"{x:.2f}" for x in r.cpu)
            + " |"
        )
    inside = a.inside[a.best()]
    lines += [
        "",
        "CPU time inside each instrument's function in A's lowest run: "
        + "; ".join(f"{k} {v:.2f} s ({100 * v / a_cpu:.1f}%)" for k, v in inside.items())
        + f". Load average (1, 5, 15 min): {before} before; after each round: "
        + " | ".join(loads)
        + ".",
    ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = ap.parse_args()
    cohort, _ = ensure_cohort(args.patients, args.seed)
    frames = read_cohort(
        cohort / "labs.parquet", cohort / "patients.parquet", cohort / "events.parquet"
    )
    before = load_average()
    runs, loads = measure(frames, args.rounds)
    lines = [
        "",
        "## Cost of the issue-12 instruments (T-ICAHT, EASIX, TA-TMA, IEC-HS; "
        "benchmarks/issue12_cost.py)",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC at commit `{commit()}`; method in "
        "the script's docstring (CPU time in process, A/B rounds alternating; 'without' replays "
        "the instrument's results and leaves out the rows only it reads; every B's grade table "
        "checked equal to A's).",
        "",
        f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        "shared with other jobs (load average below); run under `nice`.",
        f"- Cohort: {frames.patients.height:,} synthetic patients (seed {args.seed}), "
        f"{frames.labs.height:,} lab rows; frames read once, before timing.",
        "",
        *report(runs, loads, args.rounds, before),
        "",
        "What the instruments' analytes add to the generated cohort:",
        "",
        *cohort_size(cohort, frames),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    with args.results.open("a", encoding="utf-8") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
