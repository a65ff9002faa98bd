"""The shared status vocabulary, the filters built on it, the command palette and `?`."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textual.command import CommandPalette
from textual.widgets import Static

from crm_tui.app import CrmApp, make_app
from crm_tui.models import Contact, Deal
from crm_tui.screens.help import HelpScreen, key_groups
from crm_tui.search.index import SearchIndex, filter_hint
from crm_tui.search.query import QueryError, parse_query
from crm_tui.store import CacheStore, Database
from crm_tui.vocabulary import (
    SHARED_STATUSES,
    filter_token,
    normalize_filter,
    record_shared_status,
    shared_value,
)
from tests.helpers.env import make_settings
from tests.helpers.tui import SIZE, idle, settle

# -- the vocabulary --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "kind", "value", "shared"),
    [
        ("followupboss", "contacts", "Hot Prospect", "prospect"),
        ("followupboss", "contacts", "Sphere", "nurture"),
        ("followupboss", "contacts", "Pending", "under contract"),
        ("followupboss", "deals", "Offer Submitted", "active client"),
        ("hubspot", "contacts", "salesqualifiedlead", "prospect"),
        ("hubspot", "contacts", "customer", "past client"),
        ("hubspot", "contacts", "BAD_TIMING", "nurture"),
        ("hubspot", "deals", "contractsent", "under contract"),
        ("hubspot", "deals", "closedwon", "closed"),
        ("hubspot", "deals", "closedlost", "lost"),
        ("pipedrive", "deals", "won", "closed"),
        ("pipedrive", "deals", "open", "active client"),
        ("lofty", "contacts", "New Lead", "lead"),
        ("lofty", "deals", "Terminated", "lost"),
        ("brivity", "deals", "Cancelled", "lost"),
        ("topproducer", "contacts", "Client", "active client"),
        # unknown values, read by their words
        ("local", "deals", "Closed - Won", "closed"),
        ("local", "deals", "ClosedLost", "lost"),
        ("local", "contacts", "Former past client", "past client"),
        ("local", "contacts", "Inactive", "nurture"),
        # nothing in the words: unmapped, the vendor's value alone
        ("pipedrive", "deals", "3", None),
        ("local", "contacts", "Newsletter", None),
        ("local", "contacts", "", None),
    ],
)
def test_vendor_values_map_onto_the_shared_vocabulary(source, kind, value, shared):
    assert shared_value(source, kind, value) == shared


def test_a_records_shared_status_comes_from_its_best_field():
    hubspot = contact("hubspot", 1, stage="customer", status="OPEN")
    assert record_shared_status(hubspot) == "past client"  # lifecycle before lead status
    weird = contact("followupboss", 2, stage="Weird")
    assert record_shared_status(weird) is None
    topproducer = contact("topproducer", 3, status="Lead", stage="Closed")
    assert record_shared_status(topproducer) == "lead"  # its status holds the pipeline


# -- filters -----------------------------------------------------------------------------


def contact(source: str, n: int, **values: object) -> Contact:
    return Contact(
        f"{source}:{n}", source, str(n), "alice", first_name="Ann", last_name=f"Lee{n}", **values
    )


def deal(source: str, n: int, **values: object) -> Deal:
    return Deal(f"{source}:{n}", source, str(n), "alice", name=f"{n} Oak St", **values)


def people() -> list[Contact]:
    return [
        contact("followupboss", 1, stage="Hot Prospect", city="Austin"),
        contact("followupboss", 2, stage="Active Client", city="Austin"),
        contact("followupboss", 3, stage="Past Client", tags=("sphere",)),
        contact("followupboss", 4, stage="Weird"),
        contact("hubspot", 5, stage="salesqualifiedlead", status="OPEN"),
        contact("hubspot", 6, stage="customer"),
    ]


def deals() -> list[Deal]:
    return [
        deal("pipedrive", 1, stage="3", status="open", amount=Decimal(400_000)),
        deal("pipedrive", 2, stage="4", status="won", close_date="2026-12-03"),
        deal("hubspot", 3, stage="closedlost", status="lost"),
        deal("hubspot", 4, stage="contractsent", status="open"),
    ]


@pytest.fixture
def index() -> SearchIndex:
    idx = SearchIndex()
    for source in ("followupboss", "hubspot"):
        idx.rebuild("contacts", source, [c for c in people() if c.source == source])
    for source in ("pipedrive", "hubspot"):
        idx.rebuild("deals", source, [d for d in deals() if d.source == source])
    return idx


def found(index: SearchIndex, query: str, kind: str = "contacts") -> set[str]:
    result = index.search(query, kind)  # type: ignore[arg-type]
    return {hit.record.id for hits in result.groups.values() for hit in hits}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status:prospect", {"followupboss:1", "hubspot:5"}),
        ("status:active-client", {"followupboss:2"}),
        ('status:"active client"', {"followupboss:2"}),
        ("status:active_client", {"followupboss:2"}),
        ('status:"past cl', {"followupboss:3", "hubspot:6"}),  # still being typed
        ("status:client", {"followupboss:2", "followupboss:3", "hubspot:6"}),
        ("stage:hot-prospect", {"followupboss:1"}),  # the vendor's own value, hyphenated
        ("stage:weird", {"followupboss:4"}),  # unmapped: the vendor's value still works
        ("status:open", {"hubspot:5"}),  # HubSpot's own lead status
        ("status:prospect city:austin", {"followupboss:1"}),
        ("status:trash", set()),
    ],
)
def test_status_matches_the_shared_value_and_the_vendors(index, query, expected):
    assert found(index, query) == expected


def test_stage_on_deals_matches_the_shared_value(index):
    assert found(index, "stage:closed", "deals") == {"pipedrive:2"}
    assert found(index, "stage:under-contract", "deals") == {"hubspot:4"}
    assert found(index, "status:lost", "deals") == {"hubspot:3"}
    assert found(index, "stage:active amount>100", "deals") == {"pipedrive:1"}


@pytest.mark.parametrize(
    ("query", "kind", "message"),
    [
        ("ann closing:2026", "contacts", "closing: applies to deals: press tab for Deals"),
        ("ann amount>5", "contacts", "amount>N applies to deals: press tab for Deals"),
        ("oak city:austin", "deals", "city: applies to contacts: press tab for Contacts"),
        ("oak tag:buyer", "deals", "tag: applies to contacts: press tab for Contacts"),
    ],
)
def test_filters_of_the_other_tab_say_where_they_apply(query, kind, message):
    with pytest.raises(QueryError, match=message):
        parse_query(query, kind)


def test_a_quoted_value_is_one_filter_and_an_empty_one_is_none():
    assert parse_query('ann status:"past client" lee').filters == {"status": ["past client"]}
    assert parse_query('ann status:"').filters == {}


def test_value_counts_and_the_hint_show_what_the_cache_holds(index):
    shared = dict(index.value_counts("contacts", "shared"))
    assert shared == {"prospect": 2, "past client": 2, "active client": 1}
    assert dict(index.value_counts("contacts", "city")) == {"austin": 2}
    hint = filter_hint(index)
    assert "status: past-client, prospect, active-client" in hint
    assert "city: austin" in hint and "tag: sphere" in hint
    assert "source: followupboss, hubspot, pipedrive" in hint  # three at most
    assert "stage: active-client, closed, lost" in hint or "stage: active-client" in hint
    assert "(" not in filter_hint(SearchIndex()).split("deals")[0]  # examples when empty


def test_value_counts_follow_a_patch(index):
    current = {c.id: c for c in people() if c.source == "hubspot"}
    current["hubspot:5"] = contact("hubspot", 5, stage="customer")
    index.patch("contacts", "hubspot", lambda: current, {"hubspot:5"})
    assert dict(index.value_counts("contacts", "shared"))["past client"] == 3


# -- the app -----------------------------------------------------------------------------


async def app_with_records(tmp_path: Path) -> CrmApp:
    settings = make_settings(tmp_path)
    db = Database(settings.database_path)
    store = CacheStore(settings.user_id, db)
    await store.upsert("contacts", people())
    await store.upsert("deals", deals())
    db.close()
    return make_app(settings, sync_stale=False)


def shown(app: CrmApp) -> str:
    return "\n".join(str(s.render()) for s in app.screen.query(Static))


async def test_search_hint_and_status_filter_in_the_app(tmp_path):
    app = await app_with_records(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("2")
        hint = str(app.screen.query_one("#hint", Static).render())
        assert "status: past-client, prospect, active-client" in hint
        await pilot.press(*"status:active-client")
        await idle(pilot)
        assert app.screen.last is not None
        assert {h.record.id for g in app.screen.last.groups.values() for h in g} == {
            "followupboss:2"
        }
        await pilot.press(*" closing:2026")
        await idle(pilot)
        summary = str(app.screen.query_one("#summary", Static).render())
        assert "closing: applies to deals: press tab for Deals" in summary


def page_text(app: CrmApp) -> str:
    """The help page as shown, in plain text (its tables rendered 120 columns wide)."""
    from rich.console import Console

    console = Console(width=120, record=True, file=io.StringIO())
    console.print(app.screen.query_one("#help-text", Static).content)
    return console.export_text()


async def test_question_mark_opens_crm_keys_by_screen_and_esc_closes(tmp_path):
    app = await app_with_records(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = page_text(app)
        # crm-tui's own keys first, grouped by screen, then the query syntax
        assert text.index("Everywhere") < text.index("Status (1)") < text.index("Search (2)")
        assert text.index("Search (2)") < text.index("Search queries")
        assert "Sync all" in text and "Contacts/Deals" in text
        assert "status:active-client" in text and "applies" not in text.split("Search")[0]
        assert "hot prospect" in text  # the vendor values present, beside their shared one
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_help_shows_the_key_a_keymap_gave(tmp_path):
    from crm_tui.app import keymap_path

    keymap_path().parent.mkdir(parents=True, exist_ok=True)
    keymap_path().write_text('"status.sync_all" = "f9"\n')
    app = await app_with_records(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        groups = dict(key_groups(app))
        status = dict((what, key) for key, what in groups["Status (1)"])
        assert status["Sync all"] == "f9"
        await pilot.press("question_mark")
        await pilot.pause()
        assert "f9  Sync all" in page_text(app)


async def palette_titles(app: CrmApp, pilot) -> list[str]:
    await pilot.press("ctrl+p")
    await idle(pilot)
    assert isinstance(app.screen, CommandPalette)
    commands = list(app.get_system_commands(app.screen_stack[-2]))
    await pilot.press("escape")
    await pilot.pause()
    return [c.title for c in commands]


async def test_palette_lists_the_screens_actions_that_apply_now(tmp_path):
    app = await app_with_records(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        titles = await palette_titles(app, pilot)
        # Status's own keys, from its bindings; Cancel is for a running sync only
        assert {"Sync all", "Clear all"} <= set(titles)
        assert not any(t.startswith("Cancel") for t in titles)
        assert "Go to status" not in titles and "Go to search" in titles
        await pilot.press("2")
        titles = await palette_titles(app, pilot)
        assert {"Contacts/Deals", "New", "One row per person"} <= set(titles)
        assert "Sync all" not in titles  # Status's key, not Search's
        # a command runs the screen's action
        await pilot.press("ctrl+p")
        await idle(pilot)
        await pilot.press(*"contacts/deals")
        await idle(pilot)
        await pilot.press("enter")
        await idle(pilot)
        assert app.screen.kind == "deals"


async def test_palette_offers_cancel_only_while_a_source_syncs(tmp_path, monkeypatch):
    app = await app_with_records(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        monkeypatch.setattr(app.engine, "enabled", lambda: ["brivity", "hubspot"])
        titles = await palette_titles(app, pilot)
        assert {"Sync Brivity", "Sync HubSpot", "Sync all sources"} <= set(titles)
        assert not any(t.startswith("Cancel sync") for t in titles)
        monkeypatch.setattr(app.engine, "is_running", lambda name: name == "brivity")
        titles = await palette_titles(app, pilot)
        assert "Cancel sync: Brivity" in titles and "Sync Brivity" not in titles
        assert "Cancel sync: HubSpot" not in titles and "Sync HubSpot" in titles


vendor_values = st.sampled_from(
    ["Lead", "Hot Prospect", "closedwon", "closedlost", "won", "3", "Sphere", "", "Weird"]
)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["followupboss", "hubspot", "pipedrive", "topproducer", "local"]),
    st.lists(st.tuples(vendor_values, vendor_values), max_size=20),
)
def test_the_index_holds_each_records_shared_status(source, rows):
    records = [
        contact(source, n, stage=stage or None, status=status or None)
        for n, (stage, status) in enumerate(rows)
    ]
    index = SearchIndex()
    index.rebuild("contacts", source, records)
    for shared in SHARED_STATUSES:
        typed = filter_token(shared)
        got = found(index, f"status:{typed}") if records else set()
        named = {r.id for r in records if record_shared_status(r) == shared}
        # a status that maps to nothing still answers to its own text
        by_text = {
            r.id
            for r in records
            if r.status
            and shared_value(source, "contacts", r.status) is None
            and normalize_filter(typed) in normalize_filter(r.status)
        }
        assert got == named | by_text


@given(st.text(max_size=40))
def test_any_text_maps_to_a_shared_status_or_none(value):
    assert shared_value("local", "contacts", value) in (*SHARED_STATUSES, None)
