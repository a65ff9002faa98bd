"""Custom columns in the query language: `lender:quicken`, `custom.price_range>500000`,
dates by period, free words finding custom text, and unknown columns named."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crm_tui.custom_columns import Column
from crm_tui.insights.report import check_filter
from crm_tui.models import Contact, Deal
from crm_tui.search.index import SearchIndex
from crm_tui.search.query import QueryError, parse_query

COLUMNS = {
    "lender": Column("lender", "Lender"),
    "price_range": Column("price_range", "Price range", "money"),
    "closing_date": Column("closing_date", "Closing date", "date"),
    "areas": Column("areas", "Areas", "list"),
    "city": Column("city", "Their city"),  # shadowed by the built-in city:
}


def contact(n: int, source: str = "followupboss", **custom: object) -> Contact:
    return Contact(
        id=f"{source}:{n}",
        source=source,
        remote_id=str(n),
        user_id="u",
        first_name=f"Person{n}",
        city="Austin",
        custom=dict(custom),
    )


@pytest.fixture
def index() -> SearchIndex:
    idx = SearchIndex()
    idx.columns = COLUMNS
    idx.rebuild(
        "contacts",
        "followupboss",
        [
            contact(1, lender="Quicken Loans", price_range=Decimal("450000")),
            contact(2, lender="Rocket Mortgage", price_range=Decimal("750000")),
            contact(3, closing_date="2026-12-15", areas=("Hyde Park", "Zilker")),
            contact(4, closing_date="2027-01-02", price_range=Decimal("500000")),
            contact(5),
        ],
    )
    idx.rebuild("contacts", "hubspot", [contact(6, "hubspot", lender="quicken")])
    return idx


def ids(index: SearchIndex, text: str) -> set[str]:
    return {r.id for r in index.matching(text, "contacts")}


def test_text_column_filter_contains_folded(index: SearchIndex) -> None:
    assert ids(index, "lender:quicken") == {"followupboss:1", "hubspot:6"}
    assert ids(index, "lender:MORT") == {"followupboss:2"}
    assert ids(index, 'custom.lender:"quicken loans"') == {"followupboss:1"}
    assert ids(index, "lender=rocket") == {"followupboss:2"}
    result = index.search("lender:quicken source:hubspot")
    assert [h.record.id for h in result.groups["hubspot"]] == ["hubspot:6"]
    assert result.total == 1


def test_money_column_compares(index: SearchIndex) -> None:
    assert ids(index, "custom.price_range>500000") == {"followupboss:2"}
    assert ids(index, "price_range>=500k") == {"followupboss:2", "followupboss:4"}
    assert ids(index, "price_range>400000 price_range<600000") == {
        "followupboss:1",
        "followupboss:4",
    }
    assert ids(index, "price_range:450000") == {"followupboss:1"}


def test_date_column_by_period(index: SearchIndex) -> None:
    assert ids(index, "closing_date:2026-12") == {"followupboss:3"}
    assert ids(index, "closing_date>2026-12") == {"followupboss:4"}  # after December
    assert ids(index, "closing_date<=2026") == {"followupboss:3"}
    assert ids(index, "closing_date>=2026-12-15") == {"followupboss:3", "followupboss:4"}


def test_list_column_and_free_words(index: SearchIndex) -> None:
    assert ids(index, "areas:zilker") == {"followupboss:3"}
    assert ids(index, "zilker") == {"followupboss:3"}  # custom text is searchable
    assert ids(index, "rocket mortgage") == {"followupboss:2"}
    assert ids(index, "quicken person1") == {"followupboss:1"}
    assert ids(index, "450000") == set()  # numbers are left to their filters


def test_built_in_filter_wins_over_column_of_same_name(index: SearchIndex) -> None:
    assert len(ids(index, "city:austin")) == 6
    assert parse_query("city:austin", columns=COLUMNS).custom == []
    assert parse_query("custom.city:x", columns=COLUMNS).custom == [(COLUMNS["city"], ":", "x")]


def test_unknown_and_mistyped_columns_are_named() -> None:
    with pytest.raises(QueryError, match=r"unknown filter 'brokr'.*custom columns: lender:"):
        parse_query("brokr:x", columns=COLUMNS)
    with pytest.raises(QueryError, match="unknown custom column 'brokr'; custom columns: areas"):
        parse_query("custom.brokr>5", columns=COLUMNS)
    with pytest.raises(QueryError, match="price_range is a number: price_range>lots"):
        parse_query("price_range>lots", columns=COLUMNS)
    with pytest.raises(QueryError, match="closing_date is a date"):
        parse_query("closing_date:2026-13", columns=COLUMNS)
    with pytest.raises(QueryError, match="lender is a text column: compare it with lender:"):
        parse_query("lender>b", columns=COLUMNS)
    # without the columns (none declared) the key is an unknown filter, as before
    with pytest.raises(QueryError, match="unknown filter 'lender'"):
        parse_query("lender:quicken")
    # a word that only looks like a comparison stays a free word
    assert parse_query("a=b", columns=COLUMNS).terms == ["a=b"]


def test_deals_and_the_pipeline_filter_take_columns() -> None:
    idx = SearchIndex()
    idx.columns = COLUMNS
    deal = Deal(
        id="pipedrive:1",
        source="pipedrive",
        remote_id="1",
        user_id="u",
        name="Big one",
        custom={"lender": "Quicken"},
    )
    idx.rebuild("deals", "pipedrive", [deal])
    assert [r.id for r in idx.matching("lender:quick", "deals")] == ["pipedrive:1"]
    check_filter("lender:quick amount>5", COLUMNS)  # both kinds: no error
    with pytest.raises(QueryError, match="unknown filter 'lender'"):
        check_filter("lender:quick")
