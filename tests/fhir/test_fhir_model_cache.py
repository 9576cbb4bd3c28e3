"""Validated models by content (io/fhir_import/reading.py ModelCache): same import, fewer validations."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.io.fhir import course_to_bundle
from cart_cytopenia.io.fhir_import import (
    FhirImport,
    ModelCache,
    import_resources,
    resources_from_json,
)
from tests.conftest import EXAMPLES
from tests.fhir.conftest import infusion, lab, lymphoma, patient, searchset


def _bundle() -> dict[str, Any]:
    path = EXAMPLES / "review-case-1.json"
    return course_to_bundle(parse_course(path.read_text(), source=str(path)))


def _import(doc: dict[str, Any], cache: ModelCache | None) -> FhirImport:
    return import_resources(list(resources_from_json(doc, "test")), cache)


def _same(a: FhirImport, b: FhirImport) -> None:
    assert [c.model_dump() for c in a.courses] == [c.model_dump() for c in b.courses]
    assert a.report() == b.report()


def test_cached_import_is_the_same_as_uncached_and_validates_each_resource_once() -> None:
    doc = _bundle()
    n = len(doc["entry"])
    cache = ModelCache(10_000)
    plain = _import(doc, None)
    first = _import(doc, cache)
    assert (cache.misses, cache.hits, len(cache)) == (n, 0, n)
    second = _import(copy.deepcopy(doc), cache)  # equal content, other objects
    assert (cache.misses, cache.hits) == (n, n)
    _same(plain, first)
    _same(plain, second)
    assert plain.courses and plain.courses[0].labs


def test_a_changed_resource_is_validated_again_and_its_new_value_used() -> None:
    doc = searchset(
        patient(), infusion(), lymphoma(), lab("o1", "751-8", 0.4, "10*9/L", "2024-01-15")
    )
    cache = ModelCache(100)
    before = _import(doc, cache).courses[0]
    misses = cache.misses
    doc["entry"][-1]["resource"]["valueQuantity"]["value"] = 1.7
    after = _import(doc, cache).courses[0]
    assert cache.misses == misses + 1  # only the changed Observation
    assert [lab.value for lab in before.labs] == [0.4]
    assert [lab.value for lab in after.labs] == [1.7]
    _same(_import(doc, None), _import(doc, cache))


def test_an_invalid_resource_gives_the_same_error_every_time_and_is_not_kept() -> None:
    bad = lab("o1", "751-8", 0.4, "10*9/L", "2024-01-15")
    bad["status"] = 42  # not a code
    doc = searchset(patient(), infusion(), lymphoma(), bad)
    plain = _import(doc, None)
    cache = ModelCache(100)
    first = _import(doc, cache)
    second = _import(doc, cache)
    reasons = [u.reason for u in plain.unmapped if u.resource == "Observation/o1"]
    assert reasons and reasons[0].startswith("not valid FHIR Observation")
    for result in (first, second):
        assert [u.reason for u in result.unmapped if u.resource == "Observation/o1"] == reasons
    assert len(cache) == 3  # Patient, Procedure, Condition: not the invalid Observation
    assert cache.misses == 3


def test_the_cache_is_bounded_and_drops_the_least_recently_used() -> None:
    doc = _bundle()
    cache = ModelCache(5)
    _import(doc, cache)
    assert len(cache) == 5
    # the five kept are the last five validated: importing them again hits
    tail = {**doc, "entry": doc["entry"][-5:]}
    hits = cache.hits
    _import(tail, cache)
    assert cache.hits == hits + 5
    with pytest.raises(ValueError, match="at least one"):
        ModelCache(0)


def test_import_does_not_change_the_shared_models() -> None:
    cache = ModelCache(10_000)
    doc = _bundle()
    _import(doc, cache)
    dumps = [json.dumps(m.model_dump(mode="json"), sort_keys=True) for m in cache._items.values()]
    _import(doc, cache)
    after = [json.dumps(m.model_dump(mode="json"), sort_keys=True) for m in cache._items.values()]
    assert dumps == after


def test_key_depends_on_every_value_and_on_types() -> None:
    base = {"resourceType": "Observation", "id": "o", "valueQuantity": {"value": 1}}
    keys = {
        ModelCache.key(base),
        ModelCache.key({**base, "valueQuantity": {"value": 1.0}}),
        ModelCache.key({**base, "valueQuantity": {"value": 2}}),
        ModelCache.key({**base, "id": "p"}),
    }
    assert len(keys) == 4 and None not in keys
    assert ModelCache.key(copy.deepcopy(base)) == ModelCache.key(base)
    assert ModelCache.key({"x": object()}) is None  # not JSON data: validated without the cache
