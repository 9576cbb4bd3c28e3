"""Load benchmark of the web service (issue 15), run by ``make bench``; results beside the others.

For each database (SQLite; PostgreSQL when ``CART_CYTOPENIA_BENCH_POSTGRES_URL`` is set) it
loads a demo store (``cart-cytopenia demo load``), starts ``cart-cytopenia serve`` on
127.0.0.1 only, waits until the stored worklist is up to date, and drives it with its own
asyncio/httpx load generator (no wrk needed), bounded in clients and time:

1. mixed: ``--clients`` (50) clients for ``--seconds`` (60), each in a closed loop, half on
   ``GET /worklist`` (signed in), half on ``GET /api/v1/courses/{id}/assessment``
   (goal: 0 errors, p99 < 1 s);
2. sign-in: 50 clients sign in at the same moment (goal: all answered within 5 s, no error);
3. upload: a 300,000-row lab CSV uploaded through the page (a background job) while one client
   asks ``/healthz`` every 20 ms until the job is done (goal: healthz p99 < 100 ms);
4. worklist: 20 clients on ``GET /worklist`` for ``--seconds`` with ``--courses`` active
   courses (goal at 10,000 courses: p99 < 500 ms).

The two databases run one after the other in the same invocation (paired, same machine state
as far as a shared machine allows). ``--quick`` is a smoke test (small store, 10 s, fewer
clients). The PostgreSQL database named in the URL is EMPTIED (its ``public`` schema dropped):
give a database of its own, e.g. ``postgresql://user:pass@127.0.0.1:5432/cc_bench``.
Nothing is asserted (the script always finishes): each scenario is judged against its target
(pass, FAIL, or n/a for a ``--quick`` run or fewer than 10,000 courses where the target is
stated at 10,000), with the 1-minute load average before and after it (the machine is shared:
above about 2 on two cores, other work competes with the server and the generator). The
figures are printed and appended to ``--results`` (Markdown; default
``benchmarks/service_results.md``, which ``benchmarks/run.py`` includes in RESULTS.md) beside
the previous run's, which are kept in ``benchmarks/service_results.json``. The bulk load (``demo load --n``) is timed
and judged too (target: 10,000 courses in under a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "cart_cytopenia.cli.main"]
PG_ENV = "CART_CYTOPENIA_BENCH_POSTGRES_URL"
ERROR_KINDS: Counter[str] = Counter()  # what the failed requests of the running scenario got
KIND_LATENCIES: dict[str, list[float]] = {}  # the running scenario's latencies per request type
TODAY = "2024-06-01"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def summary(name: str, lat: list[float], errors: int, seconds: float) -> dict[str, Any]:
    return {
        "scenario": name,
        "requests": len(lat) + errors,
        "errors": errors,
        "req_per_s": round((len(lat) + errors) / seconds, 1) if seconds else 0.0,
        "p50_ms": round(pct(lat, 0.50) * 1000, 1),
        "p99_ms": round(pct(lat, 0.99) * 1000, 1),
        "max_ms": round(max(lat, default=float("nan")) * 1000, 1),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    from cart_cytopenia.store.db import normalise_url

    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


class Server:
    """A demo store and ``cart-cytopenia serve`` on 127.0.0.1 (stopped on exit)."""

    def __init__(self, database_url: str, courses: int, work: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "CART_CYTOPENIA_ENVIRONMENT": "development",
            "CART_CYTOPENIA_DATABASE_URL": database_url,
            "CART_CYTOPENIA_TODAY": TODAY,
            "CART_CYTOPENIA_DATA_DIR": str(work),
            "CART_CYTOPENIA_LOG_LEVEL": "warning",
            # every upload of the bench runs as a background job (as a large one would)
            "CART_CYTOPENIA_BACKGROUND_UPLOAD_BYTES": "100000",
        }
        t0 = time.perf_counter()
        out = self._cli("demo", "load", "--reset", "--n", str(courses))
        self.load_seconds = time.perf_counter() - t0
        creds = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
        self.username, self.password = creds["username"], creds["password"]
        self.token = self._cli("users", "token", self.username).strip().split()[-1]
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(self.port)], cwd=ROOT, env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(600):
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def _cli(self, *args: str) -> str:
        p = subprocess.run(
            [*CLI, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, check=True
        )
        return p.stdout

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def sign_in(c: httpx.AsyncClient, username: str, password: str) -> None:
    page = await c.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "no sign-in form"
    r = await c.post(
        "/login", data={"username": username, "password": password, "csrf_token": token[1]}
    )
    if r.status_code != 303:
        raise RuntimeError(f"sign-in answered {r.status_code}")


async def wait_for_worklist(srv: Server, limit: float = 1800) -> float:
    """Seconds until the stored worklist is up to date (no 'being brought up to date')."""
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=srv.base, timeout=120) as c:
        await sign_in(c, srv.username, srv.password)
        while time.perf_counter() - t0 < limit:
            page = await c.get("/worklist")
            if "worklist-refreshing" not in page.text:
                return time.perf_counter() - t0
            await asyncio.sleep(2)
    raise RuntimeError("the worklist was not up to date in time")


async def course_ids(srv: Server) -> list[int]:
    """Every active course's id (the API's worklist, 1,000 rows a page)."""
    ids: list[int] = []
    async with httpx.AsyncClient(base_url=srv.base, timeout=120) as c:
        h = {"Authorization": f"Bearer {srv.token}"}
        while True:
            page = await c.get(f"/api/v1/worklist?limit=1000&offset={len(ids)}", headers=h)
            rows = page.json()
            ids += [int(r["course_id"]) for r in rows]
            if len(rows) < 1000:
                return ids


async def closed_loop(
    srv: Server, clients: int, seconds: float, worklist_share: float, ids: list[int]
) -> tuple[list[float], int]:
    """``clients`` clients, each asking again as soon as answered, for ``seconds`` (the web
    clients sign in first, before the clock starts)."""
    lat: list[float] = []
    errors = 0
    h = {"Authorization": f"Bearer {srv.token}"}
    pool = [httpx.AsyncClient(base_url=srv.base, timeout=30) for _ in range(clients)]
    web = [i < clients * worklist_share for i in range(clients)]
    await asyncio.gather(
        *(sign_in(c, srv.username, srv.password) for c, w in zip(pool, web, strict=True) if w)
    )
    stop = time.perf_counter() + seconds

    async def one(c: httpx.AsyncClient, is_web: bool) -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                if is_web:
                    r = await c.get("/worklist")
                else:
                    r = await c.get(f"/api/v1/courses/{random.choice(ids)}/assessment", headers=h)
                ok = r.status_code == 200
                ERROR_KINDS.update([] if ok else [f"HTTP {r.status_code}"])
            except httpx.HTTPError as exc:
                ok = False
                ERROR_KINDS.update([type(exc).__name__])
            if ok:
                lat.append(time.perf_counter() - t0)
                KIND_LATENCIES.setdefault("worklist" if is_web else "assessment", []).append(
                    lat[-1]
                )
            else:
                errors += 1

    try:
        await asyncio.gather(*(one(c, w) for c, w in zip(pool, web, strict=True)))
    finally:
        for c in pool:
            await c.aclose()
    return lat, errors


async def sign_in_storm(srv: Server, clients: int) -> tuple[list[float], int]:
    lat: list[float] = []
    errors = 0

    async def one() -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=srv.base, timeout=60) as c:
            t0 = time.perf_counter()
            try:
                await sign_in(c, srv.username, srv.password)
                lat.append(time.perf_counter() - t0)
            except (httpx.HTTPError, RuntimeError) as exc:
                errors += 1
                ERROR_KINDS.update([str(exc)[:40] if isinstance(exc, RuntimeError)
                                    else type(exc).__name__])  # fmt: skip

    await asyncio.gather(*(one() for _ in range(clients)))
    return lat, errors


def lab_csv(rows: int) -> bytes:
    lines = ["day,analyte,value,unit"]
    lines += [f"{1 + i % 30},{('anc', 'platelets')[i % 2]},{400 + i % 900},/uL"
              if i % 2 == 0 else f"{1 + i % 30},platelets,{20 + i % 80},10*3/uL"
              for i in range(rows)]  # fmt: skip
    return ("\n".join(lines) + "\n").encode()


async def upload_with_healthz(srv: Server, rows: int, course_id: int) -> dict[str, Any]:
    data = lab_csv(rows)
    lat: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=srv.base, timeout=600) as c:
        await sign_in(c, srv.username, srv.password)
        form = await c.get(f"/courses/{course_id}/labs/upload")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf
        t0 = time.perf_counter()
        r = await c.post(
            f"/courses/{course_id}/labs/upload", data={"csrf_token": csrf[1]},
            files={"file": ("bench.csv", data, "text/csv")},
        )  # fmt: skip
        job = r.headers.get("location", "")
        if not job.startswith("/jobs/"):
            raise RuntimeError(f"the upload did not start a job (HTTP {r.status_code})")
        state = "unknown"
        async with httpx.AsyncClient(base_url=srv.base, timeout=30) as probe:
            next_status = 0.0
            while time.perf_counter() - t0 < 900:
                s0 = time.perf_counter()
                try:
                    ok = (await probe.get("/healthz")).status_code == 200
                except httpx.HTTPError as exc:
                    ok = False
                    ERROR_KINDS.update([type(exc).__name__])
                (lat.append(time.perf_counter() - s0) if ok else None)
                errors += 0 if ok else 1
                if time.perf_counter() > next_status:
                    page = await c.get(job)
                    m = re.search(r'data-state="(\w+)"', page.text)
                    state = m[1] if m else "unknown"
                    if state in ("done", "failed"):
                        break
                    next_status = time.perf_counter() + 1
                await asyncio.sleep(0.02)
        job_seconds = time.perf_counter() - t0
    out = summary(f"healthz during a {rows:,}-row upload", lat, errors, job_seconds)
    out["upload"] = f"{len(data) / 1e6:.1f} MB, job {state} in {job_seconds:.1f} s"
    out["job"] = state
    return out


# scenario key -> (target as printed, check on the summary, applies at --courses >= this)
TARGETS: dict[str, tuple[str, Callable[[dict[str, Any]], bool], int]] = {
    "load": ("10,000 courses loaded in < 60 s", lambda r: r["seconds"] < 60, 10_000),
    "mixed": ("0 errors, p99 < 1 s", lambda r: r["errors"] == 0 and r["p99_ms"] < 1000, 0),
    "signin": (
        "all answered within 5 s, 0 errors",
        lambda r: r["errors"] == 0 and r["max_ms"] < 5000,
        0,
    ),
    "worklist": (
        "p99 < 500 ms at 10,000 courses, 0 errors",
        lambda r: r["errors"] == 0 and r["p99_ms"] < 500,
        10_000,
    ),
    "upload": (
        "healthz p99 < 100 ms, 0 errors, job done",
        lambda r: r["errors"] == 0 and r["p99_ms"] < 100 and r["job"] == "done",
        0,
    ),
}


def commit() -> str:
    """The commit measured (``+changes`` when the work tree differs from it)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    return head + (
        "+changes" if git("status", "--porcelain", "--untracked-files=no").strip() else ""
    )


