"""Benchmark: CDS Hooks ``patient-view`` with a typical 100-day prefetch under concurrent load.

    .venv/bin/python benchmarks/cds_hooks_bench.py [--duration 30] [--connections 50]
        [--workers 1] [--scenarios single,repeat,distinct@4,distinct@50,pool]
        [--pool-patients 200] [--lab-rate 1] [--results FILE]

The service runs as deployed (``create_app`` on uvicorn, SQLite store, JWT authentication on)
on 127.0.0.1, in ``--workers`` processes sharing the port (SO_REUSEPORT); the load generator
(``wrk``, C, two threads; an asyncio/httpx generator when wrk is missing) runs on the same machine
over loopback. Every request carries its own signed JWT (RS384, unique ``jti``: the service
refuses replays), so JWT verification is part of every measured request.

Scenarios (closed loop: each client sends its next request when the answer arrives):

- ``single``: no load; one call after the other. A cold call (a patient never seen: every
  resource validated, graded, evaluated) and a call for a chart seen before with one new lab
  result (its resources validated before: only the new one is).
- ``repeat``: every client sends the same patient's 100-day prefetch (a chart opened again and
  again): answered from the memo after the first call.
- ``distinct``: every request is a different patient (every call new patient data: nothing is
  memoised, every resource is validated): the cold path under load.
- ``pool``: ``--pool-patients`` synthetic patients, each at a day between 1 and 100 after the
  infusion; every request opens a random patient's chart; new lab results arrive at
  ``--lab-rate`` per second (each adds one Observation to a random patient's record, so that
  patient's next call computes afresh). Measured after an unmeasured warm-up of the same load
  (``--warmup`` seconds, no new results), as on a service that has been running.

Before the load, the cost of each step of one call is measured in process (``breakdown``).
Only loopback addresses are used. Results: p50/p90/p99 latency, throughput, errors; with
``--results`` they are written as a Markdown section.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

SERVICE = "cart-cytopenia-patient-view"
ISS = "https://ehr.bench.local"
KID = "bench-rs384"


# --------------------------------------------------------------------------- payload


def typical_course(seed: int = 3) -> Any:
    """A synthetic course with a typical lab schedule, as known on day 100."""
    from cart_cytopenia.cohort.synthetic_courses import generate_courses

    courses = generate_courses(6, seed)
    course = max(
        courses, key=lambda c: sum(1 for lab in c.labs if lab.day is not None and lab.day <= 100)
    )
    return course.as_of(100)


def prefetch_for(course: Any) -> dict[str, Any]:
    from tests.cds_hooks.conftest import split_prefetch

    return split_prefetch(course)


def hook_body(course: Any, prefetch: dict[str, Any]) -> dict[str, Any]:
    return {
        "hookInstance": str(uuid.uuid4()),
        "hook": "patient-view",
        "context": {"userId": "Practitioner/bench", "patientId": course.patient.id},
        "prefetch": prefetch,
    }


def encode(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def with_labs(prefetch: dict[str, Any], n: int) -> dict[str, Any]:
    """The prefetch with only the first ``n`` lab results (the others not yet reported)."""
    labs = prefetch["labs"]
    entries = labs["entry"][:n]
    return {**prefetch, "labs": {**labs, "total": len(entries), "entry": entries}}


def renamed(body: bytes, pid: str, new: str) -> bytes:
    """The same record under another patient id (new data for every resource)."""
    return body.replace(pid.encode(), new.encode())


@dataclass
class Pool:
    """Charts of ``n`` patients; ``bodies[p][v]``: patient p with ``v`` more lab results."""

    pids: list[str]
    days: list[int]
    bodies: list[list[bytes]]
    resources: list[int]


def build_pool(n: int, today: dt.date, held: int, seed: int = 11) -> Pool:
    """``n`` synthetic patients at days 1-100, the last ``held`` lab results of each held back."""
    from cart_cytopenia.cli.serve_cmd import shift_course
    from cart_cytopenia.cohort.synthetic_courses import generate_courses

    rng = random.Random(seed)
    pids: list[str] = []
    days: list[int] = []
    bodies: list[list[bytes]] = []
    resources: list[int] = []
    for course in generate_courses(n, seed):
        day = rng.randint(1, 100)
        shifted = shift_course(course, day, today)
        prefetch = prefetch_for(shifted)
        total = len(prefetch["labs"]["entry"])
        k = min(held, total // 2)
        versions = []
        for v in range(k + 1):
            versions.append(encode(hook_body(shifted, with_labs(prefetch, total - k + v))))
        pids.append(shifted.patient.id)
        days.append(day)
        bodies.append(versions)
        resources.append(
            1
            + sum(len(b.get("entry", [])) for key, b in prefetch.items() if key != "patient" and b)
            - k
        )
    return Pool(pids, days, bodies, resources)


def lab_schedule(
    pool: Pool, rate: float, duration: int, seed: int = 5
) -> list[tuple[int, int, int]]:
    """(second, patient, version): new lab results at ``rate`` per second, random patients."""
    rng = random.Random(seed)
    version = [0] * len(pool.pids)
    out = []
    for k in range(int(rate * duration)):
        second = int((k + 1) / rate)
        if second >= duration:
            break
        open_ = [p for p in range(len(pool.pids)) if version[p] + 1 < len(pool.bodies[p])]
        if not open_:
            break
        p = rng.choice(open_)
        version[p] += 1
        out.append((second, p, version[p]))
    return out


# --------------------------------------------------------------------------- keys and tokens


def make_key() -> tuple[Any, dict[str, Any]]:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": KID, "use": "sig", "alg": "RS384"})
    return key, {"keys": [jwk]}


def _sign(args: tuple[bytes, str, int, int]) -> list[str]:
    import jwt
    from cryptography.hazmat.primitives import serialization

    pem, aud, n, exp = args
    key = serialization.load_pem_private_key(pem, password=None)
    now = int(time.time())
    return [
        jwt.encode(
            {"iss": ISS, "aud": aud, "iat": now, "exp": exp, "jti": str(uuid.uuid4())},
            key,  # type: ignore[arg-type]
            algorithm="RS384",
            headers={"kid": KID, "typ": "JWT"},
        )
        for _ in range(n)
    ]


def tokens(key: Any, aud: str, n: int, lifetime: int = 1800) -> list[str]:
    """``n`` distinct JWTs (signed in parallel processes)."""
    from cryptography.hazmat.primitives import serialization

    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    procs = max(1, os.cpu_count() or 1)
    share = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    exp = int(time.time()) + lifetime
    with mp.get_context("spawn").Pool(procs) as pool:
        parts = pool.map(_sign, [(pem, aud, k, exp) for k in share])
    return [t for p in parts for t in p]


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(
    port: int, jwks: dict[str, Any], today: str, data_dir: str, reuse_port: bool = False
) -> None:
    import logging

    import uvicorn

    os.environ["CART_CYTOPENIA_CDS_ISSUERS"] = json.dumps([{"iss": ISS, "jwks": jwks}])
    os.environ["CART_CYTOPENIA_CDS_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    from cart_cytopenia.service.app import create_app
    from cart_cytopenia.service.config import ServiceSettings
    from cart_cytopenia.store.db import Database
    from cart_cytopenia.store.migrate import upgrade

    settings = ServiceSettings(
        environment="development",
        database_url=f"sqlite:///{data_dir}/bench.db",
        data_dir=Path(data_dir),
        today=dt.date.fromisoformat(today),
        log_level="warning",
    )
    db = Database(settings.effective_database_url)
    upgrade(db)
    app = create_app(settings, database=db)
    logging.getLogger("cart_cytopenia").setLevel(logging.WARNING)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, access_log=False, log_level="warning", server_header=False
    )
    server = uvicorn.Server(config)
    if not reuse_port:
        server.run()
        return
    # several processes accept on one port; the kernel spreads the connections over them
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    server.run(sockets=[sock])


def start_server(
    jwks: dict[str, Any], today: dt.date, workers: int = 1
) -> tuple[list[mp.Process], int, str]:
    """``workers`` uvicorn processes on one loopback port (SO_REUSEPORT when more than one)."""
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="cds-bench-")
    ctx = mp.get_context("spawn")
    procs = []
    for i in range(workers):
        p = ctx.Process(
            target=_serve, args=(port, jwks, today.isoformat(), data_dir, workers > 1), daemon=True
        )
        p.start()
        procs.append(p)
        if i == 0 and workers > 1:
            _wait_port(port, procs)  # the first one migrates the database
    _wait_port(port, procs)
    if workers > 1:
        time.sleep(3)  # the others finish starting
    return procs, port, data_dir


def _wait_port(port: int, procs: list[mp.Process]) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    for p in procs:
        p.terminate()
    raise RuntimeError("the service did not start within 60 s")


# --------------------------------------------------------------------------- load generators


def percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    k = min(len(sorted_ms) - 1, max(0, round(q / 100 * (len(sorted_ms) - 1))))
    return sorted_ms[k]


def _summary(lat: list[float], seconds: float, errors: dict[str, int], gen: str) -> dict[str, Any]:
    lat = sorted(lat)
    return {
        "generator": gen,
        "requests": len(lat),
        "seconds": seconds,
        "rps": len(lat) / seconds if seconds else float("nan"),
        "p50": percentile(lat, 50),
        "p90": percentile(lat, 90),
        "p99": percentile(lat, 99),
        "max": lat[-1] if lat else float("nan"),
        "errors": errors,
    }


async def _httpx_load(
    url: str, body_for: Callable[[int], bytes], toks: list[str], connections: int, duration: float
) -> dict[str, Any]:
    import httpx

    lat: list[float] = []
    errors: dict[str, int] = {}
    next_i = 0
    stop = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def worker() -> None:
            nonlocal next_i
            while time.perf_counter() < stop:
                i = next_i
                next_i += 1
                if i >= len(toks):
                    errors["tokens exhausted"] = errors.get("tokens exhausted", 0) + 1
                    return
                t0 = time.perf_counter()
                try:
                    r = await client.post(
                        url,
                        content=body_for(i),
                        headers={
                            "Authorization": f"Bearer {toks[i]}",
                            "Content-Type": "application/json",
                        },
                    )
                    ok = r.status_code == 200 and b'"cards"' in r.content
                    if not ok:
                        errors[f"HTTP {r.status_code}"] = errors.get(f"HTTP {r.status_code}", 0) + 1
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                lat.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return _summary(lat, elapsed, errors, "httpx (asyncio)")


async def _open_load(
    url: str,
    body_for: Callable[[int], bytes],
    toks: list[str],
    rate: float,
    duration: float,
    seed: int = 3,
) -> dict[str, Any]:
    """Open loop: requests start at Poisson times (``rate`` a second) whether or not earlier ones
    were answered; latency from the planned start (no coordinated omission)."""
    import httpx

    rng = random.Random(seed)
    lat: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def one(i: int, planned: float) -> None:
            try:
                r = await client.post(
                    url,
                    content=body_for(i),
                    headers={
                        "Authorization": f"Bearer {toks[i % len(toks)]}",
                        "Content-Type": "application/json",
                    },
                )
                if r.status_code != 200 or b'"cards"' not in r.content:
                    errors[f"HTTP {r.status_code}"] = errors.get(f"HTTP {r.status_code}", 0) + 1
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            lat.append((time.perf_counter() - planned) * 1000)

        tasks = []
        start = planned = time.perf_counter()
        i = 0
        while True:
            planned += rng.expovariate(rate)
            if planned - start >= duration:
                break
            delay = planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, planned)))
            i += 1
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return _summary(lat, elapsed, errors, f"httpx, open loop (Poisson {rate:g}/s)")


WRK_SCRIPT = r"""
-- args: tokens file, mode (fixed | distinct | pool), body file or pool manifest, threads,
--       patient id and run tag (distinct)
local tokens = {}
local n = 0
local offset = 0
local stride = 1
local mode = "fixed"
local body = nil
local pid = nil
local tag = ""
local current = {}
local events = {}
local ev = 1
local t0 = 0

