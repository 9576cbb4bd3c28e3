"""The SMART settings documented in docs/deployment.md load, and name every field; the
registration table in docs/interoperability.md lists the scopes the app asks for."""

from __future__ import annotations

import re
from pathlib import Path

from cart_cytopenia.service.config import load_service_settings
from cart_cytopenia.service.smart.settings import SmartSettings
from tests.conftest import ROOT

DEPLOYMENT = ROOT / "docs" / "deployment.md"
INTEROPERABILITY = ROOT / "docs" / "interoperability.md"


def test_smart_settings_example_loads(tmp_path: Path) -> None:
    text = DEPLOYMENT.read_text(encoding="utf-8")
    (example,) = [b for b in re.findall(r"```toml\n(.*?)```", text, flags=re.S) if "[smart]" in b]
    f = tmp_path / "service.toml"
    f.write_text(example)
    s = load_service_settings(f, env={}).smart
    assert s.enabled
    assert s.issuers == ["https://ehr.example.org/fhir"]
    assert s.public_url == "https://cart-cytopenia.example.org"


def test_every_smart_setting_is_documented_with_its_default() -> None:
    text = DEPLOYMENT.read_text(encoding="utf-8")
    for name in SmartSettings.model_fields:
        assert f"| `{name}` |" in text, name
    assert " ".join(SmartSettings().scopes) in text


def test_registration_table_lists_the_scopes_asked_for() -> None:
    text = INTEROPERABILITY.read_text(encoding="utf-8")
    data = [s for s in SmartSettings().scopes if s.startswith("patient/")]
    assert " ".join(data) in text
    assert "/smart/launch" in text and "/smart/callback" in text
