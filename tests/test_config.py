from __future__ import annotations

from pathlib import Path

import pytest

from crm_tui.config import ConfigError, config_dir, load_settings


def write_env(path: Path, **values: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def test_environment_wins_over_cwd_env_which_wins_over_config_dir(monkeypatch):
    write_env(
        config_dir() / ".env",
        FUB_API_KEY="from-config",
        CRM_USER_ID="cfg",
        CRM_CACHE_TTL_MINUTES="7",
    )
    write_env(Path.cwd() / ".env", FUB_API_KEY="from-cwd", CRM_USER_ID="cwd")
    monkeypatch.setenv("FUB_API_KEY", "from-env")

    settings = load_settings()

    assert settings.fub_api_key.get_secret_value() == "from-env"
    assert settings.crm_user_id == "cwd"
    assert settings.crm_cache_ttl_minutes == 7


def test_explicit_env_file_replaces_the_defaults(tmp_path):
    write_env(Path.cwd() / ".env", CRM_USER_ID="cwd")
    explicit = tmp_path / "team.env"
    write_env(explicit, CRM_USER_ID="team")
    assert load_settings(explicit).crm_user_id == "team"


def test_missing_env_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="--env-file: no such file"):
        load_settings(tmp_path / "nope.env")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BRIVITY_API_BASE_URL", "ftp://brivity.example", "BRIVITY_API_BASE_URL: must be an http"),
        ("FUB_API_BASE_URL", "not a url", "FUB_API_BASE_URL: must be an http"),
        ("TOPPRODUCER_API_BASE_URL", "file:///etc/passwd", "TOPPRODUCER_API_BASE_URL"),
        ("CRM_SYNC_INTERVAL_MINUTES", "-5", "CRM_SYNC_INTERVAL_MINUTES"),
        ("CRM_HTTP_TIMEOUT_SECONDS", "0", "CRM_HTTP_TIMEOUT_SECONDS"),
        ("CRM_CACHE_TTL_MINUTES", "soon", "CRM_CACHE_TTL_MINUTES"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert message in str(info.value)
    assert "Traceback" not in str(info.value)


def test_secrets_never_appear_in_repr_or_str(monkeypatch):
    canaries = {
        "BRIVITY_API_KEY": "canary-brivity-1",
        "BRIVITY_CLIENT_SECRET": "canary-brivity-2",
        "TOPPRODUCER_API_KEY": "canary-tp-1",
        "TOPPRODUCER_CLIENT_SECRET": "canary-tp-2",
        "FUB_API_KEY": "canary-fub-1",
        "FUB_SYSTEM_KEY": "canary-fub-2",
    }
    for key, value in canaries.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    shown = repr(settings) + str(settings) + str(settings.model_dump())
    for value in canaries.values():
        assert value not in shown
    assert sorted(settings.secret_values()) == sorted(canaries.values())


def test_a_bad_secret_value_is_not_echoed_in_the_error(monkeypatch):
    monkeypatch.setenv("CRM_HTTP_TIMEOUT_SECONDS", "secret-looking-value")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "secret-looking-value" not in str(info.value)


def test_sources_say_what_is_missing(monkeypatch):
    settings = load_settings()
    sources = settings.sources()
    assert sources["local"].enabled
    assert not sources["brivity"].enabled
    assert sources["brivity"].missing == ("BRIVITY_API_KEY",)
    assert sources["followupboss"].missing == ("FUB_API_KEY",)
    assert "TOPPRODUCER_IMPORT_DIR" in sources["topproducer"].missing[0]

    monkeypatch.setenv("FUB_API_KEY", "k")
    monkeypatch.setenv("TOPPRODUCER_API_BASE_URL", "https://tp.example")
    settings = load_settings()
    assert settings.source_config("followupboss").enabled
    tp = settings.source_config("topproducer")
    assert not tp.enabled
    assert tp.missing == ("TOPPRODUCER_CLIENT_ID", "TOPPRODUCER_CLIENT_SECRET")
    assert settings.enabled_sources() == ["followupboss", "local"]


def test_user_id_defaults_to_the_os_user():
    import getpass

    assert load_settings().crm_user_id == getpass.getuser()


def test_env_example_lists_every_setting_and_is_current():
    """Written from the registry: `make env-example` after a source's settings change."""
    from crm_tui.config import Settings
    from crm_tui.envexample import render

    text = (Path(__file__).parent.parent / ".env.example").read_text()
    assert text == render()
    for name in Settings.model_fields:
        assert f"\n{name.upper()}=" in text, name
