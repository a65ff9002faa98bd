"""Forms and detail that fit the terminal: the lenient parsers and formatters, the local
form at 80x24, and the record detail screen, driven by Pilot against the real app."""

from __future__ import annotations

import sys
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from textual.widgets import Button, DataTable, Input, Label

from crm_tui.app import CrmApp, make_app
from crm_tui.formats import (
    day_first,
    field_label,
    format_amount,
    format_date,
    parse_amount,
    parse_date,
)
from crm_tui.models import Contact, Deal
from crm_tui.phones import format_phone
from crm_tui.screens.confirm import ConfirmScreen
from crm_tui.screens.detail import RecordScreen, can_open_browser
from crm_tui.screens.local_form import LocalFormScreen
from crm_tui.sources.followupboss import FollowUpBossSource
from crm_tui.sources.pipedrive import PipedriveSource
from tests.helpers.env import make_settings
from tests.helpers.tui import idle, loaded, settle

# -- parsers and formatters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "amount"),
    [
        ("$1.2M", "1200000"),
        ("450k", "450000"),
        ("450 K", "450000"),
        ("1,250,000", "1250000"),
        ("$1,250,000.50", "1250000.50"),
        ("USD 12.5", "12.5"),
        ("2.5bn", "2500000000"),
        ("0", "0"),
        ("-5", "-5"),
        ("1e6", "1000000"),  # as the search filter took it
    ],
)
def test_amounts_read_as_people_type_them(typed, amount):
    assert parse_amount(typed) == Decimal(amount)
    assert str(parse_amount(typed)) == amount


@pytest.mark.parametrize(
    "typed", ["lots", "1,25", "1e", "$", "12..5", "NaN", "Infinity", "9" * 80, "1.2.3"]
)
def test_unreadable_amounts_say_why(typed):
    with pytest.raises(ValueError, match=r"amount|commas|large"):
        parse_amount(typed)


def test_huge_amounts_are_refused_without_arithmetic():
    with pytest.raises(ValueError, match="too large: under 1,000,000,000,000,000"):
        parse_amount("9" * 30 + "b")
    with pytest.raises(ValueError, match="more than 20 decimal places"):
        parse_amount("0." + "1" * 25)


@pytest.mark.parametrize(
    ("typed", "said"),
    [("2026-02-30", "no such date: 2026-02-30"), ("lunch", "not a date: try"), ("1/2/x", "not a")],
)
def test_a_date_that_does_not_exist_is_told_apart_from_text_that_is_none(typed, said):
    with pytest.raises(ValueError, match=said):
        parse_date(typed)


@given(st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False))
def test_a_formatted_amount_reads_back_the_same(amount):
    assert parse_amount(format_amount(amount)) == amount


@pytest.mark.parametrize(
    "typed",
    [
        "12/15/2026",
        "Dec 15 2026",
        "2026-12-15",
        "15 Dec 2026",
        "December 15th, 2026",
        "15-Dec-26",
        "2026/12/15",
        "15.12.2026",
    ],
)
def test_dates_read_as_people_type_them(typed):
    assert parse_date(typed, dayfirst=False) == date(2026, 12, 15)
    assert parse_date(typed, dayfirst=True) == date(2026, 12, 15)  # unambiguous either way


def test_ambiguous_dates_follow_the_locale():
    assert parse_date("03/04/2026", dayfirst=False) == date(2026, 3, 4)
    assert parse_date("03/04/2026", dayfirst=True) == date(2026, 4, 3)
    assert day_first({"LANG": "en_GB.UTF-8"}) is True
    assert day_first({"LC_ALL": "en_US.UTF-8", "LANG": "de_DE.UTF-8"}) is False
    assert day_first({"LC_TIME": "de_DE.UTF-8"}) is True
    assert day_first({"LANG": "C.UTF-8"}) is False  # no territory: month first, as in the US
    assert day_first({}) is False


