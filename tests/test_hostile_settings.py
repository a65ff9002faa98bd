"""Hostile settings: plain-HTTP base URLs, a `./.env` that would redirect someone else's key,
bad regions, unknown users' home folders and files that are not UTF-8."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from crm_tui.config import ConfigError, config_dir, load_settings
from crm_tui.sources.errors import RemoteError
from crm_tui.sources.http import HeaderAuth, HttpClient, OAuthClientCredentials

URL_SETTINGS = ("BRIVITY_API_BASE_URL", "FUB_API_BASE_URL", "TOPPRODUCER_API_BASE_URL")


def write_env(path: Path, **values: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def crm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command, in the test's working directory (where its `.env` is)."""
    return subprocess.run(
        [sys.executable, "-m", "crm_tui", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CRM_DATA_DIR": str(Path.cwd().parent / "data"), **(env or {})},
        timeout=60,
    )


# -- credentials only over HTTPS ---------------------------------------------------------


@pytest.mark.parametrize("variable", URL_SETTINGS)
@pytest.mark.parametrize(
    "url", ["http://api.example.com", "http://10.0.0.5:8080/v1", "http://127.0.0.1.evil.example"]
)
def test_plain_http_to_another_host_is_refused_naming_the_setting(monkeypatch, variable, url):
    monkeypatch.setenv(variable, url)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert f"{variable}: must use https://" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com",
        "http://127.0.0.1:8123",
        "http://127.3.4.5",
        "http://localhost:9000/v1",
        "http://[::1]:8080",
    ],
)
def test_https_and_plain_http_to_this_machine_are_allowed(monkeypatch, url):
    for variable in URL_SETTINGS:
        monkeypatch.setenv(variable, url)
    settings = load_settings()
    assert settings.fub_api_base_url == url.rstrip("/")


def test_the_cli_refuses_plain_http_with_the_configuration_exit_code():
    result = crm("status", "--json", env={"FUB_API_BASE_URL": "http://api.followupboss.com/v1"})
    assert result.returncode == 3
    body = json.loads(result.stdout)
    assert body["success"] is False
    assert "FUB_API_BASE_URL: must use https://" in body["details"]


def test_http_clients_refuse_plain_http_whatever_built_the_url():
    with pytest.raises(ConfigError, match=r"Brivity base URL http://crm\.example"):
        HttpClient("Brivity", "http://crm.example", HeaderAuth.token("k"))
    with pytest.raises(ConfigError, match=r"TopProducer token URL http://tp\.example"):
        OAuthClientCredentials(
            "http://tp.example/auth/oauth/token", "id", "secret", display_name="TopProducer"
        )


def test_a_refused_url_is_shown_without_its_user_password_or_query(monkeypatch):
    with pytest.raises(ConfigError) as info:
        HttpClient("Brivity", "http://ana:hunter2@crm.example/api?token=t0k", HeaderAuth.token("k"))
    assert "Brivity base URL http://crm.example/api: must use https://" in str(info.value)
    assert "hunter2" not in str(info.value) and "t0k" not in str(info.value)
    monkeypatch.setenv("FUB_API_BASE_URL", "http://ana:hunter2@fub.example")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "hunter2" not in str(info.value)


async def test_a_redirect_is_never_followed_and_says_so():
    """A server that answers 302 elsewhere gets no second request, nor does the other host:
    the key stays with the configured base URL."""
    seen: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        location = "http://collector.example/people?key=canary-key"
        return httpx.Response(302, headers={"Location": location})

    client = HttpClient(
        "Brivity",
        "https://api.brivity.example",
        HeaderAuth.token("canary-key"),
        transport=httpx.MockTransport(server),
    )
    with pytest.raises(RemoteError) as info:
        await client.get_json("api/people")
    await client.aclose()
    assert [str(r.url) for r in seen] == ["https://api.brivity.example/api/people"]
    assert "HTTP 302 redirect to http://collector.example/people not followed" in str(info.value)
    assert "canary-key" not in str(info.value)


# -- a ./.env may not redirect credentials from elsewhere --------------------------------


def test_a_base_url_from_cwd_env_with_a_key_from_the_environment_is_refused(monkeypatch):
    here = write_env(Path.cwd() / ".env", FUB_API_BASE_URL="https://collector.example")
    monkeypatch.setenv("FUB_API_KEY", "the-users-key")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert f"FUB_API_BASE_URL comes from {here} but FUB_API_KEY from the environment" in message
    assert "the-users-key" not in message


def test_every_setting_a_source_sends_is_guarded_not_only_its_secrets(monkeypatch):
    """FUB_SYSTEM is no secret, but it goes out in the X-System header of every request."""
    here = write_env(
        Path.cwd() / ".env", FUB_API_BASE_URL="https://collector.example", FUB_API_KEY="k"
    )
    monkeypatch.setenv("FUB_SYSTEM", "the-teams-system")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert f"FUB_API_BASE_URL comes from {here} but FUB_SYSTEM from the environment" in str(
        info.value
    )


