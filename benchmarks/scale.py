"""Scale-out benchmarks (``make bench``, issue 14): write benchmarks/SCALE.md and scale.json.

1. One machine, streamed: ``grade --chunk-patients C`` on cohorts of each ``--sizes`` (time, peak
   resident memory, patients/s), beside the whole-file ``grade`` up to ``--whole-max`` patients
   (larger whole runs need ~11 GB per million patients); the two outputs compared cell for cell.
2. Spark ``local[2]`` on the ``--spark-patients`` cohort: ``grade --engine spark`` as a command
   (JVM start included), and in one session where the time goes: starting Spark, the same
   shuffle and Arrow hand-over with a function that grades nothing (Spark's own cost), the real
   job; its output compared with the local engine's cell for cell. The overhead ratio is Spark's
   job time over the local whole-file command's time.

Timings depend on what else runs on the machine: the load average is recorded with each run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402
from run import CLI, child, machine  # noqa: E402

DATA = run.DATA  # (--data: where the cohorts and outputs go)

SPARK_PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
from cart_cytopenia.spark.session import session
from cart_cytopenia.spark import grading
import polars as pl
spark = session("local[2]")
spark.conf.set("spark.sql.shuffle.partitions", "8")
t_start = time.perf_counter() - t0
d = sys.argv[1]
labs, pats, ev = (spark.read.parquet(f"{d}/{k}.parquet") for k in ("labs", "patients", "events"))
n = pats.count()

def timed(fn):
    t = time.perf_counter(); out = fn(); return time.perf_counter() - t, out

# Spark's own cost: the same grouping, shuffle and Arrow hand-over, grading nothing (best of
# two: the first also starts the Python workers and warms the JVM)
real = grading._grade_group
grading._grade_group = lambda *a: (lambda table: grading.arrow_schema().empty_table())
t_plumbing = min(timed(lambda: grading.grade(spark, labs, pats, ev).toArrow())[0] for _ in range(2))
grading._grade_group = real
t_job, table = timed(lambda: grading.grade(spark, labs, pats, ev).toArrow())
pl.from_arrow(table).sort("patient_id").write_parquet(sys.argv[2])
print(json.dumps({"patients": n, "start_s": t_start, "plumbing_s": t_plumbing, "job_s": t_job}))
spark.stop()
"""


def _load() -> float:
    return round(os.getloadavg()[0], 1)


def ensure_cohort(n: int, seed: str) -> Path:
    """The generator's cohort of ``n`` patients and ``seed`` (generated once, kept in --data)."""
    return run.ensure_cohort(n, int(seed))[0]


def streamed(
    sizes: list[int], seeds: list[str], chunk: int, whole_max: int
) -> list[dict[str, Any]]:
    rows = []
    for n, seed in zip(sizes, seeds, strict=True):
        cohort = ensure_cohort(n, seed)
        ins = ["--labs", str(cohort / "labs.parquet"), "--patients", str(cohort / "patients.parquet"),
               "--events", str(cohort / "events.parquet")]  # fmt: skip
        row: dict[str, Any] = {"patients": n, "seed": seed, "chunk": chunk}
        out_s = DATA / f"stream-{n}.parquet"
        row["load_before"] = _load()
        cpu: dict[str, float] = {}
        wall, gb, _ = child(
            [*CLI, "grade", *ins, "--chunk-patients", str(chunk), "--out", str(out_s)], cpu
        )
        row |= {
            "stream_s": round(wall, 2),
            "stream_cpu_s": round(cpu["cpu_s"], 2),
            "stream_gb": round(gb, 2),
            "stream_pps": round(n / wall),
        }
        if n <= whole_max:
            out_w = DATA / f"whole-{n}.parquet"
            wall, gb, _ = child([*CLI, "grade", *ins, "--out", str(out_w)], cpu)
            row |= {
                "whole_s": round(wall, 2),
                "whole_cpu_s": round(cpu["cpu_s"], 2),
                "whole_gb": round(gb, 2),
                "whole_pps": round(n / wall),
            }
            row["identical"] = pl.read_parquet(out_s).equals(pl.read_parquet(out_w))
        row["load_after"] = _load()
        print(row, flush=True)
        rows.append(row)
    return rows


