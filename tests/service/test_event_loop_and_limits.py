"""Issue 15: no blocking work on the event loop, no hang at sign-in, limits on every route.

- every page and API route is a plain ``def`` (run in the thread pool), never ``async def``;
- 30 concurrent sign-ins with a pool of 2 connections all finish (the hang on PostgreSQL was
  15 connections "idle in transaction" on the audit insert while the loop was blocked);
- a large upload runs as a background job with a status page, and the rest keeps answering;
- bodies over ``max_upload_bytes`` get 413 before they are read; ids beyond 64 bits get 404.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from cart_cytopenia.service import api, fhir_api, pages, pages_auth, pages_import
from cart_cytopenia.service.deps import ServiceRoute
from cart_cytopenia.service.smart import routes as smart
from cart_cytopenia.store import accounts
from cart_cytopenia.store import courses as repo
from tests.service.conftest import PASSWORD, Service, csrf_of, login, make_service
from tests.store.conftest import PG_ENV, reset_postgres

TOO_BIG = 2**64
JSON = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"


def test_every_page_and_api_route_runs_in_the_thread_pool() -> None:
    routers = (
        pages.router, pages_auth.router, pages_import.router, api.router, fhir_api.router,
        smart.router,
    )  # fmt: skip
    routes = [r for router in routers for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) > 50
    assert [r.path for r in routes if not isinstance(r, ServiceRoute)] == []
    assert not [r.path for r in routes if asyncio.iscoroutinefunction(inspect.unwrap(r.endpoint))]


async def _sign_in(client: httpx.AsyncClient, username: str) -> int:
    page = await client.get("/login")
    r = await client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    return r.status_code


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_thirty_concurrent_sign_ins_with_two_connections_all_finish(
    backend: str, tmp_path: Path
) -> None:
    over: dict[str, object] = {"db_pool_size": 2, "db_max_overflow": 0, "db_pool_timeout": 30}
    if backend == "postgresql":
        url = os.environ.get(PG_ENV) or pytest.skip(f"{PG_ENV} is not set")
        reset_postgres(url).dispose()
        over["database_url"] = url
    svc = make_service(tmp_path, **over)

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=svc.app)  # type: ignore[arg-type]
        clients = [httpx.AsyncClient(transport=transport, base_url="http://t") for _ in range(30)]
        try:
            return await asyncio.wait_for(
                asyncio.gather(*(_sign_in(c, "cleo") for c in clients)), timeout=120
            )
        finally:
            for c in clients:
                await c.aclose()

    # (a hang fails through run()'s wait_for, not through a timing assertion)
    statuses = asyncio.run(run())
    assert statuses == [303] * 30, statuses
    svc.db.dispose()


def test_healthz_answers_while_a_sign_in_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """argon2 runs in the thread pool: /healthz answers while ten sign-ins are held inside the
    password check (no timing: the checks wait for /healthz's answer, with a long escape so a
    blocked event loop fails the test instead of hanging it)."""
    svc = make_service(tmp_path)
    healthz_done = threading.Event()
    inside = threading.Semaphore(0)
    released: list[bool] = []  # per check: released by /healthz's answer (False: timed out)
    real_verify = accounts._verify

    def held_verify(password_hash: str, password: str) -> bool:
        inside.release()
        released.append(healthz_done.wait(timeout=60))
        return real_verify(password_hash, password)

    monkeypatch.setattr(accounts, "_verify", held_verify)

    async def run() -> tuple[int, bool]:
        transport = httpx.ASGITransport(app=svc.app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            logins = [asyncio.create_task(_sign_in(c, "cleo")) for _ in range(10)]
            # wait (off the loop) until a sign-in is inside the password check
            assert await asyncio.to_thread(inside.acquire, True, 60)
            r = await c.get("/healthz")
            healthz_done.set()
            assert set(await asyncio.gather(*logins)) == {303}
            return r.status_code

    assert asyncio.run(run()) == 200
    # every held check was released by /healthz's answer: none waited out its escape
    assert released and all(released), released
    svc.db.dispose()


def _csv(rows: int) -> bytes:
    lines = ["day,analyte,value,unit"]
    lines += [f"{11 + i % 5},anc,{400 + i},/uL" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def _post_csv(svc: Service, client: object, name: str, data: bytes) -> httpx.Response:
    """Upload ``data`` as a lab CSV on the neutropenic course's upload page."""
    cid = svc.courses["wl-neutropenic"]
    csrf = csrf_of(client.get(f"/courses/{cid}/labs/upload").text)  # type: ignore[attr-defined]
    return client.post(  # type: ignore[attr-defined, no-any-return]
        f"/courses/{cid}/labs/upload",
        data={"csrf_token": csrf},
        files={"file": (name, data, "text/csv")},
    )


