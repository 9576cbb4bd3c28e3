"""Settings of the web service: environment variables ``CART_CYTOPENIA_*`` or a TOML file.

Precedence: built-in defaults < the settings file (``CART_CYTOPENIA_CONFIG`` or ``--config``)
< environment variables. Every field can be set as ``CART_CYTOPENIA_<FIELD>`` (upper case),
e.g. ``CART_CYTOPENIA_DATABASE_URL``, ``CART_CYTOPENIA_SECRET_KEY``.

Outside ``environment = "development"`` the service refuses to start without a secret key of
its own (at least 32 characters, not the development default). The clinical settings
(transfusion thresholds, G-CSF timing ...) are a separate file, ``clinical_settings_file``
(see ``cart_cytopenia.rules.settings``).
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cart_cytopenia.errors import SettingsError
from cart_cytopenia.rules.settings import Settings, load_settings
from cart_cytopenia.service.smart.settings import SmartSettings, smart_from_env
from cart_cytopenia.store.accounts import (
    OWASP_MINIMUM_KIB,
    OWASP_MINIMUM_KIB_PASSES,
    HashParameters,
)
from cart_cytopenia.store.db import PoolOptions

ENV_PREFIX = "CART_CYTOPENIA_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
DEV_SECRET = "development-only-secret-do-not-use-in-production"
MIN_SECRET = 32


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cart-cytopenia"


class ServiceSettings(BaseModel):
    """Everything the web service needs to run; see docs/deployment.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    environment: Literal["development", "production"] = Field(
        "production", description="'development' allows the built-in secret and plain-HTTP cookies"
    )
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty: an SQLite file in data_dir (sqlite:///...)"
    )
    data_dir: Path = Field(default_factory=default_data_dir)
    secret_key: str = Field(DEV_SECRET, repr=False, description="Signs session cookies and CSRF")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    root_path: str = Field("", description="Path prefix when served behind a reverse proxy")
    forwarded_allow_ips: str = Field(
        "127.0.0.1", description="Proxies whose X-Forwarded-* headers are trusted"
    )
    clinical_settings_file: Path | None = Field(
        None, description="Institutional clinical settings (TOML), see docs/settings"
    )
    session_hours: float = Field(12, gt=0, le=24 * 30)
    cookie_secure: bool | None = Field(
        None, description="Secure cookies (HTTPS only); default: on outside development"
    )
    login_max_failures: int = Field(5, ge=1, le=100)
    login_max_failures_per_client: int = Field(20, ge=1, le=1000)
    login_window_seconds: int = Field(900, ge=10, le=86_400)
    api_token_days: int = Field(365, ge=1, le=3650)
    today: dt.date | None = Field(
        None, description="Fix 'today' (demo, training, tests); default: the real date"
    )
    max_upload_bytes: int = Field(
        20_000_000, ge=1000, description="Largest request body; larger ones get 413 at once"
    )
    background_upload_bytes: int = Field(
        1_000_000, ge=0, description="Uploads larger than this run as a background job"
    )
    db_pool_size: int = Field(
        20, ge=1, le=200, description="PostgreSQL connections kept open (one per worker thread)"
    )
    db_max_overflow: int = Field(10, ge=0, le=200, description="Extra PostgreSQL connections")
    db_pool_timeout: float = Field(
        10, gt=0, le=300, description="Seconds to wait for a free connection before a 503"
    )
    db_statement_timeout_ms: int = Field(
        30_000, ge=100, description="PostgreSQL statement_timeout and idle-in-transaction limit"
    )
    db_busy_timeout_ms: int = Field(
        10_000, ge=100, description="SQLite busy_timeout: how long a writer waits for the lock"
    )
    worker_threads: int = Field(
        6,
        ge=2,
        le=200,
        description="Thread pool for routes (database, hashing, grading); few: they share one "
        "interpreter lock",
    )
    answer_cache_bytes: int = Field(
        64 * 1024 * 1024, ge=0, description="Memory for answers kept per course version"
    )
    hash_concurrency: int = Field(
        0, ge=0, le=64, description="Password checks at once (0: one per CPU core)"
    )
    password_hash_memory_kib: int = Field(
        HashParameters.memory_kib,
        ge=OWASP_MINIMUM_KIB,
        le=4 * 1024 * 1024,
        description="argon2id memory per password hash, KiB (OWASP: 19 MiB with 2 passes)",
    )
    password_hash_time_cost: int = Field(
        HashParameters.time_cost, ge=1, le=20, description="argon2id passes over the memory"
    )
    password_hash_parallelism: int = Field(
        HashParameters.parallelism, ge=1, le=16, description="argon2id lanes (threads) per hash"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    smart: SmartSettings = Field(
        default_factory=SmartSettings, description="SMART on FHIR app launch ([smart] table)"
    )

    @model_validator(mode="after")
    def _hashing_not_weaker_than_owasp(self) -> ServiceSettings:
        product = self.password_hash_memory_kib * self.password_hash_time_cost
        if product < OWASP_MINIMUM_KIB_PASSES:
            raise ValueError(
                f"password_hash_memory_kib x password_hash_time_cost is {product:,} KiB; the "
                f"OWASP Password Storage Cheat Sheet's weakest argon2id configuration is "
                f"{OWASP_MINIMUM_KIB_PASSES:,} (7 MiB x 5 passes; default 19 MiB x 2)"
            )
        return self

    def hash_parameters(self) -> HashParameters:
        return HashParameters(
            memory_kib=self.password_hash_memory_kib,
            time_cost=self.password_hash_time_cost,
            parallelism=self.password_hash_parallelism,
        )

    @property
    def development(self) -> bool:
        return self.environment == "development"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'cart-cytopenia.db').expanduser()}"

    @property
    def secure_cookies(self) -> bool:
        return (not self.development) if self.cookie_secure is None else self.cookie_secure

    def check_secret(self) -> None:
        """Refuse a default or weak secret outside development."""
        if self.development:
            return
        if self.secret_key == DEV_SECRET or not self.secret_key:
            raise SettingsError(
                "CART_CYTOPENIA_SECRET_KEY is not set: outside development the service needs a "
                "secret of its own (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`), "
                "or set CART_CYTOPENIA_ENVIRONMENT=development for a local trial"
            )
        if len(self.secret_key) < MIN_SECRET:
            raise SettingsError(
                f"CART_CYTOPENIA_SECRET_KEY is too short ({len(self.secret_key)} characters); "
                f"use at least {MIN_SECRET} random characters"
            )

    def pool_options(self) -> PoolOptions:
        return PoolOptions(
            pool_size=self.db_pool_size,
            max_overflow=self.db_max_overflow,
            pool_timeout=self.db_pool_timeout,
            statement_timeout_ms=self.db_statement_timeout_ms,
            busy_timeout_ms=self.db_busy_timeout_ms,
        )

    def clinical_settings(self) -> Settings:
        return load_settings(self.clinical_settings_file)


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ServiceSettings.model_fields:
        key = ENV_PREFIX + name.upper()
        if key in env and env[key] != "":
            out[name] = env[key]
    return out


def load_service_settings(
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> ServiceSettings:
    """Defaults < settings file < environment < explicit overrides (e.g. ``--port``)."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    path = config_file or env.get(CONFIG_ENV) or None
    source = "defaults"
    if path:
        p = Path(path)
        try:
            raw.update(tomllib.loads(p.read_text()))
        except FileNotFoundError:
            raise SettingsError(f"service settings file {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"service settings file {p} is not valid TOML: {exc}") from None
        source = str(p)
    raw.update(_from_env(env))
    try:
        smart_env = smart_from_env(env, ENV_PREFIX)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    if smart_env:
        raw["smart"] = {**raw.get("smart", {}), **smart_env}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = ServiceSettings.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            name = ".".join(str(x) for x in e["loc"])
            where = f"{name} (env {ENV_PREFIX}{name.upper()}): " if name else ""
            lines.append(f"{where}{e['msg']}")
        raise SettingsError(
            f"service settings from {source} and the environment are invalid:\n  - "
            + "\n  - ".join(lines)
        ) from None
    return settings