def load_average() -> float:
    return round(os.getloadavg()[0], 1)


def judged(key: str, result: dict[str, Any], a: argparse.Namespace) -> dict[str, Any]:
    """``result`` with its target and verdict: pass, FAIL, or n/a (a smoke run, or fewer
    courses than the target is stated for)."""
    target, check, min_courses = TARGETS[key]
    if a.quick or a.courses < min_courses:
        verdict = "n/a (smoke run)" if a.quick else f"n/a ({a.courses:,} courses)"
    else:
        verdict = "pass" if check(result) else "FAIL"
    return {"key": key, "target": target, "verdict": verdict, **result}


async def measured(key: str, a: argparse.Namespace, run: Any) -> dict[str, Any]:
    """Run one scenario (an awaitable giving its summary) with the load average around it."""
    before = load_average()
    ERROR_KINDS.clear()
    KIND_LATENCIES.clear()
    result = await run
    result["load_avg"] = f"{before} -> {load_average()}"
    if len(KIND_LATENCIES) > 1:  # the mixed load: each request type's own p50/p99
        result["upload"] = "; ".join(
            f"{kind} p50 {_ms(pct(v, 0.5) * 1000)} / p99 {_ms(pct(v, 0.99) * 1000)} ms"
            for kind, v in sorted(KIND_LATENCIES.items())
        )
    if ERROR_KINDS:
        kinds = ", ".join(f"{n} x {kind}" for kind, n in ERROR_KINDS.most_common())
        result["upload"] = "; ".join(filter(None, [result.get("upload", ""), f"errors: {kinds}"]))
    return judged(key, result, a)


