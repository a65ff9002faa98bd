"""A damaged database, found and said, and `crm-tui doctor` (`--repair`): real SQLite files
damaged as disks and crashes damage them, real processes, the demo servers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Static

from crm_tui.app import make_app
from crm_tui.config import Settings
from crm_tui.local_crm import LocalCrm
from crm_tui.models import Contact
from crm_tui.screens.store_error import StoreErrorScreen
from crm_tui.sources.base import SourceContext
from crm_tui.sources.registry import build_source
from crm_tui.store import CacheStore, Database
from crm_tui.store.damage import is_damage
from crm_tui.store.owners import Owner
from crm_tui.store.repair import repair_database
from tests.helpers.dataset import STREAMS, comparable, expected, sync_all
from tests.helpers.env import make_settings
from tests.helpers.records import cached_contact
from tests.helpers.tui import SIZE, cells, idle, until

LOCAL_NAMES = ("Ana", "Ben", "Cleo", "Dev")
REPAIR = "Run `crm-tui doctor --repair`: it keeps a copy of the broken file"


def crm(settings: Settings, *args: str, extra: dict[str, str] | None = None) -> Any:
    env = {
        **os.environ,
        **{k.upper(): str(v) for k, v in settings_env(settings).items()},
        **(extra or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "crm_tui", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def settings_env(settings: Settings) -> dict[str, Any]:
    """The settings a test gave (the demo servers' URLs and keys), to hand to a process."""
    out = {}
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is not None:
            out[name] = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    return out


async def _synced_with_local_records(settings: Settings) -> None:
    """Every demo source synced, and the local CRM's own rows added; every connection
    closed, so the main file holds it all (a page in the -wal would hide damage to it)."""
    engine, _ = await sync_all(settings)
    local = LocalCrm(engine.store, SourceContext(settings, settings.user_id, db=engine.store.db))
    for name in LOCAL_NAMES:
        await local.add("contacts", {"first_name": name, "last_name": "Local"})
    await local.add("deals", {"name": "12 Oak St", "amount": "450000"})
    # an imported file's rows exist nowhere else in the cache either
    db = engine.store.db
    generation = db.new_generation(settings.user_id, "topproducer", "contacts")
    imported = [
        Contact(f"topproducer:imp-{n}", "topproducer", f"imp-{n}", settings.user_id, f"Imp{n}")
        for n in range(3)
    ]
    db.stage("contacts", generation, imported)
    db.commit_import(settings.user_id, "topproducer", "contacts", generation, "/extra.csv")
    db.close()


def synced_with_local_records(settings: Settings) -> None:
    asyncio.run(_synced_with_local_records(settings))


def damage_root_page(path: Path, table: str) -> None:
    """Garbage over the first page of a table's b-tree: every row of it unreachable."""
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    conn.close()
    with path.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write((b"crm-tui test damage " * (page_size // 20 + 1))[:page_size])


def failure(result: Any) -> dict[str, Any]:
    return json.loads(result.stdout)


def check(payload: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in payload["checks"] if c["name"] == name)


# -- a damaged page ------------------------------------------------------------------------


def test_a_damaged_page_is_named_with_the_command_that_helps(demo_settings):
    synced_with_local_records(demo_settings)
    path = demo_settings.database_path
    damage_root_page(path, "contacts")

    status = crm(demo_settings, "status", "--json")
    assert status.returncode == 1
    assert failure(status)["error"] == "The database is damaged"
    assert failure(status)["details"].startswith(
        f"{path}: database disk image is malformed. {REPAIR}"
    )
    plain = crm(demo_settings, "contacts")
    assert plain.returncode == 1 and plain.stdout == ""
    assert plain.stderr.startswith(f"error: The database is damaged: {path}: database disk")

    doctor = crm(demo_settings, "doctor", "--json")
    assert doctor.returncode == 1, doctor.stdout
    report = failure(doctor)
    integrity = check(report, "integrity")
    assert integrity["status"] == "failed"
    assert integrity["message"].startswith(f"{path}: quick_check found:")
    assert "crm-tui doctor --repair" in integrity["fix"]
    assert report["success"] is False and report["error"] == "1 check(s) failed"
    # the rest of the setup is fine, and says so
    for name in ("settings", "database header", "write-ahead log", "data dir"):
        assert check(report, name)["status"] == "ok", name
    for name in ("brivity", "followupboss", "topproducer"):
        assert check(report, f"connection {name}")["status"] == "ok", name


def test_repair_recovers_every_local_record_and_resyncs_the_rest(demo_settings, demo_servers):
    synced_with_local_records(demo_settings)
    path = demo_settings.database_path
    damage_root_page(path, "contacts")
    broken = path.read_bytes()

    repaired = crm(demo_settings, "doctor", "--repair", "--json")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    report = json.loads(repaired.stdout)
    tables = {t["table"]: t for t in report["repair"]["tables"]}
    assert tables["local_records"] == {
        "table": "local_records",
        "recovered": len(LOCAL_NAMES) + 1,
        "lost": 0,
    }
    assert tables["deals"]["lost"] == 0 and tables["deals"]["recovered"] > 0
    assert tables["contacts"]["recovered"] == 0 and tables["contacts"]["lost"] > 0
    [kept] = [Path(p) for p in report["repair"]["kept"]]
    assert kept.name.startswith("crm.sqlite3.broken-")
    assert kept.read_bytes() == broken
    assert kept.stat().st_mode & 0o777 == 0o600
    assert {c["status"] for c in report["after"]} == {"ok"}
    assert [c["name"] for c in report["after"]][:3] == [
        "database header",
        "write-ahead log",
        "database writable",
    ]
    assert all(r[s]["success"] for r in report["sync"].values() for s in r)

    db = Database(path)
    store = CacheStore(demo_settings.user_id, db)
    try:
        store.load_sync()
        locals_ = db.local_records(demo_settings.user_id, "contacts")
        assert sorted(r["first_name"] for r in locals_) == sorted(LOCAL_NAMES)
        assert store.count("contacts", "local") == len(LOCAL_NAMES)
        for name, streams in STREAMS.items():
            source = build_source(name, SourceContext(demo_settings, demo_settings.user_id))
            for stream in streams:
                cached = {r.id: comparable(r) for r in store.records(stream, name)}
                assert cached == expected(source, stream, demo_servers), (name, stream)
    finally:
        db.close()
    assert crm(demo_settings, "status").returncode == 0


# -- a garbage header ----------------------------------------------------------------------


def test_a_garbage_header_is_named_and_the_rows_behind_it_recovered(demo_settings):
    synced_with_local_records(demo_settings)
    path = demo_settings.database_path
    with path.open("r+b") as f:
        f.write((b"\x00garbage " * 12)[:100])  # the header, and nothing after it

    status = crm(demo_settings, "status", "--json")
    assert status.returncode == 1
    assert failure(status)["details"].startswith(
        f"{path}: file is not a database (its header is not SQLite's). {REPAIR}"
    )
    app = crm(demo_settings)  # the app cannot open it either, and says so before starting
    assert app.returncode == 1
    assert app.stderr.startswith(f"error: The database is damaged: {path}: file is not a database")
    doctor = crm(demo_settings, "doctor", "--json")
    assert doctor.returncode == 1, doctor.stdout
    assert check(failure(doctor), "database header")["status"] == "failed"

    repaired = crm(demo_settings, "doctor", "--repair", "--no-sync", "--json")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    report = json.loads(repaired.stdout)
    tables = {t["table"]: t for t in report["repair"]["tables"]}
    assert tables["local_records"]["recovered"] == len(LOCAL_NAMES) + 1
    assert tables["contacts"]["lost"] == 0 and tables["contacts"]["recovered"] > 0
    assert "the header was rebuilt (page size 4096) to read the rest" in report["repair"]["notes"]
    listing = crm(demo_settings, "contacts", "--source", "local", "--json")
    assert sorted(c["first_name"] for c in json.loads(listing.stdout)["contacts"]) == sorted(
        LOCAL_NAMES
    )
    listing = crm(demo_settings, "contacts", "--source", "topproducer", "--json")
    names = {c["first_name"] for c in json.loads(listing.stdout)["contacts"]}
    assert {"Imp0", "Imp1", "Imp2"} <= names


def test_a_file_that_never_was_a_database_is_replaced_by_an_empty_one(settings):
    path = settings.database_path
    path.parent.mkdir(parents=True)
    path.write_text("these are my notes, not a database\n" * 300)
    repaired = crm(settings, "doctor", "--repair", "--no-sync", "--json")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    report = json.loads(repaired.stdout)
    assert report["repair"]["notes"][0].startswith("nothing could be read: file is not a database")
    assert {t["lost"] for t in report["repair"]["tables"]} == {None}
    [kept] = report["repair"]["kept"]
    assert Path(kept).read_text().startswith("these are my notes")
    assert crm(settings, "status").returncode == 0


# -- a lost write-ahead log ----------------------------------------------------------------

WRITER = """
import sys, time
from pathlib import Path
from crm_tui.store.db import Database
path = Path(sys.argv[1])
db = Database(path)
for i in range(3):
    db.save_local_record("alice", "contacts", {"first_name": f"Kept{i}"}, "2026-01-01T00:00:00Z")
db.close()  # the last connection checkpoints: these three are in the main file now
db = Database(path)
for i in range(2):
    db.save_local_record("alice", "contacts", {"first_name": f"Logged{i}"}, "2026-01-01T00:00:00Z")
with db.transaction() as conn:
    conn.execute("INSERT INTO bookmarks (user_id, source, stream, value, updated_at)"
                 " VALUES ('alice', 'x', 'contacts', 'v', 'now')")
    print("ready", flush=True)
    time.sleep(60)
"""


def crash_a_writer(path: Path) -> None:
    """Two committed records in the -wal only, a transaction open, then SIGKILL."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
    assert path.with_name("crm.sqlite3-wal").stat().st_size > 0


def local_names(settings: Settings) -> list[str]:
    listing = crm(settings, "cached-data", "--json")
    assert listing.returncode == 0, listing.stderr
    db = Database(settings.database_path)
    try:
        return sorted(r["first_name"] for r in db.local_records(settings.user_id, "contacts"))
    finally:
        db.close()


def test_a_crash_loses_nothing_with_its_log_and_is_named_without_it(tmp_path):
    kept = make_settings(tmp_path / "kept")
    crash_a_writer(kept.database_path)
    assert crm(kept, "status").returncode == 0  # SQLite replays the log: no false alarm
    assert local_names(kept) == ["Kept0", "Kept1", "Kept2", "Logged0", "Logged1"]

    settings = make_settings(tmp_path / "lost")
    path = settings.database_path
    crash_a_writer(path)
    path.with_name("crm.sqlite3-wal").unlink()

    status = crm(settings, "status", "--json")
    assert status.returncode == 1
    details = failure(status)["details"]
    assert details.startswith(
        f"{path}: its write-ahead log (crm.sqlite3-wal) is missing after a crash:"
    )
    assert " committed since the last checkpoint are lost and the file may be inconsistent. " in (
        details
    )
    assert REPAIR in details
    doctor = crm(settings, "doctor", "--json")
    assert doctor.returncode == 1, doctor.stdout
    assert check(failure(doctor), "write-ahead log")["status"] == "failed"
    assert path.with_name("crm.sqlite3-shm").exists()  # doctor changed nothing

    repaired = crm(settings, "doctor", "--repair", "--no-sync", "--json")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    report = json.loads(repaired.stdout)
    assert [Path(p).name[-4:] for p in report["repair"]["kept"]][1:] == ["-shm"]
    assert report["repair"]["notes"][0].startswith("not recoverable: its write-ahead log")
    assert local_names(settings) == ["Kept0", "Kept1", "Kept2"]


# -- in use --------------------------------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from crm_tui.store.db import Database
db = Database(Path(sys.argv[1]))
db.load_statuses("alice")
print("open", flush=True)
time.sleep(60)
"""


def test_repair_refuses_while_another_process_has_the_database_open(demo_settings):
    synced_with_local_records(demo_settings)
    path = demo_settings.database_path
    damage_root_page(path, "deals")
    before = path.read_bytes()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        repaired = crm(demo_settings, "doctor", "--repair", "--json")
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert repaired.returncode == 5
    assert failure(repaired) == {
        "success": False,
        "error": "The database is in use",
        "details": f"{path}: another process has it open (the app, `crm-tui sync --watch`,"
        " a script). Stop it, then run `crm-tui doctor --repair` again.",
    }
    assert path.read_bytes() == before
    assert not list(path.parent.glob("crm.sqlite3.broken-*"))


# -- what doctor checks besides ------------------------------------------------------------


def test_doctor_names_loose_modes_and_wrong_keys(demo_settings):
    synced_with_local_records(demo_settings)
    demo_settings.database_path.chmod(0o644)
    loose = crm(demo_settings, "doctor")
    assert loose.returncode == 0, loose.stdout
    lines = loose.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("warning  file crm.sqlite3"))
    assert "mode 0644: others can read it" in lines[at]
    assert lines[at + 1].split() == ["fix:", "chmod", "600", str(demo_settings.database_path)]

    demo_settings.data_dir.chmod(0o777)
    wrong_key = crm(demo_settings, "doctor", "--json", extra={"FUB_API_KEY": "wrong-key"})
    demo_settings.data_dir.chmod(0o700)
    assert wrong_key.returncode == 3
    report = failure(wrong_key)
    assert check(report, "data dir")["status"] == "failed"
    connection = check(report, "connection followupboss")
    assert connection["status"] == "failed" and "the API key was refused" in connection["message"]
    assert "wrong-key" not in wrong_key.stdout + wrong_key.stderr


def test_only_damage_becomes_database_damaged(tmp_path):
    """ "locked" is not damage: a busy database must never send anyone to a repair."""
    path = tmp_path / "x.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as locked:
        other.execute("SELECT * FROM t")
    holder.execute("ROLLBACK")
    (tmp_path / "y.sqlite3").write_bytes(b"not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError) as garbage:
        sqlite3.connect(tmp_path / "y.sqlite3").execute("SELECT * FROM sqlite_master")
    assert (is_damage(locked.value), is_damage(garbage.value)) == (False, True)


# -- the app -------------------------------------------------------------------------------


async def store_error_shown(pilot: Any, app: Any) -> str:
    """The store error screen's text, once the app shows it."""

    def shown() -> bool:  # pushed is not yet composed
        screen = app.screen
        return isinstance(screen, StoreErrorScreen) and bool(screen.query("#store-error-text"))

    await until(pilot, shown, "the store error's text")
    return str(app.screen.query_one("#store-error-text", Static).render())


async def test_the_app_finds_damage_its_load_never_read(tmp_path, demo_servers):
    """An index only the Audit screen reads: the load succeeds, the background check of
    every page does not."""
    env = {k.lower(): v for k, v in demo_servers.env().items()}
    settings = make_settings(tmp_path, **env)
    await _synced_with_local_records(settings)
    path = settings.database_path
    damage_root_page(path, "quarantine_run")
    app = make_app(settings)
    app.pages_check_delay = 0.5
    async with app.run_test(size=SIZE) as pilot:
        shown = await store_error_shown(pilot, app)
        assert app.store.count("contacts") > 0  # the load itself went well
        assert shown.startswith("The database is damaged\n\n")
        assert f"{path}: " in shown and "Run `crm-tui doctor --repair`" in shown


async def test_the_app_shows_a_damaged_database_instead_of_an_empty_cache(tmp_path, demo_servers):
    env = {k.lower(): v for k, v in demo_servers.env().items()}
    # a data dir named like markup: shown literally, and running nothing
    settings = make_settings(tmp_path, crm_data_dir=tmp_path / "[@click=app.quit]d[/]", **env)
    await _synced_with_local_records(settings)
    path = settings.database_path
    damage_root_page(path, "contacts")

    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        shown = await store_error_shown(pilot, app)
        assert shown.startswith("The database is damaged\n\n")
        assert f"{path}: database disk image is malformed." in shown
        assert "Run `crm-tui doctor --repair`" in shown

        await pilot.press("escape")
        await idle(pilot)
        assert app.is_running and not isinstance(app.screen, StoreErrorScreen)
        banner = app.screen.query_one("#store-error-banner", Static)
        assert banner.display and str(path) in str(banner.render())
        rows = {row[0]: row for row in cells(app.screen.query_one("#sources", DataTable))}
        for name in ("Brivity", "TopProducer", "Follow Up Boss", "Local"):
            assert rows[name][1] == "✖ not loaded" and rows[name][3:5] == ["?", "?"], rows[name]
        assert "damaged" in app.sub_title

        await pilot.press("a")  # sync all: refused, nothing written into a damaged file
        await pilot.pause()  # the key handled: a sync it started would be running now
        assert not app.engine.running()
        assert not [w for w in app.workers if w.group.startswith("sync-")]


def test_doctor_checks_the_keymap_as_the_app_would(settings):
    from crm_tui.config import config_dir

    folder = config_dir()
    folder.mkdir(parents=True)
    (folder / "keymap.toml").write_text('"mode.search" = "f12"\n"mode.serch" = "f11"\n')
    result = crm(settings, "doctor", "--json")
    assert result.returncode == 3, result.stdout
    row = check(failure(result), "keymap.toml")
    assert row["status"] == "failed"
    assert "line 2" in row["message"] and "mode.serch" in row["message"]
    (folder / "keymap.toml").write_text('"mode.search" = "f12"\n')
    fine = crm(settings, "doctor", "--json")
    assert check(json.loads(fine.stdout), "keymap.toml")["status"] == "ok"


def test_doctor_names_who_writes_and_what_dead_processes_left(settings):
    from tests.helpers.leases import dead_process, plant_lease, plant_owner

    db = Database(settings.database_path)
    me = Owner.this_process()
    pid, started = dead_process()
    dead = Owner("dead", me.host, me.machine, pid, started)
    plant_owner(db, dead, time.time())
    plant_lease(db, dead, generation_rows=2)
    db.close()
    report = json.loads(crm(settings, "doctor", "--json").stdout)
    left = check(report, "left half-written")
    assert left["status"] == "warning" and "alice's brivity contacts" in left["message"]
    assert check(report, "writers")["message"] == "no other process is writing"


def test_a_repaired_database_is_not_shadowed_by_old_artifacts(tmp_path) -> None:
    """A repair keeps the streams' generations but may lose rows: the records saved beside
    the database before it go, so the cache shows what the repaired database holds."""
    path = tmp_path / "crm.sqlite3"
    store = CacheStore("alice", Database(path))
    contacts = [cached_contact("brivity", n, "alice", first_name=f"N{n}" * 20) for n in range(3000)]
    asyncio.run(store.replace_stream("brivity", "contacts", contacts))
    store.db.close()
    loaded = CacheStore("alice", Database(path))
    loaded.load_sync()  # saves the records artifact
    assert len(loaded.contacts()) == 3000
    loaded.db.close()

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = [
        p
        for (p,) in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'contacts' AND pagetype = 'leaf'"
            " ORDER BY pageno"
        )
    ]
    conn.close()
    victim = pages[len(pages) // 2]
    with open(path, "r+b") as f:
        f.seek((victim - 1) * page_size)
        f.write(b"\xff" * page_size)

    repair_database(path)
    db = Database(path)
    in_db = sum(1 for _ in db.load_records("alice", "contacts", False, "brivity"))
    assert in_db < 3000  # the repair lost the rows of the damaged page
    after = CacheStore("alice", db)
    after.load_sync()
    assert len(after.contacts()) == in_db
