"""assessment answers: each active course's answer for today kept with its worklist row (issue 15)

The serialised body of ``GET /api/v1/courses/{id}/assessment`` for today's day (zlib, without
the ids), with what it was computed from, so that asking for a course's assessment reads one row
instead of grading the course. On PostgreSQL the body is stored without TOAST compression
(``STORAGE EXTERNAL``): it is compressed already.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assessment_answers",
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("course_version", sa.Integer(), nullable=False),
        sa.Column("n_actions", sa.Integer(), nullable=False),
        sa.Column("last_action", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("settings_key", sa.String(length=32), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_assessment_answers_course_id_courses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("course_id", name=op.f("pk_assessment_answers")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE assessment_answers ALTER COLUMN body SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("assessment_answers")
