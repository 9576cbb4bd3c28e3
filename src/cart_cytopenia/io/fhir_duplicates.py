"""Duplicate FHIR resources: the same resource given twice is read once.

A resource is the same resource when it has the same type and id, or the same ``fullUrl``,
whether the copies are in one Bundle, in nested Bundles or in several NDJSON files of one export
(a bulk export split over files, a prefetch whose searches overlap). Counting it twice changes
results: one platelet transfusion sent twice is two transfusions and can make a patient
"transfusion-dependent". So:

- **exact duplicates** (the same content; ``meta`` is not compared) are merged: the first copy is
  read, every other copy is reported (``Unmapped``, "duplicate ... read once");
- **different versions** of one resource: when every copy has ``meta.lastUpdated`` and one is
  the latest, that one is read and the choice is reported as a warning (FHIR's
  ``meta.lastUpdated`` is when the server last changed the resource, so the latest is the
  current version); otherwise nothing says which is right and the import is refused
  (``ConflictError``) naming each resource and where its copies are.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cart_cytopenia.errors import ConflictError, Location, Problem


@dataclass
class _Copies:
    ref: str
    first: Any  # RawResource: the copy kept in place
    extra: list[Any] = field(default_factory=list)  # the later copies (raws)

    def versions(self) -> dict[str, Any]:
        """Content (without ``meta``) -> the first copy with it; computed only for resources
        given more than once, so a chart without duplicates costs no serialisation."""
        out: dict[str, Any] = {}
        for raw in (self.first, *self.extra):
            out.setdefault(_content(raw.data), raw)
        return out


@dataclass
class Deduplicated:
    """Resources with every duplicate removed, and what was removed or chosen (for the report)."""

    raws: list[Any]
    merged: list[tuple[str, str, str]] = field(default_factory=list)  # (ref, where, first where)
    chosen: list[tuple[str, str]] = field(default_factory=list)  # (ref, message)


def _content(data: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in data.items() if k != "meta"}, sort_keys=True)


def _last_updated(raw: Any) -> dt.datetime | None:
    meta = raw.data.get("meta")
    value = meta.get("lastUpdated") if isinstance(meta, dict) else None
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _identity(raw: Any) -> tuple[str | None, str | None]:
    rt, rid = raw.data.get("resourceType"), raw.data.get("id")
    ref = f"{rt}/{rid}" if isinstance(rt, str) and isinstance(rid, str) and rid else None
    url = raw.full_url if raw.full_url and not raw.full_url.startswith("#") else None
    return ref, url


def _latest(versions: dict[str, Any]) -> Any | None:
    """The version with the latest meta.lastUpdated, when every one has one and it is unique."""
    dated = [(_last_updated(r), r) for r in versions.values()]
    if any(when is None for when, _r in dated):
        return None
    dated.sort(key=lambda x: x[0])  # type: ignore[arg-type, return-value]
    if len(dated) > 1 and dated[-1][0] == dated[-2][0]:
        return None
    return dated[-1][1]


def deduplicate(raws: Iterable[Any]) -> Deduplicated:
    """``raws`` (RawResource) with duplicates merged; raises ConflictError for conflicting
    versions of one resource that ``meta.lastUpdated`` cannot order."""
    out: list[Any] = []
    groups: dict[str, _Copies] = {}
    by_url: dict[str, str] = {}
    for raw in raws:
        ref, url = _identity(raw)
        key = ref or (by_url.get(url) if url else None) or url
        if key is None or str(raw.data.get("resourceType") or "").startswith("_"):
            out.append(raw)
            continue
        if url is not None and ref is not None and url in by_url and by_url[url] != ref:
            key = by_url[url]
        group = groups.get(key)
        if group is None:
            groups[key] = _Copies(key, raw)
            if url is not None:
                by_url.setdefault(url, key)
            out.append(raw)
            continue
        group.extra.append(raw)
    return _resolve(out, groups)


def _resolve(out: list[Any], groups: dict[str, _Copies]) -> Deduplicated:
    result = Deduplicated(out)
    conflicts: list[Problem] = []
    for g in groups.values():
        if not g.extra:
            continue
        versions = g.versions()
        if len(versions) == 1:
            result.merged += [(g.ref, r.where, g.first.where) for r in g.extra]
            continue
        latest = _latest(versions)
        wheres = ", ".join([g.first.where, *(r.where for r in g.extra)])
        if latest is None:
            conflicts.append(
                Problem(
                    f"{g.ref} is given {len(g.extra) + 1} times with different content "
                    f"({wheres}) and meta.lastUpdated does not tell which version is current",
                    Location(source=g.first.where, field=g.ref),
                    "ConflictError",
                )
            )
            continue
        index = next(i for i, r in enumerate(result.raws) if r is g.first)
        result.raws[index] = latest
        result.chosen.append(
            (
                g.ref,
                f"given {len(g.extra) + 1} times with different content ({wheres}): the version "
                f"last updated {latest.data['meta']['lastUpdated']} ({latest.where}) is used",
            )
        )
    if conflicts:
        raise ConflictError(
            f"{len(conflicts)} resource(s) are given in conflicting versions; nothing was "
            "imported. Send one version of each resource (or versions with meta.lastUpdated)",
            conflicts,
        )
    return result


__all__ = ["Deduplicated", "deduplicate"]
