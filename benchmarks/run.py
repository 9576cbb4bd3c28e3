"""Benchmarks (``make bench``): grade a 100,000-patient synthetic cohort end to end, compare with a
plain per-patient reference on a subsample, build the cohort report; write benchmarks/RESULTS.md.

1. The cohort (``cart-cytopenia cohort generate``; Parquet) is cached in benchmarks/data/.
2. ``cart-cytopenia grade`` (read + grade + write) runs in a child process, timed (wall clock)
   and measured (peak resident memory of the child, ``os.wait4``); best of ``--repeat`` runs
   (default 3; the reference below runs beside each of them).
   Baseline: a child that only reads the three Parquet files.
3. The per-patient reference (benchmarks/reference.py) grades a random subsample from its CSV
   form; the per-patient speed-up is reference seconds per patient / engine seconds per patient
   (engine: the 100,000-patient run), in ``--repeat`` paired rounds (an engine run, then a
   reference run) and reported as the median of the rounds' ratios, with each round's ratio;
   early and late ICAHT grades are compared patient by patient and every disagreement is listed.
4. ``cart-cytopenia cohort report`` on the whole cohort (timed, memory measured).

No timing is asserted anywhere: the numbers are recorded, with the machine, in RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import reference  # noqa: E402

DATA = HERE / "data"
GOAL_SECONDS = 10.0
GOAL_GB = 3.0


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024**2:.1f} GB"
    except (OSError, ValueError, IndexError):
        pass
    import numpy
    import polars

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "polars": polars.__version__,
        "numpy": numpy.__version__,
    }


def child(args: list[str], cpu: dict[str, float] | None = None) -> tuple[float, float, str]:
    """Run a child process; (wall seconds, peak RSS in GB, stderr); ``cpu``: gets its user and
    system CPU seconds (``cpu_s``), less sensitive than the wall time to a shared machine."""
    t0 = time.perf_counter()
    p = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    out, err = p.communicate()
    code = os.waitstatus_to_exitcode(status)
    if cpu is not None:
        cpu["cpu_s"] = usage.ru_utime + usage.ru_stime
    if code != 0:
        raise SystemExit(f"command failed ({code}): {' '.join(args)}\n{err}")
    return wall, usage.ru_maxrss / 1024**2, err + out


CLI = [sys.executable, "-m", "cart_cytopenia.cli.main"]


def ensure_cohort(n: int, seed: int) -> tuple[Path, float | None]:
    from cart_cytopenia.cohort.synthetic import GENERATOR_VERSION

    # the generator's version in the name: a cohort cached by an older generator is not reused
    d = DATA / f"cohort-{n}-seed{seed}-g{GENERATOR_VERSION}"
    if all((d / f"{k}.parquet").exists() for k in ("patients", "labs", "events")):
        return d, None
    print(f"generating {n:,} patients (seed {seed}) -> {d}", flush=True)
    DATA.mkdir(parents=True, exist_ok=True)  # (also when a script other than this one asks first)
    wall, _, _ = child(
        [*CLI, "cohort", "generate", "--patients", str(n), "--seed", str(seed), "--out", str(d)]
    )
    return d, wall


def subsample(cohort: Path, k: int, seed: int) -> tuple[Path, list[str]]:
    d = DATA / f"{cohort.name}-sub{k}"
    ids_file = d / "ids.txt"
    if ids_file.exists():
        return d, ids_file.read_text().split()
    d.mkdir(parents=True, exist_ok=True)
    pats = pl.read_parquet(cohort / "patients.parquet")
    rng = np.random.default_rng(seed)
    ids = sorted(
        pats["patient_id"]
        .gather(rng.choice(pats.height, size=min(k, pats.height), replace=False))
        .to_list()
    )
    keep = pl.Series(ids)
    pats.filter(pl.col("patient_id").is_in(keep.implode())).write_csv(d / "patients.csv")
    (
        pl.scan_parquet(cohort / "labs.parquet")
        .filter(pl.col("patient_id").is_in(keep.implode()))
        .collect()
        .write_csv(d / "labs.csv")
    )
    (
        pl.scan_parquet(cohort / "events.parquet")
        .filter(pl.col("patient_id").is_in(keep.implode()))
        .collect()
        .write_csv(d / "events.csv")
    )
    ids_file.write_text("\n".join(ids))
    return d, ids


def _warning_kinds(text: str | None) -> list[str] | None:
    """The engine's CAR-HEMATOTOX warning texts as the reference's kinds (compared loosely)."""
    if text is None:
        return None
    kinds = []
    for w in text.split(" | "):
        if "not used for CAR-HEMATOTOX" in w:
            kinds.append("ignored value")
        elif "after lymphodepletion" in w:
            kinds.append("drawn after lymphodepletion")
        elif "was validated in LBCL" in w:
            kinds.append("extended disease")
        elif "was not validated in" in w:
            kinds.append("unvalidated disease")
        elif "validated with" in w:
            kinds.append("unvalidated product")
        else:
            kinds.append(w)
    return kinds


def _has(v: object) -> bool:
    return v is not None


# every output of `grade` (docs/grade-table-schema.json) but patient_id and missing_data (its
# effect is compared through the columns it empties): column ->
# (the reference's value, how the engine's value is read for the comparison; None: as is).
# Reason texts are compared for presence only (a reason exactly when there is no grade or
# phenotype); the CAR-HEMATOTOX warnings by kind.
OTHER_OUTPUTS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any] | None]] = {
    "early_icaht_provisional": (lambda r: r.provisional_early, None),
    "early_days_anc_le_500": (lambda r: r.days500, None),
    "early_days_anc_le_100": (lambda r: r.days100, None),
    "early_never_recovered": (lambda r: r.never, None),
    "early_icaht_reason": (lambda r: r.early is None, _has),
    "late_anc_1": (lambda r: r.late1, None),
    "late_anc_2": (lambda r: r.late2, None),
    "late_n_values": (lambda r: r.late_n, None),
    "late_window_end_day": (lambda r: r.late_end, None),
    "late_window_end_reason": (lambda r: r.late_end_reason, None),
    "late_icaht_reason": (lambda r: r.late is None, _has),
    "ctcae_version": (lambda r: reference.CTCAE_VERSION, None),
    "ctcae_worst_neutrophils": (lambda r: r.ctcae.get("anc"), None),
    "ctcae_worst_platelets": (lambda r: r.ctcae.get("platelets"), None),
    "ctcae_worst_anaemia": (lambda r: r.ctcae.get("hb"), None),
    "ctcae_worst_wbc": (lambda r: r.ctcae.get("wbc"), None),
    "ctcae_worst_lymphocytes": (lambda r: r.ctcae.get("alc"), None),
    "anc_nadir": (lambda r: r.nadir.get("anc"), None),
    "anc_nadir_day": (lambda r: r.nadir_day.get("anc"), None),
    "platelet_nadir": (lambda r: r.nadir.get("platelets"), None),
    "platelet_nadir_day": (lambda r: r.nadir_day.get("platelets"), None),
    "hb_nadir": (lambda r: r.nadir.get("hb"), None),
    "hb_nadir_day": (lambda r: r.nadir_day.get("hb"), None),
    "days_anc_le_500_d0_60": (lambda r: r.anc_le_500_d0_60, None),
    "days_platelets_lt_50_d0_60": (lambda r: r.plt_lt_50_d0_60, None),
    "neutropenia_latest_phase": (lambda r: r.latest_phase.get("anc"), None),
    "thrombocytopenia_latest_phase": (lambda r: r.latest_phase.get("platelets"), None),
    "anaemia_latest_phase": (lambda r: r.latest_phase.get("hb"), None),
    "phenotype": (lambda r: r.phenotype, None),
    "phenotype_reason": (lambda r: r.phenotype is None, _has),
    "first_recovery_day": (lambda r: r.first_recovery, None),
    "second_dip_day": (lambda r: r.second_dip, None),
    "sustained_recovery_day": (lambda r: r.sustained_recovery, None),
    "hematotox_score": (lambda r: r.hematotox, None),
    "hematotox_points_counted": (lambda r: r.hematotox_counted, None),
    "hematotox_risk": (lambda r: r.hematotox_risk, None),
    "hematotox_missing": (lambda r: ";".join(r.hematotox_missing) or None, None),
    "hematotox_warnings": (lambda r: r.hematotox_warnings or None, _warning_kinds),
    "rbc_transfusions_d0_30": (lambda r: r.rbc_d0_30, None),
    "rbc_transfusions_d31_100": (lambda r: r.rbc_d31_100, None),
    "platelet_transfusions_d0_30": (lambda r: r.plt_tx_d0_30, None),
    "platelet_transfusions_d31_100": (lambda r: r.plt_tx_d31_100, None),
    "gcsf_first_day": (lambda r: r.gcsf_first, None),
    "gcsf_response": (lambda r: r.gcsf_response, None),
    "crs_max_grade": (lambda r: r.crs, None),
    "icans_max_grade": (lambda r: r.icans, None),
    "last_anc_day": (lambda r: r.last_anc_day, None),
}


def describe_disagreement(pid: str, eng: dict, ref: reference.Result) -> str:
    return (
        f"{pid}: engine early {eng['early_icaht_grade']} / late {eng['late_icaht_grade']} "
        f"(days<=500 {eng['early_days_anc_le_500']}, <=100 {eng['early_days_anc_le_100']}, "
        f"never {eng['early_never_recovered']}, late {eng['late_anc_1']}/{eng['late_anc_2']}); "
        f"reference early {ref.early} / late {ref.late} (days<=500 {ref.days500}, <=100 "
        f"{ref.days100}, never {ref.never}, late {ref.late1}/{ref.late2})"
    )


def paired_rounds(
    grade_cmd: list[str], sub: Path, n_patients: int, n_sub: int, repeat: int
) -> tuple[list[tuple[float, float]], list[float], list[float], Any]:
    """``repeat`` rounds of an engine run (the whole cohort, a child process) then a reference
    run (the subsample), side by side: each round's per-patient ratio is taken from two runs a
    moment apart, so that the load of a shared machine weighs on both alike (not the best of one
    divided by the best of the other, taken minutes apart)."""
    runs: list[tuple[float, float]] = []
    ref_runs: list[float] = []
    ratios: list[float] = []
    ref: Any = None
    for i in range(repeat):
        wall, gb, _ = child(grade_cmd)
        t0 = time.perf_counter()
        ref = reference.grade_files(sub / "labs.csv", sub / "patients.csv", sub / "events.csv")
        ref_wall = time.perf_counter() - t0
        runs.append((wall, gb))
        ref_runs.append(ref_wall)
        ratios.append((ref_wall / n_sub) / (wall / n_patients))
        print(
            f"round {i + 1}: grade {wall:.2f} s, peak {gb:.2f} GB; reference {ref_wall:.2f} s; "
            f"{ratios[-1]:.1f}x per patient",
            flush=True,
        )
    return runs, ref_runs, ratios, ref


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--subsample", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of the engine and the reference")
    ap.add_argument("--no-report", action="store_true", help="skip the cohort report step")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = ap.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)

    cohort, gen_wall = ensure_cohort(args.patients, args.seed)
    n_labs = pl.scan_parquet(cohort / "labs.parquet").select(pl.len()).collect().item()
    n_events = pl.scan_parquet(cohort / "events.parquet").select(pl.len()).collect().item()
    size_mb = (
        sum((cohort / f"{k}.parquet").stat().st_size for k in ("patients", "labs", "events"))
        / 1024**2
    )

    read_code = (
        "import polars as pl, sys; d=sys.argv[1]; "
        "[pl.read_parquet(f'{d}/{k}.parquet') for k in ('patients','labs','events')]"
    )
    read_wall, read_gb, _ = child([sys.executable, "-c", read_code, str(cohort)])

    grades = DATA / f"grades-{cohort.name}.parquet"
    grade_cmd = [
        *CLI,
        "grade",
        "--patients",
        str(cohort / "patients.parquet"),
        "--labs",
        str(cohort / "labs.parquet"),
        "--events",
        str(cohort / "events.parquet"),
        "--out",
        str(grades),
    ]
    load_before = os.getloadavg()[0]
    sub, ids = subsample(cohort, args.subsample, args.seed)
    runs, ref_runs, ratios, ref = paired_rounds(
        grade_cmd, sub, args.patients, len(ids), args.repeat
    )
    best_wall = min(w for w, _ in runs)
    peak_gb = max(g for _, g in runs)
    engine_pp = best_wall / args.patients
    ref_wall = min(ref_runs)
    ref_pp = ref_wall / len(ids)
    sub_wall, _, _ = child(
        [
            *CLI,
            "grade",
            "--patients",
            str(sub / "patients.csv"),
            "--labs",
            str(sub / "labs.csv"),
            "--events",
            str(sub / "events.csv"),
            "--out",
            str(DATA / "grades-subsample.csv"),
        ]
    )

    eng = pl.read_parquet(grades).filter(pl.col("patient_id").is_in(ids))
    eng_rows = {r["patient_id"]: r for r in eng.iter_rows(named=True)}
    same_early = same_late = same_both = 0
    disagreements = []
    others: dict[str, int] = dict.fromkeys(OTHER_OUTPUTS, 0)
    other_examples: dict[str, list[str]] = {k: [] for k in OTHER_OUTPUTS}
    for pid in ids:
        e, r = eng_rows[pid], ref[pid]
        ok_e = e["early_icaht_grade"] == r.early
        ok_l = e["late_icaht_grade"] == r.late
        same_early += ok_e
        same_late += ok_l
        same_both += ok_e and ok_l
        if not (ok_e and ok_l):
            disagreements.append(describe_disagreement(pid, e, r))
        for col, (get, view) in OTHER_OUTPUTS.items():
            a, b = e[col] if view is None else view(e[col]), get(r)
            same = (a is None and b is None) or (
                a is not None and b is not None and abs(float(a) - float(b)) < 1e-6
                if isinstance(b, (int, float)) and not isinstance(b, bool)
                else a == b
            )
            others[col] += bool(same)
            if not same and len(other_examples[col]) < 5:
                other_examples[col].append(f"{pid}: engine {a}, reference {b}")
    k = len(ids)

    report = None
    if not args.no_report:
        out_html = DATA / f"report-{cohort.name}" / "report.html"
        out_html.parent.mkdir(parents=True, exist_ok=True)
        wall, gb, _ = child([*CLI, "cohort", "report", str(cohort), "--out", str(out_html)])
        report = {
            "seconds": round(wall, 1),
            "peak_gb": round(gb, 2),
            "html_mb": round(out_html.stat().st_size / 1024**2, 1),
        }
        print(f"report: {wall:.1f} s, peak {gb:.2f} GB", flush=True)

    res = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "machine": machine(),
        "cohort": {
            "patients": args.patients,
            "seed": args.seed,
            "lab_rows": n_labs,
            "events": n_events,
            "parquet_mb": round(size_mb, 1),
            "generate_seconds": None if gen_wall is None else round(gen_wall, 1),
        },
        "read_only": {"seconds": round(read_wall, 2), "peak_gb": round(read_gb, 2)},
        "grade": {
            "runs": [{"seconds": round(w, 2), "peak_gb": round(g, 2)} for w, g in runs],
            "best_seconds": round(best_wall, 2),
            "peak_gb": round(peak_gb, 2),
            "patients_per_second": round(args.patients / best_wall),
            "goal_seconds": GOAL_SECONDS,
            "goal_gb": GOAL_GB,
            "meets_goals": best_wall < GOAL_SECONDS and peak_gb < GOAL_GB,
            "load_average_before": round(load_before, 2),
            "cpu_seconds_note": "wall time of the child process; the machine is shared",
        },
        "reference": {
            "patients": k,
            "seconds": round(ref_wall, 2),
            "runs_seconds": [round(w, 3) for w in ref_runs],
            "ms_per_patient": round(1000 * ref_pp, 3),
            "engine_ms_per_patient": round(1000 * engine_pp, 4),
            "speedup_per_patient": round(statistics.median(ratios), 1),
            "speedup_rounds": [round(x, 1) for x in ratios],
            "engine_subsample_cli_seconds": round(sub_wall, 2),
            "speedup_same_subsample_cli": round(ref_wall / sub_wall, 1),
            "agree_early": round(same_early / k, 5),
            "agree_late": round(same_late / k, 5),
            "agree_both": round(same_both / k, 5),
            "disagreements": disagreements,
            "other_outputs_agreement": {c: round(v / k, 5) for c, v in others.items()},
            "other_outputs_examples": {c: v for c, v in other_examples.items() if v},
        },
        "report": report,
    }
    (HERE / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    write_results(res, args.out)
    print(
        json.dumps(
            {k: v for k, v in res.items() if k != "reference"}
            | {"reference": {k: v for k, v in res["reference"].items() if k != "disagreements"}},
            indent=2,
        )
    )
    print(f"disagreements: {len(disagreements)}")
    for line in disagreements[:50]:
        print("  " + line)


def write_results(r: dict, path: Path) -> None:
    m, c, g, ref = r["machine"], r["cohort"], r["grade"], r["reference"]
    lines = [
        "# Benchmark results",
        "",
        f"Measured {r['date']} at commit `{r['commit']}` with `make bench` (`python benchmarks/run.py`).",
        "Numbers are rewritten by every run; the analysis below the tables is kept by hand in",
        "benchmarks/ANALYSIS.md and included here.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']} ({m['cores']} cores available)",
        f"- Memory: {m['memory']}; {m['os']}",
        f"- Load average (1 min) just before the grading runs: {r['grade']['load_average_before']}",
        f"- Python {m['python']}, polars {m['polars']}, numpy {m['numpy']}",
        "",
        "## Cohort",
        "",
        f"- {c['patients']:,} synthetic patients (`cart-cytopenia cohort generate --patients {c['patients']} --seed {c['seed']}`),",
        f"  {c['lab_rows']:,} lab rows, {c['events']:,} events; {c['parquet_mb']} MB of Parquet"
        + (f"; generated in {c['generate_seconds']} s" if c["generate_seconds"] else " (cached)"),
        "",
        "## Grading end to end (read + grade + write), one child process",
        "",
        "| | wall time | peak memory | throughput |",
        "|---|---|---|---|",
        f"| `cart-cytopenia grade` (best of {len(g['runs'])}) | {g['best_seconds']} s | {g['peak_gb']} GB | {g['patients_per_second']:,} patients/s |",
        f"| reading the Parquet files only | {r['read_only']['seconds']} s | {r['read_only']['peak_gb']} GB | |",
        "",
        f"Goal: under {g['goal_seconds']:g} s and under {g['goal_gb']:g} GB — "
        + ("**met**." if g["meets_goals"] else "**not met**."),
        "Runs: " + ", ".join(f"{x['seconds']} s / {x['peak_gb']} GB" for x in g["runs"]) + ".",
        "",
        "## Per-patient reference (benchmarks/reference.py) on a random subsample",
        "",
        f"- {ref['patients']:,} patients graded from their CSV form in {ref['seconds']} s "
        f"({ref['ms_per_patient']} ms per patient, reading included; best of "
        f"{len(ref['runs_seconds'])} runs: "
        + ", ".join(f"{x} s" for x in ref["runs_seconds"])
        + ").",
        f"- Engine: {ref['engine_ms_per_patient']} ms per patient in the {c['patients']:,}-patient run: "
        f"**{ref['speedup_per_patient']}x** per patient (goal: at least 10x), the median of "
        f"{len(ref.get('speedup_rounds', []))} paired rounds (an engine run, then a reference run, "
        "each round's ratio): " + ", ".join(f"{x}x" for x in ref.get("speedup_rounds", [])) + ".",
        f"- The engine's CLI on the same {ref['patients']:,}-patient CSV files: {ref['engine_subsample_cli_seconds']} s "
        f"end to end, process start included ({ref['speedup_same_subsample_cli']}x).",
        f"- Same early ICAHT grade: {100 * ref['agree_early']:.2f}%; same late ICAHT grade: "
        f"{100 * ref['agree_late']:.2f}%; both: {100 * ref['agree_both']:.2f}% (goal: at least 99.5%).",
        f"- Disagreements: {len(ref['disagreements'])}" + (":" if ref["disagreements"] else "."),
    ]
    lines += [f"  - {d}" for d in ref["disagreements"]]
    lines += [
        "",
        "The reference computes every other output of `grade` too (reason texts compared for",
        "presence, CAR-HEMATOTOX warnings by kind); agreement on them:",
        "",
        "| output | same value |",
        "|---|---|",
    ]
    lines += [f"| `{c}` | {100 * v:.2f}% |" for c, v in ref["other_outputs_agreement"].items()]
    for c, ex in ref.get("other_outputs_examples", {}).items():
        lines.append(f"- `{c}` differs, e.g. " + "; ".join(ex))
    if r.get("report"):
        rep = r["report"]
        lines += [
            "",
            "## Cohort report on the whole cohort",
            "",
            f"`cart-cytopenia cohort report` (grading, recovery end points, figures, CSV tables): "
            f"{rep['seconds']} s, peak {rep['peak_gb']} GB, HTML {rep['html_mb']} MB.",
        ]
    cds = HERE / "cds_hooks_results.md"  # written by benchmarks/cds_hooks_bench.py --results
    if cds.exists():
        lines += ["", cds.read_text(encoding="utf-8").strip()]
    service = HERE / "service_results.md"  # written by benchmarks/service_bench.py
    if service.exists():
        lines += ["", service.read_text(encoding="utf-8").strip()]
    analysis = HERE / "ANALYSIS.md"
    if analysis.exists():
        lines += ["", analysis.read_text(encoding="utf-8").strip()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
