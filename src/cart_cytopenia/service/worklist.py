"""The worklist's stored rows: computed from each course's grades and guidance, kept fresh.

A worklist view no longer grades every active course: it reads one stored row per course
(``store.worklist``), filtered, sorted and paged by the database. A row is computed again

- when its course changes or guidance is acknowledged: the next view (or API call) finds it
  out of date and computes it within the request (``INLINE_REFRESH`` rows at most);
- at the daily rollover, when every row is a day old, and after the clinical settings change:
  ``WorklistRefresher``, a background thread, brings all rows up to date in batches; until it
  is done the page says how many rows still show the previous state, and marks them.

``entry_values`` is the one place that turns a ``CourseSnapshot`` into a row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import multiprocessing
import threading
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy.orm import Session

from cart_cytopenia.domain.course import Course
from cart_cytopenia.errors import InputError
from cart_cytopenia.grading import iec_hs
from cart_cytopenia.rules.settings import Settings
from cart_cytopenia.service.answers import answer_key, packed_body
from cart_cytopenia.service.clinical import TO_DECIDE, CourseSnapshot, StoredCourse, snapshots
from cart_cytopenia.service.jobs import uses_processes
from cart_cytopenia.store import answers
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store import worklist as rows
from cart_cytopenia.store.answers import AnswerKey
from cart_cytopenia.store.db import Database, PoolOptions
from cart_cytopenia.store.models import WorklistEntry

INLINE_REFRESH = 25  # rows a view computes itself; more are left to the background refresher
BATCH = 50  # rows the refresher computes per transaction
log = logging.getLogger("cart_cytopenia.service")


def settings_key(clinical: Settings) -> str:
    """A fingerprint of the clinical settings in force (rows computed under others are stale)."""
    text = json.dumps(clinical.in_force(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def entry_values(snap: CourseSnapshot, as_of: dt.date, key: str) -> dict[str, Any]:
    """The stored row of a course: sort and filter columns, and what the page displays."""
    counts = snap.counts()
    canonical = {a: (c.value if c is not None else None) for a, c in counts.items()}
    open_items = [
        {"id": s.item.id, "urgency": s.item.urgency, "summary": s.item.summary}
        for s in snap.open_items
    ]
    patient = snap.course.patient
    return {
        "as_of": as_of,
        "course_version": snap.version,
        "settings_key": key,
        "day": snap.day,
        "phase": snap.phase,
        "phenotype": snap.phenotype,
        "icaht_label": snap.icaht_label,
        "icaht_rank": snap.icaht_rank,
        "ticaht_label": snap.ticaht_label,
        "ticaht_rank": snap.ticaht_rank,
        "anc": canonical.get("anc"),
        "platelets": canonical.get("platelets"),
        "hb": canonical.get("hb"),
        "needs_action": snap.needs_action,
        "top_urgency_rank": snap.top_urgency_rank,
        "n_decisions": len(snap.open_decisions),
        **iechs_tatma_values(snap),
        "error": None,
        "display": {
            "counts": {a: vars(c) for a, c in counts.items()},
            "counts_age": snap.counts_age,
            "last_count_day": snap.last_count_day,
            "disease": patient.disease.value,
            "age_years": patient.age_years,
            "open_by_urgency": snap.open_by_urgency(),
            "open_info": snap.open_info,
            "open_items": open_items,
        },
    }


IECHS_TATMA_COLUMNS = (
    "iechs_status", "iechs_rank", "iechs_level", "tatma_status", "tatma_met", "tatma_assessable",
)  # fmt: skip


def iechs_tatma_values(snap: CourseSnapshot) -> dict[str, Any]:
    """IEC-HS (ASTCT criteria) and TA-TMA (harmonised criteria) as the worklist stores them:
    the statuses as the assessment gives them, never "not met" for what was not measured."""
    ih, tm = snap.assessment.iechs, snap.assessment.tatma
    return {
        "iechs_status": ih.status,
        "iechs_rank": iec_hs.STATUS.index(ih.status),
        "iechs_level": ih.guidance_level,
        "tatma_status": tm.status,
        "tatma_met": tm.criteria_met,
        "tatma_assessable": tm.assessable,
    }


def error_values(stored: StoredCourse, as_of: dt.date, key: str, exc: InputError) -> dict[str, Any]:
    """The row of a stored course that the current rules cannot assess (shown as a warning)."""
    return {
        "as_of": as_of,
        "course_version": stored.version,
        "settings_key": key,
        "day": max(0, (as_of - stored.infusion_date).days),
        "phase": None,
        "phenotype": None,
        "icaht_label": "—",
        "icaht_rank": -1,
        "ticaht_label": "—",
        "ticaht_rank": -1,
        "anc": None,
        "platelets": None,
        "hb": None,
        "needs_action": False,
        "top_urgency_rank": 0,
        "n_decisions": 0,
        **dict.fromkeys(IECHS_TATMA_COLUMNS),
        "error": str(exc)[:2000],
        "display": {},
    }


@dataclass(frozen=True)
class Computed:
    """A course's worklist row (``entry_values``) and its assessment answer for the row's day
    (its key and kept body, ``service.answers``; none for a course that cannot be assessed)."""

    entry: dict[str, Any]
    answer: tuple[AnswerKey, bytes] | None = None


def _computed(stored: StoredCourse, snap: CourseSnapshot, today: dt.date, key: str) -> Computed:
    answer = (answer_key(stored, snap.day, today, key), packed_body(snap))
    return Computed(entry_values(snap, today, key), answer)


def compute_entries(
    stored: list[tuple[StoredCourse, Course | InputError]],
    today: dt.date,
    clinical: Settings,
    key: str,
) -> list[Computed]:
    """The rows and answers of many courses (a course that could not be read gives its error's
    row): graded together; if that fails for one course, course by course, so that only its row
    says why. The one way rows are computed: a view's few stale rows, the refresher's batches,
    a bulk load's batches."""
    ok = [(s, c) for s, c in stored if not isinstance(c, InputError)]
    try:
        snaps = iter(snapshots(ok, today, clinical))
    except InputError as exc:
        if len(ok) == 1:
            return [Computed(error_values(ok[0][0], today, key, exc))]
        return [v for pair in stored for v in compute_entries([pair], today, clinical, key)]
    return [
        Computed(error_values(s, today, key, c)) if isinstance(c, InputError)
        else _computed(s, next(snaps), today, key)
        for s, c in stored
    ]  # fmt: skip