def test_a_large_lab_upload_runs_as_a_job_with_a_status_page(tmp_path: Path) -> None:
    svc = make_service(tmp_path, background_upload_bytes=0)
    client = login(svc.client(), "cleo")
    cid = svc.courses["wl-neutropenic"]
    r = _post_csv(svc, client, "big.csv", _csv(200))
    assert r.status_code == 303
    job_url = r.headers["location"]
    assert job_url.startswith("/jobs/")
    for _ in range(600):
        page = client.get(job_url)
        if 'data-state="done"' in page.text or 'data-state="failed"' in page.text:
            break
        assert 'http-equiv="refresh"' in page.text
        time.sleep(0.1)
    assert 'data-state="done"' in page.text, page.text
    assert "Saved 200 lab result(s) from big.csv." in page.text
    with svc.db.session() as s:
        assert sum(o.source == "csv" for o in repo.get_course(s, cid).observations) == 200
    other = login(svc.client(), "ada")
    assert other.get(job_url).status_code == 404  # only its owner sees a job
    svc.db.dispose()


def test_a_failed_job_lists_every_bad_row_and_saves_nothing(tmp_path: Path) -> None:
    svc = make_service(tmp_path, background_upload_bytes=0)
    client = login(svc.client(), "cleo")
    cid = svc.courses["wl-neutropenic"]
    bad = b"day,analyte,value,unit\n11,anc,lots,/uL\n12,anc,400,/uL\n13,anc,many,/uL\n"
    r = _post_csv(svc, client, "bad.csv", bad)
    job_url = r.headers["location"]
    for _ in range(600):
        page = client.get(job_url)
        if 'data-state="failed"' in page.text:
            break
        time.sleep(0.1)
    assert page.status_code == 422
    assert "Nothing was saved" in page.text
    assert "row 2" in page.text and "row 4" in page.text
    with svc.db.session() as s:
        assert not [o for o in repo.get_course(s, cid).observations if o.source == "csv"]
    svc.db.dispose()


@pytest.fixture
def small_limit(tmp_path: Path) -> Service:
    return make_service(tmp_path, max_upload_bytes=1000)


def test_an_api_body_over_the_limit_is_refused_before_it_is_read(small_limit: Service) -> None:
    svc = small_limit
    client = svc.client()
    body = b'{"x": "' + b"a" * 200_000 + b'"}'
    for method, path in (
        ("POST", "/api/v1/courses"),
        ("PUT", f"/api/v1/courses/{svc.courses['wl-neutropenic']}"),
        ("POST", "/api/v1/fhir/import"),
    ):
        r = client.request(
            method,
            path,
            content=body,
            headers={**svc.auth("clinician"), "Content-Type": "application/json"},
        )
        assert r.status_code == 413, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"].endswith("#too-large")


def test_a_chunked_body_over_the_limit_is_cut_off(small_limit: Service) -> None:
    def chunks():  # no Content-Length: the middleware counts what arrives
        for _ in range(100):
            yield b"a" * 10_000

    r = small_limit.client().post(
        "/api/v1/fhir/import", content=chunks(), headers=small_limit.auth("clinician")
    )
    assert r.status_code == 413
    # and the connection is closed: the server reads no more of it (it read on to the end)
    assert r.headers["connection"] == "close"


