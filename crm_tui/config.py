"""Settings from the environment, `./.env` and the user config dir's `.env`.

Precedence: environment variables, then `./.env`, then `<config dir>/.env`.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_NAME = "crm-tui"
SOURCE_NAMES = ("brivity", "topproducer", "followupboss", "local")
DISPLAY_NAMES = {
    "brivity": "Brivity",
    "topproducer": "TopProducer",
    "followupboss": "Follow Up Boss",
    "local": "Local",
}


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def default_env_files(explicit: Path | None = None) -> tuple[Path, ...]:
    """Later files win over earlier ones, as pydantic-settings reads them."""
    if explicit is not None:
        return (explicit,)
    return (config_dir() / ".env", Path.cwd() / ".env")


def _http_url(value: str | None, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise ValueError("must be set")
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str
    enabled: bool
    missing: tuple[str, ...]
    mode: str  # "api", "csv", "database" or "" when disabled

    @property
    def display_name(self) -> str:
        return DISPLAY_NAMES.get(self.name, self.name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore",
        env_file_encoding="utf-8",
        case_sensitive=False,
        hide_input_in_errors=True,
        env_ignore_empty=True,  # `KEY=` copied from .env.example means "use the default"
    )

    brivity_api_base_url: str = "https://api.brivity.com"
    brivity_api_key: SecretStr | None = None
    # The integration guide's OAuth pair. Brivity's real Core API uses only the key.
    brivity_client_id: str | None = None
    brivity_client_secret: SecretStr | None = None
    brivity_transactions_csv: Path | None = None

    topproducer_api_base_url: str | None = None
    topproducer_api_key: SecretStr | None = None
    topproducer_client_id: str | None = None
    topproducer_client_secret: SecretStr | None = None
    topproducer_import_dir: Path | None = None

    fub_api_key: SecretStr | None = None
    fub_api_base_url: str = "https://api.followupboss.com/v1"
    fub_system: str | None = None
    fub_system_key: SecretStr | None = None

    crm_user_id: str = Field(default_factory=getpass.getuser, min_length=1)
    crm_data_dir: Path | None = None
    crm_sync_interval_minutes: int = Field(default=0, ge=0)
    crm_cache_ttl_minutes: int = Field(default=60, ge=0)
    crm_http_timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    crm_theme: str | None = None
    crm_phone_region: str = Field(default="US", min_length=2, max_length=2)

    @field_validator("brivity_api_base_url", "fub_api_base_url")
    @classmethod
    def _required_url(cls, value: str) -> str:
        return _http_url(value, required=True) or ""

    @field_validator("topproducer_api_base_url")
    @classmethod
    def _optional_url(cls, value: str | None) -> str | None:
        return _http_url(value, required=False)

    @field_validator(
        "brivity_api_key",
        "brivity_client_secret",
        "topproducer_api_key",
        "topproducer_client_secret",
        "fub_api_key",
        "fub_system_key",
        mode="before",
    )
    @classmethod
    def _blank_secret_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator(
        "brivity_client_id",
        "topproducer_client_id",
        "fub_system",
        "brivity_transactions_csv",
        "topproducer_import_dir",
        "crm_data_dir",
        "crm_theme",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    # -- derived -------------------------------------------------------------------------

    @property
    def user_id(self) -> str:
        return self.crm_user_id

    @property
    def data_dir(self) -> Path:
        if self.crm_data_dir is not None:
            return self.crm_data_dir.expanduser()
        return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))

    @property
    def database_path(self) -> Path:
        return self.data_dir / "crm.sqlite3"

    @property
    def log_dir(self) -> Path:
        if self.crm_data_dir is not None:
            return self.data_dir / "logs"
        return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))

    @property
    def log_file(self) -> Path:
        return self.log_dir / "crm-tui.log"

    def secret_values(self) -> list[str]:
        """Every configured secret, for masking in logs, errors and audit rows."""
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                raw = value.get_secret_value()
                if raw:
                    values.append(raw)
        return values

    def source_config(self, name: str) -> SourceConfig:
        missing: list[str] = []
        mode = ""
        if name == "brivity":
            if self.brivity_api_key is None:
                missing.append("BRIVITY_API_KEY")
            else:
                mode = "api"
        elif name == "topproducer":
            if self.topproducer_api_base_url:
                mode = "api"
                if not self.topproducer_client_id:
                    missing.append("TOPPRODUCER_CLIENT_ID")
                if self.topproducer_client_secret is None:
                    missing.append("TOPPRODUCER_CLIENT_SECRET")
            elif self.topproducer_import_dir is not None:
                mode = "csv"
            else:
                missing.append("TOPPRODUCER_IMPORT_DIR or TOPPRODUCER_API_BASE_URL")
        elif name == "followupboss":
            if self.fub_api_key is None:
                missing.append("FUB_API_KEY")
            else:
                mode = "api"
        elif name == "local":
            mode = "database"
        else:
            raise KeyError(name)
        return SourceConfig(name, not missing, tuple(missing), mode if not missing else "")

    def sources(self) -> dict[str, SourceConfig]:
        return {name: self.source_config(name) for name in SOURCE_NAMES}

    def enabled_sources(self) -> list[str]:
        return [name for name, cfg in self.sources().items() if cfg.enabled]


def _format_validation_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        variable = str(item["loc"][0]).upper() if item["loc"] else "settings"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{variable}: {message}")
    return "invalid configuration: " + "; ".join(lines)


def load_settings(env_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings, turning validation failures into a ConfigError naming the variable."""
    if env_file is not None and not env_file.is_file():
        raise ConfigError(f"--env-file: no such file: {env_file}")
    files = tuple(str(p) for p in default_env_files(env_file) if p.is_file())
    try:
        return Settings(_env_file=files or None, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None