function setup(thread)
  thread:set("tid", setup_count or 0)
  setup_count = (setup_count or 0) + 1
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  mode = args[2]
  stride = tonumber(args[4]) or 1
  offset = tonumber(tid) or 0
  if mode == "pool" then
    for line in io.lines(args[3]) do
      local kind, a, b, c = line:match("^(%a) (%S+) (%S+) ?(%S*)$")
      if kind == "P" then
        current[tonumber(a)] = slurp(b)
      elseif kind == "E" then
        events[#events + 1] = {t = tonumber(a), p = tonumber(b), body = slurp(c)}
      end
    end
  else
    body = slurp(args[3])
    pid = args[5]
    tag = args[6] or ""
  end
  math.randomseed(os.time() * 10 + offset)
  t0 = os.time()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local i = offset + n * stride + 1
  n = n + 1
  if i > #tokens then i = ((i - 1) % #tokens) + 1 end
  local b = body
  if mode == "distinct" then
    b = body:gsub(pid, pid .. "-" .. tag .. "-" .. offset .. "-" .. n)
  elseif mode == "pool" then
    local now = os.time() - t0
    while ev <= #events and events[ev].t <= now do
      current[events[ev].p] = events[ev].body
      ev = ev + 1
    end
    b = current[math.random(#current)]
  end
  return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. tokens[i]}, b)
end
"""


def _wrk_load(
    url: str,
    toks: list[str],
    connections: int,
    duration: int,
    mode: str,
    files: Callable[[Path], list[str]],
) -> dict[str, Any]:
    """wrk in ``mode``; ``files(dir)`` writes the body/manifest and returns the script's args."""
    threads = 2
    with tempfile.TemporaryDirectory(prefix="cds-wrk-") as d:
        tf, sf = Path(d, "tokens.txt"), Path(d, "script.lua")
        tf.write_text("\n".join(toks) + "\n")
        sf.write_text(WRK_SCRIPT)
        extra = files(Path(d))
        cmd = [
            "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s",
            "-s", str(sf), url, "--", str(tf), mode, extra[0], str(threads), *extra[1:],
        ]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def ms(text: str) -> float:
        m = re.match(r"([\d.]+)(us|ms|s)", text)
        assert m, text
        v = float(m.group(1))
        return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]

    dist = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    reqs = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    secs = float(re.search(r"requests in ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    maxlat = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out)
    errors: dict[str, int] = {}
    if non2xx:
        errors["non-2xx"] = int(non2xx.group(1))
    if sock:
        for k, v in re.findall(r"(\w+) (\d+)", sock.group(1)):
            if int(v):
                errors[f"socket {k}"] = int(v)
    return {
        "generator": f"wrk ({threads} threads)",
        "requests": reqs,
        "seconds": secs,
        "rps": reqs / secs,
        "p50": ms(dist["50"]),
        "p90": ms(dist["90"]),
        "p99": ms(dist["99"]),
        "max": ms(maxlat.group(1)) if maxlat else float("nan"),
        "errors": errors,
        "raw": out,
    }


def _pool_files(pool: Pool, schedule: list[tuple[int, int, int]]) -> Callable[[Path], list[str]]:
    def write(d: Path) -> list[str]:
        lines = []
        for p, versions in enumerate(pool.bodies):
            f = d / f"p{p}-0.json"
            f.write_bytes(versions[0])
            lines.append(f"P {p + 1} {f}")
        for second, p, v in schedule:
            f = d / f"p{p}-{v}.json"
            f.write_bytes(pool.bodies[p][v])
            lines.append(f"E {second} {p + 1} {f}")
        manifest = d / "pool.txt"
        manifest.write_text("\n".join(lines) + "\n")
        return [str(manifest)]

    return write


def _body_file(body: bytes, *args: str) -> Callable[[Path], list[str]]:
    def write(d: Path) -> list[str]:
        f = d / "body.json"
        f.write_bytes(body)
        return [str(f), *args]

    return write


# --------------------------------------------------------------------------- measurements


def _median_ms(f: Callable[[int], Any], n: int) -> float:
    for i in range(2):
        f(10_000 + i)  # warm
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        f(i)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def breakdown(
    course: Any, prefetch: dict[str, Any], today: dt.date, n: int = 20
) -> dict[str, float]:
    """Median ms of each step of one patient-view call, in process (no HTTP, no JWT)."""
    from cart_cytopenia import __version__
    from cart_cytopenia.grading.assessment import assess
    from cart_cytopenia.guidance import evaluate
    from cart_cytopenia.io.fhir_cards import patient_view_cards
    from cart_cytopenia.io.fhir_import import ModelCache, import_resources, resources_from_json
    from cart_cytopenia.rules.settings import Settings
    from cart_cytopenia.service.cds_hooks import (
        CdsEngine,
        CdsHooksSettings,
        HookRequest,
        content_key,
        mentions_cart,
        request_key,
    )

    pid = course.patient.id
    base = encode(hook_body(course, prefetch))
    engine = CdsEngine(CdsHooksSettings(), Settings(), lambda: today)
    bodies = {i: renamed(base, pid, f"{pid}-b{i}") for i in [*range(n), 10_000, 10_001]}
    reqs = {i: HookRequest.model_validate_json(b) for i, b in bodies.items()}

    def flatten(i: int) -> list[Any]:
        raws = []
        for k, v in (reqs[i].prefetch or {}).items():
            if v is not None:
                raws += resources_from_json(v, k)
        mentions_cart(raws)
        return raws

    raws = {i: flatten(i) for i in bodies}
    cache = ModelCache(100_000)
    seen = import_resources(raws[0], cache)
    c = seen.courses[0]
    day = (today - c.infusion_date).days
    settings = Settings()
    guidance = evaluate(c, day, settings)
    items = list(guidance.items())
    links = engine.links("http://127.0.0.1", c.patient.id)
    parts = ("svc", today.isoformat(), "settings", __version__, "http://127.0.0.1")
    out = {
        "parse the request (JSON, pydantic)": _median_ms(
            lambda i: HookRequest.model_validate_json(bodies[i]), n
        ),
        "memo keys (content and request)": _median_ms(
            lambda i: (content_key(bodies[i], *parts), request_key(reqs[i], *parts)), n
        ),
        "flatten the prefetch Bundles, CAR-T pre-check": _median_ms(flatten, n),
        "import, every resource new (fhir.resources R4B validation + mapping)": _median_ms(
            lambda i: import_resources(raws[i], ModelCache(100_000)), n
        ),
        "import, resources validated before (one chart re-sent)": _median_ms(
            lambda i: import_resources(raws[0], cache), n
        ),
        "  of which fhir.resources validation when every resource is new": _median_ms(
            lambda i: [ModelCache(10).validate(_cls(r.data), r.data) for r in raws[i]], n
        ),
        "grading (`assess`: CTCAE, ICAHT, CAR-HEMATOTOX, phenotype)": _median_ms(
            lambda i: assess(c, day, settings), n
        ),
        "grading and guidance (`guidance.evaluate`)": _median_ms(
            lambda i: list(evaluate(c, day, settings).items()), n
        ),
        "cards (`patient_view_cards`)": _median_ms(
            lambda i: patient_view_cards(
                c, guidance.assessment, items, links, list(map(str, guidance.missing_data)), 6
            ),
            n,
        ),
        "whole cold call (flatten + `CdsEngine.patient_view`, every resource new)": _median_ms(
            lambda i: CdsEngine(CdsHooksSettings(), Settings(), lambda: today).patient_view(
                flatten(i), f"{pid}-b{i}", "http://127.0.0.1"
            ),
            n,
        ),
    }
    return out


def _cls(data: dict[str, Any]) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(data["resourceType"])


def single_calls(
    url: str, key: Any, course: Any, prefetch: dict[str, Any], n: int = 15
) -> list[dict[str, Any]]:
    """No load, one call at a time: cold calls; calls after one new lab result on a known chart."""
    import httpx

    pid = course.patient.id
    toks = iter(tokens(key, url, 3 * n + 2))
    total = len(prefetch["labs"]["entry"])
    base = encode(hook_body(course, prefetch))
    seq = [
        renamed(encode(hook_body(course, with_labs(prefetch, total - n + j))), pid, f"{pid}-seq")
        for j in range(n + 1)
    ]
    with httpx.Client(timeout=60) as client:

        def post(body: bytes) -> float:
            t0 = time.perf_counter()
            r = client.post(url, content=body, headers={"Authorization": f"Bearer {next(toks)}"})
            ms = (time.perf_counter() - t0) * 1000
            if r.status_code != 200 or not r.json().get("cards"):
                raise RuntimeError(f"single call failed: HTTP {r.status_code}")
            return ms

        cold = [post(renamed(base, pid, f"{pid}-cold-{i}")) for i in range(n)]
        user = b'"userId":"Practitioner/bench"'
        other_user = [
            post(base.replace(user, b'"userId":"Practitioner/other-%d"' % i)) for i in range(n)
        ]
        post(seq[0])  # the chart is seen: every resource validated
        new_lab = [post(b) for b in seq[1:]]
    rows = []
    for name, lat in (
        ("single: cold", cold),
        ("single: new lab result", new_lab),
        ("single: same data, another user", other_user),
    ):
        r = _summary(lat, sum(lat) / 1000, {}, "httpx, one call at a time")
        r.update(scenario=name, connections=1, duration=0)
        rows.append(r)
    return rows


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace, workers: int, pool: Pool | None) -> list[dict[str, Any]]:
    course = typical_course()
    prefetch = prefetch_for(course)
    today = course.infusion_date + dt.timedelta(days=100)
    pid = course.patient.id
    base_body = encode(hook_body(course, prefetch))
    key, jwks = make_key()
    servers, port, data_dir = start_server(jwks, today, workers)
    url = f"http://127.0.0.1:{port}/cds-services/{SERVICE}"
    results: list[dict[str, Any]] = []
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "httpx"
    try:
        import httpx

        for t in tokens(key, url, 3):  # compile, import, first compute
            r = httpx.post(
                url, content=base_body, headers={"Authorization": f"Bearer {t}"}, timeout=60
            )
            r.raise_for_status()
            assert r.json()["cards"], "no cards for the benchmark patient"
        for spec in args.scenarios.split(","):
            scenario, _, at = spec.partition("@")  # "distinct@50": with 50 clients
            conns, duration = int(at or args.connections), args.duration
            if scenario == "single":
                rows = single_calls(url, key, course, prefetch)
            elif scenario == "repeat":
                toks = tokens(key, url, conns * duration * 40)
                if generator == "wrk":
                    res = _wrk_load(url, toks, conns, duration, "fixed", _body_file(base_body))
                else:
                    res = asyncio.run(_httpx_load(url, lambda _i: base_body, toks, conns, duration))
                rows = [res]
            elif scenario == "distinct":
                toks = tokens(key, url, duration * 150 + 1000)
                tag = f"w{workers}c{conns}"
                if generator == "wrk":
                    res = _wrk_load(
                        url, toks, conns, duration, "distinct", _body_file(base_body, pid, tag)
                    )
                else:

                    def distinct(i: int, tag: str = tag) -> bytes:
                        return renamed(base_body, pid, f"{pid}-{tag}-{i}")

                    res = asyncio.run(_httpx_load(url, distinct, toks, conns, duration))
                rows = [res]
            elif scenario == "pool":
                assert pool is not None
                schedule = lab_schedule(pool, args.lab_rate, duration)
                warm = tokens(key, url, conns * args.warmup * 40)
                toks = tokens(key, url, conns * duration * 40)
                if generator == "wrk":
                    _wrk_load(url, warm, conns, args.warmup, "pool", _pool_files(pool, []))
                    res = _wrk_load(url, toks, conns, duration, "pool", _pool_files(pool, schedule))
                else:
                    asyncio.run(
                        _httpx_load(url, _pool_body_for(pool, []), warm, conns, args.warmup)
                    )
                    res = asyncio.run(
                        _httpx_load(url, _pool_body_for(pool, schedule), toks, conns, duration)
                    )
                res.update(new_results=len(schedule))
                rows = [res]
            elif scenario == "open":
                assert pool is not None
                rate = float(at or 100)
                schedule = lab_schedule(pool, args.lab_rate, duration)
                toks = tokens(key, url, int(rate * duration * 1.3) + 100)
                res = asyncio.run(
                    _open_load(url, _pool_body_for(pool, schedule), toks, rate, duration)
                )
                res.update(new_results=len(schedule), scenario=f"open {rate:g}/s", connections=0)
                rows = [res]
            else:
                raise SystemExit(f"unknown scenario {scenario!r}")
            for res in rows:
                res.setdefault("scenario", scenario)
                res.setdefault("connections", conns)
                res.setdefault("duration", duration)
                res["workers"] = workers
                results.append(res)
                print(_line(res), flush=True)
    finally:
        for server in servers:
            server.terminate()
            server.join(10)
        shutil.rmtree(data_dir, ignore_errors=True)
    return results


def _pool_body_for(pool: Pool, schedule: list[tuple[int, int, int]]) -> Callable[[int], bytes]:
    current = [v[0] for v in pool.bodies]
    start = time.perf_counter()
    ev = 0
    rng = random.Random(1)

    def body_for(_i: int) -> bytes:
        nonlocal ev
        now = time.perf_counter() - start
        while ev < len(schedule) and schedule[ev][0] <= now:
            _s, p, v = schedule[ev]
            current[p] = pool.bodies[p][v]
            ev += 1
        return rng.choice(current)

    return body_for


def _line(r: dict[str, Any]) -> str:
    errs = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "none"
    return (
        f"{r['scenario']:>22} [{r['workers']} worker(s)]: {r['connections']} clients, "
        f"{r['requests']} requests ({r['rps']:.0f}/s), p50 {r['p50']:.1f} ms, "
        f"p90 {r['p90']:.1f} ms, p99 {r['p99']:.1f} ms, max {r['max']:.0f} ms, errors {errs} "
        f"[{r['generator']}]"
    )


def _stack() -> str:
    import importlib.util

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"uvicorn ({http}, {loop})"


def markdown(
    results: list[dict[str, Any]],
    steps: dict[str, float],
    payload: dict[str, Any],
    pool: Pool | None,
    args: argparse.Namespace,
    load_before: float,
    load_after: float,
) -> str:
    cpu = os.cpu_count()
    workers = sorted({r["workers"] for r in results})
    lines = [
        "## CDS Hooks patient-view under concurrent load (benchmarks/cds_hooks_bench.py)",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with "
        f"`python benchmarks/cds_hooks_bench.py --workers {','.join(map(str, workers))} "
        "--results benchmarks/cds_hooks_results.md` on this "
        f"machine ({cpu} CPU cores; 1-minute load average {load_before:.2f} just before, "
        f"{load_after:.2f} at the end: the benchmark itself keeps both cores busy, anything "
        "above about 3 is other work on the machine), service and load "
        "generator on the same machine over loopback (127.0.0.1). The service runs as deployed: "
        f"`create_app` on {_stack()}, SQLite store, JWT authentication on (RS384, a fresh token "
        "with its own `jti` on every request), default settings (answers memoised: 512; "
        "validated FHIR resources kept: 30,000; calls with new data computed one at a time per "
        "process); `workers` processes share the port (SO_REUSEPORT), as two `serve` instances "
        "behind the proxy would.",
        "",
        f"Payload: a synthetic patient's record as known on day 100 ({payload['labs']} lab "
        f"values, {payload['resources']} FHIR resources in 7 prefetch keys, "
        f"{payload['kb']:.0f} KB), answered with {payload['cards']} cards.",
        "",
        "Cost of one call, step by step (in process, median of 20, no HTTP or JWT):",
        "",
        "| step | ms |",
        "|---|---|",
        *[f"| {k} | {v:.1f} |" for k, v in steps.items()],
        "",
        "| scenario | workers | clients | duration | requests | throughput | p50 | p90 | p99 | max | errors | generator |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        errs = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "none"
        dur = f"{r['seconds']:.0f} s" if r["duration"] else "—"
        rps = f"{r['rps']:.0f}/s" if r["duration"] else "—"
        lines.append(
            f"| {r['scenario']} | {r['workers']} | {r['connections'] or 'open loop'} | {dur} | "
            f"{r['requests']} | "
            f"{rps} | {r['p50']:.1f} ms | {r['p90']:.1f} ms | {r['p99']:.1f} ms | "
            f"{r['max']:.0f} ms | {errs} | {r['generator']} |"
        )
    lines += [
        "",
        "- `single: …`: 15 calls each (p99 is the slowest). `single: cold`: no load, one call at "
        "a time, each for a patient never seen (every "
        "resource validated with fhir.resources R4B, graded, evaluated). `single: new lab "
        "result`: no load, a chart seen before sent again with one more lab result: only that "
        "Observation is validated; grading and guidance run afresh. `single: same data, another "
        "user`: the chart answered before, opened by another user (another body): parsed, then "
        "answered from the memo.",
        "- `repeat`: every client re-sends the same 100-day prefetch (the chart opened again): "
        "answered from the memo after the first call. The memo keys on what the cards depend on "
        "(patient, prefetch data, day, settings, version), not on who asks or the hookInstance.",
        "- `distinct`: every request is a patient never seen (cold, as `single: cold`), all "
        "clients at once. Past a few clients these calls queue: the cold path is CPU-bound "
        "(see the steps above) and computed one at a time per process, so each process answers "
        "about 1000 / (cold ms) calls a second and with 50 clients the row measures the queue.",
    ]
    if pool is not None:
        pool_rows = [r for r in results if r["scenario"] == "pool"]
        new = pool_rows[0].get("new_results", 0) if pool_rows else 0
        lines += [
            f"- `pool`: {len(pool.pids)} synthetic patients, each at a day between 1 and 100 after "
            f"the infusion (median {statistics.median(pool.days):.0f}; "
            f"{statistics.mean(pool.resources):.0f} FHIR resources a chart on average); every "
            "request opens a random patient's chart; new lab results arrive at "
            f"{args.lab_rate:g} a second ({new} in the run; each adds one Observation to a random "
            "patient's record, so that chart's next opening computes afresh: one resource "
            f"validated, graded and evaluated). Measured after a {args.warmup} s unmeasured "
            "warm-up of the same load (a service that has been running). For scale: 200 "
            "patients with daily blood counts and chemistry (about 15 values a day each) give "
            "3,000 results a day, 0.1 a second if all arrived within 8 hours; the rate here is "
            f"{args.lab_rate / 0.1:.0f} times that, and the request rate (every client, every "
            "answer, at once) is far above what clinicians opening charts produce.",
        ]
    if any(r["scenario"].startswith("open") for r in results):
        lines += [
            "- `open N/s`: open loop over the same pool (new lab results at the same rate): chart "
            "openings arrive at random (Poisson) times, N a second on average, whether or not "
            "earlier ones were answered, and latency counts from the planned start. This is how "
            "an EHR's users load the service; the generator is Python (httpx), on the same "
            "cores. For scale: 200 CAR-T patients whose charts are each opened 20 times a day "
            "give 4,000 openings a day, about 0.14 a second over 8 hours.",
        ]
    lines += [
        "- Goal of the issue: p99 < 100 ms with no errors at 50 clients. Run-to-run spread on "
        "this shared machine is about ±20 ms at p99 when it is otherwise idle, more when other "
        "work runs (load average above). The load generator (wrk, two threads) shares the two "
        "cores with the service: with two service processes, three busy processes share two "
        "cores, and p99 varies more from run to run.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--duration", type=int, default=30)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--generator", choices=("auto", "wrk", "httpx"), default="auto")
    ap.add_argument(
        "--scenarios",
        default="single,repeat,distinct@4,distinct@50,pool,open@100",
        help="comma-separated: single, repeat, distinct, pool, open; NAME@N runs it with N "
        "clients (open: N requests a second)",
    )
    ap.add_argument(
        "--workers", default="1", help="uvicorn processes (SO_REUSEPORT); several: '1,2'"
    )
    ap.add_argument("--pool-patients", type=int, default=200)
    ap.add_argument("--lab-rate", type=float, default=1.0, help="new lab results a second (pool)")
    ap.add_argument("--warmup", type=int, default=30, help="unmeasured seconds before pool")
    ap.add_argument(
        "--results", type=Path, help="Write the results as a Markdown section to this file."
    )
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    course = typical_course()
    prefetch = prefetch_for(course)
    today = course.infusion_date + dt.timedelta(days=100)
    steps = breakdown(course, prefetch, today)
    for k, v in steps.items():
        print(f"{v:7.1f} ms  {k}", flush=True)
    pool = None
    if "pool" in args.scenarios or "open" in args.scenarios:
        pool = build_pool(args.pool_patients, today, held=10)
    results: list[dict[str, Any]] = []
    for workers in (int(w) for w in args.workers.split(",")):
        results += run(args, workers, pool)
    from cart_cytopenia.io.fhir_import import resources_from_json
    from cart_cytopenia.rules.settings import Settings
    from cart_cytopenia.service.cds_hooks import CdsEngine, CdsHooksSettings

    raws = [r for k, v in prefetch.items() if v for r in resources_from_json(v, k)]
    cards = CdsEngine(CdsHooksSettings(), Settings(), lambda: today).patient_view(
        raws, course.patient.id, "http://127.0.0.1"
    )
    payload = {
        "labs": len(course.labs) + len(course.baseline_labs),
        "resources": len(raws),
        "kb": len(encode(hook_body(course, prefetch))) / 1024,
        "cards": len(cards),
    }
    load_after = os.getloadavg()[0]
    if args.results:
        args.results.write_text(
            markdown(results, steps, payload, pool, args, load_before, load_after)
        )
        print(f"wrote {args.results}")
    for r in results:
        if r["connections"] >= 50:
            ok = r["p99"] < 100 and not r["errors"]
            print(
                f"goal (p99 < 100 ms, no errors) {r['scenario']} with {r['workers']} worker(s): "
                f"{'met' if ok else 'NOT met'}"
            )


if __name__ == "__main__":
    main()