def test_a_cwd_env_cannot_pull_another_variable_into_its_key(monkeypatch):
    """`${VAR}` is not expanded: the file could otherwise send any secret of the
    environment to the server it names, under a key it seems to hold itself."""
    (Path.cwd() / ".env").write_text(
        "FUB_API_BASE_URL=https://collector.example/v1\nFUB_API_KEY=${BRIVITY_API_KEY}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("BRIVITY_API_KEY", "the-users-brivity-key")
    settings = load_settings()
    assert settings.fub_api_key is not None
    assert settings.fub_api_key.get_secret_value() == "${BRIVITY_API_KEY}"


def test_a_base_url_from_cwd_env_with_secrets_from_the_config_dir_is_refused():
    own = write_env(
        config_dir() / ".env", TOPPRODUCER_CLIENT_ID="id", TOPPRODUCER_CLIENT_SECRET="secret"
    )
    here = write_env(Path.cwd() / ".env", TOPPRODUCER_API_BASE_URL="https://tp.collector.example")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert (
        f"TOPPRODUCER_API_BASE_URL comes from {here} but TOPPRODUCER_CLIENT_ID from {own}"
        f" and TOPPRODUCER_CLIENT_SECRET from {own}"
    ) in str(info.value)


def test_the_cli_refuses_the_redirect_with_the_configuration_exit_code():
    write_env(Path.cwd() / ".env", brivity_api_base_url="https://collector.example")
    result = crm("status", "--json", env={"BRIVITY_API_KEY": "the-users-key"})
    assert result.returncode == 3
    body = json.loads(result.stdout)
    assert "BRIVITY_API_BASE_URL comes from" in body["details"]
    assert "BRIVITY_API_KEY from the environment" in body["details"]
    assert "the-users-key" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("environment", "cwd_file", "config_file"),
    [
        # a project's own .env with both its URL and its key
        ({}, {"FUB_API_BASE_URL": "https://fub.example", "FUB_API_KEY": "k"}, {}),
        # the URL from the environment, the key from ./.env: nothing redirected
        ({"FUB_API_BASE_URL": "https://fub.example"}, {"FUB_API_KEY": "k"}, {}),
        # both from trusted places
        ({"FUB_API_KEY": "k"}, {}, {"FUB_API_BASE_URL": "https://fub.example"}),
        # the environment's URL wins over ./.env's, so ./.env redirects nothing
        (
            {"FUB_API_KEY": "k", "FUB_API_BASE_URL": "https://fub.example"},
            {"FUB_API_BASE_URL": "https://collector.example"},
            {},
        ),
        # ./.env's URL with no credentials anywhere sends nothing
        ({}, {"FUB_API_BASE_URL": "https://fub.example"}, {}),
    ],
)
def test_settings_that_redirect_nothing_are_accepted(
    monkeypatch, environment, cwd_file, config_file
):
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    write_env(Path.cwd() / ".env", **cwd_file)
    write_env(config_dir() / ".env", **config_file)
    assert load_settings().fub_api_base_url == "https://fub.example"


def test_a_file_named_with_env_file_is_trusted_like_the_environment(monkeypatch, tmp_path):
    explicit = write_env(tmp_path / "team.env", FUB_API_BASE_URL="https://fub.team.example")
    monkeypatch.setenv("FUB_API_KEY", "k")
    assert load_settings(explicit).fub_api_base_url == "https://fub.team.example"


def test_the_config_dir_seen_as_cwd_is_still_trusted(monkeypatch):
    own = write_env(config_dir() / ".env", FUB_API_BASE_URL="https://fub.example")
    monkeypatch.chdir(own.parent)
    monkeypatch.setenv("FUB_API_KEY", "k")
    assert load_settings().fub_api_base_url == "https://fub.example"


# -- other settings ------------------------------------------------------------------------


def test_the_phone_region_is_checked_and_stored_upper_case(monkeypatch):
    monkeypatch.setenv("CRM_PHONE_REGION", "gb")
    assert load_settings().crm_phone_region == "GB"
    monkeypatch.setenv("CRM_PHONE_REGION", "XX")
    with pytest.raises(ConfigError, match="CRM_PHONE_REGION: unknown region 'XX'"):
        load_settings()


def test_a_bad_phone_region_in_a_env_file_names_the_file_and_line():
    Path(".env").write_text("# team settings\nCRM_PHONE_REGION=zz\n")
    result = crm("status", "--json")
    assert result.returncode == 3
    details = json.loads(result.stdout)["details"]
    assert f"CRM_PHONE_REGION (in {Path.cwd() / '.env'}, line 2): unknown region 'zz'" in details


def test_a_home_folder_of_an_unknown_user_names_crm_data_dir():
    result = crm("status", "--json", env={"CRM_DATA_DIR": "~crm-tui-no-such-user/data"})
    assert result.returncode == 3
    body = json.loads(result.stdout)
    assert "CRM_DATA_DIR: cannot expand '~crm-tui-no-such-user': no such user" in body["details"]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("where", ["cwd", "config", "explicit"])
def test_an_env_file_that_is_not_utf8_names_the_file_and_line(tmp_path, where):
    path = {
        "cwd": Path.cwd() / ".env",
        "config": config_dir() / ".env",
        "explicit": tmp_path / "team.env",
    }[where]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"CRM_USER_ID=ana\n# comment\nCRM_THEME=caf\xe9\n")
    args = ("--env-file", str(path)) if where == "explicit" else ()
    result = crm(*args, "status", "--json")
    assert result.returncode == 3
    details = json.loads(result.stdout)["details"]
    assert f"{path}, line 3: not UTF-8 text (byte 0xe9)" in details
    assert "Traceback" not in result.stderr
