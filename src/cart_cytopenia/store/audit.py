"""The audit log: every read and write of patient data, who did it, when, through what.

Entries name records by internal id (course 12, observation 345), never by content, so the
audit log itself holds no clinical values. Application logs hold no patient data at all.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session

from cart_cytopenia.store.models import AuditEvent

ACTIONS = ("read", "create", "update", "delete", "login", "logout", "login-failed", "export")


def record(
    session: Session,
    *,
    username: str,
    action: str,
    resource: str,
    user_id: int | None = None,
    resource_id: str | int | None = None,
    patient_id: int | None = None,
    channel: str = "web",
    client: str | None = None,
    outcome: str = "ok",
    detail: str | None = None,
) -> AuditEvent:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    ev = AuditEvent(
        user_id=user_id,
        username=username[:64],
        action=action,
        resource=resource[:64],
        resource_id=None if resource_id is None else str(resource_id)[:64],
        patient_id=patient_id,
        channel=channel[:16],
        client=(client or "")[:64] or None,
        outcome=outcome[:16],
        detail=(detail or "")[:255] or None,
    )
    # kept aside until the commit (``_write_pending``): on SQLite the INSERT takes the write
    # lock, which must not be held while the rest of the request grades or renders
    session.info.setdefault(_PENDING, []).append(ev)
    return ev


_PENDING = "cart_cytopenia_audit_pending"


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    """Audit entries of the transaction are written by its commit, in the same transaction."""
    pending = session.info.pop(_PENDING, None)
    if pending:
        session.add_all(pending)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, _previous: object) -> None:
    """A rolled-back transaction writes none of its audit entries (as before: all or none)."""
    session.info.pop(_PENDING, None)


def record_reads(
    session: Session,
    *,
    user_id: int,
    username: str,
    resource: str,
    ids: list[int],
    channel: str,
    client: str | None,
    detail: str,
) -> None:
    """One read entry per record (``ids`` are patient ids), in one statement."""
    if not ids:
        return
    rows = [
        {
            "user_id": user_id,
            "username": username[:64],
            "action": "read",
            "resource": resource[:64],
            "resource_id": str(i),
            "patient_id": i,
            "channel": channel[:16],
            "client": (client or "")[:64] or None,
            "outcome": "ok",
            "detail": detail[:255],
        }
        for i in ids
    ]
    session.execute(insert(AuditEvent), rows)


def entries(
    session: Session,
    *,
    limit: int = 200,
    patient_id: int | None = None,
    username: str | None = None,
    since: dt.datetime | None = None,
) -> list[AuditEvent]:
    stmt = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    if patient_id is not None:
        stmt = stmt.where(AuditEvent.patient_id == patient_id)
    if username is not None:
        stmt = stmt.where(AuditEvent.username == username)
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    return list(session.scalars(stmt))
