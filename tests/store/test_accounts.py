"""Accounts (store/accounts.py) and the audit log (store/audit.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from argon2 import extract_parameters

from cart_cytopenia.errors import InputError
from cart_cytopenia.store import accounts, audit
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.errors import AuthError, ConflictError, RateLimitedError
from cart_cytopenia.store.models import ApiToken, utcnow

LIMITS = accounts.LoginLimits(
    max_failures_per_user=3, max_failures_per_client=10, window_seconds=60
)
PASSWORD = "correct horse battery"


def _user(db: Database, name: str = "alice", role: str = "clinician") -> int:
    with db.transaction() as s:
        return accounts.create_user(s, name, PASSWORD, role).id


def test_passwords_are_argon2_hashed_and_verified(db: Database) -> None:
    uid = _user(db)
    with db.transaction() as s:
        user = accounts.get_user(s, uid)
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        ok = accounts.authenticate(s, "alice", PASSWORD, "127.0.0.1", LIMITS)
        assert ok is not None
        assert ok.id == uid
        assert accounts.authenticate(s, "alice", "wrong password!", "127.0.0.1", LIMITS) is None
        assert accounts.authenticate(s, "nobody", PASSWORD, "127.0.0.1", LIMITS) is None


def test_account_rules(db: Database) -> None:
    with pytest.raises(InputError) as info, db.transaction() as s:
        accounts.create_user(s, "x", "short", "superuser")
    assert {p.location.field for p in info.value.problems} == {"username", "password", "role"}
    _user(db)
    with pytest.raises(ConflictError), db.transaction() as s:
        accounts.create_user(s, "alice", PASSWORD, "admin")


def test_login_rate_limit_per_user(db: Database) -> None:
    _user(db)
    for _ in range(3):
        with db.transaction() as s:
            assert accounts.authenticate(s, "alice", "wrong password!", "10.0.0.1", LIMITS) is None
    # even the right password is refused while limited
    with pytest.raises(RateLimitedError) as info, db.transaction() as s:
        accounts.authenticate(s, "alice", PASSWORD, "10.0.0.2", LIMITS)
    assert info.value.retry_after == 60


def test_deactivated_user_cannot_sign_in_and_loses_sessions(db: Database) -> None:
    uid = _user(db)
    with db.transaction() as s:
        token, _ = accounts.create_session(s, accounts.get_user(s, uid), 3600)
        assert accounts.session_for_token(s, token) is not None
        accounts.set_active(s, accounts.get_user(s, uid), False)
    with db.transaction() as s:
        assert accounts.session_for_token(s, token) is None
        assert accounts.authenticate(s, "alice", PASSWORD, "127.0.0.1", LIMITS) is None


def test_sessions_expire_and_end(db: Database) -> None:
    uid = _user(db)
    with db.transaction() as s:
        token, ws = accounts.create_session(s, accounts.get_user(s, uid), 3600)
        assert len(ws.csrf_token) >= 32
        ws.expires_at = utcnow() - dt.timedelta(seconds=1)
    with db.transaction() as s:
        assert accounts.session_for_token(s, token) is None
        token2, _ = accounts.create_session(s, accounts.get_user(s, uid), 3600)
        accounts.end_session(s, token2)
        assert accounts.session_for_token(s, token2) is None


def test_api_tokens_hashed_revocable(db: Database) -> None:
    uid = _user(db)
    with db.transaction() as s:
        token, t = accounts.create_api_token(s, accounts.get_user(s, uid), "lab interface")
        assert token.startswith("cct_")
        assert t.token_hash != token
        assert token.startswith(t.prefix)
        tid = t.id
    with db.transaction() as s:
        _, user = accounts.user_for_api_token(s, token)
        assert user.id == uid
        with pytest.raises(AuthError):
            accounts.user_for_api_token(s, token + "x")
        accounts.revoke_api_token(s, user, tid)
    with pytest.raises(AuthError), db.transaction() as s:
        accounts.user_for_api_token(s, token)


def test_api_token_last_use_is_written_once_a_minute(db: Database) -> None:
    uid = _user(db)
    with db.transaction() as s:
        token, t = accounts.create_api_token(s, accounts.get_user(s, uid), "lab interface")
        tid = t.id
        assert t.last_used_at is None
    with db.transaction() as s:
        t, _ = accounts.user_for_api_token(s, token)
        first = t.last_used_at
        assert first is not None
    with db.session() as s:  # used again within the minute: nothing to write
        t, _ = accounts.user_for_api_token(s, token)
        assert t.last_used_at == first and not s.dirty
    with db.transaction() as s:
        s.get(ApiToken, tid).last_used_at = first - dt.timedelta(seconds=61)  # type: ignore[union-attr]
    with db.transaction() as s:
        t, _ = accounts.user_for_api_token(s, token)
        assert t.last_used_at is not None and t.last_used_at >= first
    with db.session() as s:
        assert s.get(ApiToken, tid).last_used_at >= first  # type: ignore[union-attr,operator]


def test_new_password_ends_sessions(db: Database) -> None:
    uid = _user(db)
    with db.transaction() as s:
        token, _ = accounts.create_session(s, accounts.get_user(s, uid), 3600)
        accounts.set_password(s, accounts.get_user(s, uid), "another long passphrase")
    with db.transaction() as s:
        assert accounts.session_for_token(s, token) is None
        user = accounts.authenticate(s, "alice", "another long passphrase", "c", LIMITS)
        assert user is not None
        assert user.id == uid


def test_audit_log_records_who_what_when(db: Database) -> None:
    with db.transaction() as s:
        audit.record(
            s,
            username="alice",
            user_id=1,
            action="read",
            resource="course",
            resource_id=7,
            patient_id=3,
            channel="web",
            client="127.0.0.1",
        )
        audit.record(
            s,
            username="bob",
            action="update",
            resource="observation",
            resource_id=9,
            patient_id=4,
            channel="api",
        )
        with pytest.raises(ValueError, match="unknown audit action"):
            audit.record(s, username="x", action="peek", resource="course")
    with db.session() as s:
        rows = audit.entries(s, patient_id=3)
        assert [(r.username, r.action, r.resource, r.resource_id) for r in rows] == [
            ("alice", "read", "course", "7")
        ]
        assert rows[0].at.tzinfo is not None
        assert len(audit.entries(s)) == 2


# --------------------------------------------------------------------------- argon2 parameters

OWASP = accounts.HashParameters(memory_kib=19_456, time_cost=2, parallelism=1)
RFC_9106_LOW_MEMORY = accounts.HashParameters(memory_kib=65_536, time_cost=3, parallelism=4)


@pytest.fixture
def hashing() -> Iterator[None]:
    """Put the module's default hashing back after a test that configures another."""
    yield
    accounts.configure_hashing(accounts.HashParameters(), 2)