async def run_backend(
    name: str, url: str, a: argparse.Namespace, work: Path
) -> list[dict[str, Any]]:
    load_before = load_average()
    srv = Server(url, a.courses, work)
    load = {"scenario": f"bulk load (`demo load --n {a.courses}`)", "requests": 0, "errors": 0,
            "seconds": round(srv.load_seconds, 1), "load_avg": f"{load_before} -> {load_average()}"}  # fmt: skip
    results = [judged("load", load, a)]
    try:
        ready = await wait_for_worklist(srv)
        print(f"[{name}] {a.courses:,} courses loaded in {srv.load_seconds:.0f} s; "
              f"worklist up to date {ready:.0f} s after start", flush=True)  # fmt: skip
        ids = await course_ids(srv)
        runs = {
            "mixed": lambda: mixed(srv, a.clients, a.seconds, ids),
            "signin": lambda: storm(srv, a.clients),
            "worklist": lambda: worklist_only(srv, a, ids),
            "upload": lambda: upload_with_healthz(srv, a.upload_rows, ids[0]),
        }
        for key in a.scenarios.split(","):
            results.append(await measured(key, a, runs[key]()))
    finally:
        srv.stop()
    for r in results:
        r["database"] = name
        print(json.dumps(r), flush=True)
    return results


