"""Bidi controls and zero-width characters: gone at ingest, in the raw payload, in exports
and vCards, and on screen (one space for one character, so highlights stay aligned)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from rich.console import Console

from crm_tui.app import make_app
from crm_tui.export import vcard
from crm_tui.models import Contact
from crm_tui.sources.mapping import raw_json
from crm_tui.store import CacheStore, Database
from crm_tui.text import clean, single_line, strip_controls
from crm_tui.widgets.safe import highlighted
from tests.helpers.hostile_fub import hostile_fub, person, sync_fub

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u180e"
# soft hyphen, interlinear annotations, tag characters (ASCII smuggling)
OTHER_INVISIBLE = "\u00ad\ufff9\ufffb\U000e0001\U000e0041\U000e007f"
BLANK_LETTERS = "\u115f\u1160\u3164\uffa0"  # Hangul fillers: printable, and blank
INVISIBLE = BIDI + ZERO_WIDTH + OTHER_INVISIBLE + BLANK_LETTERS


def visible(text: str) -> bool:
    return not any(c in text for c in INVISIBLE)


@pytest.mark.parametrize("char", list(INVISIBLE))
def test_each_character_is_stripped_at_ingest_and_spaced_on_one_line(char):
    assert strip_controls(f"Ana{char}eL") == "AnaeL"
    assert clean(f"{char}Ana{char}") == "Ana"
    if char not in BLANK_LETTERS:
        assert not f"Ana{char}".isprintable()  # so clean() leaves its fast path for it
    shown = single_line(f"Ana{char}eL")
    assert shown == "Ana eL" and len(shown) == len(f"Ana{char}eL")


def test_line_and_paragraph_separators_are_line_breaks():
    assert strip_controls("one\u2028two\u2029three") == "one\ntwo\nthree"
    assert single_line("one\u2028two\u2029three") == "one two three"


def test_highlight_spans_stay_on_the_matched_characters():
    text = highlighted("\u202eJosé\u200b Lee", [(1, 5)])
    assert text.plain == " José  Lee"
    span = text.spans[0]
    assert text.plain[span.start : span.end] == "José"


@pytest.mark.parametrize(
    "payload",
    [
        {"id": 1, "note": "Ana\u202eeL\u200b"},  # literal
        {"id": 1, "nested": [{"x\u2066": "\ufeffy"}]},
    ],
)
def test_the_raw_payload_is_cleaned(payload):
    text = raw_json(payload)
    assert visible(text)
    assert visible(json.dumps(json.loads(text), ensure_ascii=False))


def test_a_vcard_carries_none_of_them():
    contact = Contact(
        "local:1",
        "local",
        "1",
        "alice",
        first_name="Ana\u202eeL",
        last_name="\u2066Lee\u2069",
        company="Acme\u200b",
        tags=("vip\u200d",),
        synced_at="2026-01-01T00:00:00Z",
    )
    card = vcard(contact)
    assert visible(card)
    assert "FN:AnaeL Lee" in card


async def test_a_synced_record_shows_and_exports_without_them(tmp_path):
    people = [
        person(1, "Ana\u202eeL", "Lee\u200b", stage='"Lead\\u2066"', tags='["vip\\u200d"]'),
        person(2, "\\u202eBo", "Ng\\ufeff"),  # escaped in the JSON this time
    ]
    with hostile_fub(tmp_path, people) as settings:
        report, store = await sync_fub(settings)
    assert report.streams["contacts"].written == 2
    ana = store.get("contacts", "followupboss:1")
    assert (ana.first_name, ana.last_name, ana.stage, ana.tags) == (
        "AnaeL",
        "Lee",
        "Lead",
        ("vip",),
    )
    bo = store.get("contacts", "followupboss:2")
    assert (bo.first_name, bo.last_name) == ("Bo", "Ng")
    for record in (ana, bo):
        assert visible(record.raw) and visible(json.dumps(json.loads(record.raw)))

    from crm_tui.export import export

    out = io.StringIO()
    export(None, "csv", "contacts", store.records("contacts"), stdout=out)
    assert visible(out.getvalue())
    assert {row["first_name"] for row in csv.DictReader(io.StringIO(out.getvalue()))} == {
        "AnaeL",
        "Bo",
    }
    out = io.StringIO()
    export(None, "vcf", "contacts", store.records("contacts"), stdout=out)
    assert visible(out.getvalue())


def screen_text(app) -> str:
    """What the terminal would show, as text."""
    console = Console(width=app.size.width, file=io.StringIO(), record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


async def test_the_screen_shows_none_of_them(tmp_path):
    """Records stored before this cleaning existed (or written by a buggy source) still
    reach the screen neutralised: the display strips them again."""
    from tests.helpers.env import make_settings
    from tests.helpers.tui import SIZE, idle, settle

    settings = make_settings(tmp_path)
    db = Database(settings.database_path)
    store = CacheStore(settings.user_id, db)
    names = [("Ana\u202eeL", "Lee\u200b"), ("\u2066Zed", "Ng\ufeff"), ("Mo\u200f", "Ek\u061c")]
    await store.upsert(
        "contacts",
        [
            Contact(
                f"local:{i}",
                "local",
                str(i),
                settings.user_id,
                first_name=first,
                last_name=last,
                city="Austin\u2068",
                synced_at="2026-01-01T00:00:00Z",
                raw=json.dumps({"id": i, "firstName": first}, ensure_ascii=False),
            )
            for i, (first, last) in enumerate(names, start=1)
        ],
    )
    db.close()
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        shown = []
        await pilot.press("3")  # browse
        await idle(pilot)
        shown.append(screen_text(app))
        await pilot.press("f2", *"ana")  # search, highlighted (a digit in Browse filters)
        await idle(pilot)
        shown.append(screen_text(app))
        await pilot.press("down", "enter")  # the first record and its payload
        await idle(pilot)
        shown.append(screen_text(app))
    assert "Ana eL" in shown[0] and "Zed" in shown[0]
    assert "Ana eL" in shown[1]
    assert "Ana" in shown[2]
    for text in shown:
        assert visible(text), [c for c in text if c in INVISIBLE]