def _params(password_hash: str) -> accounts.HashParameters:
    p = extract_parameters(password_hash)
    return accounts.HashParameters(p.memory_cost, p.time_cost, p.parallelism)


def test_default_hash_parameters_are_owasps_argon2id_minimum(db: Database) -> None:
    assert accounts.HashParameters() == OWASP
    uid = _user(db)
    with db.transaction() as s:
        stored = accounts.get_user(s, uid).password_hash
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_old_hashes_verify_and_are_rehashed_at_the_next_good_sign_in(
    db: Database, hashing: None
) -> None:
    accounts.configure_hashing(RFC_9106_LOW_MEMORY, 2)  # e.g. the library default used before
    uid = _user(db)
    accounts.configure_hashing(OWASP, 2)
    with db.transaction() as s:
        old = accounts.get_user(s, uid).password_hash
        assert _params(old) == RFC_9106_LOW_MEMORY
        # a failed sign-in changes nothing
        assert accounts.authenticate(s, "alice", "wrong password!", "127.0.0.1", LIMITS) is None
        assert accounts.get_user(s, uid).password_hash == old
    with db.transaction() as s:
        assert accounts.authenticate(s, "alice", PASSWORD, "127.0.0.1", LIMITS) is not None
    with db.transaction() as s:
        new = accounts.get_user(s, uid).password_hash
    assert new != old and _params(new) == OWASP
    with db.transaction() as s:  # the new hash verifies, and is not hashed again
        assert accounts.authenticate(s, "alice", PASSWORD, "127.0.0.1", LIMITS) is not None
        assert accounts.get_user(s, uid).password_hash == new


def test_unknown_users_are_checked_against_a_hash_of_the_same_parameters(
    db: Database, hashing: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stronger = accounts.HashParameters(memory_kib=24_576, time_cost=3, parallelism=2)
    accounts.configure_hashing(stronger, 2)
    assert accounts.hash_parameters() == stronger
    checked: list[str] = []
    real = accounts._verify
    monkeypatch.setattr(
        accounts,
        "_verify",
        lambda h, p: checked.append(h) or real(h, p),  # type: ignore[func-returns-value]
    )
    with db.transaction() as s:
        assert accounts.authenticate(s, "nobody", PASSWORD, "127.0.0.1", LIMITS) is None
    assert len(checked) == 1 and _params(checked[0]) == stronger
