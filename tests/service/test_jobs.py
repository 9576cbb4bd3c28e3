"""Background jobs run in a worker process that reports its stages; a dead worker fails its job
(nothing saved) and the next job gets a new worker; an in-memory database uses a thread."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cart_cytopenia.errors import ParseError, Problem
from cart_cytopenia.service.jobs import Job, JobRunner, Progress, Task
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.errors import NotFoundError


def where_am_i(db: Database, progress: Progress, wait: float) -> tuple[str, str]:
    progress.stage("half way")
    time.sleep(wait)
    return str(os.getpid()), f"/done/{db.backend}"


def refuse(db: Database, progress: Progress) -> tuple[str, str]:
    raise ParseError("two bad rows", [Problem("row 2 is bad"), Problem("row 4 is bad")])


def die(db: Database, progress: Progress) -> tuple[str, str]:
    os._exit(3)


def finished(runner: JobRunner, job: Job, seen: set[str] | None = None) -> Job:
    for _ in range(600):
        got = runner.get(job.id, 1)
        if seen is not None:
            seen.add(got.stage)
        if not got.running:
            return got
        time.sleep(0.05)
    raise AssertionError("the job did not finish")


def test_a_job_runs_in_a_worker_process_and_reports_its_stage(tmp_path: Path) -> None:
    runner = JobRunner(Database(f"sqlite:///{tmp_path / 'jobs.db'}"))
    try:
        assert runner.processes
        job = runner.submit("upload", 1, "/back", Task(where_am_i, (1.0,)))
        seen: set[str] = set()
        done = finished(runner, job, seen)
        assert done.state == "done", done.message
        assert done.message != str(os.getpid())  # another process did the work
        assert done.result_url == "/done/sqlite"
        assert "half way" in seen
        refused = finished(runner, runner.submit("upload", 1, "/back", Task(refuse, ())))
        assert refused.state == "failed" and refused.message == "two bad rows"
        assert [str(p) for p in refused.problems] == ["row 2 is bad", "row 4 is bad"]
    finally:
        runner.shutdown()


def test_a_dead_worker_fails_its_job_and_the_next_job_gets_a_new_one(tmp_path: Path) -> None:
    runner = JobRunner(Database(f"sqlite:///{tmp_path / 'jobs.db'}"))
    try:
        dead = finished(runner, runner.submit("upload", 1, "/back", Task(die, ())))
        assert dead.state == "failed" and "nothing was saved" in dead.message
        again = finished(runner, runner.submit("upload", 1, "/back", Task(where_am_i, (0,))))
        assert again.state == "done"
    finally:
        runner.shutdown()


def test_an_in_memory_database_runs_jobs_in_a_thread() -> None:
    runner = JobRunner(Database("sqlite://"))
    try:
        assert not runner.processes
        done = finished(runner, runner.submit("upload", 1, "/back", Task(where_am_i, (0,))))
        assert done.state == "done" and done.message == str(os.getpid())
        assert runner.run_now(Task(where_am_i, (0,)))[1] == "/done/sqlite"
    finally:
        runner.shutdown()


def test_a_job_is_shown_only_to_its_owner(tmp_path: Path) -> None:
    runner = JobRunner(Database("sqlite://"))
    try:
        job = runner.submit("upload", 1, "/back", Task(where_am_i, (0,)))
        finished(runner, job)
        with pytest.raises(NotFoundError, match="no such job"):
            runner.get(job.id, 2)
    finally:
        runner.shutdown()


def test_the_worker_may_take_longer_than_a_request() -> None:
    from cart_cytopenia.service.jobs import JOB_TIMEOUT_MS, job_pool_options
    from cart_cytopenia.store.db import PoolOptions

    service = PoolOptions(pool_size=20, statement_timeout_ms=30_000, busy_timeout_ms=5_000)
    worker = job_pool_options(service)
    assert worker.statement_timeout_ms == JOB_TIMEOUT_MS > service.statement_timeout_ms
    assert (worker.pool_size, worker.busy_timeout_ms) == (1, 5_000)
    assert job_pool_options(PoolOptions(statement_timeout_ms=JOB_TIMEOUT_MS * 2)) \
        .statement_timeout_ms == JOB_TIMEOUT_MS * 2  # fmt: skip
