"""HZ-013-S3: guidance from data of a server that is not the centre's EHR (a crafted launch link
naming another 'iss', or a token response not meant for this app).

Controls: only allow-listed issuers are contacted; the id_token must be signed by the EHR's
published key for this client; discovery must offer PKCE S256."""

from __future__ import annotations

from tests.smart.conftest import Launchable, authorize, signed_in


def test_a_launch_from_an_issuer_not_allow_listed_contacts_nothing(
    launchable: Launchable,
) -> None:
    client = signed_in(launchable.svc)
    for iss in ("https://evil.example.org/fhir", launchable.ehr.fhir + ".evil.example.org"):
        r = client.get(launchable.launch_url(iss=iss))
        assert r.status_code == 400
        assert "list of allowed EHRs" in r.text
    assert launchable.ehr.calls == []


def test_an_id_token_for_another_client_opens_no_patient(launchable: Launchable) -> None:
    launchable.ehr.id_token_audience = "another-app"
    client = signed_in(launchable.svc)
    r = client.get(authorize(client.get(launchable.launch_url())))
    assert r.status_code == 502
    assert not any(kind == "search" for kind, _ in launchable.ehr.calls)


def test_an_authorization_server_without_pkce_s256_is_not_used(launchable: Launchable) -> None:
    launchable.ehr.configuration["code_challenge_methods_supported"] = []
    r = signed_in(launchable.svc).get(launchable.launch_url())
    assert r.status_code == 502
    assert ("discovery", "") in launchable.ehr.calls
    assert not any(kind == "authorize" for kind, _ in launchable.ehr.calls)