def save_computed(session: Session, course_ids: list[int], computed: list[Computed]) -> None:
    """Store computed rows and answers of stored courses, replacing their old ones."""
    pairs = list(zip(course_ids, computed, strict=True))
    for cid, c in pairs:
        rows.save_entry(session, cid, c.entry)
    answers.save_answers(session, [(cid, *c.answer) for cid, c in pairs if c.answer])


class ViewCache:
    """Recent worklist views (rows, counts, products, the rendered rows), each kept under the
    data stamp it was read at (``store.worklist.data_stamp``) with its query, day and settings:
    a view whose stamp is unchanged is answered from here (one aggregate query instead of
    counting, sorting and rendering 10,000 rows for every client), unless some of its rows were
    out of date (they may be computed now); any write, by any process, changes the stamp.
    Bounded LRU: at most ``size`` views and ``max_rows`` rows in all (an API view holds up to
    1,000 rows, ~2 KB each: 64 such views would hold ~130 MB; 20,000 rows hold ~40 MB)."""

    def __init__(self, size: int = 64, max_rows: int = 20_000) -> None:
        self.size = size
        self.max_rows = max_rows
        self._data: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> dict[str, Any] | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
            return hit

    def put(self, key: tuple[Any, ...], view: dict[str, Any]) -> None:
        if len(view["rows"]) > self.max_rows:
            return
        with self._lock:
            old = self._data.pop(key, None)
            self._rows += len(view["rows"]) - (len(old["rows"]) if old is not None else 0)
            self._data[key] = view
            while len(self._data) > self.size or self._rows > self.max_rows:
                _, dropped = self._data.popitem(last=False)
                self._rows -= len(dropped["rows"])

    @property
    def rows(self) -> int:
        return self._rows