def on_spark(n: int, seed: int) -> dict[str, Any]:
    cohort = ensure_cohort(n, str(seed))
    ins = ["--labs", str(cohort / "labs.parquet"), "--patients", str(cohort / "patients.parquet"),
           "--events", str(cohort / "events.parquet")]  # fmt: skip
    res: dict[str, Any] = {"patients": n, "load_before": _load()}
    local_out = DATA / f"whole-{n}.parquet"
    cpu: dict[str, float] = {}
    wall, gb, _ = child([*CLI, "grade", *ins, "--out", str(local_out)], cpu)
    res |= {
        "local_s": round(wall, 2),
        "local_cpu_s": round(cpu["cpu_s"], 2),
        "local_gb": round(gb, 2),
    }
    spark_out = DATA / f"spark-{n}.parquet"
    # (wall time only: the JVM and its Python workers are not the command's waited-for children,
    # so their CPU time would not be counted)
    wall, _, _ = child([*CLI, "grade", *ins, "--engine", "spark", "--master", "local[2]",
                        "--out", str(spark_out)])  # fmt: skip
    res["command_s"] = round(wall, 2)
    local = pl.read_parquet(local_out).sort("patient_id")
    res["command_identical"] = pl.read_parquet(spark_out).equals(local)
    probe_out = DATA / f"spark-probe-{n}.parquet"
    _, _, text = child([sys.executable, "-c", SPARK_PROBE, str(cohort), str(probe_out)])
    probe = json.loads([ln for ln in text.splitlines() if ln.startswith("{")][-1])
    res |= {k: round(v, 2) for k, v in probe.items() if k.endswith("_s")}
    res["api_identical"] = pl.read_parquet(probe_out).equals(local)
    res["overhead_ratio"] = round(res["job_s"] / res["local_s"], 1)
    res["grading_s"] = round(res["job_s"] - res["plumbing_s"], 2)
    # patients per executor-core per second, from the grading share of the job on 2 cores
    res["patients_per_core_s"] = round(n / (2 * res["grading_s"])) if res["grading_s"] > 0 else None
    res["load_after"] = _load()
    print(res, flush=True)
    return res


