"""Kept worklist views stay within their bounds in views and in rows (API views hold up to 1,000
rows each), least recently used dropped first."""

from __future__ import annotations

from typing import Any

from cart_cytopenia.service.worklist import ViewCache


def _view(n: int) -> dict[str, Any]:
    return {"rows": [object()] * n}


def test_views_are_bounded_in_number_and_in_rows() -> None:
    cache = ViewCache(size=3, max_rows=1000)
    for k in "abc":
        cache.put((k,), _view(300))
    assert cache.rows == 900 and cache.get(("a",)) is not None  # "a" now most recent
    cache.put(("d",), _view(300))  # 1,200 rows: the least recent ("b") goes
    assert cache.get(("b",)) is None and cache.rows == 900
    cache.put(("e",), _view(10))  # four views: one more goes ("c")
    assert cache.get(("c",)) is None and cache.get(("a",)) is not None
    cache.put(("a",), _view(50))  # replacing a view counts its rows once
    assert cache.rows == 360
    cache.put(("big",), _view(1001))  # larger than the budget: not kept
    assert cache.get(("big",)) is None and cache.rows == 360
