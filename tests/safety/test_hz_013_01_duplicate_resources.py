"""HZ-013-01: a transfusion sent twice in an EHR export must not be counted twice."""

from __future__ import annotations

import pytest

from cart_cytopenia.errors import ConflictError
from tests.fhir.test_fhir_third_party import (
    _import,
    _platelet_dependence,
    base_resources,
    platelet_transfusion,
    transaction,
)


def test_one_transfusion_sent_twice_is_not_transfusion_dependence() -> None:
    doc = transaction(*base_resources(), platelet_transfusion("tx-1", "2024-01-25"))
    doc["entry"].append(dict(doc["entry"][-1]))
    assert _platelet_dependence(_import(doc)) is False


def test_two_different_transfusions_are_transfusion_dependence() -> None:
    doc = transaction(
        *base_resources(),
        platelet_transfusion("tx-1", "2024-01-25"),
        platelet_transfusion("tx-2", "2024-01-29"),
    )
    assert _platelet_dependence(_import(doc)) is True


def test_two_versions_of_one_transfusion_are_refused_not_guessed() -> None:
    tx = platelet_transfusion("tx-1", "2024-01-25")
    doc = transaction(*base_resources(), tx)
    doc["entry"].append({"resource": {**tx, "performedDateTime": "2024-01-29"}})
    with pytest.raises(ConflictError):
        _import(doc)
