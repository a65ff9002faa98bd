"""The real app driven by Pilot against the demo servers."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input, Static

from crm_tui.app import CrmApp, make_app
from crm_tui.config import DISPLAY_NAMES
from crm_tui.demo import data
from crm_tui.demo.servers import Faults, start_demo_servers
from crm_tui.models import SyncState
from crm_tui.screens.cluster import ClusterScreen
from crm_tui.screens.confirm import ConfirmScreen
from crm_tui.screens.detail import RecordScreen
from crm_tui.sources.registry import SHORT_NAMES
from crm_tui.widgets.record_table import RecordTable
from tests.helpers.env import DEMO_CONTACTS, make_settings
from tests.helpers.tui import SIZE, cells, idle, settle, until


async def test_sync_all_from_status_shows_counts_and_states(demo_settings):
    app = make_app(demo_settings)
    states: list[SyncState] = []
    app.store.subscribe(lambda change: states.append(app.store.status("followupboss").state))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("a")
        await settle(pilot, app)
        table = app.screen.query_one("#sources", DataTable)
        rows = {row[0]: row for row in cells(table)}
        expected = f"{data.expected_contacts(DEMO_CONTACTS):,}"
        for name in ("Brivity", "TopProducer", "Follow Up Boss"):
            assert rows[name][1] == "● idle"
            assert rows[name][3] == expected
        assert rows["Follow Up Boss"][4] == f"{data.deal_count(DEMO_CONTACTS):,}"
    assert SyncState.SYNCING in states and states[-1] is SyncState.IDLE


async def test_search_as_you_type_groups_and_switches_kind(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("2")
        assert isinstance(app.focused, Input)
        await pilot.press("j")
        await idle(pilot)
        summary = app.screen.query_one("#summary", Static)
        assert "Query must be at least 2 characters" in str(summary.render())
        await pilot.press("o", "s", "e")
        await idle(pilot)
        result = app.screen.last
        assert result is not None and result.query == "jose"
        assert result.total >= 3  # José in each of the three CRMs, at least
        table = app.screen.query_one("#results", DataTable)
        groups = [row[0] for row in cells(table) if row[0].startswith("▸")]
        assert len(groups) == len(result.counts) >= 3
        assert any("José" in " ".join(row) for row in cells(table))

        await pilot.press("ctrl+t")
        assert app.screen.kind == "deals"
        await pilot.press("escape", *"Oak")
        await idle(pilot)
        assert app.screen.last.kind == "deals" and app.screen.last.total > 0

        await pilot.press("escape")
        assert app.screen.query_one("#query", Input).value == ""
        assert app.screen.query_one("#results", DataTable).row_count == 0


async def test_open_and_close_a_record(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("2", *"zoe")
        await idle(pilot)
        await pilot.press("down", "enter")  # down: the first record, not its header
        await idle(pilot)
        assert isinstance(app.screen, RecordScreen)
        assert app.screen.record.first_name == "Zoë"
        fields = cells(app.screen.query_one("#fields", DataTable))
        assert ["First name", "Zoë"] in fields
        await pilot.press("escape")
        assert not isinstance(app.screen, RecordScreen)


async def test_clear_cache_asks_first(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.store.count("contacts", "brivity") > 0
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await idle(pilot)
        assert app.store.count("contacts", "brivity") > 0
        await pilot.press("c")
        await pilot.press("y")
        await settle(pilot, app)
        assert app.store.count("contacts", "brivity") == 0
        assert app.store.count("contacts", "followupboss") > 0


async def test_a_clear_the_database_refuses_says_so(synced_settings, monkeypatch):
    """The Status screen's workers are the screen's: their failure message does not bubble
    to the app, and a refused clear (a team lead's, of an agent's rows) said nothing."""
    from crm_tui.store.errors import DatabaseRefused

    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)

        async def refused(source: str | None) -> int:
            raise DatabaseRefused("The team database refused", "row-level security policy")

        monkeypatch.setattr(app.store, "clear", refused)
        await pilot.press("c")
        await pilot.press("y")
        said = "The team database refused"
        await until(pilot, lambda: any(said in str(n.message) for n in app._notifications), said)
        assert app.store.count("contacts", "brivity") > 0


async def test_cancel_a_running_sync_keeps_the_old_data(tmp_path, demo_settings):
    slow = start_demo_servers(
        contacts=DEMO_CONTACTS, seed=11, faults=Faults(latency=0.3), fub_rate_limit=10_000
    )
    try:
        settings = make_settings(
            tmp_path,
            fub_api_key="demo-fub-key",
            fub_api_base_url=f"{slow.servers['followupboss'].url}/v1",
        )
        app = make_app(settings)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app)  # the first (stale) sync completes
            before = app.store.count("contacts", "followupboss")
            assert before == data.expected_contacts(DEMO_CONTACTS)
            table = app.screen.query_one("#sources", DataTable)
            table.move_cursor(row=list(app.store.sources()).index("followupboss"))
            # in full: an incremental catch-up of an unchanged account ends within a page
            await pilot.press("F")
            syncing = "the Follow Up Boss sync to start"
            await until(pilot, lambda: app.engine.is_running("followupboss"), syncing)
            await pilot.press("x")
            await settle(pilot, app)
            assert app.store.count("contacts", "followupboss") == before
            assert app.store.status("followupboss").state is SyncState.IDLE
            runs = app.store.db.list_runs(settings.user_id)
            assert runs[0]["outcome"] == "cancelled"
    finally:
        slow.stop()


async def test_a_failing_source_shows_its_error_in_full(tmp_path, demo_servers):
    env = {k.lower(): v for k, v in demo_servers.env().items()}
    env["brivity_api_key"] = "wrong"
    app = make_app(make_settings(tmp_path, **env), sync_on_start=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        table = app.screen.query_one("#sources", DataTable)
        table.move_cursor(row=0)
        await idle(pilot)
        detail = str(app.screen.query_one("#detail-text", Static).render())
        assert "✖ error" in cells(table)[0][1]
        assert "the API key was refused: set BRIVITY_API_KEY in" in detail


HOSTILE = ("[@click=app.quit]Bob[/]", "[/oops]", '[link="https://x"]y[/link]')
HOSTILE_FIRST = HOSTILE[0]


async def test_hostile_records_render_literally_and_fire_nothing(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    fired: list[str] = []
    app.action_quit = lambda: fired.append("quit")  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        # Search: every hostile name, literally, and clicking it does nothing.
        await pilot.press("2", *"markup")
        await idle(pilot)
        table = app.screen.query_one("#results", DataTable)
        text = " ".join(" ".join(row) for row in cells(table))
        assert "[@click=app.quit]Bob[/] Markup" in text
        await pilot.click("#results", offset=(20, 2))
        await pilot.click("#results", offset=(20, 3))
        # Browse: the virtual table renders the raw text. Brivity only: its hostile records
        # come first (which source finished syncing first decides the unfiltered order).
        await pilot.press("f3", "f")  # a digit in Search's results is typed into the box
        await idle(pilot)
        assert "from Brivity" in str(app.screen.query_one("#browse-summary", Static).render())
        records = app.screen.query_one(RecordTable)
        lines = "".join(records.render_line(y).text for y in range(1, 9))
        for name in HOSTILE:
            assert name[:20] in lines  # literally (the column may cut a long name short)
        assert "\x1b" not in lines and "Esc]0;pwnedape" in lines
        await pilot.click(RecordTable, offset=(20, 1))
        await pilot.press("enter")
        assert isinstance(app.screen, RecordScreen)
        payload = str(app.screen.query_one("#payload-text", Static).render())
        assert HOSTILE[0] in payload
        await pilot.press("escape")
        for mode in ("f4", "f5", "f1"):
            await pilot.press(mode)
            await idle(pilot)
        # People: a hostile record linked to its person (both keys agree, names differ)
        await pilot.press("6", "v")
        await idle(pilot)
        people = app.screen.query_one(RecordTable)
        names = {m: app.store.get("contacts", m).first_name for c in people.rows for m in c.members}
        row = next(
            i
            for i, c in enumerate(people.rows)
            if any(names[m] == HOSTILE_FIRST for m in c.members)
        )
        assert people.rows[row].flagged
        people.cursor = row
        await pilot.press("enter")
        await idle(pilot)
        compare = app.screen.query_one("#compare", DataTable)
        assert any(HOSTILE_FIRST in cell for row in cells(compare) for cell in row)
        await pilot.click("#compare", offset=(40, 2))
        await pilot.press("escape", "escape")
        assert app.is_running
    assert fired == []


async def test_keymap_rebinds_by_id(demo_settings):
    from crm_tui.config import config_dir

    config_dir().mkdir(parents=True, exist_ok=True)
    (config_dir() / "keymap.toml").write_text('"mode.search" = "f12"\n')
    app = make_app(demo_settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f12")
        await idle(pilot)
        assert app.current_mode == "search"


def test_unknown_theme_is_refused(demo_settings):
    with pytest.raises(ValueError, match="unknown theme"):
        make_app(demo_settings, theme="no-such-theme")
    assert make_app(demo_settings, theme="nord").theme == "nord"


async def test_scheduled_syncs_run_while_the_app_is_open(demo_settings):
    settings = demo_settings.model_copy(update={"crm_sync_interval_minutes": 30})
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.store.count("contacts", "followupboss") == 0
        next_run = app.store.status("followupboss").next_run
        assert next_run is not None
        table = app.screen.query_one("#sources", DataTable)
        assert any(row[6] == "in 30 min" for row in cells(table))
        app.sync_all_scheduled()  # what the interval timer calls
        await settle(pilot, app)
        assert app.store.count("contacts", "followupboss") == data.expected_contacts(DEMO_CONTACTS)
        assert app.store.status("followupboss").next_run >= next_run


async def test_the_command_palette_offers_every_action(demo_settings):
    app = make_app(demo_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        titles = {c.title for c in app.get_system_commands(app.screen)}
    for title in (
        "Sync all sources",
        "Sync Follow Up Boss",
        "Test connection: Brivity",
        "Go to search",
        "Go to audit",
    ):
        assert title in titles
    assert "Cancel sync: TopProducer" not in titles  # nothing syncs


async def test_local_records_new_edit_delete_undo_from_browse(tmp_path):
    from textual.widgets import Label

    from crm_tui.screens.local_form import LocalFormScreen

    settings = make_settings(tmp_path)
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("3", "ctrl+n")
        assert isinstance(app.screen, LocalFormScreen)
        await pilot.press(*"Nora")  # the first field has the focus
        assert app.screen.query_one("#field-first_name", Input).value == "Nora"
        app.screen.query_one("#field-email", Input).value = "not-an-email"
        await pilot.press("ctrl+s")
        await idle(pilot)
        assert isinstance(app.screen, LocalFormScreen)  # refused, the form stays
        error = str(app.screen.query_one("#error-email", Label).render())
        assert "@" in error or "email" in error.lower()
        assert app.store.count("contacts", "local") == 0
        app.screen.query_one("#field-email", Input).value = "nora@example.com"
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert not isinstance(app.screen, LocalFormScreen)
        [nora] = app.store.contacts("local")
        assert (nora.first_name, nora.email) == ("Nora", "nora@example.com")
        assert app.index.search("nora").total == 1

        await pilot.press("ctrl+e")
        app.screen.query_one("#field-last_name", Input).value = "Vance"
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert app.store.get("contacts", nora.id).last_name == "Vance"

        await pilot.press("delete", "y")
        await settle(pilot, app)
        assert app.store.count("contacts", "local") == 0
        assert app.index.search("vance").total == 0
        await pilot.press("ctrl+z")
        await settle(pilot, app)
        assert app.store.get("contacts", nora.id).last_name == "Vance"


async def test_other_sources_records_are_read_only(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("3", "ctrl+e")
        await idle(pilot)
        assert not isinstance(app.screen, RecordScreen)
        assert any("edit it in Brivity" in str(n.message) for n in app._notifications)


def summary(app: CrmApp) -> str:
    return str(app.screen.query_one("#people-summary", Static).render())


async def people_table(pilot, app: CrmApp, *keys: str) -> RecordTable:
    """People, once the app has settled, after `keys`."""
    await settle(pilot, app)
    await pilot.press("6", *keys)
    await idle(pilot)
    return app.screen.query_one(RecordTable)


async def test_people_mode_compare_merge_and_undo(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        table = await people_table(pilot, app)
        to_review = app.review.sections["open"]
        assert table.row_count == len(to_review) > 0
        assert f"[To review {len(to_review):,}]" in summary(app)
        spread = [len(c.sources) for c in table.rows]
        assert spread == sorted(spread, reverse=True)  # the most sources first
        cluster = table.current
        await pilot.press("enter")
        await idle(pilot)
        assert isinstance(app.screen, ClusterScreen)
        compare = app.screen.query_one("#compare", DataTable)
        assert len(compare.columns) == 2 + len(cluster.members)
        # the phone's candidates: space takes the next record's value into the merge
        phone = app.screen.plan["phone"]
        while compare.coordinate_to_cell_key(compare.cursor_coordinate).row_key.value != "phone":
            await pilot.press("down")
        await pilot.press("space")
        chosen = app.screen.plan["phone"]
        if len(phone.candidates) > 1:
            assert chosen.record_id != phone.record_id
        await pilot.press("m")
        await settle(pilot, app)
        assert not isinstance(app.screen, ClusterScreen)
        merged = app.last_merge
        assert merged is not None and merged.created
        local = app.store.get("contacts", merged.record.id)
        assert local is not None and local.phone == chosen.value
        assert local.metadata["linked_records"] == list(cluster.members)
        # the merged person leaves the list, and the count drops
        assert table.row_count == len(to_review) - 1
        assert cluster.id not in {c.id for c in table.rows}
        assert f"[To review {len(to_review) - 1:,}]" in summary(app)
        assert "Merged 1" in summary(app)
        await pilot.press("ctrl+z")
        await settle(pilot, app)
        assert app.store.get("contacts", merged.record.id) is None
        assert table.row_count == len(to_review)


async def test_not_the_same_person_stays_apart_after_a_restart(demo_settings):
    app = make_app(demo_settings, sync_on_start=True)
    async with app.run_test(size=SIZE) as pilot:
        table = await people_table(pilot, app)
        before = table.row_count
        await pilot.press("down")
        cluster = table.current
        await pilot.press("ctrl+x")
        await settle(pilot, app)
        assert table.row_count == before - 1 and cluster.id not in {c.id for c in table.rows}
    again = make_app(demo_settings)
    async with again.run_test(size=SIZE) as pilot:
        table = await people_table(pilot, again)
        assert table.row_count == before - 1 and cluster.id not in {c.id for c in table.rows}
        # nor are its records one person anywhere else: no "Also in" on their detail
        again.push_screen(RecordScreen(again.store.get("contacts", cluster.members[0])))
        await idle(pilot)
        assert again.screen.also_in == []
        await pilot.press("escape")
        await idle(pilot)
        for _ in range(4):  # to review -> names differ -> possible -> merged -> not the same
            await pilot.press("v")
        await idle(pilot)
        assert [c.id for c in table.rows] == [cluster.id]
        await pilot.press("ctrl+x")  # taken back
        await settle(pilot, again)
        assert table.row_count == 0
        await pilot.press("v")
        await idle(pilot)
        assert table.row_count == before


async def test_bulk_merge_of_the_sure_clusters_and_undo_one(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        table = await people_table(pilot, app, "c", "c")  # confidence >= 0.95
        sure = list(table.rows)
        assert sure and all(c.confidence >= 0.95 for c in sure)
        left = len(app.review.sections["open"]) - len(sure)
        await pilot.press("ctrl+a")
        await idle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        records = sum(len(c.members) for c in sure)
        assert f"Merge {len(sure):,} people ({records:,} records)" in app.screen.question
        await pilot.press("y")
        await settle(pilot, app, limit=60)
        assert table.row_count == 0
        assert len(app.review.sections["open"]) == left
        assert len(app.review.sections["merged"]) == len(sure)
        for _ in range(3):  # names differ -> possible -> merged
            await pilot.press("v")
        await idle(pilot)
        assert {c.id for c in table.rows} == {c.id for c in sure}
        undone = table.current
        local_id = next(m for m in undone.members if m.startswith("local:"))
        await pilot.press("ctrl+z")
        await settle(pilot, app)
        assert app.store.get("contacts", local_id) is None
        assert undone.id not in {c.id for c in table.rows}
        assert len(app.review.sections["merged"]) == len(sure) - 1
        assert undone.id in {c.id for c in app.review.sections["open"]}


async def test_a_cluster_whose_names_differ_is_merged_only_after_a_question(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        table = await people_table(pilot, app, "v")  # the names-differ section
        assert table.rows and all(c.flagged for c in table.rows)
        before = app.store.count("contacts", "local")
        await pilot.press("enter", "m")
        await idle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "their names differ" in app.screen.question
        await pilot.press("n")
        await settle(pilot, app)
        assert app.store.count("contacts", "local") == before  # nothing merged
        assert isinstance(app.screen, ClusterScreen)
        await pilot.press("m", "y")
        await settle(pilot, app)
        assert app.store.count("contacts", "local") == before + 1


async def test_find_narrows_the_people_list_by_name(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        table = await people_table(pilot, app)
        target = table.rows[3]
        last = app.store.get("contacts", target.members[0]).last_name
        await pilot.press("slash", *last.lower())
        await settle(pilot, app)
        assert target in table.rows and 0 < table.row_count < len(app.review.sections["open"])
        for cluster in table.rows:
            names = [app.store.get("contacts", m).name.lower() for m in cluster.members]
            assert any(last.lower() in n for n in names)
        await pilot.press("escape")
        await settle(pilot, app)
        assert table.row_count == len(app.review.sections["open"])


async def test_record_detail_shows_and_jumps_to_the_same_person(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        cluster = next(c for c in app.people.clusters if len(c.sources) == 3)
        first = app.store.get("contacts", cluster.members[0])
        app.push_screen(RecordScreen(first))
        await idle(pilot)
        line = str(app.screen.query_one("#also-in", Static).render())
        others = sorted(DISPLAY_NAMES[s] for s in cluster.sources if s != first.source)
        assert f"Also in: {', '.join(others)}" in line
        visited = [app.screen.record.id]
        for _ in cluster.members[1:]:
            await pilot.press("a")
            await idle(pilot)
            visited.append(app.screen.record.id)
        assert visited == list(cluster.members)


async def test_search_collapses_to_one_row_per_person(synced_settings):
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        emails = {
            m: app.store.get("contacts", m).email for c in app.people.clusters for m in c.members
        }
        cluster = next(
            c
            for c in app.people.clusters
            if len(c.sources) == 3 and len({emails[m] for m in c.members}) == 1
        )
        email = emails[cluster.members[0]]
        await pilot.press("2", *email)
        await idle(pilot)
        table = app.screen.query_one("#results", DataTable)
        by_source = [r for r in cells(table) if not r[0].startswith("▸")]
        await pilot.press("ctrl+g")
        await idle(pilot)
        per_person = [r for r in cells(table) if not r[0].startswith("▸")]
        assert len(by_source) >= 3 and len(per_person) == len(by_source) - 2
        badges = " ".join(SHORT_NAMES[s] for s in cluster.sources)
        assert any(r[0] == badges for r in per_person)


async def test_clearing_a_source_says_its_imported_rows_go_too(tmp_path):
    from crm_tui.models import Contact
    from crm_tui.store import Database

    settings = make_settings(tmp_path)
    db = Database(settings.database_path)
    people = [
        Contact(f"topproducer:{n}", "topproducer", str(n), "alice", f"P{n}") for n in range(3)
    ]
    db.replace_stream("alice", "topproducer", "contacts", people[:1])
    generation = db.new_generation("alice", "topproducer", "contacts")
    db.stage("contacts", generation, people[1:])
    db.commit_import("alice", "topproducer", "contacts", generation, "/extra.csv")
    db.close()
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        table = app.screen.query_one("#sources", DataTable)
        table.move_cursor(row=app.store.sources().index("topproducer"))
        await pilot.press("c")
        await idle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        question = str(app.screen.query_one("#question", Static).render())
        assert "2 rows imported from files go too" in question
        await pilot.press("y")
        await settle(pilot, app)
        assert app.store.count("contacts", "topproducer") == 0
        assert app.store.imported_count() == 0
