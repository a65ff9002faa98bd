"""The CLI contract for scripts: the JSON failure shape for every failure, click's included;
a closed pipe is not an error; a full disk names the file; query mistakes are usage errors;
retries stay out of stderr; cut table cells say so. Real `python -m crm_tui` processes."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crm_tui.cli.output import cut
from crm_tui.demo.servers import Faults
from crm_tui.search.query import QueryError, parse_query
from crm_tui.store import CacheStore, Database
from crm_tui.store.errors import StoreError
from tests.helpers.env import run_crm as crm
from tests.helpers.records import cached_contact


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"CRM_DATA_DIR": str(tmp_path / "data"), "CRM_USER_ID": "alice"}


def seed(data: Path, count: int, **fields: str) -> None:
    db = Database(data / "crm.sqlite3")
    contacts = [
        cached_contact(
            "brivity",
            n,
            "alice",
            first_name=f"Person{n}",
            last_name="Example",
            email=f"person{n}@example.com",
            **fields,
        )
        for n in range(count)
    ]
    asyncio.run(CacheStore("alice", db).replace_stream("brivity", "contacts", contacts))
    db.close()


def file_size_limit(limit: int):
    """A child whose files cannot grow past `limit` bytes: writes fail with EFBIG (SIGXFSZ,
    which would kill it, is ignored), as on a full disk."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


# -- --json: the failure shape for click's errors too -----------------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("contacts", "--json", "--bogus"), "No such option '--bogus'"),
        (("search", "--json"), "Missing argument 'QUERY'."),
        (("contacts", "--source", "zillow", "--json"), "Invalid value for '--source'"),
        (("search", "jo", "--limit", "0", "--json"), "Invalid value for '--limit'"),
        (("--json", "status"), "No such option '--json'"),
        (("local", "nonsense", "--json"), "No such command 'nonsense'."),
    ],
)
def test_usage_errors_print_the_json_failure_shape_with_exit_2(env, args, error):
    result = crm(*args, env=env)
    assert result.returncode == 2
    body = json.loads(result.stdout)
    assert set(body) == {"success", "error", "details"}
    assert body["success"] is False
    assert body["error"].startswith(error)
    assert "Usage:" in body["details"]
    assert result.stderr == ""


