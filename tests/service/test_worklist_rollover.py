"""The daily rollover: every stored row is a day old at once; the refresher brings them up to
date in a worker process (not in the server's interpreter), and the rows it writes are the
ones the server would compute itself."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from cart_cytopenia.cli.serve_cmd import demo_documents
from cart_cytopenia.rules.settings import Settings
from cart_cytopenia.service import bulk_load as bulk
from cart_cytopenia.service.worklist import BATCH, WorklistRefresher, WorklistSource, settings_key
from cart_cytopenia.store import worklist as rows
from cart_cytopenia.store.db import Database, PoolOptions
from cart_cytopenia.store.migrate import upgrade
from cart_cytopenia.store.models import AssessmentAnswer, WorklistEntry

TODAY = dt.date(2024, 6, 1)
TOMORROW = TODAY + dt.timedelta(days=1)


def _store(path: Path) -> Database:
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    job = bulk.load_job(Settings(), TODAY, "demo-loader", "demo")
    bulk.bulk_load(db, [demo_documents(BATCH + 10, 3, TODAY)], job, workers=1)
    return db


def _entries(db: Database) -> dict[int, tuple[object, ...]]:
    """Each course's worklist row and kept assessment answer."""
    with db.session() as s:
        kept = {a.course_id: (a.as_of, a.day, a.body) for a in s.query(AssessmentAnswer)}
        return {
            e.course_id: (e.as_of, e.day, e.icaht_label, e.needs_action, e.n_decisions,
                          e.iechs_status, e.tatma_met, e.display, kept.get(e.course_id))
            for e in s.query(WorklistEntry)
        }  # fmt: skip


def test_rollover_is_computed_in_a_worker_process(tmp_path: Path) -> None:
    db = _store(tmp_path / "a.db")
    clinical = Settings()
    key = settings_key(clinical)
    source = WorklistSource(db, clinical, key, lambda: TOMORROW)
    with db.session() as s:
        assert rows.overview(s, TOMORROW, key).old == BATCH + 13  # all a day old
    refresher = WorklistRefresher(source, interval=3600, pool=PoolOptions(pool_size=1))
    assert refresher.pool is not None
    refresher.start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with db.session() as s:
                if rows.overview(s, TOMORROW, key).old == 0 and not refresher.busy:
                    break
            time.sleep(0.5)
        assert refresher._executor is not None  # the worker process did the work
    finally:
        refresher.stop()
    in_worker = _entries(db)
    assert {v[0] for v in in_worker.values()} == {TOMORROW}
    # each course's kept answer computed with its row, for the same day
    assert all(v[-1] is not None and v[-1][:2] == (TOMORROW, v[1]) for v in in_worker.values())
    # the same rows as the server computes in its own process
    other = _store(tmp_path / "b.db")
    WorklistSource(other, clinical, key, lambda: TOMORROW).refresh_some(10_000)
    assert _entries(other) == in_worker
