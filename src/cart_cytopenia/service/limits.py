"""Request limits that hold for every route: the size of a body and the range of record ids.

``BodyLimit`` (ASGI middleware) makes the first read of a body whose ``Content-Length`` is over
the limit fail before a byte is read, and stops reading a body sent without a length (chunked)
as soon as it passes the limit; the app's error handlers answer ``413`` (problem details on the
API, an error page otherwise). A route checks who is asking before it reads a form, so an
unauthenticated request is refused as such. The limit is ``MAX_UPLOAD_BYTES`` plus ``FORM_OVERHEAD`` for
the framing of a multipart form around a file of the largest allowed size.

``id_out_of_range`` tells that a record id in a path cannot exist (the database's ids are
signed 64-bit integers): such a request is answered ``404``, never a database error.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FORM_OVERHEAD = 64 * 1024
MAX_ID = 2**63 - 1
MAX_DAY = 3650  # ten years after the infusion: the last day a page, figure or action is about


def id_out_of_range(value: object) -> bool:
    return isinstance(value, int) and not -MAX_ID <= value <= MAX_ID


class BodyTooLarge(HTTPException):
    """413, and the connection closed after the answer (the server reads no more of a body
    that goes on arriving: without it, the rest was read and thrown away to its end)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than the limit of {limit:,} bytes; nothing was read",
            headers={"Connection": "close"},
        )


class BodyLimit:
    """Refuse request bodies larger than ``max_bytes`` (+ ``FORM_OVERHEAD``) with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limit = max_bytes + FORM_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        received = 0

        async def limited() -> Message:
            # a declared length over the limit: refused before a byte of the body is read
            if declared is not None and declared > self.limit:
                raise BodyTooLarge(self.max_bytes)
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
