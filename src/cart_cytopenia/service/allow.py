"""The ``Allow`` header of a ``405 Method Not Allowed`` answer: every method the path takes.

RFC 9110 (section 15.5.6) requires it to list the target's methods. Starlette names only those of
the first route whose path matched, and FastAPI registers one route per method, so
``PATCH /api/v1/courses/1`` answered ``Allow: GET`` although the path takes GET, PUT and DELETE
too, and the pages answered with no ``Allow`` at all. Here every route of the app (and of the
routers it includes) whose path matches is asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from starlette.requests import Request


def routes_of(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every route, with the prefix of the routers that include it (FastAPI's included
    routers are searched too)."""
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included router
        if included is not None:
            extra = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            yield from routes_of(included.routes, prefix + extra)
        else:
            yield prefix, route


def allowed_methods(request: Request) -> str:
    """The methods the request's path takes, for the ``Allow`` header (HEAD with GET)."""
    path = request.scope["path"]
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    methods: set[str] = set()
    for prefix, route in routes_of(request.app.router.routes):
        regex, taken = getattr(route, "path_regex", None), getattr(route, "methods", None)
        within = path.startswith(prefix)
        if regex is not None and taken and within and regex.match(path[len(prefix) :]):
            methods |= set(taken)
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))
