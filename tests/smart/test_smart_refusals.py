"""What the SMART launch refuses besides state, issuer, code expiry and PKCE
(test_smart_launch.py): an authorization server without PKCE S256 or without the flow, an
id_token for another client, the EHR's own refusal; and the confidential client."""

from __future__ import annotations

import pytest

from cart_cytopenia.errors import SettingsError
from cart_cytopenia.service.config import load_service_settings
from cart_cytopenia.service.smart.settings import SmartSettings
from tests.smart.conftest import Launchable, authorize, continue_url, signed_in


def _callback(launchable: Launchable):  # type: ignore[no-untyped-def]
    client = signed_in(launchable.svc)
    return client, client.get(authorize(client.get(launchable.launch_url())))


def test_authorization_server_without_pkce_s256_is_refused(launchable: Launchable) -> None:
    launchable.ehr.configuration["code_challenge_methods_supported"] = ["plain"]
    client = signed_in(launchable.svc)
    r = client.get(launchable.launch_url())
    assert r.status_code == 502
    assert "PKCE S256" in r.text
    assert not any(kind == "authorize" for kind, _ in launchable.ehr.calls)


def test_ehr_launch_not_offered_is_refused(launchable: Launchable) -> None:
    launchable.ehr.configuration["capabilities"] = ["launch-standalone"]
    r = signed_in(launchable.svc).get(launchable.launch_url())
    assert r.status_code == 502
    assert "launch-ehr" in r.text


def test_standalone_launch_without_its_issuer_says_so(launchable: Launchable) -> None:
    r = signed_in(launchable.svc).get("/smart/standalone")
    assert r.status_code == 404
    assert "standalone_issuer" in r.text
    assert launchable.ehr.calls == []


def test_ehr_launch_without_launch_parameter_is_refused(launchable: Launchable) -> None:
    r = signed_in(launchable.svc).get(f"/smart/launch?iss={launchable.ehr.fhir}")
    assert r.status_code == 400
    assert "launch" in r.text


def test_id_token_for_another_client_is_refused(launchable: Launchable) -> None:
    launchable.ehr.id_token_audience = "some-other-app"
    _client, r = _callback(launchable)
    assert r.status_code == 502
    assert "id_token was refused" in r.text
    assert not any(kind == "search" for kind, _ in launchable.ehr.calls)  # nothing read


def test_ehr_refusing_the_authorization_is_shown(launchable: Launchable) -> None:
    client = signed_in(launchable.svc)
    auth = continue_url(client.get(launchable.launch_url()))
    state = auth.split("state=")[1].split("&")[0]
    r = client.get(f"/smart/callback?state={state}&error=access_denied&error_description=no")
    assert r.status_code == 403
    assert "access_denied" in r.text


def test_confidential_client_authenticates_at_the_token_endpoint(
    confidential: Launchable,
) -> None:
    client, r = _callback(confidential)
    assert r.status_code == 303, r.text
    assert client.get(r.headers["location"]).status_code == 200


def test_smart_settings_from_environment_and_their_checks() -> None:
    env = {
        "CART_CYTOPENIA_SMART_CLIENT_ID": "cc",
        "CART_CYTOPENIA_SMART_ISSUERS": '["https://ehr.example.org/fhir/"]',
        "CART_CYTOPENIA_SMART_STANDALONE_ISSUER": "https://ehr.example.org/fhir",
    }
    s = load_service_settings(env=env).smart
    assert s.enabled and not s.confidential
    assert s.allowed("https://ehr.example.org/fhir/") == "https://ehr.example.org/fhir"
    assert s.allowed("https://ehr.example.org/fhir-other") is None
    assert s.scope_for("ehr").split()[0] == "launch"
    assert s.scope_for("standalone").split()[0] == "launch/patient"
    with pytest.raises(SettingsError, match="must be JSON"):
        load_service_settings(env={"CART_CYTOPENIA_SMART_ISSUERS": "https://x"})
    with pytest.raises(SettingsError, match="plain http"):
        load_service_settings(env={"CART_CYTOPENIA_SMART_ISSUERS": '["http://ehr/fhir"]'})
    with pytest.raises(ValueError, match="standalone_issuer"):
        SmartSettings(issuers=["https://a/fhir"], standalone_issuer="https://b/fhir")
    with pytest.raises(ValueError, match="leave 'launch'"):
        SmartSettings(scopes=["launch", "patient/*.rs"])
    assert not SmartSettings().enabled  # off until registered


def test_launch_is_off_without_registration(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.service.conftest import login, make_service

    svc = make_service(tmp_path)
    r = login(svc.client(), "cleo").get("/smart/launch?iss=https://ehr.example.org/fhir&launch=x")
    assert r.status_code == 404
    assert "not set up" in r.text
    svc.db.dispose()
