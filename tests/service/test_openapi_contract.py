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

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.service.conftest import Service, make_service

EXAMPLES = 8  # per operation: bounded, so that the test takes about a minute


@pytest.fixture(scope="module")
def contract_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = make_service(Path(tmp_path_factory.mktemp("contract")))
    yield svc
    svc.db.dispose()


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

        @given(case=operation.as_strategy())
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
        except BaseException as exc:  # every operation is tried; all failures are listed
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}: {str(exc).strip()[:1500]}")
    assert n > 25
    assert not failures, "\n\n".join(failures)


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
