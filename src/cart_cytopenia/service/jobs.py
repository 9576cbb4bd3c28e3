"""Large uploads run as background jobs, so a 300,000-row lab CSV never holds up other requests.

A job runs in a worker thread of its own (``JobRunner``, one worker by default, so two large
imports queue instead of competing) with its own database transaction: all of it is saved or
none. The page that started it redirects to ``/jobs/{id}``, which shows the job's stage and
refreshes itself until it is done, then links to the result or lists every problem.

Jobs live in the memory of the server process (the service runs as one process) for
``JOB_KEEP_SECONDS`` after they finish; a job is shown only to the user who started it. Its
stage and message say what was done (row counts, file name), never clinical values.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from cart_cytopenia.errors import InputError, Problem
from cart_cytopenia.store.errors import ConflictError, NotFoundError

JOB_KEEP_SECONDS = 3600
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
    """What a job's work function sees: it reports its stage here."""

    def __init__(self, job: Job, lock: threading.Lock) -> None:
        self._job = job
        self._lock = lock

    @classmethod
    def detached(cls) -> Progress:
        """For work run within the request (a small file): nobody watches its stages."""
        return cls(Job("", "", 0, ""), threading.Lock())

    def stage(self, text: str) -> None:
        with self._lock:
            self._job.stage = text


# A job's work: reports progress, returns (message, url of the result).
Work = Callable[[Progress], tuple[str, str]]


class JobRunner:
    """Runs jobs in worker threads and keeps their state for the status page."""

    def __init__(self, workers: int = 1) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cc-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def submit(self, title: str, user_id: int, back_url: str, work: Work) -> Job:
        job = Job(secrets.token_urlsafe(12), title, user_id, back_url)
        with self._lock:
            self._forget_old()
            self._jobs[job.id] = job
        self._pool.submit(self._run, job, work)
        return job

    def get(self, job_id: str, user_id: int) -> Job:
        """The job ``job_id`` of this user (NotFoundError for another user's job)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.user_id != user_id:
            raise NotFoundError("no such job (jobs are kept for an hour after they finish)")
        return job

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, job: Job, work: Work) -> None:
        with self._lock:
            job.state, job.stage = "running", "started"
        try:
            message, url = work(Progress(job, self._lock))
        except InputError as exc:
            self._finish(job, "failed", exc.message, exc.problems)
        except (ConflictError, NotFoundError) as exc:
            self._finish(job, "failed", str(exc), [])
        except Exception as exc:  # logged by its type only: the message may hold data
            log.error("unexpected %s in background job", type(exc).__name__)
            self._finish(job, "failed", f"unexpected {type(exc).__name__}; nothing was saved", [])
        else:
            self._finish(job, "done", message, [], url)

    def _finish(
        self, job: Job, state: str, message: str, problems: list[Problem], url: str = ""
    ) -> None:
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