@dataclass
class WorklistSource:
    """What computing rows needs: the database, the day, the settings; and the recent views."""

    db: Database
    clinical: Settings
    key: str
    today: Any  # () -> date
    views: ViewCache = field(default_factory=ViewCache)

    def refresh(self, course_ids: list[int]) -> int:
        """Compute the rows of ``course_ids`` (reading only), then store them in one short
        transaction (SQLite's write lock is never held while courses are graded)."""
        today = self.today()
        stored: list[tuple[StoredCourse, Course | InputError]] = []
        with self.db.session() as session:
            for cid in course_ids:
                rec = repo.get_course(session, cid)
                try:
                    stored.append((StoredCourse.of(rec), repo.load_course(rec)))
                except InputError as exc:
                    stored.append((StoredCourse.of(rec), exc))
        computed = compute_entries(stored, today, self.clinical, self.key)
        with self.db.transaction() as session:
            save_computed(session, course_ids, computed)
        return len(computed)

    def refresh_some(self, limit: int) -> int:
        with self.db.session() as session:
            stale = rows.stale_course_ids(session, self.today(), self.key, limit)
        return self.refresh(stale) if stale else 0


WORKER_BATCHES = 10  # batches a worker process computes per call (so that a stop is prompt)
_worker_dbs: dict[str, Database] = {}


def refresh_in_worker(
    url: str, pool: PoolOptions, clinical: Settings, key: str, today: dt.date
) -> int:
    """In the refresher's worker process: compute up to ``WORKER_BATCHES`` batches of stale
    rows with the worker's own connection (kept between calls); the rows computed."""
    db = _worker_dbs.get(url)
    if db is None:
        db = _worker_dbs[url] = Database(url, pool=pool)
    source = WorklistSource(db, clinical, key, lambda: today)
    done = 0
    for _ in range(WORKER_BATCHES):
        n = source.refresh_some(BATCH)
        done += n
        if n < BATCH:
            break
    return done


class WorklistRefresher:
    """A background thread that brings every worklist row up to date, batch by batch.

    It runs at start-up, whenever a view finds more out-of-date rows than it computes itself
    (``wake``), and every ``interval`` seconds (which catches the daily rollover). When more
    than a batch is stale (a rollover: every row at once) the grading runs in a worker process
    (spawned, one), so that it never competes with the requests for the interpreter; a few rows
    are computed in the thread. Until all are done the page says how many rows still show the
    previous state (its progress). ``pool``: the worker's connection settings; None (or an
    in-memory database, which another process cannot open): always in the thread.
    """

    def __init__(
        self, source: WorklistSource, interval: float = 60.0, pool: PoolOptions | None = None
    ) -> None:
        self.source = source
        self.interval = interval
        self.pool = pool if pool is not None and uses_processes(source.db) else None
        self._executor: ProcessPoolExecutor | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.busy = False

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="cc-worklist", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self.start()
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _some(self) -> int:
        """One step: a batch here, or a worker call when more than a batch is stale."""
        src = self.source
        if self.pool is not None:
            with src.db.session() as session:
                counts = rows.overview(session, src.today(), src.key)
            if counts.missing + counts.old > BATCH:
                if self._executor is None:
                    spawn = multiprocessing.get_context("spawn")  # no fork of a threaded server
                    self._executor = ProcessPoolExecutor(1, mp_context=spawn)
                job = (src.db.url, self.pool, src.clinical, src.key, src.today())
                try:
                    return self._executor.submit(refresh_in_worker, *job).result()
                except BrokenProcessPool:
                    self._executor = None
                    raise
        return src.refresh_some(BATCH)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.busy = True
            try:
                while not self._stop.is_set() and self._some():
                    pass
            except Exception as exc:  # logged by type only; tried again at the next wake-up
                log.error("worklist refresh failed: %s", type(exc).__name__)
            self.busy = False
            self._wake.wait(self.interval)
            self._wake.clear()


