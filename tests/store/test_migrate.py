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
