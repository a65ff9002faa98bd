"""Cold CLI calls (`status`, `contacts`, `deals`) read the database without loading the
snapshot, and print exactly what the loaded store would have: imported rows laid over synced
ones, unsent edits' values, sources and rows in the store's order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crm_tui.cli import main
from crm_tui.cli.cache import _records_table, _status_table
from crm_tui.cli.marks import record_marks
from crm_tui.config import load_settings
from crm_tui.models import Contact, Deal, RecordKind
from crm_tui.store import CacheStore, Database
from crm_tui.sync.shown import shown_statuses
from tests.helpers.records import cached_contact

USER = "alice"


def deal(source: str, n: int, amount: int) -> Deal:
    return Deal(
        id=f"{source}:{n}",
        source=source,
        remote_id=str(n),
        user_id=USER,
        name=f"{n} Oak St",
        amount=Decimal(amount),
    )


def contact(source: str, n: int, name: str, **fields: Any) -> Contact:
    return cached_contact(source, n, USER, first_name=name, last_name=f"L{n}", **fields)


def import_file(db: Database, source: str, path: str, records: list[Contact]) -> None:
    generation = db.new_generation(USER, source, "contacts")
    db.stage("contacts", generation, records)
    db.commit_import(USER, source, "contacts", generation, path)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Several sources, their rows written out of id order (the store keeps row order), an
    incremental change, two imports over brivity (the later one wins), an import-only
    source, a source the registry does not know, deals, rows of a refresh not committed
    yet, and edits waiting in the outbox."""
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    db = Database(folder / "crm.sqlite3")
    db.replace_stream(
        USER, "brivity", "contacts", [contact("brivity", n, f"B{n}") for n in (10, 2, 7, 1, 30)]
    )
    db.replace_stream(
        USER, "followupboss", "contacts", [contact("followupboss", n, f"F{n}") for n in (5, 3)]
    )
    db.upsert_records("contacts", [contact("followupboss", 1, "F1 late"), contact("acme", 4, "A4")])
    import_file(
        db,
        "brivity",
        "/a.csv",
        [contact("brivity", 7, "B7 imported"), contact("brivity", 99, "B99")],
    )
    import_file(
        db,
        "brivity",
        "/b.csv",
        [contact("brivity", 99, "B99 again"), contact("brivity", 50, "B50")],
    )
    import_file(db, "topproducer", "/t.csv", [contact("topproducer", 8, "T8")])
    db.replace_stream(
        USER, "followupboss", "deals", [deal("followupboss", n, 1000 * n) for n in (9, 4)]
    )
    db.replace_stream(USER, "brivity", "deals", [deal("brivity", 6, 600)])
    # rows of generations no stream shows (a refresh still being written): never counted
    db.stage("contacts", 999_999, [contact("followupboss", 77, "F77"), contact("hubspot", 1, "H")])
    db.add_edit(
        USER,
        "brivity",
        "contacts",
        "update",
        "brivity:2",
        "2",
        {"stage": None},
        {"stage": "Hot"},
        USER,
    )
    db.add_edit(
        USER,
        "followupboss",
        "contacts",
        "update",
        "followupboss:1",
        "1",
        {},
        {"company": "Acme"},
        USER,
    )
    db.close()
    return folder


