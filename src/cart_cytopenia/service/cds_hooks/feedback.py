"""Feedback on cards (accepted / overridden) and the cards given out, which it refers to."""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class IssuedCard:
    service: str
    item: str
    patient: str
    suggestions: dict[str, str] = field(default_factory=dict)  # uuid -> label


@dataclass(frozen=True)
class FeedbackRecord:
    """One feedback entry, with what the card was about (no free text beyond the reason code)."""

    service: str
    card: str
    outcome: str
    outcome_timestamp: dt.datetime
    client: str
    item: str | None
    patient: str | None
    accepted: tuple[str, ...] = ()
    override_reason: str | None = None  # "system|code (display)"
    comment_given: bool = False


FeedbackSink = Callable[[FeedbackRecord], Awaitable[None] | None]


class IssuedCards:
    """Cards given out recently (uuid -> what they were about), bounded."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._items: OrderedDict[str, IssuedCard] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, card_uuid: str, info: IssuedCard) -> None:
        with self._lock:
            self._items[card_uuid] = info
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, card_uuid: str) -> IssuedCard | None:
        with self._lock:
            return self._items.get(card_uuid)


def store_feedback_sink(db: Any) -> FeedbackSink:
    """Feedback into the audit log of the store (``cart_cytopenia.store.audit``)."""
    from cart_cytopenia.store import audit
    from cart_cytopenia.store.courses import find_patient

    def sink(rec: FeedbackRecord) -> None:
        with db.session() as session:
            patient = find_patient(session, rec.patient) if rec.patient else None
            parts = [f"service {rec.service}", f"item {rec.item or 'unknown'}"]
            if rec.accepted:
                parts.append(f"accepted suggestions {len(rec.accepted)}")
            if rec.override_reason:
                parts.append(f"reason {rec.override_reason}")
            if rec.comment_given:
                parts.append("comment given (not stored)")
            parts.append(f"at {rec.outcome_timestamp.isoformat()}")
            audit.record(
                session,
                username=f"cds:{rec.client}"[:64],
                action="create",
                resource="cds-feedback",
                resource_id=rec.card,
                patient_id=patient.id if patient is not None else None,
                channel="cds-hooks",
                client=rec.client,
                outcome=rec.outcome,
                detail="; ".join(parts),
            )
            session.commit()

    return sink
