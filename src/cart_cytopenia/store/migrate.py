"""Run the Alembic migrations shipped inside the package (no alembic.ini needed).

``upgrade(db)`` brings the schema to the newest revision; ``current_revision(db)`` and
``head_revision()`` tell where a database stands; ``check_current(db)`` refuses to serve from a
database whose schema is behind (run ``cart-cytopenia db upgrade``).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from cart_cytopenia.errors import SettingsError
from cart_cytopenia.store.db import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    cfg = alembic_config(db)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(db: Database, revision: str) -> None:
    cfg = alembic_config(db)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_current(db: Database) -> None:
    current, head = current_revision(db), head_revision()
    if current != head:
        raise SettingsError(
            f"the database schema is at revision {current or 'none (empty database)'}, "
            f"this version needs {head}: run `cart-cytopenia db upgrade` first"
        )
