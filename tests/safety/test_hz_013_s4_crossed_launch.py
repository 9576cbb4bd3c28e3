"""HZ-013-S4: a clinician sees a patient launched by someone else (a launch's callback link
sent to another user, or replayed), taking it for their own patient in context.

Controls: the ``state`` is bound to the user who launched, accepted once, within
``launch_minutes``; an opened EHR patient is only shown to the user who opened it."""

from __future__ import annotations

from tests.smart.conftest import Launchable, authorize, signed_in


def test_another_users_callback_and_a_replay_are_refused(launchable: Launchable) -> None:
    cleo = signed_in(launchable.svc)
    back = authorize(cleo.get(launchable.launch_url()))
    rita = signed_in(launchable.svc, "rita")
    assert rita.get(back).status_code == 400
    # the state was spent by rita's attempt: cleo's own callback is refused too (launch again)
    assert cleo.get(back).status_code == 400


def test_an_opened_patient_is_shown_only_to_who_opened_it(launchable: Launchable) -> None:
    cleo = signed_in(launchable.svc)
    page = cleo.get(authorize(cleo.get(launchable.launch_url()))).headers["location"]
    assert cleo.get(page).status_code == 200
    rita = signed_in(launchable.svc, "rita")
    r = rita.get(page)
    assert r.status_code == 404
    assert "ehr-4711" not in r.text
