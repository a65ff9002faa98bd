"""Hostile paths: the data dir and the database file, and a database this process may only
read. Real folders, real files, real `python -m crm_tui` processes; the read-only cases run
in a child that file modes apply to (see tests/privileges.py)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_tui.files import DataDirRefused, check_dir, secure_dir
from crm_tui.store import CacheStore, Database
from crm_tui.store.db import MIGRATIONS, _statements
from tests.helpers.env import run_crm as crm
from tests.helpers.privileges import unprivileged
from tests.helpers.records import cached_contact

EMAIL = "ana.lee@example.com"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def failure(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    body = json.loads(result.stdout)
    assert body["success"] is False
    assert "Traceback" not in result.stderr
    return body


# -- the data dir ----------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"CRM_USER_ID": "alice", "XDG_STATE_HOME": str(tmp_path / "state")}


def test_a_shared_1777_folder_is_refused_and_keeps_its_mode(tmp_path, env):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    result = crm("status", "--json", env={**env, "CRM_DATA_DIR": str(shared)})
    assert result.returncode == 3
    body = failure(result)
    assert str(shared) in body["error"]
    assert "writable by every user" in body["details"]
    assert mode(shared) == 0o1777
    assert not (shared / "crm.sqlite3").exists()


def test_a_symlink_to_a_shared_folder_is_refused_and_the_folder_keeps_its_mode(tmp_path, env):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    link = tmp_path / "data"
    link.symlink_to(shared)
    result = crm("status", "--json", env={**env, "CRM_DATA_DIR": str(link)})
    assert result.returncode == 3
    body = failure(result)
    assert f"{link} (a link to {shared})" in body["details"]
    assert mode(shared) == 0o1777


def test_a_folder_of_another_user_is_refused(tmp_path, env):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    if os.geteuid() == 65534:
        pytest.skip("the tests run as 65534 themselves")
    result = crm("status", "--json", env={**env, "CRM_DATA_DIR": str(theirs)})
    assert result.returncode == 3
    assert "belongs to another user (uid 65534" in failure(result)["details"]
    assert not (theirs / "crm.sqlite3").exists()


def test_an_existing_folder_of_ours_is_used_and_never_chmodded(tmp_path, env):
    ours = tmp_path / "ours"
    ours.mkdir()
    ours.chmod(0o750)
    result = crm("status", "--json", env={**env, "CRM_DATA_DIR": str(ours)})
    assert result.returncode == 0, result.stderr
    assert mode(ours) == 0o750
    assert mode(ours / "crm.sqlite3") == 0o600


def test_missing_folders_and_their_parents_are_created_0700_whatever_the_umask(tmp_path, env):
    data = tmp_path / "a" / "b" / "data"
    state = tmp_path / "state"  # the log dir's parents: state/crm-tui/log
    result = subprocess.run(
        [sys.executable, "-m", "crm_tui", "status", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **env, "CRM_DATA_DIR": str(data)},
        preexec_fn=lambda: os.umask(0o022),
    )
    assert result.returncode == 0, result.stderr
    created = [tmp_path / "a", tmp_path / "a" / "b", data, data / "logs"]
    assert {str(p): oct(mode(p)) for p in created} == {str(p): "0o700" for p in created}
    # without CRM_DATA_DIR the log dir is the platform's, its parents created here too
    result = subprocess.run(
        [sys.executable, "-m", "crm_tui", "paths", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **env, "XDG_DATA_HOME": str(tmp_path / "xdg-data")},
        preexec_fn=lambda: os.umask(0o022),
    )
    assert result.returncode == 0, result.stderr
    log_dirs = [state, state / "crm-tui", state / "crm-tui" / "log"]
    assert {str(p): oct(mode(p)) for p in log_dirs} == {str(p): "0o700" for p in log_dirs}


def test_a_data_dir_that_cannot_be_created_is_a_clear_error(tmp_path, env):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("")
    result = crm("status", "--json", env={**env, "CRM_DATA_DIR": str(a_file / "data")})
    assert result.returncode == 3
    body = failure(result)
    assert body["error"] == f"Cannot create the data dir {a_file / 'data'}"
    assert "Not a directory; choose a folder you can write to" in body["details"]


def test_check_dir_says_what_is_wrong(tmp_path):
    assert check_dir(tmp_path / "missing") == []
    assert check_dir(tmp_path) == []
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (problem,) = check_dir(shared)
    assert "writable by every user (mode 0777)" in problem
    with pytest.raises(DataDirRefused) as info:
        secure_dir(shared)
    assert info.value.exit_code == 3
    assert mode(shared) == 0o777
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    assert "does not exist" in check_dir(dangling)[0]


# -- the database file -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["crm.sqlite3", "crm.sqlite3-wal", "crm.sqlite3-shm"])
def test_a_database_file_that_is_a_symlink_is_refused_its_target_untouched(tmp_path, env, name):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    precious = tmp_path / "precious.txt"
    precious.write_text("not a database\n")
    precious.chmod(0o644)
    (data / name).symlink_to(precious)
    result = crm("status", "--json", env={**env, "CRM_DATA_DIR": str(data)})
    assert result.returncode == 3
    body = failure(result)
    assert f"{data / name} is a symbolic link" in body["details"]
    assert precious.read_text() == "not a database\n"
    assert mode(precious) == 0o644


def test_a_database_that_is_a_fifo_or_a_folder_is_refused_without_hanging(tmp_path, env):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    os.mkfifo(data / "crm.sqlite3", 0o600)
    result = crm("status", "--json", env={**env, "CRM_DATA_DIR": str(data)}, timeout=30)
    assert result.returncode == 3
    assert "is a FIFO (named pipe), not a regular file" in failure(result)["details"]
    (data / "crm.sqlite3").unlink()
    (data / "crm.sqlite3").mkdir()
    result = crm("status", "--json", env={**env, "CRM_DATA_DIR": str(data)}, timeout=30)
    assert result.returncode == 3
    assert "is a directory, not a regular file" in failure(result)["details"]


# -- a read-only database --------------------------------------------------------------------


@pytest.fixture
def child_root(tmp_path: Path) -> Iterator[Path]:
    """A folder the unprivileged child can reach: as uid 65534 it cannot enter pytest's
    private temporary folders, so its files live in a folder of their own under /tmp."""
    how = unprivileged()
    if how.owner == os.geteuid():
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="crm-tui-test-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def seed(data: Path, env: dict[str, str]) -> str:
    """A database with a local contact and a Brivity contact that is the same person (a
    duplicate cluster, for `merge`); returns the local contact's id."""
    result = crm(
        "local",
        "add-contact",
        "--first-name",
        "Ana",
        "--last-name",
        "Lee",
        "--email",
        EMAIL,
        "--json",
        env={**env, "CRM_DATA_DIR": str(data)},
    )
    assert result.returncode == 0, result.stderr
    local_id = json.loads(result.stdout)["record"]["id"]
    db = Database(data / "crm.sqlite3")
    brivity = cached_contact("brivity", 1, "alice", first_name="Ana", last_name="Lee", email=EMAIL)
    asyncio.run(CacheStore("alice", db).replace_stream("brivity", "contacts", [brivity]))
    db.close()
    return local_id