def test_every_route_that_takes_a_body_refuses_one_over_the_limit(small_limit: Service) -> None:
    """Each POST/PUT/PATCH route of the app, signed in (token or session), sent a body over the
    limit without a Content-Length: 413 from every one (the tests above try four of them)."""
    from fastapi.params import Form
    from starlette.routing import Route

    from cart_cytopenia.service.allow import routes_of

    svc = small_limit
    web = login(svc.client(), "ada")
    checked = []
    for prefix, route in routes_of(svc.app.router.routes):
        methods = (getattr(route, "methods", None) or set()) & {"POST", "PUT", "PATCH"}
        if not isinstance(route, Route) or not methods:
            continue
        path = prefix + "/".join(
            "1" if part.startswith("{") else part for part in route.path.split("/")
        )
        field = getattr(getattr(route, "body_field", None), "field_info", None)
        ctype = JSON if field is not None and not isinstance(field, Form) else FORM_TYPE
        if "/api/" in path or path.startswith("/cds-services"):
            client, headers = svc.client(), {**svc.auth("admin"), "Content-Type": ctype}
        else:  # (a form is read only when it is sent as one)
            client, headers = web, {"Content-Type": FORM_TYPE}
        for method in methods:
            body = (b"a" * 10_000 for _ in range(30))  # 300 kB, no Content-Length
            r = client.request(method, path, content=body, headers=headers)
            refused_unread = path.startswith(("/cds-services", "/smart")) and r.status_code in (
                401,
                404,
            )  # (CDS Hooks check the caller's JWT, SMART the launch, before reading)
            assert r.status_code == 413 or refused_unread, (method, path, r.status_code)
            checked.append(path)
    assert len(checked) > 25


def test_a_page_upload_over_the_limit_is_refused(small_limit: Service) -> None:
    svc = small_limit
    client = login(svc.client(), "cleo")
    r = _post_csv(svc, client, "big.csv", _csv(20_000))
    assert r.status_code == 413
    assert "larger than the limit" in r.text


def test_ids_beyond_64_bits_are_not_found(service: Service) -> None:
    api = service.client()
    for path in (
        f"/api/v1/courses/{TOO_BIG}",
        f"/api/v1/patients/{TOO_BIG}",
        f"/api/v1/courses/{TOO_BIG}/assessment",
        f"/api/v1/courses/{service.courses['wl-neutropenic']}/events/{TOO_BIG}",
    ):
        method = "DELETE" if "/events/" in path else "GET"
        r = api.request(method, path, headers=service.auth("admin"))
        assert r.status_code == 404, (path, r.text)
        assert r.json()["type"].endswith("#not-found")
    web = login(service.client(), "cleo")
    assert web.get(f"/patients/{TOO_BIG}").status_code == 404
    assert web.get(f"/patients/{-TOO_BIG}").status_code == 404


def test_days_beyond_the_bound_are_refused_not_a_server_error(service: Service) -> None:
    """A day more than MAX_DAY after the infusion is refused (422): a guidance action on day
    -3.8e18 (found by the contract test) and a patient page on day 99999999999 overflowed the
    grading engine (500); the API's other day parameters were bounded already."""
    from cart_cytopenia.service.limits import MAX_DAY

    api, cid = service.client(), service.courses["wl-neutropenic"]
    for day in (-(2**62), MAX_DAY + 1, 99_999_999_999):
        r = api.post(
            f"/api/v1/courses/{cid}/guidance/x/actions",
            json={"action": "dismissed", "reason": "test", "day": day},
            headers=service.auth("clinician"),
        )
        assert r.status_code == 422, (day, r.text)
    web = login(service.client(), "cleo")
    pid = service.patients["wl-neutropenic"]
    for path in (f"/patients/{pid}", f"/patients/{pid}/print"):
        assert web.get(path, params={"day": 99_999_999_999}).status_code == 422
        assert web.get(path, params={"day": MAX_DAY}).status_code == 200
        assert web.get(path, params={"day": -99_999_999_999}).status_code == 200  # (day 0)
    page = web.get(f"/patients/{pid}")
    r = web.post(
        f"/courses/{cid}/guidance/x/ack",
        data={"csrf_token": csrf_of(page.text), "day": str(99_999_999_999), "reason": "x"},
    )
    assert r.status_code == 422


