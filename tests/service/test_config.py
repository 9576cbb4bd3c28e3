"""Service settings (service/config.py): environment, file, precedence, the secret rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from cart_cytopenia.errors import SettingsError
from cart_cytopenia.service.config import DEV_SECRET, load_service_settings

GOOD_SECRET = "x" * 40


def test_environment_variables_with_prefix(tmp_path: Path) -> None:
    env = {
        "CART_CYTOPENIA_DATABASE_URL": "postgresql://u:p@db/cc",
        "CART_CYTOPENIA_SECRET_KEY": GOOD_SECRET,
        "CART_CYTOPENIA_PORT": "9000",
        "CART_CYTOPENIA_SESSION_HOURS": "8",
        "CART_CYTOPENIA_TEST_POSTGRES_URL": "ignored: not a setting",
        "OTHER": "ignored",
    }
    s = load_service_settings(env=env)
    assert s.database_url == "postgresql://u:p@db/cc"
    assert s.port == 9000
    assert s.session_hours == 8
    assert s.environment == "production"
    s.check_secret()
    assert GOOD_SECRET not in repr(s)


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "service.toml"
    f.write_text('port = 8100\nhost = "0.0.0.0"\nenvironment = "development"\n')
    s = load_service_settings(f, env={"CART_CYTOPENIA_PORT": "8200"})
    assert (s.host, s.port, s.environment) == ("0.0.0.0", 8200, "development")
    s = load_service_settings(f, env={"CART_CYTOPENIA_PORT": "8200"}, port=8300, host=None)
    assert (s.host, s.port) == ("0.0.0.0", 8300)
    s = load_service_settings(env={"CART_CYTOPENIA_CONFIG": str(f)})
    assert s.port == 8100


def test_default_database_is_an_embedded_sqlite_file(tmp_path: Path) -> None:
    s = load_service_settings(env={"CART_CYTOPENIA_DATA_DIR": str(tmp_path)})
    assert s.effective_database_url == f"sqlite:///{tmp_path / 'cart-cytopenia.db'}"


def test_refuses_default_or_weak_secret_outside_development() -> None:
    with pytest.raises(SettingsError, match="SECRET_KEY is not set"):
        load_service_settings(env={}).check_secret()
    with pytest.raises(SettingsError, match="SECRET_KEY is not set"):
        load_service_settings(env={"CART_CYTOPENIA_SECRET_KEY": DEV_SECRET}).check_secret()
    with pytest.raises(SettingsError, match="too short"):
        load_service_settings(env={"CART_CYTOPENIA_SECRET_KEY": "short"}).check_secret()
    dev = load_service_settings(env={"CART_CYTOPENIA_ENVIRONMENT": "development"})
    dev.check_secret()
    assert dev.secure_cookies is False
    assert load_service_settings(env={"CART_CYTOPENIA_SECRET_KEY": GOOD_SECRET}).secure_cookies


def test_bad_values_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="CART_CYTOPENIA_PORT"):
        load_service_settings(env={"CART_CYTOPENIA_PORT": "eighty"})
    f = tmp_path / "s.toml"
    f.write_text("prot = 80\n")
    with pytest.raises(SettingsError, match="prot"):
        load_service_settings(f, env={})
    with pytest.raises(SettingsError, match="does not exist"):
        load_service_settings(tmp_path / "missing.toml", env={})


def test_clinical_settings_file_is_loaded(tmp_path: Path) -> None:
    clinical = tmp_path / "clinical.toml"
    clinical.write_text('institution = "Test Centre"\n[transfusion]\nplatelets_below_10e9_l = 20\n')
    s = load_service_settings(env={"CART_CYTOPENIA_CLINICAL_SETTINGS_FILE": str(clinical)})
    cs = s.clinical_settings()
    assert cs.institution == "Test Centre"
    assert cs.transfusion.platelets_below_10e9_l == 20


def test_app_refuses_to_start_with_default_secret_or_old_schema(tmp_path: Path) -> None:
    from cart_cytopenia.service.app import create_app

    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        create_app(load_service_settings(env={"CART_CYTOPENIA_DATABASE_URL": url}))
    s = load_service_settings(
        env={"CART_CYTOPENIA_DATABASE_URL": url, "CART_CYTOPENIA_SECRET_KEY": GOOD_SECRET}
    )
    with pytest.raises(SettingsError, match="db upgrade"):
        create_app(s)


def test_password_hash_parameters_are_settings_not_weaker_than_owasp() -> None:
    s = load_service_settings(env={})
    assert (s.password_hash_memory_kib, s.password_hash_time_cost) == (19_456, 2)
    assert s.password_hash_parallelism == 1
    env = {
        "CART_CYTOPENIA_PASSWORD_HASH_MEMORY_KIB": "65536",
        "CART_CYTOPENIA_PASSWORD_HASH_TIME_COST": "3",
        "CART_CYTOPENIA_PASSWORD_HASH_PARALLELISM": "4",
    }
    params = load_service_settings(env=env).hash_parameters()
    assert (params.memory_kib, params.time_cost, params.parallelism) == (65_536, 3, 4)
    # OWASP's table: 7 MiB needs 5 passes; 12 MiB x 3 is one of its rows
    ok = {"CART_CYTOPENIA_PASSWORD_HASH_MEMORY_KIB": "12288",
          "CART_CYTOPENIA_PASSWORD_HASH_TIME_COST": "3"}  # fmt: skip
    assert load_service_settings(env=ok).password_hash_memory_kib == 12_288
    with pytest.raises(SettingsError, match="OWASP"):
        load_service_settings(env={**ok, "CART_CYTOPENIA_PASSWORD_HASH_TIME_COST": "1"})
    with pytest.raises(SettingsError, match="PASSWORD_HASH_MEMORY_KIB"):
        load_service_settings(env={"CART_CYTOPENIA_PASSWORD_HASH_MEMORY_KIB": "4096"})


def test_the_service_hashes_with_its_settings_and_rehashes_at_sign_in(tmp_path: Path) -> None:
    from argon2 import extract_parameters

    from cart_cytopenia.store import accounts
    from tests.service.conftest import login, make_service

    # accounts made with the default parameters; the service then runs with 12 MiB x 3 passes
    svc = make_service(tmp_path, password_hash_memory_kib=12_288, password_hash_time_cost=3)
    try:
        assert accounts.hash_parameters() == accounts.HashParameters(12_288, 3, 1)
        with svc.db.session() as s:
            before = accounts.get_user_by_name(s, "cleo").password_hash  # type: ignore[union-attr]
        assert extract_parameters(before).memory_cost == 19_456
        login(svc.client(), "cleo")
        with svc.db.session() as s:
            after = accounts.get_user_by_name(s, "cleo").password_hash  # type: ignore[union-attr]
        p = extract_parameters(after)
        assert (p.memory_cost, p.time_cost, p.parallelism) == (12_288, 3, 1)
    finally:
        svc.db.dispose()
        accounts.configure_hashing(accounts.HashParameters(), 2)


def test_few_worker_threads_each_with_a_connection() -> None:
    """Routes share one interpreter lock: a small pool (6), and never more threads than pooled
    connections (a thread would wait for one)."""
    s = load_service_settings(env={})
    assert s.worker_threads == 6 and s.worker_threads <= s.db_pool_size
