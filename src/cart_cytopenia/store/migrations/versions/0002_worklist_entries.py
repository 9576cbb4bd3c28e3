"""worklist entries: one stored row per active course (issue 15: the worklist scales)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 10:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worklist_entries",
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("course_version", sa.Integer(), nullable=False),
        sa.Column("settings_key", sa.String(length=32), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=64), nullable=True),
        sa.Column("phenotype", sa.String(length=64), nullable=True),
        sa.Column("icaht_label", sa.String(length=32), nullable=False),
        sa.Column("icaht_rank", sa.Integer(), nullable=False),
        sa.Column("ticaht_label", sa.String(length=32), nullable=False),
        sa.Column("ticaht_rank", sa.Integer(), nullable=False),
        sa.Column("anc", sa.Float(), nullable=True),
        sa.Column("platelets", sa.Float(), nullable=True),
        sa.Column("hb", sa.Float(), nullable=True),
        sa.Column("needs_action", sa.Boolean(), nullable=False),
        sa.Column("top_urgency_rank", sa.Integer(), nullable=False),
        sa.Column("n_decisions", sa.Integer(), nullable=False),
        sa.Column("display", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_worklist_entries_course_id_courses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("course_id", name=op.f("pk_worklist_entries")),
    )
    with op.batch_alter_table("worklist_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_worklist_entries_sort", ["top_urgency_rank", "n_decisions", "day"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_worklist_entries_needs_action"), ["needs_action"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("worklist_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worklist_entries_needs_action"))
        batch_op.drop_index("ix_worklist_entries_sort")
    op.drop_table("worklist_entries")
