"""Settings from the environment, `./.env` and the user config dir's `.env`.

Precedence: environment variables, then `./.env`, then `<config dir>/.env`; `--env-file`
replaces both files. A `./.env` may be anybody's (a cloned repository, a shared folder): a
base URL read from it is used only with credentials read from that same file.
"""

from __future__ import annotations

import dataclasses
import getpass
import io
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

import platformdirs
from dotenv import dotenv_values
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from crm_tui.database_url import DatabaseUrl
from crm_tui.sources.kit import Setting
from crm_tui.sources.registry import CONNECTORS, DISPLAY_NAMES, SOURCE_NAMES

APP_NAME = "crm-tui"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


#: Where the config files live instead of the platform's place: the demo's own, so that
#: trying it never reads or writes a person's real mappings.toml.
CONFIG_DIR_ENV = "CRM_CONFIG_DIR"


def config_dir() -> Path:
    chosen = os.environ.get(CONFIG_DIR_ENV)
    return Path(chosen) if chosen else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def default_env_files(explicit: Path | None = None) -> tuple[Path, ...]:
    """Later files win over earlier ones, as pydantic-settings reads them."""
    if explicit is not None:
        return (explicit,)
    return (config_dir() / ".env", Path.cwd() / ".env")


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_url_problem(url: str) -> str | None:
    """Why credentials must not be sent to `url`, or None: only over HTTPS, or plain HTTP to
    this machine (the demo's simulators, tests)."""
    parsed = urlparse(url)
    if parsed.scheme == "https" or (parsed.scheme == "http" and is_loopback_host(parsed.hostname)):
        return None
    return (
        "must use https:// (plain http:// would send the credentials unencrypted; it is"
        " allowed only to a loopback address such as 127.0.0.1)"
    )


