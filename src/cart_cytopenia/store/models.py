"""SQLAlchemy 2 models of the patient store.

One table per thing a clinician works with: a patient (pseudonymous id only), a CAR-T course of
that patient (the course document minus its labs and events, plus a ``version`` used for
optimistic locking), the course's observations (labs) and events, and the acknowledgements /
dismissals of guidance items. Accounts (users, web sessions, API tokens, login attempts) and the
audit log live beside them.

Timestamps are stored in UTC. The schema is created and changed only by the Alembic migrations
shipped in ``cart_cytopenia/store/migrations`` (``cart-cytopenia db upgrade``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("admin", "clinician", "read-only")
COURSE_STATUSES = ("active", "closed")
GUIDANCE_ACTIONS = ("acknowledged", "dismissed")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# --------------------------------------------------------------------------- accounts


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class ApiToken(Base):
    """An API token. Only its SHA-256 hash is stored; the token is shown once at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship(back_populates="tokens")


class WebSession(Base):
    """A signed-in browser. The cookie carries a random token; only its hash is stored."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class LoginAttempt(Base):
    """Failed and successful logins, for the login rate limit (no passwords, no patient data)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_username_at", "username", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    success: Mapped[bool] = mapped_column(Boolean)


# --------------------------------------------------------------------------- patients


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    courses: Mapped[list[CourseRecord]] = relationship(
        back_populates="patient", order_by="CourseRecord.infusion_date"
    )


class CourseRecord(Base):
    """One CAR-T course: the course document without labs/events (``details``), versioned."""

    __tablename__ = "courses"
    __table_args__ = (
        UniqueConstraint("patient_id", "infusion_date"),
        # the worklist's change stamp and product list read these alone (covering indexes)
        Index("ix_courses_stamp", "updated_at", "version"),
        Index("ix_courses_status_product", "status", "product"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    infusion_date: Mapped[dt.date] = mapped_column(Date)
    product: Mapped[str] = mapped_column(String(64))
    disease: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64), nullable=True)

    patient: Mapped[Patient] = relationship(back_populates="courses")
    observations: Mapped[list[Observation]] = relationship(
        back_populates="course",
        cascade="all, delete-orphan",
        order_by="(Observation.day, Observation.id)",
    )
    events: Mapped[list[EventRecord]] = relationship(
        back_populates="course",
        cascade="all, delete-orphan",
        order_by="(EventRecord.start_day, EventRecord.id)",
    )
    guidance_actions: Mapped[list[GuidanceAction]] = relationship(
        back_populates="course", cascade="all, delete-orphan", order_by="GuidanceAction.id"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Observation(Base):
    """One laboratory result as entered (value and unit as given; ``day`` resolved)."""

    __tablename__ = "observations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    day: Mapped[int] = mapped_column(Integer)
    analyte: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(32))
    comparator: Mapped[str | None] = mapped_column(String(2), nullable=True)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)

    course: Mapped[CourseRecord] = relationship(back_populates="observations")


