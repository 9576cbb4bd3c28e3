"""Large uploads run as background jobs in a worker process, so a 300,000-row lab CSV never
holds up other requests.

A job's work is a ``Task``: a module-level function and its arguments (picklable), called as
``fn(db, progress, *args)``. ``JobRunner`` runs tasks one at a time (two large imports queue
instead of competing) in a worker PROCESS of its own: parsing and checking a large file is
Python work that, in a thread of the server, would share the interpreter lock with the event
loop and every other request. The worker opens its own connection to the same database and
saves the job in one transaction: all of it or none. It reports its stage through a queue that
a thread of the server reads into the job's record. With an in-memory SQLite database (tests,
trials: a worker process cannot see it) jobs run in a worker thread instead.

The page that started a job redirects to ``/jobs/{id}``, which shows the job's stage and
refreshes itself until it is done, then links to the result or lists every problem. Jobs live
in the memory of the server process for ``JOB_KEEP_SECONDS`` after they finish; a job is shown
only to the user who started it. Its stage and message say what was done (row counts, file
name), never clinical values. If the worker process dies (killed, out of memory), its job fails
with "nothing was saved" (its transaction was never committed) and the next job starts a new
worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Any

from cart_cytopenia.errors import InputError, Problem
from cart_cytopenia.store.db import Database, PoolOptions
from cart_cytopenia.store.errors import ConflictError, NotFoundError

JOB_KEEP_SECONDS = 3600
# a job checks a whole file inside its transaction: PostgreSQL's statement and
# idle-in-transaction limits for the worker's connection are at least this long
JOB_TIMEOUT_MS = 600_000
STATES = ("queued", "running", "done", "failed")
log = logging.getLogger("cart_cytopenia.service")


@dataclass
class Job:
    """One background job: what it is, where it stands, and what came of it."""

    id: str
    title: str
    user_id: int
    back_url: str
    state: str = "queued"
    stage: str = "waiting for a worker"
    created: float = field(default_factory=time.time)
    finished: float | None = None
    message: str = ""
    result_url: str = ""
    problems: list[Problem] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.state in ("queued", "running")

    @property
    def seconds(self) -> float:
        return (self.finished or time.time()) - self.created


class Progress:
    """What a job's work function sees: it reports its stage here (``stage``)."""

    def __init__(self, report: Callable[[str], None] | None = None) -> None:
        self._report = report

    @classmethod
    def detached(cls) -> Progress:
        """For work run within the request (a small file): nobody watches its stages."""
        return cls()

    def stage(self, text: str) -> None:
        if self._report is not None:
            self._report(text)


@dataclass(frozen=True)
class Task:
    """A job's work as a picklable call: ``fn(db, progress, *args) -> (message, result url)``;
    ``fn`` is a module-level function, ``args`` plain data (bytes, ids, a ``Viewer``)."""

    fn: Callable[..., tuple[str, str]]
    args: tuple[Any, ...]

    def __call__(self, db: Database, progress: Progress) -> tuple[str, str]:
        return self.fn(db, progress, *self.args)


# what a worker sends back: (state, message, problems, result url)
Outcome = tuple[str, str, list[Problem], str]


def run_task(task: Task, db: Database, progress: Progress) -> Outcome:
    """Run ``task``; its failure becomes a failed outcome (logged by its type only: the
    message of an unexpected error may hold data)."""
    try:
        message, url = task(db, progress)
    except InputError as exc:
        return "failed", exc.message, list(exc.problems), ""
    except (ConflictError, NotFoundError) as exc:
        return "failed", str(exc), [], ""
    except Exception as exc:
        log.error("unexpected %s in background job", type(exc).__name__)
        return "failed", f"unexpected {type(exc).__name__}; nothing was saved", [], ""
    return "done", message, [], url


# ------------------------------------------------------------------ inside the worker process

_worker: dict[str, Any] = {}


def _worker_init(url: str, pool: PoolOptions, stages: Any) -> None:
    """Once per worker process: its own database connection and the queue for stages."""
    _worker["db"] = Database(url, pool=pool)
    _worker["stages"] = stages


def _in_worker(job_id: str, task: Task) -> Outcome:
    stages = _worker["stages"]
    return run_task(task, _worker["db"], Progress(lambda text: stages.put((job_id, text))))