def test_usage_errors_without_json_keep_clicks_usage_text(env):
    result = crm("contacts", "--bogus", env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Usage:" in result.stderr and "No such option '--bogus'" in result.stderr


def test_help_and_version_still_exit_0(env):
    assert crm("--version", env=env).returncode == 0
    result = crm("status", "--help", env=env)
    assert result.returncode == 0 and "Example" in result.stdout


def test_a_sync_that_fails_on_authentication_carries_a_top_level_error(env, demo_servers):
    servers = {**demo_servers.env(), "FUB_API_KEY": "wrong-key-canary"}
    result = crm("sync", "followupboss", "--json", env={**env, **servers})
    assert result.returncode == 3
    body = json.loads(result.stdout)
    assert body["success"] is False
    assert body["error"] == "Authentication failed"
    assert body["details"] == (
        "Follow Up Boss: the API key was refused: check FUB_API_KEY in the environment"
        " (Invalid API key)"
    )
    assert body["results"]["followupboss"]["contacts"]["success"] is False  # the guide's shape
    assert "wrong-key-canary" not in result.stdout + result.stderr


# -- a closed pipe ---------------------------------------------------------------------------


def test_a_closed_pipe_ends_quietly_with_exit_0(env, tmp_path):
    seed(tmp_path / "data", 3000)  # far more than a pipe holds
    process = subprocess.Popen(
        [sys.executable, "-m", "crm_tui", "contacts"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()  # like `| head -1`
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 0
    assert first.startswith(b"SOURCE")
    assert stderr == b""


# -- a full disk names the file ----------------------------------------------------------------


def test_a_full_disk_under_the_database_names_the_database(env, tmp_path):
    seed(tmp_path / "data", 1)
    # big enough to open it (SQLite's -shm index is 32 KiB), too small for the new row
    result = crm(
        "local",
        "add-contact",
        "--first-name",
        "Ana",
        "--company",
        "x " * 30_000,
        env=env,
        preexec=file_size_limit(36_000),
    )
    assert result.returncode == 1
    database = tmp_path / "data" / "crm.sqlite3"
    assert result.stderr.strip().splitlines() == [
        f"error: Cannot write the database: {database}: disk I/O error (is the disk full?)"
    ]
    after = json.loads(crm("contacts", "--json", env=env).stdout)
    assert after["count"] == 1  # nothing half-written


def test_a_full_database_names_its_file_and_keeps_what_it_had(tmp_path):
    """SQLite's own "database or disk is full" (SQLITE_FULL), from a page limit."""
    path = tmp_path / "crm.sqlite3"
    db = Database(path)
    pages = db._conn.execute("PRAGMA page_count").fetchone()[0]
    db._conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreError) as info:
        db.save_local_record("alice", "contacts", {"company": "x" * 100_000}, "2026-01-01")
    assert str(info.value) == f"Cannot write the database: {path}: database or disk is full"
    assert db.local_records("alice", "contacts") == []
    db.save_local_record("alice", "contacts", {"first_name": "Ana"}, "2026-01-01")  # still usable
    db.close()


def test_a_full_disk_under_an_export_names_the_export(env, tmp_path):
    seed(tmp_path / "data", 2000)
    out = tmp_path / "team.csv"
    result = crm(
        "export", "--format", "csv", "-o", str(out), env=env, preexec=file_size_limit(36_000)
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: Cannot write: {out}: File too large"]


def test_a_full_disk_under_the_log_names_the_log_and_the_command_goes_on(env, tmp_path):
    seed(tmp_path / "data", 1)
    log = tmp_path / "data" / "logs" / "crm-tui.log"
    log.parent.mkdir(mode=0o700)
    # a limit the database stays under (it holds a few tables and one record), the log not
    log.write_bytes(b"earlier line\n" * (400_000 // 13 + 1))  # already past the limit below
    result = crm("sync", "local", "--json", env=env, preexec=file_size_limit(400_000))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["success"] is True
    assert result.stderr.strip().splitlines() == [
        f"warning: cannot write the log file {log}: File too large; logging stopped"
    ]


# -- query mistakes are usage errors ----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "kind", "message"),
    [
        ("source:fub ana", "contact", "unknown source 'fub'; valid sources: brivity, topproducer,"),
        ("closing:2026-13", "deal", "closing:2026-13 is not a date;"),
        ("closing:2026-02-30", "deal", "closing:2026-02-30 is not a date;"),
        ("closing:26-1", "deal", "takes YYYY, YYYY-MM or YYYY-MM-DD"),
    ],
)
def test_unknown_sources_and_impossible_dates_are_usage_errors(env, query, kind, message):
    result = crm("search", query, "--type", kind, "--json", env=env)
    assert result.returncode == 2
    assert message in json.loads(result.stdout)["error"]


def test_real_dates_and_sources_still_parse():
    assert parse_query("closing:2024-02-29", "deals").closing == "2024-02-29"
    assert parse_query("closing:2026", "deals").closing == "2026"
    assert parse_query("source:FollowUpBoss jo").sources == ["followupboss"]
    with pytest.raises(QueryError, match="valid sources: brivity, topproducer, followupboss"):
        parse_query("source:zillow jo")


# -- retries stay in the log file -------------------------------------------------------------


@pytest.mark.parametrize(
    "faulty_servers", [Faults(burst_every=4, retry_after="0", seed=3)], indirect=True
)
def test_retries_go_to_the_log_file_not_stderr(env, tmp_path, faulty_servers):
    result = crm("sync", "followupboss", "--json", env={**env, **faulty_servers.env()})
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["success"] is True
    assert result.stderr == ""
    log = (tmp_path / "data" / "logs" / "crm-tui.log").read_text()
    assert "WARNING crm_tui.retry: retry 1 in 0.00 s after" in log

    debug = crm("--debug", "sync", "followupboss", "--json", env={**env, **faulty_servers.env()})
    assert "crm_tui.retry" in debug.stderr or "retry 1 in" in debug.stderr


# -- cut cells ---------------------------------------------------------------------------------


def test_cells_are_cut_with_an_ellipsis_at_a_word_boundary():
    assert cut("short") == "short"
    assert cut("x" * 40) == "x" * 40
    long = "Keller Williams Realty International Austin Northwest"
    assert cut(long) == "Keller Williams Realty International…"
    one_word = "y" * 60
    assert cut(one_word) == "y" * 39 + "…"
    assert len(cut(one_word)) == 40


def test_a_table_with_cut_cells_says_where_the_full_text_is(env, tmp_path):
    company = "Keller Williams Realty International Austin Northwest"
    seed(tmp_path / "data", 2, company=company)
    result = crm("contacts", env=env)
    assert result.returncode == 0
    assert "Keller Williams Realty International…" in result.stdout
    assert company not in result.stdout
    assert result.stderr.strip().splitlines() == [
        "note: values longer than 40 characters were cut (…); --json prints the full text"
    ]
    full = json.loads(crm("contacts", "--json", env=env).stdout)
    assert full["contacts"][0]["company"] == company
    assert crm("cached-data", env=env).stderr == ""  # nothing cut, nothing said