@pytest.mark.parametrize("typed", ["someday", "31/02/2026", "13/13/2026", "Dec 2026", ""])
def test_unreadable_dates_say_why(typed):
    with pytest.raises(ValueError, match="date"):
        parse_date(typed)


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)), st.booleans())
def test_a_formatted_date_reads_back_the_same(day, dayfirst):
    assert parse_date(format_date(day.isoformat()), dayfirst) == day
    assert parse_date(f"{day.month}/{day.day}/{day.year}", dayfirst=False) == day
    assert parse_date(f"{day.day}/{day.month}/{day.year}", dayfirst=True) == day


def test_amounts_and_labels_for_people():
    assert format_amount(Decimal("1522000")) == "$1,522,000"
    assert format_amount(Decimal("1250000.5")) == "$1,250,000.50"
    assert format_amount(Decimal("10"), "CAD") == "10 CAD"
    assert format_amount(None) == ""
    assert field_label("contact_remote_id") == "Contact"
    assert field_label("remote_id") == "Remote id"
    assert field_label("close_date") == "Close date"


def test_phones_in_one_format():
    assert format_phone("512.555.0100") == "(512) 555-0100"
    assert format_phone("+1 512 555 0100") == "(512) 555-0100"
    assert format_phone("+44 20 7946 0958") == "+44 20 7946 0958"
    assert format_phone("020 7946 0958", "GB") == "020 7946 0958"
    assert format_phone("+1 512 555 0100", "GB") == "+1 512-555-0100"
    assert format_phone("call me [b]maybe[/b]") == "call me [b]maybe[/b]"  # as typed
    assert "\x1b" not in format_phone("12\x1b]52;c;x\x07")  # controls never reach the screen
    assert format_phone(None) == ""


# -- the local form ---------------------------------------------------------------------------


async def open_form(pilot, app: CrmApp, kind="contacts", record=None) -> LocalFormScreen:
    await settle(pilot, app)
    form = LocalFormScreen(kind, record)
    app.push_screen(form)
    await idle(pilot)
    assert app.screen is form
    return form


def inside(app: CrmApp, selector: str) -> bool:
    region = app.screen.query_one(selector).region
    return region.height > 0 and region.bottom <= app.size.height - 1  # above the footer


async def test_the_form_fits_80x24_with_its_buttons_and_keys_in_view(tmp_path):
    app = make_app(make_settings(tmp_path), sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot, app, "deals")
        assert inside(app, "#save") and inside(app, "#cancel")
        first = form.query_one("#field-name", Input).region
        second = form.query_one("#field-amount", Input).region
        assert second.x > first.x and second.y == first.y  # two columns at 80
        keys = {b.binding.id for b in app.screen.active_bindings.values() if b.binding.show}
        assert {"form.save", "form.cancel"} <= keys
        # focus on the last field scrolls it into view; the buttons stay where they were
        form.query_one(f"#field-{form.fields[-1]}", Input).focus()
        await idle(pilot)
        assert inside(app, f"#field-{form.fields[-1]}") and inside(app, "#save")

    app = make_app(make_settings(tmp_path / "narrow"), sync_stale=False)
    async with app.run_test(size=(60, 24)) as pilot:
        form = await open_form(pilot, app, "deals")
        first = form.query_one("#field-name", Input).region
        second = form.query_one("#field-amount", Input).region
        assert second.x == first.x and second.y > first.y  # one column when narrow
        assert inside(app, "#save")

    app = make_app(make_settings(tmp_path / "short"), sync_stale=False)
    async with app.run_test(size=(80, 15)) as pilot:
        form = await open_form(pilot, app, "contacts")
        assert inside(app, "#save") and inside(app, "#field-first_name")
        form.query_one(f"#field-{form.fields[-1]}", Input).focus()
        await idle(pilot)
        assert inside(app, f"#field-{form.fields[-1]}") and inside(app, "#save")
        assert form.query_one("#form-body").scroll_y > 0  # the fields scrolled, not the dialog


async def test_enter_moves_on_and_saves_on_the_last_field(tmp_path):
    app = make_app(make_settings(tmp_path), sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot, app)
        await pilot.press(*"Nora", "enter")
        assert app.focused is form.query_one("#field-last_name", Input)
        form.query_one(f"#field-{form.fields[-1]}", Input).focus()
        await pilot.press(*"78701", "enter")
        await settle(pilot, app)
        assert app.screen is not form
        [nora] = app.store.contacts("local")
        assert (nora.first_name, nora.postal_code) == ("Nora", "78701")


