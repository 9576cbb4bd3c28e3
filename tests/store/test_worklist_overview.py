"""The worklist's numbers come from one pass over the active courses: rows missing, out of
date, shown (no error), needing action, with items to consider; ended courses never count."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cart_cytopenia.cli.serve_cmd import demo_courses
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store import worklist as rows
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.models import CourseRecord

TODAY = dt.date(2024, 6, 1)
KEY = "settings"


def _values(rec: CourseRecord, **over: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "as_of": TODAY, "course_version": rec.version, "settings_key": KEY, "day": 10,
        "phase": None, "phenotype": None, "icaht_label": "-", "icaht_rank": 0,
        "ticaht_label": "-", "ticaht_rank": 0, "anc": None, "platelets": None, "hb": None,
        "needs_action": False, "top_urgency_rank": 0, "n_decisions": 0, "error": None,
        "display": {},
    }  # fmt: skip
    return values | over


def test_overview_counts_every_kind_of_row_once(db: Database) -> None:
    courses = demo_courses(6, 7, TODAY)[3:]
    statuses = ["active"] * 5 + ["ended"]
    with db.transaction() as s:
        repo.import_new_courses(s, list(zip(courses, statuses, strict=True)), user="t",
                                source="demo")  # fmt: skip
    with db.transaction() as s:
        recs = sorted(s.query(CourseRecord).all(), key=lambda r: r.id)
        act, consider, _missing, error, stale, ended = recs
        rows.save_entry(s, act.id, _values(act, needs_action=True, n_decisions=1))
        rows.save_entry(s, consider.id, _values(consider, n_decisions=2))
        rows.save_entry(s, error.id, _values(error, error="cannot be assessed"))
        rows.save_entry(s, stale.id, _values(stale, as_of=TODAY - dt.timedelta(days=1)))
        rows.save_entry(s, ended.id, _values(ended, needs_action=True))
    with db.session() as s:
        got = rows.overview(s, TODAY, KEY)
        assert got == rows.Overview(missing=1, old=1, total=3, action=1, consider=1, errors=1)
        assert rows.overview(s, TODAY, "other settings").old == 4  # every row computed under others
        found, n = rows.page(s, rows.WorklistQuery(), shown=got.total)
        assert n == 3 and len(found) == 3
        assert rows.page(s, rows.WorklistQuery(needs_action=True), shown=got.total)[1] == 1


def test_iechs_and_tatma_filters_and_sorts(db: Database) -> None:
    courses = demo_courses(4, 7, TODAY)[3:]
    with db.transaction() as s:
        repo.import_new_courses(s, [(c, "active") for c in courses], user="t", source="demo")
    flags = [("met", 3, "meets", 5), ("suspected", 2, "not met", 4), ("not met", 1, None, None),
             ("not assessable", 0, "not evaluated", None)]  # fmt: skip
    with db.transaction() as s:
        recs = sorted(s.query(CourseRecord).all(), key=lambda r: r.id)
        for rec, (status, rank, tm, met) in zip(recs, flags, strict=True):
            rows.save_entry(s, rec.id, _values(rec, iechs_status=status, iechs_rank=rank,
                                               tatma_status=tm, tatma_met=met))  # fmt: skip
    with db.session() as s:

        def ids(**q: Any) -> list[str]:
            found, n = rows.page(s, rows.WorklistQuery(**q))
            assert n == len(found)
            return [e.iechs_status for e, *_ in found]

        assert ids(iechs="met") == ["met"]
        assert ids(iechs="suspected") == ["suspected"]
        assert sorted(ids(iechs="flagged")) == ["met", "suspected"]
        assert ids(tatma="meets") == ["met"]
        assert ids(sort="iechs") == ["met", "suspected", "not met", "not assessable"]
        assert ids(sort="tatma")[:2] == ["met", "suspected"]  # 5 then 4 met; unknown last


def test_the_data_stamp_changes_with_every_write_a_view_reads(db: Database) -> None:
    """A kept worklist view is used only while this stamp is unchanged."""
    courses = demo_courses(2, 7, TODAY)[3:]
    with db.transaction() as s:
        repo.import_new_courses(s, [(c, "active") for c in courses], user="t", source="demo")

    def stamp() -> tuple[Any, ...]:
        with db.session() as s:
            return rows.data_stamp(s)

    seen = [stamp()]
    assert stamp() == seen[0]  # nothing written: the same
    with db.transaction() as s:
        a, b = sorted(s.query(CourseRecord).all(), key=lambda r: r.id)
        rows.save_entry(s, a.id, _values(a))
    seen.append(stamp())
    with db.transaction() as s:
        rows.mark_stale(s, a.id)  # guidance acknowledged
    seen.append(stamp())
    with db.transaction() as s:
        rec = s.get(CourseRecord, b.id)
        assert rec is not None
        repo.set_status(s, rec, "closed", expected_version=None, user="t")
    seen.append(stamp())
    with db.transaction() as s:
        repo.delete_course(s, s.get(CourseRecord, a.id))  # type: ignore[arg-type]
    seen.append(stamp())
    assert len(set(seen)) == len(seen)