def child_env(root: Path, data: Path) -> dict[str, str]:
    home = root / "home"
    return {
        "CRM_USER_ID": "alice",
        "CRM_DATA_DIR": str(data),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "HOME": str(home),
    }


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_database_serves_reads_and_refuses_writes_clearly(child_root, what):
    how = unprivileged()
    data = child_root / "data"
    env = child_env(child_root, data)
    local_id = seed(data, env)
    shutil.rmtree(data / "logs")  # the child makes its own (or cannot, in a read-only folder)
    csv_file = child_root / "contacts.csv"
    csv_file.write_text("First Name,Last Name,Email\nBo,Diaz,bo@example.com\n")
    how.own(child_root)
    database = data / "crm.sqlite3"
    if what == "file":
        database.chmod(0o444)
    else:
        data.chmod(0o555)
    before = database.read_bytes()

    def child(*args: str) -> subprocess.CompletedProcess[str]:
        return crm(*args, env=env, preexec=how.preexec, cwd=child_root)

    status = child("status", "--json")
    assert status.returncode == 0, status.stderr
    assert status.stdout and json.loads(status.stdout)["status"]["local"]["contactCount"] == 1
    contacts = json.loads(child("contacts", "--json").stdout)
    assert sorted(c["id"] for c in contacts["contacts"]) == ["brivity:1", local_id]
    found = json.loads(child("search", "ana lee", "--json").stdout)
    assert found["total"] == 2
    cached = json.loads(child("cached-data", "--source", "brivity", "--json").stdout)
    assert [c["email"] for c in cached["data"]["brivity"]["contacts"]] == [EMAIL]
    exported = child("export", "--format", "json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["count"] == 2
    clusters = json.loads(child("duplicates", "--json").stdout)["clusters"]
    assert len(clusters) == 1

    writes = [
        ("sync", "--json"),
        ("import", "topproducer", str(csv_file), "--json"),
        ("local", "add-contact", "--first-name", "Cy", "--json"),
        ("local", "edit", local_id, "--status", "client", "--json"),
        ("local", "delete", local_id, "--json"),
        ("clear-cache", "--json"),
        ("merge", clusters[0]["id"], "--json"),
    ]
    for args in writes:
        result = child(*args)
        assert result.returncode == 3, (args, result.stdout, result.stderr)
        body = failure(result)
        assert body["error"] == "The database is read-only", args
        assert f"cannot write {database}" in body["details"], args
        reason = "crm.sqlite3 is not writable" if what == "file" else f"{data} is not writable"
        assert reason in body["details"], args
    if what == "folder":
        assert mode(data) == 0o555  # never chmodded back to writable
    # SQLite may add an empty log and its index beside a read-only file; nothing is written
    assert database.read_bytes() == before
    wal = data / "crm.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_read_only_data_dir_without_a_database_says_it_cannot_create_one(child_root):
    how = unprivileged()
    data = child_root / "data"
    data.mkdir()
    how.own(child_root)
    data.chmod(0o555)
    result = crm(
        "status", "--json", env=child_env(child_root, data), preexec=how.preexec, cwd=child_root
    )
    assert result.returncode == 3, result.stderr
    body = failure(result)
    assert body["error"] == "Cannot create the database"
    assert f"{data} is not writable by you (mode 0555)" in body["details"]
    assert list(data.iterdir()) == []


def test_an_older_schema_in_a_read_only_database_is_a_clear_error(child_root):
    how = unprivileged()
    data = child_root / "data"
    data.mkdir(mode=0o700)
    database = data / "crm.sqlite3"
    conn = sqlite3.connect(database, isolation_level=None)
    for statement in _statements(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    how.own(child_root)
    database.chmod(0o444)
    before = database.read_bytes()
    result = crm(
        "status",
        "--json",
        env=child_env(child_root, data),
        preexec=how.preexec,
        cwd=child_root,
    )
    assert result.returncode == 3, result.stderr
    body = failure(result)
    assert body["error"] == "The database needs an upgrade"
    assert f"has schema 1 and this crm-tui needs {len(MIGRATIONS)}" in body["details"]
    assert database.read_bytes() == before


APP_SCRIPT = """
import asyncio, json
from crm_tui.app import make_app
from crm_tui.config import load_settings

async def main():
    app = make_app(load_settings(), sync_on_start=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause(1.5)  # the file watcher reads the database once a second
        await pilot.press("3")  # Browse still shows the cached records
        await pilot.pause()
        app.sync_source("local")
        await app.clear_cache(None)
        await pilot.press("ctrl+n")  # a new local record: refused before the form opens
        await app.workers.wait_for_complete()
        await pilot.pause()
        print(json.dumps({
            "notes": [str(n.message) for n in app._notifications],
            "subtitle": str(app.sub_title),
            "screen": type(app.screen).__name__,
            "contacts": len(app.store.contacts()),
            "failed": [w.name for w in app.workers if w.error is not None],
        }))

asyncio.run(main())
"""


def test_the_app_says_it_is_read_only_and_keeps_running(child_root):
    how = unprivileged()
    data = child_root / "data"
    env = child_env(child_root, data)
    seed(data, env)
    how.own(child_root)
    database = data / "crm.sqlite3"
    database.chmod(0o444)
    before = database.read_bytes()
    result = subprocess.run(
        [sys.executable, "-c", APP_SCRIPT],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        preexec_fn=how.preexec,
        cwd=child_root,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "read-only" in report["subtitle"]
    assert report["notes"][0].startswith(f"Read-only database: {database} is not writable")
    assert "syncs, imports, edits and clearing the cache are off" in report["notes"][0]
    assert len(report["notes"]) >= 4  # the sync at start, the sync, the clear, the new record
    assert report["screen"] == "BrowseScreen"
    assert report["contacts"] == 2
    assert report["failed"] == []
    assert database.read_bytes() == before


def test_an_immutable_database_is_read_only_and_says_why(tmp_path, env):
    """`chattr +i`: the mode says writable, the kernel says no (even to root)."""
    data = tmp_path / "data"
    seed(data, env)
    env = {**env, "CRM_DATA_DIR": str(data)}
    before = json.loads(crm("contacts", "--json", env=env).stdout)["count"]
    database = data / "crm.sqlite3"
    if subprocess.run(["chattr", "+i", str(database)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        listed = crm("contacts", "--json", env=env)
        assert listed.returncode == 0 and json.loads(listed.stdout)["count"] == before > 0
        write = crm("local", "add-contact", "--first-name", "Ana", "--json", env=env)
        assert write.returncode == 3
        assert "not writable, though its mode 0600 allows it (immutable?)" in write.stdout
        doctor = json.loads(crm("doctor", "--json", env=env).stdout)
        row = next(c for c in doctor["checks"] if c["name"] == "database writable")
        assert row["status"] == "warning" and "immutable?" in row["message"]
    finally:
        subprocess.run(["chattr", "-i", str(database)], check=True)
