"""Repository functions of store/courses.py: round trips, all-or-nothing writes, locking."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.errors import ImplausibleValueError, InputError, TimelineError
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.errors import ConflictError, NotFoundError
from cart_cytopenia.store.models import CourseRecord, EventRecord, Observation, Patient
from tests.conftest import EXAMPLES, course_dict


def _count(db: Database, model: Any) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _store(db: Database, doc: dict[str, Any]) -> int:
    with db.transaction() as s:
        rec = repo.import_course(s, parse_course(doc), user="alice", source="json")
        return rec.id


def test_review_case_round_trips(db: Database) -> None:
    original = parse_course((EXAMPLES / "review-case-1.json").read_text())
    cid = _store(db, json.loads((EXAMPLES / "review-case-1.json").read_text()))
    with db.session() as s:
        rec = repo.get_course(s, cid)
        back = repo.load_course(rec)
        assert rec.version == 1
        assert rec.patient.pseudonym == "review-case-1"
    assert back.patient == original.patient
    assert back.infusion_date == original.infusion_date
    key = lambda lab: (lab.day, lab.analyte, lab.value)  # noqa: E731
    assert sorted(map(key, back.labs)) == sorted(map(key, original.labs))
    assert sorted(map(key, back.baseline_labs)) == sorted(map(key, original.baseline_labs))
    assert sorted(
        e.model_dump_json(exclude={"date", "start_date", "end_date"}) for e in back.events
    ) == sorted(
        e.model_dump_json(exclude={"date", "start_date", "end_date"}) for e in original.events
    )


def test_failed_import_leaves_nothing(db: Database) -> None:
    doc = course_dict([(1, 300.0)])

    def import_then_fail() -> None:
        with db.transaction() as s:
            repo.import_course(s, parse_course(doc), user="alice", source="json")
            assert s.scalar(select(func.count(Observation.id))) == 1
            raise RuntimeError("the rest of the import failed")

    with pytest.raises(RuntimeError):
        import_then_fail()
    assert _count(db, Patient) == 0
    assert _count(db, CourseRecord) == 0
    assert _count(db, Observation) == 0


def test_second_course_for_same_infusion_conflicts(db: Database) -> None:
    _store(db, course_dict([(1, 300.0)]))
    with pytest.raises(ConflictError, match="already has a course"):
        _store(db, course_dict([(2, 400.0)]))
    other = course_dict([(2, 400.0)], infusion_date="2025-02-01")
    _store(db, other)
    with db.session() as s:
        (p,) = repo.list_patients(s)
        assert len(p.courses) == 2
        latest = repo.latest_course(p)
        assert latest is not None
        assert str(latest.infusion_date) == "2025-02-01"


def test_add_labs_validates_the_whole_course_and_saves_nothing_on_error(db: Database) -> None:
    cid = _store(db, course_dict([(1, 300.0)]))
    bad = [
        {"day": 2, "analyte": "anc", "value": 500, "unit": "/uL"},
        {"day": 3, "analyte": "anc", "value": 5_000_000, "unit": "/uL"},
    ]
    with pytest.raises(ImplausibleValueError) as info, db.transaction() as s:
        repo.add_labs(
            s,
            repo.get_course(s, cid),
            bad,
            expected_version=1,
            user="alice",
            source="csv",
            rows=[2, 3],
            source_name="labs.csv",
        )
    (problem,) = info.value.problems
    assert problem.location.row == 3
    assert problem.location.field == "value"
    assert problem.location.source == "labs.csv"
    assert _count(db, Observation) == 1
    with db.session() as s:
        assert repo.get_course(s, cid).version == 1


def test_add_lab_after_death_is_a_timeline_error(db: Database) -> None:
    doc = course_dict([(1, 300.0)], events=[{"type": "death", "day": 5}])
    cid = _store(db, doc)
    with pytest.raises(TimelineError) as info, db.transaction() as s:
        repo.add_labs(
            s,
            repo.get_course(s, cid),
            [{"day": 9, "analyte": "anc", "value": 800, "unit": "/uL"}],
            expected_version=None,
            user="alice",
            source="form",
        )
    assert info.value.problems[0].location.field == "day"


def test_add_events_and_labs_bump_the_version(db: Database) -> None:
    cid = _store(db, course_dict([(1, 300.0)]))
    with db.transaction() as s:
        rec = repo.get_course(s, cid)
        repo.add_events(
            s,
            rec,
            [{"type": "crs", "start_day": 1, "end_day": 4, "max_grade": 2}],
            expected_version=1,
            user="bob",
            source="form",
        )
    with db.transaction() as s:
        rec = repo.get_course(s, cid)
        assert rec.version == 2
        assert rec.updated_by == "bob"
        repo.add_labs(
            s,
            rec,
            [{"date": "2024-01-12", "analyte": "platelets", "value": 40, "unit": "10*9/L"}],
            expected_version=2,
            user="bob",
            source="form",
        )
    with db.session() as s:
        rec = repo.get_course(s, cid)
        assert rec.version == 3
        course = repo.load_course(rec)
    assert [(lab.day, lab.analyte) for lab in course.labs] == [(1, "anc"), (2, "platelets")]
    assert course.events[0].type == "crs"
    assert course.events[0].end_day == 4


def test_event_problems_point_at_the_field(db: Database) -> None:
    cid = _store(db, course_dict([(1, 300.0)]))
    with pytest.raises(InputError) as info, db.transaction() as s:
        repo.add_events(
            s,
            repo.get_course(s, cid),
            [{"type": "crs", "start_day": 5, "end_day": 2, "max_grade": 7}],
            expected_version=1,
            user="bob",
            source="form",
        )
    fields = {p.location.field for p in info.value.problems}
    assert "max_grade" in fields
    assert _count(db, EventRecord) == 0


def test_stale_version_is_refused(db: Database) -> None:
    cid = _store(db, course_dict([(1, 300.0)]))
    lab = {"day": 2, "analyte": "anc", "value": 400, "unit": "/uL"}
    with db.transaction() as s:
        repo.add_labs(
            s, repo.get_course(s, cid), [lab], expected_version=1, user="a", source="form"
        )
    with pytest.raises(ConflictError) as info, db.transaction() as s:
        repo.add_labs(
            s, repo.get_course(s, cid), [lab], expected_version=1, user="b", source="form"
        )
    assert info.value.current_version == 2
    assert _count(db, Observation) == 2


def test_concurrent_edits_do_not_lose_data(db: Database) -> None:
    """Two users read version 1; the second write fails at the database instead of winning."""
    cid = _store(db, course_dict([(1, 300.0)]))
    a, b = db.session(), db.session()
    try:
        rec_a = repo.get_course(a, cid)
        rec_b = repo.get_course(b, cid)
        b.commit()  # end b's read transaction; its objects keep version 1
        repo.add_labs(
            a,
            rec_a,
            [{"day": 2, "analyte": "anc", "value": 400, "unit": "/uL"}],
            expected_version=1,
            user="a",
            source="form",
        )
        a.commit()
        with pytest.raises(ConflictError):
            repo.add_labs(
                b,
                rec_b,
                [{"day": 3, "analyte": "anc", "value": 450, "unit": "/uL"}],
                expected_version=None,
                user="b",
                source="form",
            )
        b.rollback()
    finally:
        a.close()
        b.close()
    with db.session() as s:
        rec = repo.get_course(s, cid)
        assert rec.version == 2
        assert sorted(o.day for o in rec.observations) == [1, 2]


def test_replace_course_keeps_the_patient_and_checks_identity(db: Database) -> None:
    cid = _store(db, course_dict([(1, 300.0)]))
    with db.transaction() as s:
        rec = repo.get_course(s, cid)
        repo.replace_course(
            s,
            rec,
            parse_course(course_dict([(1, 300.0), (2, 350.0)])),
            expected_version=1,
            user="a",
            source="json",
        )
    other = course_dict([(1, 300.0)])
    other["patient"] = {**other["patient"], "id": "someone-else"}
    with pytest.raises(InputError, match="another patient"), db.transaction() as s:
        repo.replace_course(
            s,
            repo.get_course(s, cid),
            parse_course(other),
            expected_version=2,
            user="a",
            source="json",
        )
    with db.session() as s:
        assert len(repo.get_course(s, cid).observations) == 2


def test_delete_and_status(db: Database) -> None:
    cid = _store(
        db,
        course_dict(
            [(1, 300.0), (2, 400.0)], events=[{"type": "fever", "day": 1, "max_temp_c": 38.6}]
        ),
    )
    with db.transaction() as s:
        rec = repo.get_course(s, cid)
        obs_id, ev_id = rec.observations[0].id, rec.events[0].id
        repo.delete_observation(s, rec, obs_id, expected_version=1, user="a")
        repo.delete_event(s, rec, ev_id, expected_version=2, user="a")
        repo.set_status(s, rec, "closed", expected_version=3, user="a")
    with db.session() as s:
        assert repo.list_courses(s) == []
        assert len(repo.list_courses(s, status=None)) == 1
        with pytest.raises(NotFoundError):
            repo.delete_observation(
                s, repo.get_course(s, cid), obs_id, expected_version=None, user="a"
            )
    with pytest.raises(NotFoundError), db.session() as s:
        repo.get_course(s, 999)


def test_guidance_action_needs_a_reason(db: Database) -> None:
    cid = _store(db, course_dict([(1, 300.0)]))
    with pytest.raises(InputError) as info, db.transaction() as s:
        repo.record_guidance_action(
            s,
            repo.get_course(s, cid),
            item_id="management.gcsf.start",
            day=10,
            action="acknowledged",
            reason="  ",
            urgency="consider",
            summary="Consider G-CSF",
            user_id=None,
            username="a",
        )
    assert info.value.problems[0].location.field == "reason"
    with db.transaction() as s:
        repo.record_guidance_action(
            s,
            repo.get_course(s, cid),
            item_id="management.gcsf.start",
            day=10,
            action="dismissed",
            reason="CRS still active",
            urgency="consider",
            summary="Consider G-CSF",
            user_id=None,
            username="a",
        )
    with db.session() as s:
        (ga,) = repo.guidance_actions(s, cid)
        assert (ga.action, ga.reason, ga.username) == ("dismissed", "CRS still active", "a")
        assert ga.created_at.tzinfo is not None