async def test_escape_asks_before_discarding_edits(tmp_path):
    app = make_app(make_settings(tmp_path), sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot, app)
        await pilot.press("escape")  # nothing typed: it just closes
        await idle(pilot)
        assert app.screen is not form

        form = await open_form(pilot, app)
        await pilot.press(*"Nora", "escape")
        await idle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # keep editing
        await idle(pilot)
        assert app.screen is form
        assert form.query_one("#field-first_name", Input).value == "Nora"
        form.query_one("#cancel", Button).press()
        await idle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await idle(pilot)
        assert app.screen is not form and not isinstance(app.screen, ConfirmScreen)
        assert app.store.count("contacts", "local") == 0


async def test_the_deal_form_reads_amounts_and_dates_as_typed(tmp_path):
    app = make_app(make_settings(tmp_path), sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_form(pilot, app, "deals")
        await pilot.press(*"Oak St")
        form.query_one("#field-amount", Input).focus()
        await pilot.press(*"lots", "tab")
        await idle(pilot)
        error = form.query_one("#error-amount", Label)
        assert error.display and "450k" in str(error.render())  # said on leaving the field
        form.query_one("#field-amount", Input).value = "$1.2M"
        form.query_one("#field-close_date", Input).value = "03/04/2027"
        await idle(pilot)
        assert not error.display
        reading = str(form.query_one("#reading-close_date", Label).render())
        assert reading in ("= Mar 4, 2027", "= Apr 3, 2027")  # the reading, before saving
        assert "$1,200,000" in str(form.query_one("#reading-amount", Label).render())
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert app.screen is not form
        [deal] = app.store.deals("local")
        assert deal.amount == Decimal(1200000)
        assert deal.close_date in ("2027-03-04", "2027-04-03")


async def test_status_stage_and_tags_suggest_values_in_the_cache(tmp_path):
    app = make_app(make_settings(tmp_path), sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        fields = {"first_name": "A", "status": "Active client", "tags": "buyer, luxury"}
        await app.local.add("contacts", fields)
        form = await open_form(pilot, app)
        await app.workers.wait_for_complete()
        status = form.query_one("#field-status", Input)
        status.focus()
        await pilot.press("a", "c")
        await idle(pilot)
        assert status._suggestion == "Active client"
        await pilot.press("right")  # takes the suggestion
        assert status.value == "Active client"
        tags = form.query_one("#field-tags", Input)
        tags.focus()
        await pilot.press(*"buyer, lu")
        await idle(pilot)
        assert tags._suggestion == "buyer, luxury"


# -- record detail ----------------------------------------------------------------------------


def detail_rows(app: CrmApp) -> dict[str, str]:
    table = app.screen.query_one("#fields", DataTable)
    rows = [[str(c) for c in table.get_row_at(r)] for r in range(table.row_count)]
    return {label: value for label, value in rows}


async def test_detail_reads_like_a_person_wrote_it_and_v_shows_it_as_stored(tmp_path):
    app = make_app(make_settings(tmp_path), sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        contact = await app.local.add(
            "contacts", {"first_name": "[@click=app.quit]Nora[/]", "phone": "512.555.0100"}
        )
        deal = await app.local.add(
            "deals",
            {
                "name": "Oak St",
                "amount": "1522000",
                "close_date": "2026-12-15",
                "contact_remote_id": contact.remote_id,
            },
        )
        app.push_screen(RecordScreen(deal))
        await idle(pilot)
        rows = detail_rows(app)
        assert rows["Amount"] == "$1,522,000"
        assert rows["Close date"] == "Dec 15, 2026"
        assert rows["Remote id"] == deal.remote_id
        assert rows["Contact"].startswith("[@click=app.quit]Nora[/]")  # literally
        assert "contact_remote_id" not in rows and "close_date" not in rows
        assert rows["Created"][:3].isalpha()  # "Nov 27, 2026 00:09 CET": local, readable
        await pilot.press("v")
        rows = detail_rows(app)
        assert rows["Amount"] == "1522000" and rows["Close date"] == "2026-12-15"
        assert rows["Created"].endswith(" UTC") and rows["Created"][:4].isdigit()
        assert rows["Contact"].split()[0] == contact.remote_id
        await pilot.press("v")
        assert detail_rows(app)["Amount"] == "$1,522,000"

        # enter on the contact opens it; it lists its deals; enter on one opens it; esc back
        table = app.screen.query_one("#fields", DataTable)
        table.move_cursor(row=[r.key for r in app.screen.rows].index("contact_remote_id"))
        await pilot.press("enter")
        await idle(pilot)
        assert isinstance(app.screen, RecordScreen) and app.screen.record.id == contact.id
        rows = detail_rows(app)
        assert rows["Phone"] == "(512) 555-0100"
        assert rows["Deal"].startswith("Oak St · $1,522,000")
        await pilot.press("v")
        assert detail_rows(app)["Phone"] == "512.555.0100"  # the original, one key away
        table = app.screen.query_one("#fields", DataTable)
        table.move_cursor(row=[r.key for r in app.screen.rows].index(f"deal:{deal.id}"))
        await pilot.press("enter")
        await idle(pilot)
        assert app.screen.record.id == deal.id
        await pilot.press("escape")
        await idle(pilot)
        assert app.screen.record.id == contact.id  # esc backs out one level


def fub_contact(remote_id: str = "42") -> Contact:
    return Contact(f"followupboss:{remote_id}", "followupboss", remote_id, "alice", "Ana")


async def test_o_is_offered_only_where_the_vendor_has_a_page(tmp_path, monkeypatch):
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    monkeypatch.delenv("SSH_TTY", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr("webbrowser.get", lambda *a: object())
    app = make_app(make_settings(tmp_path), sync_stale=False)
    opened: list[str] = []
    monkeypatch.setattr(app, "open_url", lambda url, **kw: opened.append(url))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        local = await app.local.add("contacts", {"first_name": "Nora"})
        app.push_screen(RecordScreen(local))
        await idle(pilot)
        shown = {b.binding.id for b in app.screen.active_bindings.values()}
        assert "detail.open" not in shown  # hidden from the footer, not merely dimmed
        await pilot.press("o")
        assert opened == []
        await pilot.press("escape")

        app.push_screen(RecordScreen(fub_contact()))
        await idle(pilot)
        assert "detail.open" in {b.binding.id for b in app.screen.active_bindings.values()}
        await pilot.press("o")
        assert opened == ["https://app.followupboss.com/2/people/view/42"]


async def test_o_over_ssh_copies_the_link_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("SSH_CONNECTION", "10.0.0.1 5000 10.0.0.2 22")
    app = make_app(make_settings(tmp_path), sync_stale=False)
    opened: list[str] = []
    monkeypatch.setattr(app, "open_url", lambda url, **kw: opened.append(url))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        app.push_screen(RecordScreen(fub_contact("7/../../x?y")))
        await idle(pilot)
        await pilot.press("o")
        await idle(pilot)
        url = "https://app.followupboss.com/2/people/view/7%2F..%2F..%2Fx%3Fy"
        assert opened == [] and app.clipboard == url  # the id cannot add a path
        assert any("clipboard" in str(n.message) for n in app._notifications)


def test_a_browser_opens_only_where_the_person_sits(monkeypatch):
    monkeypatch.setattr("webbrowser.get", lambda *a: object())
    assert can_open_browser({"SSH_TTY": "/dev/pts/1", "DISPLAY": ":0"}) is False
    if sys.platform.startswith("linux"):
        assert can_open_browser({}) is False  # a console: no text browser over the app
        assert can_open_browser({"WAYLAND_DISPLAY": "wayland-0"}) is True


def test_pipedrive_deals_link_to_their_page():
    deal = Deal("pipedrive:9", "pipedrive", "9", "alice", "Oak St")
    assert PipedriveSource.web_url(deal) == "https://app.pipedrive.com/deal/9"
    assert FollowUpBossSource.web_url(Deal("followupboss:9", "followupboss", "9", "a")) is None


@given(st.text(max_size=40) | st.from_regex(r"-?\$?[\d,.]{0,20}(e-?\d{1,12})?[kKmMbB]?"))
def test_any_typed_amount_is_read_or_refused_with_a_reason(text):
    try:
        amount = parse_amount(text)
    except ValueError as exc:
        assert str(exc).strip() and "\n" not in str(exc)  # one line that says why
    else:
        assert amount.is_finite() and amount.adjusted() < 15


@given(st.text(max_size=40))
def test_any_typed_date_is_read_or_refused_with_a_reason(text):
    try:
        read = parse_date(text)
    except ValueError as exc:
        assert str(exc).strip() and "\n" not in str(exc)  # one line that says why
    else:
        assert parse_date(read.isoformat()) == read  # what it read, it reads back the same


def test_one_amount_reader_for_the_form_the_search_filter_and_sync():
    from crm_tui.search.query import QueryError, parse_query
    from crm_tui.sources.errors import InvalidRecord
    from crm_tui.sources.mapping import to_amount

    assert parse_query("amount>1.2M", "deals").amounts == [(">", Decimal(1200000))]
    assert parse_query("amount<=$450k", "deals").amounts == [("<=", Decimal(450000))]
    assert parse_query("amount<=1e6", "deals").amounts == [("<=", Decimal(1000000))]
    with pytest.raises(QueryError, match="amount"):
        parse_query("amount>lots", "deals")
    # a synced amount passes the same range check as a typed one
    with pytest.raises(InvalidRecord, match="amount: out of range"):
        to_amount("1E+999999999")
    with pytest.raises(ValueError, match="too large"):
        parse_amount("1E+999999999")
    assert to_amount("0.00") == Decimal("0.00")


# -- pictures ---------------------------------------------------------------------------------

SIZES = pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=["80x24", "200x50"])


@SIZES
def test_form_picture(snap_compare, snapshot_app, size, monkeypatch):
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.setenv("LC_TIME", "en_US.UTF-8")  # 03/04/2027 reads as March 4

    async def form(pilot) -> None:
        await loaded(pilot)
        pilot.app.push_screen(LocalFormScreen("deals"))
        await idle(pilot)
        await pilot.press(*"Oak St", "tab", *"lots", "tab", "tab", "tab", "tab", *"03/04/2027")
        await idle(pilot)

    assert snap_compare(snapshot_app(), terminal_size=size, run_before=form)


@SIZES
def test_detail_picture(snap_compare, snapshot_app, size):
    async def detail(pilot) -> None:
        await loaded(pilot)
        pilot.app.push_screen(RecordScreen(pilot.app.store.get("contacts", "followupboss:1")))
        await idle(pilot)

    assert snap_compare(snapshot_app(), terminal_size=size, run_before=detail)


def test_the_new_keys_have_binding_ids_keymap_toml_can_name():
    from crm_tui.app import known_binding_ids

    ids = known_binding_ids()
    assert {"form.save", "form.cancel", "detail.stored", "detail.open"} <= ids


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light", "nord", "gruvbox"])
async def test_form_fields_stand_out_in_every_theme(tmp_path, theme):
    app = make_app(make_settings(tmp_path), sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.theme = theme
        form = await open_form(pilot, app)
        dialog = form.query_one("#form").background_colors[1]
        idle = form.query_one("#field-last_name").background_colors[1]
        focused = form.query_one("#field-first_name").background_colors[1]
        assert len({dialog.hex, idle.hex, focused.hex}) == 3


async def test_detail_shows_the_shared_status_under_the_vendors_own_stage(tmp_path):
    app = make_app(make_settings(tmp_path), sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        deal = await app.local.add("deals", {"name": "Elm St", "stage": "ClosedWon"})
        other = await app.local.add("deals", {"name": "Ash St", "stage": "Zebra"})
        app.push_screen(RecordScreen(deal))
        await idle(pilot)
        rows = detail_rows(app)
        assert rows["Stage"] == "ClosedWon" and rows["Shared status"] == "closed"
        labels = list(rows)
        assert labels.index("Shared status") == labels.index("Stage") + 1
        app.pop_screen()
        app.push_screen(RecordScreen(other))
        await idle(pilot)
        assert "Shared status" not in detail_rows(app)  # nothing maps: the vendor's alone
