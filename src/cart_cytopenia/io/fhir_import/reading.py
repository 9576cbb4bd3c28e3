"""Reading FHIR documents: Bundles (nested too) and bulk NDJSON as raw resources, and the
cache of validated models by content."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

from cart_cytopenia.errors import ParseError

# --------------------------------------------------------------------------- reading documents


@dataclass
class RawResource:
    data: dict[str, Any]
    where: str
    full_url: str | None = None


def resources_from_json(doc: Any, where: str) -> Iterator[RawResource]:
    """Resources of a parsed JSON document: a Bundle (flattened, nested too) or one resource."""
    if not isinstance(doc, dict) or "resourceType" not in doc:
        raise ParseError(f"{where}: not a FHIR resource (no resourceType); expected a Bundle")
    if doc["resourceType"] != "Bundle":
        yield RawResource(doc, where)
        return
    btype = doc.get("type")
    if btype not in ("transaction", "batch", "collection", "searchset", "document"):
        raise ParseError(
            f"{where}: Bundle type {btype!r} is not imported; use a transaction, batch, "
            "collection or searchset Bundle (or bulk NDJSON)"
        )
    entries = doc.get("entry") or []
    if not isinstance(entries, list):
        raise ParseError(f"{where}: Bundle.entry must be a list")
    for i, e in enumerate(entries):
        loc = f"{where} entry[{i}]"
        if not isinstance(e, dict):
            raise ParseError(f"{loc}: a Bundle entry must be an object")
        request, url = e.get("request"), e.get("fullUrl")
        if not isinstance(request, dict | None) or not isinstance(url, str | None):
            raise ParseError(f"{loc}: a Bundle entry's request is an object, its fullUrl a text")
        if (request or {}).get("method") == "DELETE":
            yield RawResource({"resourceType": "_delete"}, loc, url)
            continue
        res = e.get("resource")
        if res is None:
            yield RawResource({"resourceType": "_empty"}, loc, url)
            continue
        if not isinstance(res, dict):
            raise ParseError(f"{loc}: a Bundle entry's resource must be an object")
        if res.get("resourceType") == "Bundle":
            yield from resources_from_json(res, loc)
            continue
        yield RawResource(res, loc, url)


def resources_from_text(text: str | bytes, source: str) -> list[RawResource]:
    """Resources from JSON text (a Bundle or a resource) or NDJSON (one resource a line)."""
    try:
        return _resources_from_text(text, source)
    except RecursionError:  # (JSON nested thousands deep: no FHIR resource is)
        raise ParseError(f"{source}: the JSON is nested too deeply to be FHIR") from None


def _resources_from_text(text: str | bytes, source: str) -> list[RawResource]:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError(f"{source} is not UTF-8 text (expected FHIR JSON or NDJSON)") from None
    stripped = text.lstrip("\ufeff").strip()
    if not stripped:
        raise ParseError(f"{source} is empty")
    if stripped.startswith("<"):
        raise ParseError(
            f"{source} looks like XML (FHIR XML?): cart-cytopenia reads FHIR JSON (a Bundle or a "
            "resource) or bulk NDJSON, not FHIR XML; convert it to FHIR JSON first (a FHIR server "
            "answers in JSON when asked with _format=json or Accept: application/fhir+json)"
        )
    try:
        doc = json.loads(stripped)
    except json.JSONDecodeError as first:
        # NDJSON: one resource a line
        out: list[RawResource] = []
        for n, line in enumerate(stripped.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                if n == 1:
                    raise ParseError(
                        f"{source} is neither JSON nor NDJSON: {first.msg} (line {first.lineno})"
                    ) from None
                raise ParseError(f"{source} line {n} is not valid JSON: {exc.msg}") from None
            out.extend(resources_from_json(item, f"{source} line {n}"))
        return out
    return list(resources_from_json(doc, source))


# --------------------------------------------------------------------------- validated models by content


class ModelCache:
    """Validated ``fhir.resources`` models by content: a bounded, thread-safe LRU.

    The key is a SHA-256 of the resource's JSON serialisation (key order included), so the same
    resource sent again (a chart opened again after one new lab result) is validated once and
    a changed resource (any value, any key) is validated afresh. Only resources that validate
    are kept: an invalid one is validated, and reported, every time. The models are shared
    between imports and must be treated as read-only (the importer never changes them). Each
    entry holds about 5 KB (a lab Observation); ``max_entries`` bounds the memory.
    """

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("a ModelCache holds at least one entry")
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[bytes, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @staticmethod
    def key(data: dict[str, Any]) -> bytes | None:
        """The content key of a resource (None when it is not plain JSON data)."""
        try:
            return hashlib.sha256(to_json(data)).digest()
        except (PydanticSerializationError, TypeError, ValueError):
            return None

    def validate(self, cls: Any, data: dict[str, Any]) -> Any:
        """``cls.model_validate(data)``, answered from memory for content seen before."""
        key = self.key(data)
        if key is None:
            return cls.model_validate(data)
        with self._lock:
            model = self._items.get(key)
            if model is not None and type(model) is cls:
                self._items.move_to_end(key)
                self.hits += 1
                return model
        model = cls.model_validate(data)  # raises ValidationError: nothing is kept
        with self._lock:
            self.misses += 1
            self._items[key] = model
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return model


def ref_key(rt: str, rid: str) -> str:
    return f"{rt}/{rid}"