class EventRecord(Base):
    """One course event (CRS, medication, transfusion ...) as its validated JSON form."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    start_day: Mapped[int] = mapped_column(Integer)
    end_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)

    course: Mapped[CourseRecord] = relationship(back_populates="events")


class GuidanceAction(Base):
    """A clinician's acknowledgement or dismissal of a guidance item, with the reason."""

    __tablename__ = "guidance_actions"
    __table_args__ = (Index("ix_guidance_actions_course_item", "course_id", "item_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String(128))
    day: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    urgency: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    username: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    course: Mapped[CourseRecord] = relationship(back_populates="guidance_actions")


# --------------------------------------------------------------------------- audit


class AuditEvent(Base):
    """Who read or wrote what, when. Identifies records by internal id, never by content."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_patient", "patient_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    resource: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    patient_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    channel: Mapped[str] = mapped_column(String(16))
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    detail: Mapped[str | None] = mapped_column(String(255), nullable=True)


# --------------------------------------------------------------------------- worklist


class WorklistEntry(Base):
    """One active course as the worklist shows it, computed from its grades and guidance.

    Stored so that a worklist view reads rows instead of grading every course: refreshed when
    the course changes (``course_version``), when guidance is acknowledged (``course_version``
    set to -1), at the daily rollover (``as_of``) and when the clinical settings change
    (``settings_key``). The sort and filter columns are plain columns; what is only displayed
    is in ``display``. ``error`` says why a stored course cannot be assessed under the rules.
    """

    __tablename__ = "worklist_entries"
    __table_args__ = (
        Index("ix_worklist_entries_sort", "top_urgency_rank", "n_decisions", "day"),
        Index("ix_worklist_entries_flags", "iechs_rank", "tatma_met"),
        Index("ix_worklist_entries_stamp", "refreshed_at", "course_version"),
    )

    course_id: Mapped[int] = mapped_column(
        ForeignKey("courses.id", ondelete="CASCADE"), primary_key=True
    )
    as_of: Mapped[dt.date] = mapped_column(Date)
    course_version: Mapped[int] = mapped_column(Integer)
    settings_key: Mapped[str] = mapped_column(String(32))
    refreshed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    day: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str | None] = mapped_column(String(64), nullable=True)
    phenotype: Mapped[str | None] = mapped_column(String(64), nullable=True)
    icaht_label: Mapped[str] = mapped_column(String(32))
    icaht_rank: Mapped[int] = mapped_column(Integer)
    ticaht_label: Mapped[str] = mapped_column(String(32))
    ticaht_rank: Mapped[int] = mapped_column(Integer)
    anc: Mapped[float | None] = mapped_column(Float, nullable=True)
    platelets: Mapped[float | None] = mapped_column(Float, nullable=True)
    hb: Mapped[float | None] = mapped_column(Float, nullable=True)
    needs_action: Mapped[bool] = mapped_column(Boolean, index=True)
    top_urgency_rank: Mapped[int] = mapped_column(Integer)
    n_decisions: Mapped[int] = mapped_column(Integer)
    # IEC-HS by the ASTCT criteria: met / suspected / not met / not assessable, its order
    # (3..0, for sorting and filtering) and the guidance level it sets (high, possible)
    iechs_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    iechs_rank: Mapped[int | None] = mapped_column(Integer, nullable=True)
    iechs_level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # TA-TMA harmonised criteria: meets / not met / work-up incomplete / not evaluated, k of 7
    # met, m assessable (at the best time point)
    tatma_status: Mapped[str | None] = mapped_column(String(24), nullable=True)
    tatma_met: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tatma_assessable: Mapped[int | None] = mapped_column(Integer, nullable=True)
    display: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class AssessmentAnswer(Base):
    """A course's assessment answer for today's day, kept serialised with its worklist row.

    The JSON body of ``GET /api/v1/courses/{id}/assessment`` without the course's and
    patient's ids (a bulk load computes it before they exist; ``service.answers`` puts them
    back), zlib-compressed. It answers a request only while everything it was computed from is
    unchanged: the course's ``version``, its guidance actions (their number and the last id:
    actions are only added), the day shown, the date (``as_of``) and the clinical settings
    (``settings_key``). Written beside the worklist row (``service.worklist.compute_entries``),
    so a rollover or a settings change recomputes both.
    """

    __tablename__ = "assessment_answers"

    course_id: Mapped[int] = mapped_column(
        ForeignKey("courses.id", ondelete="CASCADE"), primary_key=True
    )
    course_version: Mapped[int] = mapped_column(Integer)
    n_actions: Mapped[int] = mapped_column(Integer)
    last_action: Mapped[int] = mapped_column(Integer)
    day: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[dt.date] = mapped_column(Date)
    settings_key: Mapped[str] = mapped_column(String(32))
    body: Mapped[bytes] = mapped_column(LargeBinary)