@pytest.fixture
def no_load(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it, and loading the snapshot fails from then on: a cold command must not need
    it (the expected output is made before, by a loaded store)."""

    def refuse(*_: object) -> None:
        raise AssertionError("the snapshot was loaded")

    def refuse_loading() -> None:
        monkeypatch.setattr(CacheStore, "load_sync", refuse)
        monkeypatch.setattr(CacheStore, "load", refuse)

    return refuse_loading


def loaded(data_dir: Path) -> CacheStore:
    store = CacheStore(USER, Database(data_dir / "crm.sqlite3"))
    store.load_sync()
    return store


def run(data_dir: Path, *args: str) -> str:
    result = CliRunner().invoke(
        main, ["--data-dir", str(data_dir), *args], env={"CRM_USER_ID": USER}
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def printed(capsys: pytest.CaptureFixture[str], show: Callable[[], None]) -> str:
    capsys.readouterr()
    show()
    return capsys.readouterr().out


def listing_as_loaded(store: CacheStore, kind: RecordKind, source: str | None, limit: int) -> str:
    """The listing as the command printed it when it loaded the snapshot."""
    found = store.records(kind, source)
    found = found[:limit] if limit else found
    marks = record_marks(store)
    payload = {"success": True, kind: [marks.json(r.to_json()) for r in found], "count": len(found)}
    return json.dumps(payload, ensure_ascii=False, default=str) + "\n"


@pytest.mark.parametrize(
    ("kind", "source", "limit"),
    [
        ("contacts", None, 0),
        ("contacts", "brivity", 0),
        ("contacts", "followupboss", 0),
        ("contacts", "topproducer", 0),
        ("contacts", "brivity", 3),
        ("contacts", None, 7),
        ("contacts", "hubspot", 0),
        ("deals", None, 0),
        ("deals", "followupboss", 1),
    ],
)
def test_a_listing_prints_what_the_loaded_store_printed(data_dir, kind, source, limit, no_load):
    expected = listing_as_loaded(loaded(data_dir), kind, source, limit)
    no_load()
    args = [kind, "--json", *(["--source", source] if source else []), "--limit", str(limit)]
    assert run(data_dir, *args) == expected


def test_the_listing_lays_imports_and_unsent_edits_in_the_stores_order(data_dir, no_load):
    no_load()
    body = json.loads(run(data_dir, "contacts", "--json"))
    names = [(c["id"], c["first_name"]) for c in body["contacts"]]
    assert names == [
        ("brivity:10", "B10"),
        ("brivity:2", "B2"),
        ("brivity:7", "B7 imported"),
        ("brivity:1", "B1"),
        ("brivity:30", "B30"),
        ("brivity:99", "B99 again"),
        ("brivity:50", "B50"),
        ("topproducer:8", "T8"),
        ("followupboss:5", "F5"),
        ("followupboss:3", "F3"),
        ("followupboss:1", "F1 late"),
        ("acme:4", "A4"),
    ]
    by_id = {c["id"]: c for c in body["contacts"]}
    assert by_id["brivity:2"]["stage"] == "Hot"
    assert by_id["brivity:2"]["pending"] == {"stage": "Hot"}
    assert by_id["followupboss:1"]["company"] == "Acme"
    assert by_id["brivity:2"]["outbox"]["state"] == "pending"
    assert body["count"] == 12


def test_the_listing_table_is_the_loaded_stores(data_dir, no_load, capsys):
    store = loaded(data_dir)
    expected = printed(
        capsys,
        lambda: _records_table("contacts", store.records("contacts"), record_marks(store)),
    )
    no_load()
    assert run(data_dir, "contacts") == expected


def test_status_counts_without_loading_what_the_loaded_store_counts(data_dir, no_load, capsys):
    settings = load_settings(None, crm_data_dir=data_dir, crm_user_id=USER)
    statuses = shown_statuses(loaded(data_dir), settings)
    expected = printed(capsys, lambda: _status_table(settings, statuses))
    no_load()
    body = json.loads(run(data_dir, "status", "--json"))
    assert body["status"] == {name: s.to_guide() for name, s in statuses.items()}
    assert body["status"]["brivity"]["contactCount"] == 7
    assert body["status"]["brivity"]["dealCount"] == 1
    assert body["status"]["topproducer"]["contactCount"] == 1
    assert body["status"]["acme"]["contactCount"] == 1
    assert body["status"]["followupboss"]["contactCount"] == 3
    assert body["status"]["hubspot"]["contactCount"] == 0
    assert list(body["status"])[-1] == "acme"
    assert run(data_dir, "status") == expected


def test_a_closed_pipe_ends_a_long_listing_quietly(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    db = Database(folder / "crm.sqlite3")
    db.replace_stream(
        USER, "brivity", "contacts", [contact("brivity", n, f"B{n}") for n in range(5000)]
    )
    db.close()
    env = {**os.environ, "CRM_USER_ID": USER, "PYTHONPATH": str(Path(__file__).parents[1])}
    argv = [sys.executable, "-m", "crm_tui", "--data-dir", str(folder), "contacts", "--json"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        head = proc.stdout.read(200)
        proc.stdout.close()  # as `| head -c 200` does
        errors = proc.stderr.read()
        code = proc.wait(timeout=60)
    assert head.startswith(b'{"success": true, "contacts": [{')
    assert code == 0
    assert errors == b""


@pytest.mark.parametrize(("fmt", "source"), [("csv", None), ("json", "brivity"), ("vcf", None)])
def test_an_export_writes_what_the_loaded_store_wrote(data_dir, no_load, capsys, fmt, source):
    from crm_tui.export import export

    store = loaded(data_dir)
    expected = printed(
        capsys,
        lambda: export(None, fmt, "contacts", store.records("contacts", source), stdout=sys.stdout),
    )
    no_load()
    args = ["export", "--format", fmt, *(["--source", source] if source else [])]
    # click's test runner shows "\r\n" (CSV's and vCard's line ends) as "\n"
    assert run(data_dir, *args) == expected.replace("\r\n", "\n")


def test_a_runtime_without_the_snapshot_refuses_to_load_it(data_dir):
    from crm_tui.cli.runtime import Runtime

    rt = Runtime(data_dir=data_dir, overrides={"crm_user_id": USER}, snapshot=False)
    with pytest.raises(RuntimeError, match="reads the database"):
        _ = rt.store
    assert rt.database.stream_counts(USER, "deals") == {"followupboss": 2, "brivity": 1}
