"""worklist entries: IEC-HS and TA-TMA columns (issue 12), covering indexes for the view (15)

IEC-HS by the ASTCT criteria (status, its order for sorting and filtering, the guidance level
it sets) and the TA-TMA harmonised criteria (status, criteria met and assessable of 7). Rows
stored before are marked out of date, so that the refresher computes them again with these.
Indexes that answer a worklist view's change stamp and product list without reading the rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 16:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = (
    ("iechs_status", sa.String(length=16)),
    ("iechs_rank", sa.Integer()),
    ("iechs_level", sa.String(length=16)),
    ("tatma_status", sa.String(length=24)),
    ("tatma_met", sa.Integer()),
    ("tatma_assessable", sa.Integer()),
)


def upgrade() -> None:
    with op.batch_alter_table("worklist_entries", schema=None) as batch_op:
        for name, kind in COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))
        batch_op.create_index("ix_worklist_entries_flags", ["iechs_rank", "tatma_met"])
        batch_op.create_index("ix_worklist_entries_stamp", ["refreshed_at", "course_version"])
    op.create_index("ix_courses_stamp", "courses", ["updated_at", "version"])
    op.create_index("ix_courses_status_product", "courses", ["status", "product"])
    op.execute("UPDATE worklist_entries SET course_version = -1")


def downgrade() -> None:
    op.drop_index("ix_courses_status_product", table_name="courses")
    op.drop_index("ix_courses_stamp", table_name="courses")
    with op.batch_alter_table("worklist_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_worklist_entries_stamp")
        batch_op.drop_index("ix_worklist_entries_flags")
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