def test_paging_offsets_beyond_the_database_integers_are_refused(service: Service) -> None:
    # found by the Schemathesis contract test: offset 1.7e27 overflowed SQLite's integer (500)
    api = service.client()
    for path in ("/api/v1/patients", "/api/v1/worklist"):
        r = api.get(path, params={"offset": TOO_BIG}, headers=service.auth("admin"))
        assert r.status_code == 422, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


def _audit_rows(svc: Service) -> list[tuple[str, str, str, str, str]]:
    from sqlalchemy import select

    from cart_cytopenia.store.models import AuditEvent

    with svc.db.session() as s:
        return [
            (e.username, e.action, e.resource, e.outcome, e.detail or "")
            for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]


def test_refusals_and_rejections_are_audited_without_data(service: Service) -> None:
    client = service.client()
    cid = service.courses["wl-neutropenic"]
    r = client.post(
        f"/api/v1/courses/{cid}/observations",
        json={"observations": [{"day": 3, "analyte": "anc", "value": 12345, "unit": "/uL"}]},
        headers=service.auth("read-only"),
    )
    assert r.status_code == 403
    r = client.post(
        f"/api/v1/courses/{cid}/observations",
        json={"observations": [{"day": 3, "analyte": "anc", "value": 987654, "unit": "mmHg"}]},
        headers=service.auth("clinician"),
    )
    assert r.status_code == 422
    web = login(service.client(), "rita")
    assert web.get(f"/courses/{cid}/labs/new").status_code == 403
    rows = _audit_rows(service)
    assert ("rita", "create", "observations", "forbidden",
            f"POST /api/v1/courses/{{course_id}}/observations course_id={cid}") in rows  # fmt: skip
    assert ("cleo", "create", "observations", "rejected",
            f"POST /api/v1/courses/{{course_id}}/observations course_id={cid}") in rows  # fmt: skip
    assert ("rita", "read", "new", "forbidden",
            f"GET /courses/{{course_id}}/labs/new course_id={cid}") in rows  # fmt: skip
    assert not [r for r in rows if "12345" in r[4] or "987654" in r[4] or "mmHg" in r[4]]


def test_one_worklist_view_writes_one_audit_entry(service: Service) -> None:
    web = login(service.client(), "rita")
    before = len(_audit_rows(service))
    page = web.get("/worklist?needs_action=1")
    assert page.status_code == 200
    rows = _audit_rows(service)[before:]
    assert [(r[1], r[2]) for r in rows] == [("read", "worklist")]
    assert "needs_action=yes" in rows[0][4] and "page 1" in rows[0][4]