async def mixed(srv: Server, clients: int, seconds: float, ids: list[int]) -> dict[str, Any]:
    lat, err = await closed_loop(srv, clients, seconds, 0.5, ids)
    return summary(f"mixed, {clients} clients, {seconds:.0f} s", lat, err, seconds)


async def storm(srv: Server, clients: int) -> dict[str, Any]:
    lat, err = await sign_in_storm(srv, clients)
    return summary(f"{clients} concurrent sign-ins", lat, err, max(lat, default=1))


async def worklist_only(srv: Server, a: argparse.Namespace, ids: list[int]) -> dict[str, Any]:
    lat, err = await closed_loop(srv, 20, a.seconds, 1.0, ids)
    return summary(f"worklist, 20 clients, {len(ids):,} courses", lat, err, a.seconds)


def _ms(value: Any) -> str:
    return "" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _row_line(r: dict[str, Any], old: dict[str, Any] | None) -> str:
    if "seconds" in r:  # the bulk load: one duration
        figures = ["", "", "", "", "", f"{r['seconds']} s"]
        prev = "" if old is None else f"{old['seconds']} s"
    else:
        figures = [str(r["requests"]), str(r["errors"]), str(r["req_per_s"]),
                   _ms(r["p50_ms"]), _ms(r["p99_ms"]), _ms(r["max_ms"])]  # fmt: skip
        prev = "" if old is None else f"{_ms(old['p99_ms'])} ms"
    cells = [r["database"], r["scenario"], r["target"], r["verdict"], *figures, prev,
             r["load_avg"], r.get("upload", "")]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def write_results(path: Path, rows: list[dict[str, Any]], a: argparse.Namespace) -> None:
    """Append this run's table to ``path``, with the previous run's p99 (same mode) beside
    each figure; the figures themselves are kept in ``service_results.json`` for the next run."""
    store = path.with_name("service_results.json")
    mode = "quick" if a.quick else "full"
    kept = json.loads(store.read_text()) if store.exists() else {}
    before = {(r["database"], r["key"]): r for r in kept.get(mode, {}).get("rows", [])}
    stamp = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    head = (f"\n### Service load, {stamp}{' (--quick smoke run)' if a.quick else ''}, "
            f"commit {commit()}\n\n"
            f"{os.cpu_count()} cores, shared with other work while measured (load average, 1 min, "
            f"before -> after each scenario beside it); server: one `cart-cytopenia serve` "
            f"process; generator: asyncio/httpx in one process on the same machine. "
            f"{a.courses:,} active courses, {a.seconds:.0f} s per closed-loop run. "
            f"'previous': the run of {kept.get(mode, {}).get('at', 'none')}.\n\n"
            "| database | scenario | target | verdict | requests | errors | req/s | p50 ms | "
            "p99 ms | max ms or time | previous | load avg | note |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")  # fmt: skip
    lines = [_row_line(r, before.get((r["database"], r["key"]))) for r in rows]
    with path.open("a", encoding="utf-8") as fh:
        fh.write(head + "\n".join(lines) + "\n")
    kept[mode] = {"at": stamp, "rows": rows}
    store.write_text(json.dumps(kept, indent=1) + "\n")


def print_verdicts(rows: list[dict[str, Any]]) -> None:
    print("\nTargets (issue 15):")
    for r in rows:
        figure = (
            f"{r['seconds']} s"
            if "seconds" in r
            else (f"p99 {_ms(r['p99_ms'])} ms, max {_ms(r['max_ms'])} ms, {r['errors']} errors")
        )
        print(
            f"  {r['verdict']:>16}  {r['database']:<10} {r['scenario']}: {figure} "
            f"[target: {r['target']}; load avg {r['load_avg']}]"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: small and short")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--courses", type=int, default=10_000)
    ap.add_argument("--upload-rows", type=int, default=300_000)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument(
        "--scenarios", default="mixed,signin,worklist,upload",
        help="which to run after the bulk load (always timed), e.g. worklist",
    )  # fmt: skip
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "service_results.md")
    a = ap.parse_args()
    unknown = set(a.scenarios.split(",")) - {"mixed", "signin", "worklist", "upload"}
    if unknown:
        ap.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if a.quick:
        a.clients, a.seconds, a.courses, a.upload_rows = 20, 10, 200, 30_000
    rows: list[dict[str, Any]] = []
    for name in a.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="cc-bench-") as tmp:
            if name == "sqlite":
                url = f"sqlite:///{tmp}/bench.db"
            elif os.environ.get(PG_ENV):
                url = os.environ[PG_ENV]
                reset_postgres(url)
            else:
                print(f"[postgresql] skipped: set {PG_ENV} to a database of its own", flush=True)
                continue
            rows += asyncio.run(run_backend(name, url, a, Path(tmp)))
    write_results(a.results, rows, a)
    print_verdicts(rows)


if __name__ == "__main__":
    main()
