"""The OpenAPI document tells the truth: a Schemathesis contract test of every API operation.

For each operation Schemathesis generates requests from the document (valid ones and ones the
schema forbids, a bounded number of each) and checks the answers against it: no server error,
every status code and content type documented, bodies matching their schemas, invalid
requests refused. It runs as an administrator on a fresh SQLite store.

Not checked: that every schema-valid request is accepted (``positive_data_acceptance``). A
course, a lab result or a FHIR document can be valid JSON of the right shape and still be
refused with 422 for clinical reasons no JSON Schema can express (an implausible value for its
unit, a date after death, an unknown analyte); those checks are tested in tests/domain.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.service.conftest import Service, make_service

EXAMPLES = 8  # per operation: bounded, so that the test takes about a minute


@pytest.fixture(scope="module")
def contract_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = make_service(Path(tmp_path_factory.mktemp("contract")))
    yield svc
    svc.db.dispose()


def _failure(strategy: Any, headers: dict[str, str]) -> str | None:
    """What went wrong when the cases of ``strategy`` (a bounded number) were sent and their
    answers checked against the document; None when every one kept the contract (every
    operation is tried, all failures are listed at the end)."""

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    try:
        check()
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return str(exc).strip()[:1500]
    return None


def test_every_operation_keeps_its_documented_contract(contract_service: Service) -> None:
    api = schemathesis.openapi.from_asgi("/api/v1/openapi.json", contract_service.app)
    headers = contract_service.auth("admin")
    failures: list[str] = []
    n = 0
    for result in api.get_all_operations():
        operation = result.ok()
        if operation.path.startswith("/cds-services"):
            continue  # CDS Hooks: JWT-authenticated by the EHR, tested in tests/cds_hooks
        n += 1
        failure = _failure(operation.as_strategy(), headers)
        if failure:
            failures.append(f"{operation.label}: {failure}")
    assert n > 25
    assert not failures, "\n\n".join(failures)


def _stored_ids(svc: Service) -> dict[str, int]:
    from sqlalchemy import select

    from cart_cytopenia.store.models import EventRecord, Observation

    cid = svc.courses["wl-neutropenic"]
    with svc.db.session() as s:
        oid = s.scalars(select(Observation.id).where(Observation.course_id == cid)).first()
        eid = s.scalars(select(EventRecord.id).where(EventRecord.course_id == cid)).first()
    assert oid is not None and eid is not None
    return {
        "course_id": cid,
        "patient_id": svc.patients["wl-neutropenic"],
        "observation_id": oid,
        "event_id": eid,
    }


def test_stored_records_and_invalid_requests_keep_the_contract(tmp_path: Path) -> None:
    """The test above draws record ids at random, so every operation on a course, patient,
    observation or event answered 404 and no answer about a stored record was checked against
    its schema; and it sent only requests the document allows. Here each such operation is
    called on a stored record (deletions last), and every operation is also sent requests the
    document forbids (Schemathesis' negative mode), which must be refused with a documented
    error (this found a non-UTF-8 body answered 400, then undocumented)."""
    svc = make_service(tmp_path)
    api = schemathesis.openapi.from_asgi("/api/v1/openapi.json", svc.app)
    headers = svc.auth("admin")
    ids = _stored_ids(svc)
    operations = [r.ok() for r in api.get_all_operations()]
    operations = [op for op in operations if not op.path.startswith("/cds-services")]
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    failures: list[str] = []
    tried = {"stored": 0, "negative": 0}
    for op in operations:
        names = [p.name for p in op.path_parameters]
        stored = {k: ids[k] for k in names if k in ids}
        runs = [("negative", op.as_strategy(GenerationMode.NEGATIVE))]
        if stored:
            runs.insert(0, ("stored", op.as_strategy(path_parameters=stored)))
        if not names and not len(op.query) and not len(op.body):
            runs = runs[:-1]  # nothing to make invalid
        for kind, strategy in runs:
            tried[kind] += 1
            failure = _failure(strategy, headers)
            if failure:
                failures.append(f"{op.label} ({kind}): {failure}")
    assert tried["stored"] > 15 and tried["negative"] > 20, tried
    assert not failures, "\n\n".join(failures)
    svc.db.dispose()


def test_every_405_lists_every_method_of_its_path(contract_service: Service) -> None:
    """`Allow` names all the methods of the path (RFC 9110 15.5.6), as documented: it named only
    the first route's (`PATCH /api/v1/courses/1` answered `Allow: GET`, not GET, PUT, DELETE),
    and the pages' 405 had none."""
    svc = contract_service
    client = svc.client()
    doc = client.get("/api/v1/openapi.json", headers=svc.auth("admin")).json()
    checked = 0
    for template, operations in doc["paths"].items():
        if template.startswith("/cds-services"):
            continue
        documented = {m.upper() for m in operations} | ({"HEAD"} if "get" in operations else set())
        path = template.replace("{", "").replace("}", "")
        path = "/".join("1" if part.endswith("_id") else part for part in path.split("/"))
        unused = next(m for m in ("PATCH", "PUT", "DELETE", "POST") if m not in documented)
        r = client.request(unused, path, headers=svc.auth("admin"))
        assert r.status_code == 405, (unused, path, r.status_code)
        assert set(r.headers["allow"].split(", ")) == documented, (path, r.headers["allow"])
        assert r.headers["content-type"].startswith("application/problem+json")
        checked += 1
    assert checked > 20
    page = svc.client().delete("/worklist")
    assert page.status_code == 405 and page.headers["allow"] == "GET, HEAD, POST"