def query_from(
    *, product: str, phase: str, needs_action: str, q: str, sort: str, dir: str, page: int,
    per_page: int, iechs: str = "", tatma: str = "",
) -> rows.WorklistQuery:  # fmt: skip
    """The query of a view from its parameters (unknown sorts fall back to urgency, unknown
    IEC-HS / TA-TMA filters to none)."""
    sort = sort if sort in rows.SORT_COLUMNS else "urgency"
    descending = (dir == "desc") if dir else sort == "day"
    return rows.WorklistQuery(
        product=product, phase=phase, needs_action=bool(needs_action), q=q,
        iechs=iechs if iechs in rows.IECHS_FILTERS else "",
        tatma=tatma if tatma in rows.TATMA_FILTERS else "", sort=sort,
        descending=descending, page=max(1, page),
        per_page=per_page if per_page in rows.PAGE_SIZES else 50,
    )  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One row of the page, as the template shows it (``entry``: the stored row's values)."""

    entry: Any
    product: str
    patient_id: int
    pseudonym: str
    up_to_date: bool

    @property
    def decisions(self) -> list[dict[str, Any]]:
        return [i for i in self.entry.display.get("open_items", []) if i["urgency"] in TO_DECIDE]

    @property
    def top_urgency(self) -> str:
        items = self.entry.display.get("open_items", [])
        return str(items[0]["urgency"]) if items else ""


_ENTRY_COLUMNS = tuple(c.key for c in WorklistEntry.__table__.columns)


def page_rows(found: list[Any], as_of: dt.date, key: str) -> list[Row]:
    """The page's rows, their values copied out of the session (so that a view can be kept)."""
    return [
        Row(SimpleNamespace(**{c: getattr(e, c) for c in _ENTRY_COLUMNS}), product, pid, pseudo,
            e.as_of == as_of and e.settings_key == key)
        for e, product, pid, pseudo in found
    ]  # fmt: skip


def view(
    source: WorklistSource,
    refresher: WorklistRefresher,
    session: Session,
    query: rows.WorklistQuery,
    offset: int | None = None,
) -> dict[str, Any]:
    """The stored rows of a view, after computing the few that are out of date (more are left
    to the background refresher, and counted for the page's notice); from memory when nothing
    changed since the same view was read (``ViewCache``)."""
    today = source.today()
    stamp = rows.data_stamp(session)
    kept = source.views.get((stamp, today, source.key, query, offset))
    if kept is not None and not (kept["n_missing"] or kept["n_old"]):
        return kept  # (a view with rows out of date is read again: they may be due now)
    counts = rows.overview(session, today, source.key)
    if counts.missing or counts.old:  # up to date (the usual case): no search for stale rows
        stale = counts.missing + counts.old
        if stale <= INLINE_REFRESH and source.refresh_some(INLINE_REFRESH):
            counts = rows.overview(session, today, source.key)
            stamp = rows.data_stamp(session)
        if counts.missing or counts.old:
            refresher.wake()
    found, n_match = rows.page(session, query, offset, shown=counts.total)
    out = {
        "rows": page_rows(found, today, source.key),
        "n_match": n_match,
        "n_missing": counts.missing,
        "n_old": counts.old,
        "totals": {"total": counts.total, "action": counts.action, "consider": counts.consider},
        "products": rows.products(session),
        "broken": rows.broken(session) if counts.errors else [],
    }
    source.views.put((stamp, today, source.key, query, offset), out)
    return out
