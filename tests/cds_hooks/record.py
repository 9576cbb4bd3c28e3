"""Re-record the example requests and responses in tests/cds_hooks/examples.

    .venv/bin/python -m tests.cds_hooks.record

Requests are spec-shaped CDS Hooks 2.0 calls whose prefetch is built from the review cases
(examples/review-case-*.json, as known on the chosen day) by the FHIR generator; responses are
what the service answers (card uuids replaced by a placeholder). Review the diff before
committing: a changed response means changed cards.
"""

from __future__ import annotations

import json
from typing import Any

from tests.cds_hooks.cases import CASES, ORDER_CASES, respond
from tests.cds_hooks.conftest import EXAMPLES_DIR, make_harness


def _write(name: str, doc: Any) -> None:
    compact = name.endswith(".request.json")
    text = json.dumps(
        doc,
        ensure_ascii=False,
        indent=None if compact else 2,
        separators=(",", ":") if compact else None,
    )
    (EXAMPLES_DIR / name).write_text(text + "\n", encoding="utf-8")


def main() -> None:
    import datetime as dt

    h = make_harness(dt.date(2024, 1, 1))
    _write(
        "discovery.response.json",
        h.client.get("/cds-services", headers=h.ehr.auth("/cds-services")).json(),
    )
    for case in [*CASES, *ORDER_CASES]:
        request = case.request()
        _write(f"{case.name}.request.json", request)
        _write(f"{case.name}.response.json", respond(case, request, mask_uuids=True))


if __name__ == "__main__":
    main()
