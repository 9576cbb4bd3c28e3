"""Migrations shipped in the package build the schema the models describe, up and down."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from cart_cytopenia.errors import SettingsError
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.migrate import (
    check_current,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from cart_cytopenia.store.models import Base


def test_upgrade_creates_every_table(empty_db: Database) -> None:
    with pytest.raises(SettingsError, match="db upgrade"):
        check_current(empty_db)
    upgrade(empty_db)
    assert current_revision(empty_db) == head_revision()
    check_current(empty_db)
    tables = set(inspect(empty_db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_migrations_match_the_models(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_downgrade_to_base_and_up_again(db: Database) -> None:
    downgrade(db, "base")
    assert current_revision(db) is None
    assert "courses" not in inspect(db.engine).get_table_names()
    upgrade(db)
    assert current_revision(db) == head_revision()


def test_0003_marks_rows_stored_before_it_out_of_date(empty_db: Database) -> None:
    """Rows computed before the IEC-HS / TA-TMA columns existed are computed again."""
    from sqlalchemy import text

    upgrade(empty_db, "0002")
    with empty_db.engine.begin() as conn:
        conn.execute(text("INSERT INTO patients (id, pseudonym, created_at) VALUES (1, 'p', :t)"),
                     {"t": "2024-06-01 00:00:00"})  # fmt: skip
        conn.execute(text(
            "INSERT INTO courses (id, patient_id, status, infusion_date, product, disease, "
            "details, version, created_at, updated_at) VALUES (1, 1, 'active', '2024-05-01', "
            "'axi-cel', 'LBCL', '{}', 3, :t, :t)"), {"t": "2024-06-01 00:00:00"})  # fmt: skip
        conn.execute(text(
            "INSERT INTO worklist_entries (course_id, as_of, course_version, settings_key, "
            "refreshed_at, day, icaht_label, icaht_rank, ticaht_label, ticaht_rank, "
            "needs_action, top_urgency_rank, n_decisions, display) VALUES (1, '2024-06-01', 3, "
            "'k', :t, 31, '-', 0, '-', 0, false, 0, 0, '{}')"), {"t": "2024-06-01 00:00:00"})  # fmt: skip
    upgrade(empty_db)
    with empty_db.engine.connect() as conn:
        row = conn.execute(text("SELECT course_version, iechs_status, tatma_met "
                                "FROM worklist_entries")).one()  # fmt: skip
    assert tuple(row) == (-1, None, None)
