"""Another process's commit reaches an open cache as the rows that changed: the change log,
the store following it, the search index patched instead of rebuilt, the app showing it."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from crm_tui.app import make_app
from crm_tui.models import Contact
from crm_tui.search.index import PATCH_MIN, SearchIndex
from crm_tui.store import CacheStore, Database
from crm_tui.store.changes import KEEP_SECONDS
from tests.helpers.env import make_settings
from tests.helpers.tui import until


def contact(i: int, first: str = "Ann", source: str = "followupboss") -> Contact:
    return Contact(
        id=f"{source}:{i}",
        source=source,
        remote_id=str(i),
        user_id="alice",
        first_name=first,
        last_name=f"Lee{i}",
        email=f"p{i}@example.com",
        remote_updated="2026-11-20T10:00:00Z",
    )


def seeded(path, count: int = 50) -> None:
    db = Database(path)
    try:
        seed(db, count)
    finally:
        db.close()


def seed(db: Database, count: int = 50) -> None:
    db.replace_stream("alice", "followupboss", "contacts", [contact(i) for i in range(count)])


async def test_the_change_log_names_other_processes_changes_only(open_db, monkeypatch):
    from crm_tui.store import db as db_module

    writer, reader = open_db(), open_db()
    seed(writer)
    try:
        start = reader.last_change()
        writer.commit_changes(
            "alice", "followupboss", "contacts", [contact(3, "Zed")], ["followupboss:4"], None
        )
        seen = reader.changes_since("alice", start)
        assert seen.ids == {("contacts", "followupboss"): {"followupboss:3", "followupboss:4"}}
        assert not seen.streams and not seen.everything
        assert writer.changes_since("alice", start).empty  # its own rows: it knows them
        assert reader.changes_since("bob", start).empty  # another user's cache
        # a full refresh names what differs from the rows it replaced (not the sync time)
        fresh = [contact(i) for i in range(50) if i not in (3, 4)]
        fresh[0] = replace(fresh[0], first_name="Changed", synced_at="2099-01-01T00:00:00Z")
        writer.replace_stream("alice", "followupboss", "contacts", fresh)
        later = reader.changes_since("alice", seen.last)
        # 0 changed, 3 gone; 4 was deleted already (by the change above)
        assert later.ids == {("contacts", "followupboss"): {"followupboss:0", "followupboss:3"}}
        # ... or, past DIFF_LIMIT, that the stream was replaced
        monkeypatch.setattr(db_module, "DIFF_LIMIT", 1)
        writer.replace_stream("alice", "followupboss", "contacts", [contact(1)])
        last = reader.changes_since("alice", later.last)
        assert last.streams == {("contacts", "followupboss")} and not last.ids
        writer.clear("alice")
        assert reader.changes_since("alice", last.last).everything
    finally:
        writer.close()
        reader.close()


def test_a_reader_that_fell_behind_the_kept_log_reloads_everything(open_db):
    writer, reader = open_db(), open_db()
    seed(writer)
    try:
        start = reader.last_change()
        for i in range(3):
            writer.commit_changes("alice", "followupboss", "contacts", [contact(i)], [], None)
        with writer.transaction() as conn:  # as if the reader slept past KEEP_SECONDS
            conn.execute(
                "UPDATE changes SET at = at - ? WHERE seq <= ?", (2 * KEEP_SECONDS, start + 2)
            )
        writer._trimmed_at = 0.0  # the next commit trims, as one does every minute
        writer.commit_changes("alice", "followupboss", "contacts", [contact(9)], [], None)
        assert KEEP_SECONDS >= 600
        found = reader.changes_since("alice", start)
        assert found.everything
        assert not reader.changes_since("alice", found.last).everything  # caught up, once
    finally:
        writer.close()
        reader.close()


async def test_following_reads_only_the_changed_rows(open_db, monkeypatch):
    writer, reader = open_db(), open_db()
    seed(writer)
    try:
        store = CacheStore("alice", reader)
        store.load_sync()
        kept = store.stream("contacts", "followupboss")
        start = reader.last_change()
        writer.commit_changes(
            "alice",
            "followupboss",
            "contacts",
            [contact(3, "Zed"), contact(99, "New")],
            ["followupboss:4"],
            None,
        )
        loads = []
        monkeypatch.setattr(store, "load", lambda: loads.append(1))
        changes: list = []
        store.subscribe(changes.append)
        await store.follow(reader.changes_since("alice", start))
        assert loads == []
        now = store.stream("contacts", "followupboss")
        assert now["followupboss:3"].first_name == "Zed" and "followupboss:99" in now
        assert "followupboss:4" not in now and len(now) == 50
        assert kept["followupboss:3"].first_name == "Ann"  # a reader's old mapping stays whole
        record_changes = [c for c in changes if not c.status_only]
        assert [c.ids for c in record_changes] == [
            frozenset({"followupboss:3", "followupboss:99", "followupboss:4"})
        ]
    finally:
        writer.close()
        reader.close()


def search_names(index: SearchIndex, text: str) -> list[str]:
    result = index.search(text)
    return sorted(
        f"{h.record.first_name} {h.record.last_name}" for h in result.groups.get("followupboss", [])
    )


def test_a_patch_is_searched_without_rebuilding_the_segment():
    records = {c.id: c for c in (contact(i) for i in range(200))}
    index = SearchIndex()
    index.rebuild("contacts", "followupboss", list(records.values()))
    segment = index._segments[("contacts", "followupboss")]
    records["followupboss:5"] = replace(records["followupboss:5"], first_name="Quincy")
    del records["followupboss:6"]
    records["followupboss:900"] = contact(900, "Quinn")
    index.patch(
        "contacts",
        "followupboss",
        lambda: records,
        ["followupboss:5", "followupboss:6", "followupboss:900"],
    )
    assert index._segments[("contacts", "followupboss")] is segment  # not rebuilt
    assert search_names(index, "quin") == ["Quincy Lee5", "Quinn Lee900"]
    found = search_names(index, "lee5")
    assert "Quincy Lee5" in found and "Ann Lee5" not in found  # the old version is gone
    assert "Ann Lee6" not in search_names(index, "lee6")
    assert index.search("ann").counts["followupboss"] == 198
    records["followupboss:7"] = replace(records["followupboss:7"], first_name="Quill")
    index.patch("contacts", "followupboss", lambda: records, ["followupboss:7"])  # patches pile up
    assert search_names(index, "qui") == ["Quill Lee7", "Quincy Lee5", "Quinn Lee900"]


def test_a_patch_past_its_limit_rebuilds_the_segment():
    records = {c.id: c for c in (contact(i) for i in range(PATCH_MIN + 10))}
    index = SearchIndex()
    index.rebuild("contacts", "followupboss", list(records.values()))
    segment = index._segments[("contacts", "followupboss")]
    changed = list(records)[: PATCH_MIN + 1]
    for record_id in changed:
        records[record_id] = replace(records[record_id], first_name="Bea")
    index.patch("contacts", "followupboss", lambda: records, changed)
    assert index._segments[("contacts", "followupboss")] is not segment
    assert ("contacts", "followupboss") not in index._patches
    assert index.search("bea").counts["followupboss"] == PATCH_MIN + 1


@pytest.mark.parametrize("deleted", [False, True])
async def test_the_open_app_shows_another_processes_change_without_a_reload(tmp_path, deleted):
    settings = make_settings(tmp_path)
    seeded(settings.database_path)
    app = make_app(settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.loaded)
        loads = []
        original = app.store.load

        async def counted() -> None:
            loads.append(1)
            await original()

        app.store.load = counted  # type: ignore[method-assign]
        other = Database(settings.database_path)  # another process: the CLI, cron, webhooks
        try:
            upserts = [] if deleted else [contact(7, "Xavier")]
            gone = ["followupboss:7"] if deleted else []
            other.commit_changes("alice", "followupboss", "contacts", upserts, gone, None)
        finally:
            other.close()
        wanted = [] if deleted else ["Xavier"]

        def shown() -> bool:
            found = app.index.search("lee7").groups.get("followupboss", [])
            return [h.record.first_name for h in found] == wanted

        await until(pilot, shown, "the change to reach the open app")
        assert loads == []
        assert app.store.count("contacts", "followupboss") == (49 if deleted else 50)
        await asyncio.sleep(0)


async def test_the_duplicate_finder_rekeys_only_the_changed_contacts(monkeypatch):
    from crm_tui.dedup import DuplicateFinder
    from crm_tui.dedup.sourcekeys import SourceKeys

    store = CacheStore("alice")
    await store.replace_stream("fub", "contacts", [contact(i, source="fub") for i in range(40)])
    hubspot = [contact(i, source="hubspot") for i in range(0, 40, 2)]  # same e-mails: pairs
    await store.replace_stream("hubspot", "contacts", hubspot)
    finder = DuplicateFinder()
    before = finder.refresh(store)
    assert len(before.clusters) == 20
    built: list[int] = []
    real_build = SourceKeys.build.__func__  # type: ignore[attr-defined]

    def counting(cls, source, version, records, keyer):
        built.append(len(records))
        return real_build(cls, source, version, records, keyer)

    monkeypatch.setattr(SourceKeys, "build", classmethod(counting))
    moved = replace(contact(1, source="hubspot"), remote_id="901", id="hubspot:901")
    await store.commit_changes("hubspot", "contacts", [moved], ["hubspot:2"], None, None)
    await store.commit_changes("fub", "contacts", [contact(4, "Zoe", source="fub")], [], None, None)
    patched = finder.refresh(store)
    assert built == []  # no source was keyed afresh
    fresh = DuplicateFinder().refresh(store)

    def members(people):
        return sorted(tuple(sorted(c.members)) for c in people.clusters)

    assert members(patched) == members(fresh)
    assert ("fub:1", "hubspot:901") in members(patched)
    assert all("hubspot:2" not in m for m in members(patched))


async def test_the_app_receives_a_signed_webhook_and_shows_the_change(tmp_path, faulty_servers):
    """The demo's path: the vendor posts a signed webhook to the receiver inside the app,
    which fetches the record and shows it. The servers are the test's own: the change it
    makes would otherwise stay in the session's servers for the tests after it."""
    demo_servers = faulty_servers
    from crm_tui.demo import data
    from crm_tui.webhooks.server import bind
    from tests.helpers.env import make_settings as settings_of

    env = {k.lower(): v for k, v in demo_servers.env().items()}
    settings = settings_of(tmp_path, **env)
    bound = bind("127.0.0.1", 0)
    port = bound.getsockname()[1]
    app = make_app(settings, sync_on_start=True, webhook_listen=bound)
    demo_servers.start_churn(0.0, webhook_url=f"http://127.0.0.1:{port}/webhooks/{{source}}")
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.loaded and app.store.count("contacts", "followupboss"))
            index = next(i for i in range(10, 200) if i != data.MISSING_ID_INDEX)
            patch = {"lastName": "Webhookton"}
            demo_servers.overlay.apply("followupboss:people", "update", index, patch=patch)
            webhooked = "the webhook's change to show"
            await until(
                pilot, lambda: app.index.search("webhookton").counts.get("followupboss"), webhooked
            )
            runs = app.store.db.list_runs(settings.user_id)
            assert any(r["stream"] == "webhook:contacts" for r in runs)
    finally:
        demo_servers.stop_churn()


