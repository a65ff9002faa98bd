"""`crm-tui webhooks`: Follow Up Boss subscriptions over respx, stats, and `serve` as a
foreground process that stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner

from crm_tui.cli import main
from crm_tui.store import Database
from crm_tui.webhooks.inbox import WebhookInbox
from tests.helpers.webhooks import FUB_KEY, fub_event, fub_sign

BASE = "https://api.followupboss.com/v1"
API_KEY = "fub-api-key-secret-value"
ENV = {"FUB_API_KEY": API_KEY, "FUB_SYSTEM": "crm-tui-test", "FUB_SYSTEM_KEY": FUB_KEY}
HOOK = "https://hooks.example.com/webhooks/followupboss"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CRM_USER_ID", "alice")

    def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, Any, str]:
        result = CliRunner().invoke(
            main,
            ["--data-dir", str(tmp_path / "data"), *args],
            env=ENV if env is None else env,
            catch_exceptions=False,
        )
        out = result.stdout
        assert API_KEY not in out + result.stderr and FUB_KEY not in out + result.stderr
        return result.exit_code, json.loads(out) if "--json" in args else out, result.stderr

    return invoke


def listing(*items: dict[str, Any]) -> dict[str, Any]:
    return {"_metadata": {"collection": "webhooks", "total": len(items)}, "webhooks": list(items)}


@respx.mock
def test_register_posts_each_event_with_the_system_header(cli):
    existing = {"id": 3, "event": "peopleCreated", "url": HOOK, "status": "Active"}
    listed = respx.get(f"{BASE}/webhooks").respond(json=listing(existing))
    made = iter(range(10, 20))

    def create(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(201, json={"id": next(made), **body, "status": "Active"})

    posted = respx.post(f"{BASE}/webhooks").mock(side_effect=create)
    code, out, _ = cli(
        "webhooks", "register", "followupboss", "--url", HOOK,
        "--events", "peopleCreated,peopleUpdated,dealsDeleted", "--json",
    )  # fmt: skip
    assert code == 0, out
    assert listed.call_count == 1
    assert [json.loads(c.request.content) for c in posted.calls] == [
        {"event": "peopleUpdated", "url": HOOK},
        {"event": "dealsDeleted", "url": HOOK},
    ]
    for call in posted.calls:
        assert call.request.method == "POST"
        assert call.request.url.path == "/v1/webhooks"
        assert call.request.headers["X-System"] == "crm-tui-test"
        assert call.request.headers["content-type"] == "application/json"
    assert out["success"] is True
    assert [w["event"] for w in out["webhooks"]] == ["peopleUpdated", "dealsDeleted"]
    assert [w["id"] for w in out["existing"]] == [3]


@respx.mock
def test_register_reports_what_failed_and_what_did_not(cli):
    respx.get(f"{BASE}/webhooks").respond(json=listing())
    respx.post(f"{BASE}/webhooks").mock(
        side_effect=[
            httpx.Response(201, json={"id": 1, "event": "peopleCreated", "url": HOOK}),
            httpx.Response(400, json={"errorMessage": "at most 2 webhooks per event"}),
        ]
    )
    code, out, _ = cli(
        "webhooks", "register", "followupboss", "--url", HOOK,
        "--events", "peopleCreated,peopleUpdated", "--json",
    )  # fmt: skip
    assert code == 4
    assert out["success"] is False and out["error"] and "peopleUpdated" in out["details"]
    assert [w["id"] for w in out["webhooks"]] == [1]
    assert out["failed"][0]["item"] == "peopleUpdated"


@respx.mock
def test_list_and_remove(cli):
    item = {"id": 12, "event": "peopleUpdated", "url": HOOK + "\x1b[31m", "status": "Active"}
    respx.get(f"{BASE}/webhooks").respond(json=listing(item))
    deleted = respx.delete(f"{BASE}/webhooks/12").respond(204)
    missing = respx.delete(f"{BASE}/webhooks/13").respond(404, json={"errorMessage": "nope"})
    code, out, _ = cli("webhooks", "list", "followupboss", "--json")
    assert code == 0
    assert out["webhooks"] == [
        {"id": 12, "event": "peopleUpdated", "url": HOOK + " [31m", "status": "Active"}
    ]
    code, text, _ = cli("webhooks", "list", "followupboss")
    assert code == 0 and "\x1b" not in text and "peopleUpdated" in text
    code, out, _ = cli("webhooks", "remove", "followupboss", "12", "--json")
    assert (code, out) == (0, {"success": True, "removed": [12]})
    assert deleted.calls.last.request.headers["X-System"] == "crm-tui-test"
    code, out, _ = cli("webhooks", "remove", "followupboss", "12", "13", "--json")
    assert code == 4 and out["removed"] == [12] and out["failed"][0]["item"] == "13"
    assert missing.call_count == 1


def test_remove_takes_numeric_ids_only(cli):
    code, out, _ = cli("webhooks", "remove", "followupboss", "../people/1", "--json")
    assert code == 2 and out["success"] is False


def test_fub_system_is_required(cli):
    env = {"FUB_API_KEY": API_KEY}
    for args in (
        ("register", "followupboss", "--url", HOOK),
        ("list", "followupboss"),
        ("remove", "followupboss", "1"),
    ):
        code, out, _ = cli("webhooks", *args, "--json", env=env)
        assert code == 3, args
        assert out["error"] == "Configuration error" and "FUB_SYSTEM" in out["details"]


def test_a_plain_http_url_is_refused_unless_it_is_this_machine(cli):
    code, out, _ = cli(
        "webhooks", "register", "followupboss", "--url", "http://hooks.example.com/x", "--json"
    )
    assert code == 2 and "https" in out["details"]
    code, out, _ = cli("webhooks", "register", "followupboss", "--url", "ftp://x/y", "--json")
    assert code == 2
    code, out, _ = cli(
        "webhooks", "register", "followupboss", "--url", HOOK, "--events", "peopleUpdatd", "--json"
    )
    assert code == 2 and "peopleUpdatd" in out["details"]
    with respx.mock:
        respx.get(f"{BASE}/webhooks").respond(json=listing())
        respx.post(f"{BASE}/webhooks").respond(201, json={"id": 1})
        code, out, _ = cli(
            "webhooks", "register", "followupboss", "--url", "http://127.0.0.1:8787/w",
            "--events", "peopleUpdated", "--json",
        )  # fmt: skip
    assert code == 0 and out["webhooks"][0]["event"] == "peopleUpdated"


def test_stats(cli, tmp_path):
    code, out, _ = cli("webhooks", "stats", "--json")
    assert (code, out["inbox"], out["refusals"]) == (0, {}, [])
    db = Database(tmp_path / "data" / "crm.sqlite3")
    inbox = WebhookInbox(db, "alice")
    inbox.add("followupboss", "peopleUpdated", "{}")
    inbox.refuse("hubspot", "stale")
    with db.transaction() as conn:
        conn.execute("UPDATE webhook_inbox SET state = 'dead', error = 'bad\x1b[2Jthing'")
    db.close()
    code, out, _ = cli("webhooks", "stats", "--json")
    assert out["inbox"]["followupboss"]["dead"] == 1
    assert out["refusals"][0] | {"last_at": None} == {
        "source": "hubspot",
        "reason": "stale",
        "count": 1,
        "last_at": None,
    }
    assert out["failures"][0]["error"] == "bad [2Jthing"
    code, text, _ = cli("webhooks", "stats")
    assert code == 0 and "\x1b" not in text and "stale" in text


def test_serve_needs_a_secret(cli):
    code, _, err = cli("webhooks", "serve", "--listen", "127.0.0.1:0", env={})
    assert code == 3 and "FUB_SYSTEM_KEY" in err


def test_serve_runs_in_the_foreground_and_stops_on_sigterm(tmp_path):
    env = {
        **os.environ,
        "CRM_DATA_DIR": str(tmp_path / "data"),
        "CRM_USER_ID": "alice",
        "FUB_SYSTEM_KEY": FUB_KEY,
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "crm_tui", "webhooks", "serve", "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stderr is not None
        url = ""
        for line in child.stderr:
            if "listening on " in line:
                url = line.split("listening on ")[1].split()[0]
                break
        assert url.startswith("http://127.0.0.1:")
        body = json.dumps(fub_event("notesCreated", [1])).encode()
        answer = httpx.post(
            f"{url}/webhooks/followupboss", content=body, headers={"FUB-Signature": fub_sign(body)}
        )
        assert answer.status_code == 200
        assert httpx.get(f"{url}/healthz").json()["ok"] is True
        child.send_signal(signal.SIGTERM)
        _, rest = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, rest
    assert "stopped" in rest and FUB_KEY not in rest