def _http_url(value: str | None, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise ValueError("must be set")
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("must be an http:// or https:// URL")
    problem = insecure_url_problem(value)
    if problem is not None:
        raise ValueError(problem)
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


def _blank_is_unset(value: Any) -> Any:
    return None if value == "" else value


def _url_of(value: str | None) -> str | None:
    """A base URL setting, checked: http(s), and https unless it is this machine."""
    return _http_url(value, required=False)


class CoreSettings(BaseSettings):
    """crm-tui's own settings; each source's are added from its declaration (`Settings`)."""

    model_config = SettingsConfigDict(
        extra="ignore",
        env_file_encoding="utf-8",
        case_sensitive=False,
        hide_input_in_errors=True,
        env_ignore_empty=True,  # `KEY=` copied from .env.example means "use the default"
    )

    crm_user_id: str = Field(
        default_factory=getpass.getuser,
        min_length=1,
        description="Whose data is read and written (default: the OS user name).",
    )
    crm_data_dir: Path | None = Field(
        default=None,
        description="Where the database lives (default: the platform's user data dir).",
    )
    crm_database_url: SecretStr | None = Field(
        default=None,
        description="Team mode: the store in PostgreSQL instead of the data dir's SQLite file"
        " (postgresql://ROLE:PASSWORD@HOST/DB?sslmode=require; any libpq setting passes"
        " through). See the README's Team section.",
    )
    crm_sync_interval_minutes: int = Field(
        default=0,
        ge=0,
        description="Minutes between scheduled syncs while the app or `sync --watch` runs;"
        " 0 turns them off.",
    )
    crm_cache_ttl_minutes: int = Field(
        default=60,
        ge=0,
        description="Cached data older than this (minutes) is synced again when the app starts.",
    )
    crm_full_sync_hours: float = Field(
        default=24.0,
        ge=0,
        description="A sync reads a stream in full (a reconcile: records deleted at the vendor"
        " leave the cache) when its last full read is older than this; between, it asks only"
        " for what changed. 0: every sync is full.",
    )
    crm_sync_overlap_seconds: int = Field(
        default=120,
        ge=0,
        le=86400,
        description="An incremental sync asks for changes from this long before the latest"
        " change it saw: clock skew and late commits at the vendor are never missed.",
    )
    crm_http_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        le=600,
        description="Read timeout for CRM APIs in seconds (Brivity's full pull uses at least 90).",
    )
    crm_theme: str | None = Field(
        default=None, description="A Textual theme: textual-dark, nord, gruvbox, ..."
    )
    crm_phone_region: str = Field(
        default="US",
        min_length=2,
        max_length=2,
        description="Default region for phone numbers without a country code.",
    )

    @field_validator("crm_phone_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.upper()
        if region != "US":  # the default needs no check; phonenumbers takes ~20 ms to import
            from phonenumbers import SUPPORTED_REGIONS

            if region not in SUPPORTED_REGIONS:
                raise ValueError(
                    f"unknown region {value!r}: use a two-letter region code such as US, CA,"
                    " GB or AU"
                )
        return region

    @field_validator("crm_data_dir")
    @classmethod
    def _expandable_path(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        try:
            return value.expanduser()
        except RuntimeError:  # `~name` for a user this system does not know
            raise ValueError(f"cannot expand {value.parts[0]!r}: no such user") from None

    @field_validator("crm_database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            DatabaseUrl(value.get_secret_value())  # says what is wrong, never the password
        return value

    @field_validator("crm_data_dir", "crm_theme", "crm_database_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return _blank_is_unset(value)

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
    def database_url(self) -> DatabaseUrl | None:
        """The team database, when the store is in PostgreSQL (None: the SQLite file)."""
        if self.crm_database_url is None:
            return None
        return DatabaseUrl(self.crm_database_url.get_secret_value())

    @property
    def database_location(self) -> str:
        """Where the store is, as shown to people: the file, or the URL without password."""
        url = self.database_url
        return str(self.database_path) if url is None else url.display

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
            if isinstance(value, SecretStr) and name != "crm_database_url":
                raw = value.get_secret_value()
                if raw:
                    values.append(raw)
        if self.database_url is not None:  # its password: the rest is shown, as an address
            values.append(self.database_url.password)
        return values

    def source_config(self, name: str) -> SourceConfig:
        cls = CONNECTORS.get(name)
        if cls is None:
            raise KeyError(name)
        missing = cls.missing(self)
        return SourceConfig(name, not missing, missing, "" if missing else cls.mode(self))

    def sources(self) -> dict[str, SourceConfig]:
        return {name: self.source_config(name) for name in SOURCE_NAMES}

    def enabled_sources(self) -> list[str]:
        return [name for name, cfg in self.sources().items() if cfg.enabled]


def _field(setting: Setting) -> tuple[Any, Any]:
    """A source setting as a Settings field: an empty value is unset; a URL is checked."""
    blank = BeforeValidator(_blank_is_unset)
    if setting.secret:
        return Annotated[SecretStr | None, blank], None
    if setting.kind in ("file", "folder"):
        return Annotated[Path | None, blank], None
    if setting.kind == "url":
        check = AfterValidator(_url_of)
        return Annotated[str | None, blank, check], setting.default
    return Annotated[str | None, blank], setting.default


#: crm-tui's settings: its own and, from the registry, every source's.
Settings = create_model(  # type: ignore[call-overload]
    "Settings",
    __base__=CoreSettings,
    __doc__="Every setting, from the environment and .env files (see load_settings).",
    **{s.field: _field(s) for cls in CONNECTORS.values() for s in cls.settings},
)


def _format_validation_error(error: ValidationError, sources: Sequence[SettingsSource] = ()) -> str:
    lines = []
    for item in error.errors():
        variable = str(item["loc"][0]).upper() if item["loc"] else "settings"
        message = item["msg"].removeprefix("Value error, ")
        where = _where_set(variable, sources)
        lines.append(f"{variable}{where}: {message}")
    return "invalid configuration: " + "; ".join(lines)


def _where_set(variable: str, sources: Sequence[SettingsSource]) -> str:
    """ " (in FILE, line N)" for a setting read from a .env file; "" otherwise."""
    holder = next((s for s in sources if variable.lower() in s.values), None)
    if holder is None or not holder.label.startswith("/"):  # the environment, the CLI
        return ""
    try:
        lines = Path(holder.label).read_text(encoding="utf-8").splitlines()
    except OSError:
        return f" (in {holder.label})"
    pattern = re.compile(rf"\s*(export\s+)?{re.escape(variable)}\s*=", re.IGNORECASE)
    line = next((n for n, text in enumerate(lines, 1) if pattern.match(text)), None)
    return f" (in {holder.label}, line {line})" if line else f" (in {holder.label})"


def _url_credentials() -> dict[str, tuple[str, ...]]:
    """Each source's base URL and the settings that are sent to it: its credentials and
    whatever its auth and extra headers name."""
    result = {}
    for cls in CONNECTORS.values():
        if cls.base_url_setting is None:
            continue
        named = set(cls.extra_headers.values())
        if cls.auth is not None:
            named |= {v for v in dataclasses.astuple(cls.auth) if isinstance(v, str)}
        result[cls.base_url_setting] = tuple(
            s.env for s in cls.settings if s.credential or s.env in named
        )
    return result


URL_CREDENTIALS = _url_credentials()


@dataclass(frozen=True, slots=True)
class SettingsSource:
    """One place settings are read from; `values` keyed by lower-cased name, empty values
    left out (they mean "unset", as for pydantic-settings with env_ignore_empty)."""

    label: str
    trusted: bool
    values: dict[str, str]


def read_env_file(path: Path) -> dict[str, str]:
    """A .env file's settings; a file that is not UTF-8 is an error naming its line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x});"
            " save the file as UTF-8"
        ) from None
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    return {k.lower(): v for k, v in values.items() if v}


def settings_sources(env_file: Path | None = None) -> list[SettingsSource]:
    """Where settings come from, the first holding a setting winning: the environment, then
    `./.env` (not trusted to redirect other places' credentials), then the config dir's
    `.env`; or the environment, then the file given with --env-file (trusted)."""
    environment = {k.lower(): v for k, v in os.environ.items() if v}
    sources = [SettingsSource("the environment", True, environment)]
    if env_file is not None:
        return [*sources, SettingsSource(str(env_file), True, read_env_file(env_file))]
    here, own = Path.cwd() / ".env", config_dir() / ".env"
    if here.is_file() and not (own.is_file() and here.samefile(own)):
        sources.append(SettingsSource(str(here), False, read_env_file(here)))
    if own.is_file():
        sources.append(SettingsSource(str(own), True, read_env_file(own)))
    return sources


def redirect_problems(sources: list[SettingsSource]) -> list[str]:
    """A base URL from an untrusted `./.env` paired with credentials from anywhere else: that
    file would send someone else's key to a server of its choosing."""

    def origin(name: str) -> SettingsSource | None:
        return next((s for s in sources if name.lower() in s.values), None)

    problems = []
    for url, credentials in URL_CREDENTIALS.items():
        url_source = origin(url)
        if url_source is None or url_source.trusted:
            continue
        elsewhere = [
            f"{credential} from {source.label}"
            for credential in credentials
            if (source := origin(credential)) is not None and source is not url_source
        ]
        if elsewhere:
            problems.append(
                f"{url} comes from {url_source.label} but {' and '.join(elsewhere)}; a .env"
                " in the current folder may point only the credentials it holds itself at"
                f" another server: remove {url} from that file, move those credentials into"
                " it, or trust the file by naming it with --env-file"
            )
    return problems


def typed_problems(values: Mapping[str, str], env_file: Path | None = None) -> list[str]:
    """`redirect_problems` with `values` typed by the person on top (trusted): a key typed
    into the app must not go to a base URL an untrusted `./.env` chose."""
    typed = SettingsSource("what you typed", True, {k.lower(): v for k, v in values.items()})
    return redirect_problems([typed, *settings_sources(env_file)])


def winning_source(name: str, env_file: Path | None = None) -> str | None:
    """Where the next start reads `name` from (the first source holding it), or None."""
    found = next((s for s in settings_sources(env_file) if name.lower() in s.values), None)
    return found.label if found is not None else None


def load_settings(env_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings, turning validation failures into a ConfigError naming the variable."""
    if env_file is not None and not env_file.is_file():
        raise ConfigError(f"--env-file: no such file: {env_file}")
    sources = settings_sources(env_file)
    if overrides:  # given on the command line or by the caller: trusted, and first
        named = {k.lower(): str(v) for k, v in overrides.items() if v is not None}
        sources.insert(0, SettingsSource("the command line", True, named))
    problems = redirect_problems(sources)
    if problems:
        raise ConfigError("; ".join(problems))
    # Built from the very values the check above read (`.env` files without `${VAR}`
    # expansion): a second parser that expanded them could pull any environment variable
    # into a setting the check passed.
    values: dict[str, Any] = {}
    for source in reversed(sources):
        values.update(source.values)
    values.update(overrides)
    fields = Settings.model_fields
    try:
        return Settings(_env_file=None, **{k: v for k, v in values.items() if k in fields})  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, sources)) from None