# ------------------------------------------------------------------ in the server


def job_pool_options(service: PoolOptions) -> PoolOptions:
    """The worker's connection: one (and one spare), with the service's timeouts raised to
    ``JOB_TIMEOUT_MS`` (checking 300,000 rows against a course is longer than any request)."""
    timeout = max(service.statement_timeout_ms, JOB_TIMEOUT_MS)
    return replace(service, pool_size=1, max_overflow=1, statement_timeout_ms=timeout)


def uses_processes(db: Database) -> bool:
    """Whether a worker process can open ``db`` (an in-memory SQLite database it cannot)."""
    return not (db.backend == "sqlite" and db.engine.url.database in (None, "", ":memory:"))


class JobRunner:
    """Runs jobs one at a time in a worker process (a thread for an in-memory database) and
    keeps their state for the status page."""

    def __init__(self, db: Database, pool: PoolOptions | None = None) -> None:
        self.db = db
        self._pool_options = PoolOptions(pool_size=1, max_overflow=1) if pool is None else pool
        self.processes = uses_processes(db)
        self._mp = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self._stages: Any = self._mp.Queue() if self.processes else None
        self._executor: Executor | None = None
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None

    def submit(self, title: str, user_id: int, back_url: str, task: Task) -> Job:
        job = Job(secrets.token_urlsafe(12), title, user_id, back_url)
        with self._lock:
            self._forget_old()
            self._jobs[job.id] = job
            executor = self._start()
        if self.processes:
            future: Future[Outcome] = executor.submit(_in_worker, job.id, task)
        else:
            future = executor.submit(self._in_thread, job, task)
        future.add_done_callback(lambda f: self._finish(job, f))
        return job

    def run_now(self, task: Task) -> tuple[str, str]:
        """Run a small job within the request (its errors are raised to the caller)."""
        return task(self.db, Progress.detached())

    def get(self, job_id: str, user_id: int) -> Job:
        """The job ``job_id`` of this user (NotFoundError for another user's job)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.user_id != user_id:
            raise NotFoundError("no such job (jobs are kept for an hour after they finish)")
        return job

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        if self._listener is not None:
            self._stages.put(None)
            self._listener.join(timeout=10)
            self._listener = None

    def _start(self) -> Executor:
        """The executor (started at the first job, or again after a worker died)."""
        if self._executor is None:
            if self.processes:
                self._executor = ProcessPoolExecutor(
                    1, mp_context=self._mp, initializer=_worker_init,
                    initargs=(self.db.url, self._pool_options, self._stages),
                )  # fmt: skip
                if self._listener is None:
                    self._listener = threading.Thread(
                        target=self._listen, name="cc-job-stages", daemon=True
                    )
                    self._listener.start()
            else:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="cc-job")
        return self._executor

    def _in_thread(self, job: Job, task: Task) -> Outcome:
        self._set_stage(job.id, "started")
        return run_task(task, self.db, Progress(lambda text: self._set_stage(job.id, text)))

    def _listen(self) -> None:
        while True:
            try:
                item = self._stages.get(timeout=1)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            if item is None:
                return
            self._set_stage(*item)

    def _set_stage(self, job_id: str, text: str) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and job.running:
                job.state, job.stage = "running", text

    def _finish(self, job: Job, future: Future[Outcome]) -> None:
        try:
            state, message, problems, url = future.result()
        except BrokenProcessPool:
            log.error("the job worker process stopped")
            state, message, problems, url = (
                "failed",
                "the worker stopped; nothing was saved",
                [],
                "",
            )
            with self._lock:
                self._executor = None  # the next job starts a new worker
        except Exception as exc:  # cancelled at shutdown, or the task could not be sent
            state, message, problems, url = (
                "failed",
                f"{type(exc).__name__}; nothing was saved",
                [],
                "",
            )
        with self._lock:
            job.state, job.stage, job.message = state, state, message
            job.problems, job.result_url, job.finished = list(problems), url, time.time()

    def _forget_old(self) -> None:
        now = time.time()
        for key in [
            k
            for k, j in self._jobs.items()
            if j.finished is not None and now - j.finished > JOB_KEEP_SECONDS
        ]:
            del self._jobs[key]
