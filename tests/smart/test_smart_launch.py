"""SMART App Launch 2.0 driven end to end against the test EHR (tests/smart/ehr.py): EHR and
standalone launch, PKCE S256, the issuer allow-list, state, code expiry, token refresh, the patient
page without the patient in the store, and saving it (CSRF-protected)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from cart_cytopenia.store import audit
from cart_cytopenia.store import courses as repo
from tests.service.conftest import csrf_of
from tests.smart.conftest import Launchable, authorize, continue_url, signed_in
from tests.smart.ehr import s256


def _launch_to_callback(client, launchable: Launchable) -> str:
    return authorize(client.get(launchable.launch_url()))


def test_ehr_launch_opens_the_patient_page_without_storing_it(launchable: Launchable) -> None:
    client = signed_in(launchable.svc)
    r = client.get(launchable.launch_url())
    auth = urlsplit(continue_url(r))
    q = parse_qs(auth.query)
    assert f"{auth.scheme}://{auth.netloc}{auth.path}" == launchable.ehr.base + "/auth/authorize"
    assert q["aud"] == [launchable.ehr.fhir]
    assert q["code_challenge_method"] == ["S256"]
    assert len(q["code_challenge"][0]) == 43  # base64url of a SHA-256
    scopes = q["scope"][0].split()
    assert "launch" in scopes and "openid" in scopes and "fhirUser" in scopes
    assert "patient/Observation.rs" in scopes
    assert not any(s.startswith("user/") or s.endswith(".cruds") for s in scopes)

    back = authorize(r)
    r = client.get(back)
    assert r.status_code == 303, r.text
    page_url = r.headers["location"]
    assert page_url.startswith("/smart/patients/")
    assert "4711" not in page_url  # no patient data in URLs
    page = client.get(page_url)
    assert page.status_code == 200
    assert "Patient ehr-4711" in page.text
    assert "Read from the EHR" in page.text and "not stored" in page.text
    assert 'data-item="management.gcsf.start"' in page.text  # guidance
    assert 'class="timeline' in page.text
    assert "/guidance/" not in page.text  # nothing to acknowledge before it is stored
    with launchable.svc.db.session() as s:
        assert repo.find_patient(s, "ehr-4711") is None
        read = [e for e in audit.entries(s, username="cleo") if e.resource == "ehr-patient"]
    assert [(e.action, e.resource_id, e.outcome) for e in read] == [("read", "ehr-4711", "ok")]
    assert read[0].detail is not None and "fhirUser" in read[0].detail  # id_token verified
    searched = {what for kind, what in launchable.ehr.calls if kind == "search"}
    assert {"Condition", "Observation", "Procedure"} <= searched


def test_saving_the_launched_patient_needs_the_csrf_token(launchable: Launchable) -> None:
    client = signed_in(launchable.svc)
    r = client.get(client.get(_launch_to_callback(client, launchable)).headers["location"])
    assert r.status_code == 200
    page_url = str(r.url.path)
    save = page_url + "/save"
    assert client.post(save, data={"csrf_token": "forged"}).status_code == 403
    r = client.post(save, data={"csrf_token": csrf_of(r.text)})
    assert r.status_code == 303
    assert r.headers["location"].startswith("/patients/")
    stored = client.get(r.headers["location"])
    assert "Saved the EHR course of ehr-4711" in stored.text
    assert 'data-item="management.gcsf.start"' in stored.text
    with launchable.svc.db.session() as s:
        patient = repo.find_patient(s, "ehr-4711")
        assert patient is not None and len(patient.courses) == 1
    # the EHR page now points to the stored patient; saving again is refused, not doubled
    page = client.get(page_url)
    assert "open the stored patient" in page.text
    again = client.post(save, data={"csrf_token": csrf_of(page.text)})
    assert again.status_code == 303
    assert "Not saved" in client.get(again.headers["location"]).text


def test_read_only_user_cannot_save(launchable: Launchable) -> None:
    client = signed_in(launchable.svc, "rita")
    r = client.get(client.get(_launch_to_callback(client, launchable)).headers["location"])
    assert r.status_code == 200
    assert "Save to cart-cytopenia" not in r.text
    r = client.post(str(r.url.path) + "/save", data={"csrf_token": csrf_of(r.text)})
    assert r.status_code == 403


def test_launch_from_an_issuer_not_allow_listed_is_refused(launchable: Launchable) -> None:
    client = signed_in(launchable.svc)
    calls = len(launchable.ehr.calls)
    r = client.get(launchable.launch_url(iss="http://127.0.0.1:9/fhir"))
    assert r.status_code == 400
    assert "list of allowed EHRs" in r.text
    # a look-alike of the allowed issuer is not it either
    r = client.get(launchable.launch_url(iss=launchable.ehr.fhir + "-evil"))
    assert r.status_code == 400
    assert len(launchable.ehr.calls) == calls  # nothing was fetched from anywhere


def test_callback_with_a_wrong_state_is_refused(launchable: Launchable) -> None:
    client = signed_in(launchable.svc)
    back = _launch_to_callback(client, launchable)
    parts = urlsplit(back)
    q = parse_qs(parts.query)
    r = client.get(f"{parts.path}?code={q['code'][0]}&state=not-the-state")
    assert r.status_code == 400
    assert "Launch not recognised" in r.text
    assert ("token", "authorization_code") not in launchable.ehr.calls  # the code was not used
    # the right state still works once, and never twice (replay)
    assert client.get(back).status_code == 303
    assert client.get(back).status_code == 400


def test_callback_of_another_users_launch_is_refused(launchable: Launchable) -> None:
    cleo = signed_in(launchable.svc)
    back = _launch_to_callback(cleo, launchable)
    rita = signed_in(launchable.svc, "rita")
    r = rita.get(back)
    assert r.status_code == 400
    assert "Launch not recognised" in r.text


def test_expired_code_is_refused_by_the_ehr(launchable: Launchable) -> None:
    launchable.ehr.code_seconds = -1  # every code is already expired when it is redeemed
    client = signed_in(launchable.svc)
    r = client.get(_launch_to_callback(client, launchable))
    assert r.status_code == 502
    assert "invalid_grant" in r.text and "expired" in r.text
    assert "Patient ehr-4711" not in r.text


def test_pkce_verifier_is_required_and_checked(launchable: Launchable) -> None:
    """The test EHR refuses a token request without, or with a wrong, code_verifier; the app
    sends the verifier of the launch (the whole launch succeeds only with the right one)."""
    import httpx

    client = signed_in(launchable.svc)
    back = _launch_to_callback(client, launchable)
    code = parse_qs(urlsplit(back).query)["code"][0]
    token_url = launchable.ehr.base + "/auth/token"
    form = {"grant_type": "authorization_code", "code": code, "client_id": "cart-cytopenia-test",
            "redirect_uri": "http://testserver/smart/callback"}  # fmt: skip
    missing = httpx.post(token_url, data=form)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    assert "code_verifier" in missing.json()["error_description"]

    back = _launch_to_callback(client, launchable)
    code = parse_qs(urlsplit(back).query)["code"][0]
    wrong = httpx.post(token_url, data={**form, "code": code, "code_verifier": "x" * 64})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert s256("x" * 64) != launchable.ehr.grants[code].challenge

    r = client.get(_launch_to_callback(client, launchable))
    assert r.status_code == 303  # the app's own verifier is accepted


def test_token_without_patient_context_is_refused(launchable: Launchable) -> None:
    launchable.ehr.give_patient = False
    client = signed_in(launchable.svc)
    r = client.get(_launch_to_callback(client, launchable))
    assert r.status_code == 502
    assert "no patient context" in r.text


def _reload(client, page) -> str:
    r = client.post(str(page.url.path) + "/reload", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 303
    text = client.get(r.headers["location"]).text
    return text.split('<div class="flash" role="status">')[1].split("</div>")[0]


def test_access_token_refused_by_the_fhir_server_is_refreshed(launchable: Launchable) -> None:
    client = signed_in(launchable.svc)
    page = client.get(client.get(_launch_to_callback(client, launchable)).headers["location"])
    launchable.ehr.expire_access_tokens()  # revoked early: the app still thinks it valid
    assert _reload(client, page) == "Read again from the EHR."
    assert launchable.ehr.calls.count(("token", "refresh_token")) == 1


def test_expired_access_token_is_refreshed_before_reading(launchable: Launchable) -> None:
    import time

    from cart_cytopenia.store import accounts

    client = signed_in(launchable.svc)
    page = client.get(client.get(_launch_to_callback(client, launchable)).headers["location"])
    assert ("token", "refresh_token") not in launchable.ehr.calls
    with launchable.svc.db.session() as s:
        user = accounts.get_user_by_name(s, "cleo")
        assert user is not None
        user_id = user.id
    opened = launchable.svc.app.state.smart_launches.patient(page.url.path.split("/")[-1], user_id)
    opened.token["expires_at"] = time.time() + 10  # within the 30 s the app keeps in hand
    searches = sum(1 for kind, _ in launchable.ehr.calls if kind == "search")
    assert _reload(client, page) == "Read again from the EHR."
    calls = launchable.ehr.calls
    first_refresh = calls.index(("token", "refresh_token"))
    assert sum(1 for kind, _ in calls[:first_refresh] if kind == "search") == searches
    assert ("read", "Patient/ehr-4711") in calls[first_refresh:]  # read with the new token


def test_no_refresh_token_means_launch_again(launchable: Launchable) -> None:
    launchable.ehr.refresh_tokens_given = False
    client = signed_in(launchable.svc)
    page = client.get(client.get(_launch_to_callback(client, launchable)).headers["location"])
    launchable.ehr.expire_access_tokens()
    assert "refused the access token" in _reload(client, page)


def test_standalone_launch(standalone: Launchable) -> None:
    client = signed_in(standalone.svc)
    r = client.get("/smart/standalone")
    q = parse_qs(urlsplit(continue_url(r)).query)
    assert "launch/patient" in q["scope"][0].split() and "launch" not in q
    page = client.get(client.get(authorize(r)).headers["location"])
    assert page.status_code == 200
    assert "Patient ehr-4711" in page.text


def test_launch_needs_a_signed_in_user_and_then_goes_on(launchable: Launchable) -> None:
    from tests.service.conftest import PASSWORD

    client = launchable.svc.client()
    url = launchable.launch_url()
    r = client.get(url)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    login_page = client.get(r.headers["location"])
    r = client.post("/login", data={"username": "cleo", "password": PASSWORD,
                                    "csrf_token": csrf_of(login_page.text), "next": url})  # fmt: skip
    assert r.headers["location"] == url
    assert continue_url(client.get(url)).startswith(launchable.ehr.base + "/auth/authorize?")