def test_the_worklist_is_stored_paged_and_refreshed(tmp_path: Path) -> None:
    from cart_cytopenia.cli.serve_cmd import demo_courses
    from tests.service.conftest import TODAY

    svc = make_service(tmp_path)
    with svc.db.transaction() as s:
        repo.import_new_courses(
            s, [(c, "active") for c in demo_courses(40, 7, TODAY)[3:]], user="t", source="demo"
        )
    web = login(svc.client(), "rita")
    first = web.get("/worklist?per_page=25")
    # 42 active courses: 25 computed by the view, the rest left to the background refresher
    assert "being assessed for the first time" in first.text
    for _ in range(300):
        page = web.get("/worklist?per_page=25")
        if "worklist-refreshing" not in page.text:
            break
        time.sleep(0.2)
    assert "worklist-refreshing" not in page.text
    assert page.text.count("data-course=") == 25
    assert "Page 1 of 2" in page.text
    second = web.get("/worklist?per_page=25&page=2")
    assert second.text.count("data-course=") == 17
    api = svc.client().get("/api/v1/worklist?limit=10&offset=40", headers=svc.auth("read-only"))
    assert len(api.json()) == 2 and all(r["up_to_date"] for r in api.json())
    # a change to a course makes its row out of date; the next view computes it again
    cid = svc.courses["wl-neutropenic"]
    r = svc.client().post(
        f"/api/v1/courses/{cid}/observations",
        json={"observations": [{"day": 10, "analyte": "anc", "value": 2500, "unit": "/uL"}]},
        headers=svc.auth("clinician"),
    )
    assert r.status_code == 201
    rows = svc.client().get("/api/v1/worklist?limit=1000", headers=svc.auth("read-only")).json()
    assert next(r for r in rows if r["course_id"] == cid)["up_to_date"]
    from cart_cytopenia.store.models import WorklistEntry

    with svc.db.session() as s:
        entry = s.get(WorklistEntry, cid)
        assert entry is not None and entry.course_version == repo.get_course(s, cid).version
    svc.app.state.ctx.refresher.stop()  # type: ignore[attr-defined]
    svc.db.dispose()


def test_a_read_costs_two_thread_pool_calls_and_leaves_no_transaction_open(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Authentication and the route each run in one thread-pool call; the database session is
    opened and closed on the event loop without a call of its own (each extra call waits for
    the interpreter lock behind the threads that grade and render). Nothing stays open."""
    import anyio.to_thread

    calls: list[str] = []
    real = anyio.to_thread.run_sync

    async def counting(func, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    cid = service.courses["wl-neutropenic"]
    with service.client() as client:
        login(client, "rita")
        monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
        assert client.get("/worklist").status_code == 200
        assert len(calls) == 2, calls
        calls.clear()
        r = client.get(f"/api/v1/courses/{cid}/assessment", headers=service.auth("read-only"))
        assert r.status_code == 200 and len(calls) == 2, calls
    pool = service.db.engine.pool
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


def test_work_left_in_a_session_is_committed_in_a_thread(service: Service) -> None:
    """What a route leaves uncommitted (a route outside ``ServiceRoute``) is still committed
    at the end of the request, in the thread pool; a session with nothing left is closed."""
    from cart_cytopenia.service.deps import _holds_work
    from cart_cytopenia.store import audit

    with service.db.session() as s:
        assert not _holds_work(s)
        audit.record(s, username="x", action="read", resource="worklist")  # kept for the commit
        assert _holds_work(s)
    with service.db.session() as s:
        repo.count_patients(s)
        assert _holds_work(s)  # a transaction (and its connection) is open
        s.commit()
        assert not _holds_work(s)


def test_course_summaries_count_in_sql_without_loading_rows(service: Service) -> None:
    """Every course summary (patient list, a patient's courses, closing a course) counts the lab
    results and events with SQL `count`; closing a course loaded them all to count them."""
    from sqlalchemy import event

    cid, pid = service.courses["wl-neutropenic"], service.patients["wl-neutropenic"]
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        statements.append(" ".join(statement.lower().split()))

    api, h = service.client(), service.auth("clinician")
    expected = next(
        c for c in api.get(f"/api/v1/patients/{pid}/courses", headers=h).json() if c["id"] == cid
    )
    assert expected["n_observations"] > 0 and expected["n_events"] >= 0
    event.listen(service.db.engine, "before_cursor_execute", seen)
    try:
        r = api.post(f"/api/v1/courses/{cid}/status", json={"status": "closed"}, headers=h)
    finally:
        event.remove(service.db.engine, "before_cursor_execute", seen)
    assert r.status_code == 200, r.text
    assert (r.json()["n_observations"], r.json()["n_events"]) == (
        expected["n_observations"], expected["n_events"],
    )  # fmt: skip
    loads = [s for s in statements if "from observations" in s and "count(" not in s]
    loads += [s for s in statements if "from events" in s and "count(" not in s]
    assert loads == [], loads
