"""Serialised answers kept in memory, so that asking again for a course that has not changed
costs one small query instead of loading, grading and serialising the course.

An answer (the JSON body of ``GET /api/v1/courses/{id}/assessment``) is keyed by everything it
depends on: the course's id and version (which change with every edit), its guidance actions
(count and last id: actions are only added), the day asked for, today's date and the clinical
settings in force. A changed course therefore never gets an old answer: its key is new. Bodies
are kept compressed (zlib), least recently used dropped first, within ``max_bytes``
(``answer_cache_bytes``; 64 MB holds about 20,000 typical assessments).
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Hashable


class AnswerCache:
    """Compressed response bodies by key, bounded in bytes (thread-safe)."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            packed = self._data.get(key)
            if packed is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
        return zlib.decompress(packed)

    def put(self, key: Hashable, body: bytes) -> None:
        packed = zlib.compress(body, 1)
        if len(packed) > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            self._bytes += len(packed) - (len(old) if old is not None else 0)
            self._data[key] = packed
            while self._bytes > self.max_bytes:
                _, dropped = self._data.popitem(last=False)
                self._bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        return self._bytes