def markdown(
    stream: list[dict[str, Any]], spark: dict[str, Any] | None, info: dict[str, str], when: str
) -> str:
    lines = [
        "# Scale-out benchmarks (benchmarks/scale.py)",
        "",
        f"Run {when} UTC on {info['cpu']} ({info['cores']} cores, "
        f"{info['memory']}); load average (1 min) before/after each run is given: the machine "
        "was shared, so the times are upper bounds.",
        "",
        "## One machine: streamed in chunks vs the whole file",
        "",
        "| patients | chunk | streamed s | CPU s | CPU s / 100k (x first) | peak GB (x first) "
        "| patients/s | whole s (CPU s) | whole GB | identical | load |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:--:|---|",
    ]
    first = stream[0] if stream else {}
    for r in stream:
        per = r.get("stream_cpu_s", 0) / r["patients"] * 1e5
        per0 = first.get("stream_cpu_s", 0) / first["patients"] * 1e5
        lines.append(
            f"| {r['patients']:,} (seed {r['seed']}) | {r['chunk']:,} | {r['stream_s']} | "
            f"{r.get('stream_cpu_s', '—')} | {per:.1f} ({per / per0 if per0 else 0:.2f}) | "
            f"{r['stream_gb']} ({r['stream_gb'] / first['stream_gb']:.2f}) | "
            f"{r['stream_pps']:,} | {r.get('whole_s', '—')} ({r.get('whole_cpu_s', '—')}) | "
            f"{r.get('whole_gb', '—')} | {r.get('identical', '—')} | "
            f"{r['load_before']} / {r['load_after']} |"
        )
    if spark:
        s = spark
        lines += [
            "",
            f"## Spark local[2], {s['patients']:,} patients (run {s.get('run', '—')} UTC)",
            "",
            "| step | seconds |",
            "|---|---:|",
            f"| local whole-file `grade` (command) | {s['local_s']} (CPU {s.get('local_cpu_s', '—')}) |",
            f"| `grade --engine spark --master local[2]` (command, JVM start included) | {s['command_s']} |",
            f"| starting Spark (session) | {s['start_s']} |",
            f"| Spark's own cost: grouping, shuffle, Arrow hand-over, grading nothing | {s['plumbing_s']} |",
            f"| the grading job | {s['job_s']} |",
            "| of which grading (job - plumbing) | "
            + (
                f"{s['grading_s']} |"
                if s["grading_s"] > 0
                else "not resolved: within the noise of the plumbing run |"
            ),
            "",
            f"Overhead ratio (Spark job / local command): **{s['overhead_ratio']}x**; "
            + (
                f"grading throughput {s['patients_per_core_s']:,} patients per executor-core per second. "
                if s["patients_per_core_s"]
                else "nearly all of the job's time is Spark's own (shuffle and Arrow hand-over). "
            )
            + "Output identical to the local engine, cell for cell: command "
            f"{s['command_identical']}, API {s['api_identical']}. Load {s['load_before']} / "
            f"{s['load_after']}.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    global DATA
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes",
        default="100000,1000000,3000000",
        help="'': no streamed runs (the last streamed figures in --out's .json are kept)",
    )
    ap.add_argument(
        "--seeds",
        default="42,11,31",
        help="one per size (11: the 1M cohort of issue 14; 31: a generated 3M cohort)",
    )
    ap.add_argument("--data", type=Path, default=DATA, help="where cohorts and outputs go")
    ap.add_argument("--chunk", type=int, default=20_000)
    ap.add_argument("--whole-max", type=int, default=100_000)
    ap.add_argument(
        "--spark-patients",
        type=int,
        default=100_000,
        help="0: no Spark run (the last Spark figures in --out's .json are kept)",
    )
    ap.add_argument("--out", type=Path, default=HERE / "SCALE.md")
    ap.add_argument("--render", action="store_true", help="rewrite --out from scale.json only")
    args = ap.parse_args()
    if args.render:
        saved = json.loads(args.out.with_suffix(".json").read_text())
        when = saved["run"]
        args.out.write_text(
            markdown(saved["streamed"], saved["spark"], saved["machine"], when), encoding="utf-8"
        )
        return
    sizes = [int(x) for x in args.sizes.split(",") if x]
    seeds = [x for x in args.seeds.split(",") if x][: len(sizes)]
    DATA = run.DATA = args.data
    DATA.mkdir(parents=True, exist_ok=True)
    stream = streamed(sizes, seeds, args.chunk, args.whole_max)
    info = machine()
    when = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}"
    spark = on_spark(args.spark_patients, 42) if args.spark_patients else None
    if spark is not None:
        spark["run"] = when
    # a part not run keeps its last figures (read now: the other part may have run meanwhile)
    saved_path = args.out.with_suffix(".json")
    saved = json.loads(saved_path.read_text()) if saved_path.exists() else {}
    if spark is None and saved.get("spark"):
        spark = saved["spark"]
        spark.setdefault("run", saved["run"])
    if not sizes and saved.get("streamed"):
        stream, when, info = saved["streamed"], saved["run"], saved["machine"]
    args.out.write_text(markdown(stream, spark, info, when), encoding="utf-8")
    record = {"run": when, "machine": info, "streamed": stream, "spark": spark}
    saved_path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
