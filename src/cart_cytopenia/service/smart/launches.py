"""Launches waiting for their authorization, and the EHR patients opened, per process.

A pending launch is found by its ``state`` once, by the user who started it, within
``launch_minutes``; anything else (a wrong, replayed or stale ``state``, another user's) finds
nothing. An opened EHR patient is found by a random id (the only thing in its URL: no patient
data in URLs) and only by the user who opened it, within ``context_minutes``. Tokens stay here,
in the server's memory, never in the browser. Both are bounded (oldest dropped first).

Per process: with several processes behind a proxy, the launch and its callback must reach the
same one (docs/deployment.md, "One process or several").
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from cart_cytopenia.io.fhir_server_source import EhrCourse
from cart_cytopenia.service.smart.oauth import SmartConfiguration

MAX_ENTRIES = 2000


@dataclass(frozen=True)
class PendingLaunch:
    state: str
    code_verifier: str
    user_id: int
    flow: str  # "ehr" or "standalone"
    config: SmartConfiguration
    redirect_uri: str
    started: float = field(default_factory=time.monotonic)


@dataclass
class EhrPatient:
    """An EHR patient opened by a launch: the token, the context and the course last read."""

    id: str
    user_id: int
    config: SmartConfiguration
    token: dict[str, Any]
    patient_id: str
    fhir_user: str | None
    read: EhrCourse
    read_at: float  # time.time() of the last read
    opened: float = field(default_factory=time.monotonic)
    # one refresh and read at a time (a rotating refresh token is good for one refresh only)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


class _Bounded:
    def __init__(self) -> None:
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            while len(self._data) > MAX_ENTRIES:
                self._data.popitem(last=False)

    def get(self, key: str, pop: bool = False) -> Any:
        with self._lock:
            return self._data.pop(key, None) if pop else self._data.get(key)


class LaunchStore:
    """Pending launches by ``state`` and opened EHR patients by id (see module doc)."""

    def __init__(self, launch_seconds: float, context_seconds: float) -> None:
        self.launch_seconds = launch_seconds
        self.context_seconds = context_seconds
        self._pending = _Bounded()
        self._patients = _Bounded()

    def add_pending(self, launch: PendingLaunch) -> None:
        self._pending.put(launch.state, launch)

    def take_pending(self, state: str, user_id: int) -> PendingLaunch | None:
        """The launch of ``state`` (once only), if it is this user's and not stale."""
        launch: PendingLaunch | None = self._pending.get(state, pop=True)
        if launch is None or launch.user_id != user_id:
            return None
        if time.monotonic() - launch.started > self.launch_seconds:
            return None
        return launch

    def open(self, patient: EhrPatient) -> None:
        self._patients.put(patient.id, patient)

    def patient(self, context_id: str, user_id: int) -> EhrPatient | None:
        found: EhrPatient | None = self._patients.get(context_id)
        if found is None or found.user_id != user_id:
            return None
        if time.monotonic() - found.opened > self.context_seconds:
            self._patients.get(context_id, pop=True)
            return None
        return found


def new_context_id() -> str:
    return secrets.token_urlsafe(18)