async def test_an_imported_record_stays_over_its_synced_change_and_imports_are_logged(open_db):
    writer, reader = open_db(), open_db()
    seed(writer, 5)
    try:
        start = reader.last_change()
        generation = writer.new_generation("alice", "followupboss", "contacts")
        writer.stage("contacts", generation, [contact(2, "Imported")])
        writer.commit_import("alice", "followupboss", "contacts", generation, "people.csv")
        seen = reader.changes_since("alice", start)
        assert seen.streams == {("contacts", "followupboss")}  # another process re-reads it
        store = CacheStore("alice", reader)
        store.load_sync()
        assert store.get("contacts", "followupboss:2").first_name == "Imported"
        await store.commit_changes(
            "followupboss", "contacts", [contact(2, "Synced")], ["followupboss:3"], None, None
        )
        # the import still wins for its id; the other change lands
        assert store.get("contacts", "followupboss:2").first_name == "Imported"
        assert store.get("contacts", "followupboss:3") is None
        again = CacheStore("alice", reader)
        await again.follow(reader.changes_since("alice", 0))
        assert again.get("contacts", "followupboss:2").first_name == "Imported"
    finally:
        writer.close()
        reader.close()


async def test_another_processes_rejection_reaches_the_open_app(tmp_path):
    """A decision touches no record: the open app sees it by the decisions' stamp, and only
    then sorts its clusters again."""
    settings = make_settings(tmp_path)
    db = Database(settings.database_path)
    twins = [contact(1, "Ann"), replace(contact(1, "Ann", "hubspot"), id="hubspot:1")]
    db.replace_stream("alice", "followupboss", "contacts", twins[:1])
    db.replace_stream("alice", "hubspot", "contacts", twins[1:])
    db.close()
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.loaded and app.review.sections.get("open"))
        (cluster,) = app.review.sections["open"]
        other = Database(settings.database_path)
        try:
            other.reject("alice", cluster.id, cluster.members)
        finally:
            other.close()
        rejected = "the rejection to reach the open app"
        await until(pilot, lambda: app.review.sections.get("rejected"), rejected)
        assert not app.review.sections.get("open")
