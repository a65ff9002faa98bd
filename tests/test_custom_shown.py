"""Custom columns as Browse and the record detail show them (plain functions)."""

from __future__ import annotations

from decimal import Decimal

from crm_tui.custom_columns import Column
from crm_tui.fields.shown import shown_value, sort_key, stream_columns
from crm_tui.models import Contact
from crm_tui.screens.browse import CUSTOM_FIRST, CUSTOM_LAST, custom_columns
from crm_tui.screens.detail import field_rows
from crm_tui.sources.mapping import Mappings

LENDER = Column("lender", "Lender")
PRICE = Column("price_range", "Price range", "money")
CLOSING = Column("closing_date", "Closing", "date")
DEAL_ONLY = Column("commission", "Commission", "number")


def person(n: int, **custom: object) -> Contact:
    return Contact(
        id=f"followupboss:{n}", source="followupboss", remote_id=str(n), user_id="u", custom=custom
    )


def test_stream_columns_are_those_mapped_for_the_kind_in_file_order() -> None:
    mappings = Mappings(
        {
            "followupboss": {"contacts": {"custom.price_range": "p", "custom.lender": "l"}},
            "pipedrive": {"deals": {"custom.commission": "c"}},
        },
        {"lender": LENDER, "price_range": PRICE, "closing_date": CLOSING, "commission": DEAL_ONLY},
    )
    assert stream_columns(mappings, "contacts") == [LENDER, PRICE]
    assert stream_columns(mappings, "deals") == [DEAL_ONLY]


def test_values_shown_for_people() -> None:
    assert shown_value(Decimal("450000.50"), "money") == "450,000.50"
    assert shown_value(Decimal("450000"), "money") == "450,000"
    assert shown_value(Decimal("3.50"), "number") == "3.50"
    assert shown_value("2026-12-15", "date") == "Dec 15, 2026"
    assert shown_value(("a", "b"), "list") == "a, b"
    assert shown_value("[@click=app.quit]x[/]") == "[@click=app.quit]x[/]"
    assert shown_value(None, "money") == ""


def test_browse_columns_after_built_ins_sort_numbers_as_numbers() -> None:
    rows = [person(1, price_range=Decimal("90")), person(2), person(3, price_range=Decimal("100"))]
    (price,) = custom_columns([PRICE])
    assert price.title == "Price range" and price.priority == CUSTOM_LAST
    assert [price.get(r) for r in rows] == ["90", "", "100"]
    assert [r.id[-1] for r in sorted(rows, key=price.sort_key)] == ["1", "3", "2"]
    assert custom_columns([PRICE], first=True)[0].priority == CUSTOM_FIRST
    lender = sort_key(LENDER)
    texts = [person(1, lender="b"), person(2), person(3, lender="A")]
    assert [r.id[-1] for r in sorted(texts, key=lender)] == ["3", "1", "2"]


def test_detail_rows_label_custom_values() -> None:
    record = person(
        1,
        lender="[b]Quicken[/b]",
        price_range=Decimal("450000"),
        closing_date=None,
        gone="kept",
    )
    columns = {"lender": LENDER, "price_range": PRICE, "closing_date": CLOSING}
    rows = {r.key: (r.label, r.value) for r in field_rows(record, columns=columns)}
    assert rows["custom.lender"] == ("Lender", "[b]Quicken[/b]")
    assert rows["custom.price_range"] == ("Price range", "450,000")
    assert rows["custom.closing_date"] == ("Closing", "(not read as date)")
    assert rows["custom.gone"] == ("Gone", "kept")  # a column no longer declared
    stored = {r.key: r.value for r in field_rows(record, columns=columns, stored=True)}
    assert stored["custom.price_range"] == "450000"
    keys = [r.key for r in field_rows(record, columns=columns)]
    assert keys.index("custom.lender") < keys.index("custom.gone")
