"""Search equals a brute-force reference; grouping, totals, filters, updates, hostile text."""

from __future__ import annotations

import string
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_tui.models import Contact, Deal
from crm_tui.search.highlight import spans
from crm_tui.search.index import CONTACT_FIELDS, SearchIndex, field_text
from crm_tui.search.query import QUERY_TOO_SHORT, QueryError, parse_query
from crm_tui.store import CacheStore
from crm_tui.text import digits, fold
from crm_tui.vocabulary import (
    SHARED_STATUSES,
    matches_shared,
    record_shared_status,
    shared_value,
)
from tests.helpers.records import cached_contact

ALPHABET = string.ascii_letters + "éÉöÑñ김민준 .-@[]()/=\"'*+?\\"


def contact(n: int, source: str = "brivity", **fields) -> Contact:
    return cached_contact(source, n, "u", **fields)


def reference(records: list[Contact], query: str) -> dict[str, set[str]]:
    """Brute force: every folded word of the query inside some searchable field."""
    terms = [fold(w) for w in query.split()]
    out: dict[str, set[str]] = {}
    for record in records:
        texts = [fold(field_text(record, f)) for f in CONTACT_FIELDS] + [digits(record.phone)]
        if all(any(t in text for text in texts) for t in terms):
            out.setdefault(record.source, set()).add(record.id)
    return out


names = st.text(ALPHABET, min_size=0, max_size=12)
records_strategy = st.lists(
    st.tuples(
        names,
        names,
        st.sampled_from(["brivity", "followupboss", "local"]),
        st.one_of(st.none(), st.from_regex(r"\(\d{3}\) \d{3}-\d{4}", fullmatch=True)),
    ),
    min_size=0,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(records_strategy, st.text(ALPHABET, min_size=2, max_size=10))
def test_results_equal_the_brute_force_reference(rows, query):
    records = [
        contact(i, source, first_name=first or None, last_name=last or None, phone=phone)
        for i, (first, last, source, phone) in enumerate(rows)
    ]
    index = SearchIndex()
    for source in {r.source for r in records}:
        index.rebuild("contacts", source, [r for r in records if r.source == source])
    try:
        parse_query(query)
    except QueryError:
        return  # a query made only of spaces, or an accidental filter: covered elsewhere
    if any(":" in w for w in query.split()):
        return
    result = index.search(query, limit=10_000)
    got = {s: {h.record.id for h in hits} for s, hits in result.groups.items()}
    assert got == reference(records, query)
    assert result.total == sum(len(v) for v in got.values())


def people() -> list[Contact]:
    return [
        contact(
            1,
            first_name="John",
            last_name="Smith",
            email="john@x.co",
            phone="(555) 123-4567",
            city="Austin",
            status="Lead",
            tags=("buyer",),
        ),
        contact(2, first_name="José", last_name="Núñez", city="Dallas", status="Client"),
        contact(
            3,
            "followupboss",
            first_name="Johnny",
            last_name="Appleseed",
            company="Smith & Sons",
            city="Austin",
            tags=("seller",),
        ),
        contact(
            4,
            "followupboss",
            first_name="Mary",
            last_name="Johnson",
            email="m@x.co",
            stage="Closed",
        ),
        contact(5, "local", first_name="[@click=app.quit]Bob[/]", last_name="(.*)+?"),
    ]


@pytest.fixture
def index() -> SearchIndex:
    idx = SearchIndex()
    for source in ("brivity", "followupboss", "local"):
        idx.rebuild("contacts", source, [p for p in people() if p.source == source])
    return idx


def ids(result) -> set[str]:
    return {h.record.id for hits in result.groups.values() for h in hits}


def test_grouping_totals_and_the_guide_shape(index):
    result = index.search("john")
    assert result.counts == {"brivity": 1, "followupboss": 2}
    body = result.to_guide()
    assert body["success"] is True and body["type"] == "contact" and body["total"] == 3
    assert set(body["results"]) == {"brivity", "followupboss"}


def test_accents_words_and_phone_digits(index):
    assert ids(index.search("jose")) == {"brivity:2"}
    assert ids(index.search("NUÑEZ")) == {"brivity:2"}
    assert ids(index.search("jo sm")) == {"brivity:1", "followupboss:3"}
    assert ids(index.search("5551234")) == {"brivity:1"}


def test_letters_without_accents_are_transliterated_as_the_duplicate_finder_does():
    index = SearchIndex()
    index.rebuild(
        "contacts",
        "brivity",
        [
            contact(1, first_name="Søren", last_name="Yıldırım"),
            contact(2, first_name="Łukasz", last_name="Ærø"),
        ],
    )
    assert ids(index.search("soren yildirim")) == {"brivity:1"}
    assert ids(index.search("YILDIRIM")) == {"brivity:1"}
    assert ids(index.search("lukasz aero")) == {"brivity:2"}
    assert spans("Łukasz Ærø", ["aero"]) == [(7, 10)]
    index.rebuild(
        "contacts", "brivity", [contact(3, first_name="Æsa", last_name="Þórsdóttir", city="Straße")]
    )
    hit = index.search("dottir").groups["brivity"][0]
    assert hit.spans["name"] == [(8, 14)]  # "dóttir": letters that became two moved nothing
    assert index.search("strasse").groups["brivity"][0].spans["city"] == [(0, 6)]


def test_names_rank_before_other_fields(index):
    hits = index.search("smith").groups["followupboss"] + index.search("smith").groups["brivity"]
    assert [h.score for h in index.search("smith").groups["brivity"]] == [0]
    assert index.search("smith").groups["followupboss"][0].score > 0  # company, not name
    assert hits


def test_spans_point_at_the_original_text():
    assert spans("José Núñez", ["nun"]) == [(5, 8)]
    assert spans("John Smith", ["jo", "sm"]) == [(0, 2), (5, 7)]
    assert spans("aaaa", ["aa"]) == [(0, 4)]


def test_highlight_spans_come_with_hits(index):
    hit = index.search("jose").groups["brivity"][0]
    assert hit.spans["name"] == [(0, 4)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("source:followupboss john", {"followupboss:3", "followupboss:4"}),
        ("status:lead", {"brivity:1"}),
        ("stage:closed", {"followupboss:4"}),
        ("city:austin", {"brivity:1", "followupboss:3"}),
        ("tag:buy", {"brivity:1"}),
        ("john city:austin tag:seller", {"followupboss:3"}),
    ],
)
def test_filters(index, query, expected):
    assert ids(index.search(query)) == expected


def test_deal_filters():
    deals = [
        Deal(
            id="b:1",
            source="b",
            remote_id="1",
            user_id="u",
            name="1 Oak St",
            amount=Decimal(400_000),
            close_date="2026-12-03",
            stage="Closed",
        ),
        Deal(
            id="b:2",
            source="b",
            remote_id="2",
            user_id="u",
            name="2 Oak St",
            amount=Decimal(900_000),
            close_date="2027-01-10",
        ),
        Deal(id="b:3", source="b", remote_id="3", user_id="u", name="3 Elm St"),
    ]
    idx = SearchIndex()
    idx.rebuild("deals", "b", deals)
    assert ids(idx.search("oak amount>500000", "deals")) == {"b:2"}
    assert ids(idx.search("amount<=1e6", "deals")) == {"b:1", "b:2"}
    assert ids(idx.search("closing:2026-12", "deals")) == {"b:1"}
    assert ids(idx.search("stage:closed", "deals")) == {"b:1"}
    assert ids(idx.search("900000", "deals")) == {"b:2"}
    with pytest.raises(QueryError, match="applies to deals: press tab for Deals"):
        idx.search("amount>5", "contacts")


@pytest.mark.parametrize("query", ["", " ", "a", " a ", "\x1b", "\t\n"])
def test_short_queries_are_the_guides_error(index, query):
    with pytest.raises(QueryError, match=QUERY_TOO_SHORT):
        index.search(query)


def test_unknown_filters_list_the_valid_ones(index):
    with pytest.raises(QueryError) as info:
        index.search("colour:red")
    assert "source:, status:, stage:, city:, tag:" in str(info.value)


@pytest.mark.parametrize(
    "query", ["(.*)+?", "[@click=app.quit]", "'\"", "a\x1b[2Jb", "x" * 10_000, ".*", "\\d+"]
)
def test_hostile_queries_are_just_text(index, query):
    result = index.search(query)
    assert result.total == len(ids(result))
    if query in ("(.*)+?", "[@click=app.quit]", ".*"):  # literally in local:5's last name
        assert ids(result) == {"local:5"}
    if query == "\\d+":
        assert result.total == 0


async def test_the_index_follows_the_store():
    store = CacheStore("u")
    index = SearchIndex()
    store.subscribe(lambda change: index.rebuild_from(store, change.source, change.kinds))
    await store.replace_stream("brivity", "contacts", people()[:2])
    assert ids(index.search("john")) == {"brivity:1"}
    await store.upsert("contacts", [contact(9, first_name="Johanna")])
    assert ids(index.search("joh")) == {"brivity:1", "brivity:9"}
    await store.delete("contacts", ["brivity:1"])
    assert ids(index.search("joh")) == {"brivity:9"}
    await store.replace_stream("followupboss", "contacts", [people()[3]])
    assert ids(index.search("johnson")) == {"followupboss:4"}
    await store.clear("brivity")
    assert ids(index.search("joh")) == {"followupboss:4"}
    await store.clear()
    assert index.search("joh").total == 0


def reference_score(record: Contact, terms: list[str]) -> int:
    """The ranking's definition: per word, 0 at the start of a word of the name, 1 inside
    the name, 2 at the start of a word of another field, 3 anywhere else."""
    fields = [fold(field_text(record, f)) for f in CONTACT_FIELDS] + [digits(record.phone)]
    name, others = fields[0], fields[1:]

    def word_start(text: str, term: str) -> bool:
        return text.startswith(term) or f" {term}" in text

    score = 0
    for term in terms:
        if word_start(name, term):
            continue
        score += 1 if term in name else 2 if any(word_start(text, term) for text in others) else 3
    return score


@settings(max_examples=150, deadline=None)
@given(records_strategy, st.text(ALPHABET, min_size=2, max_size=10), st.integers(1, 8))
def test_ranking_equals_the_reference_best_first_ties_by_position(rows, query, limit):
    records = [
        contact(i, "brivity", first_name=first or None, last_name=last or None, phone=phone)
        for i, (first, last, _, phone) in enumerate(rows)
    ]
    if any(":" in w for w in query.split()) or len(query.strip()) < 2:
        return
    terms = [fold(w) for w in query.split() if len(fold(w).encode()) >= 2]
    if len(terms) != len(query.split()):
        return  # one-letter words are matched line by line; covered by the example tests
    index = SearchIndex()
    index.rebuild("contacts", "brivity", records)
    hits = index.search(query, limit=limit).groups.get("brivity", [])
    expected = sorted(
        (reference_score(r, terms), i)
        for i, r in enumerate(records)
        if r.id in reference(records, query).get("brivity", set())
    )[:limit]
    assert [(h.score, h.record.id) for h in hits] == [(s, records[i].id) for s, i in expected]


filter_values = st.sampled_from(["lead", "Lead Hot", "client", "past client", "", "José"])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(filter_values, filter_values, st.lists(filter_values, max_size=3)),
        max_size=30,
    ),
    st.sampled_from(["status", "stage", "city", "tag"]),
    st.sampled_from(["lead", "client", "jose", "hot", "past"]),
)
def test_filters_equal_the_reference(rows, key, value):
    records = [
        contact(
            i,
            status=status or None,
            city=city or None,
            stage=status or None,
            tags=tuple(t for t in tags if t),
        )
        for i, (status, city, tags) in enumerate(rows)
    ]
    index = SearchIndex()
    index.rebuild("contacts", "brivity", records)
    got = {
        h.record.id for h in index.search(f"{key}:{value}", limit=1000).groups.get("brivity", [])
    }

    def passes(record: Contact) -> bool:
        if key == "tag":
            return any(fold(t) == value or fold(t).startswith(value) for t in record.tags)
        own = fold(getattr(record, key) or "")
        if key == "city":
            return value in own
        # status: and stage: name a shared status, or the vendor's text where it maps to none
        named = [shared for shared in SHARED_STATUSES if matches_shared(value, shared)]
        if record_shared_status(record) in named:
            return True
        return value in own and not (named and shared_value("brivity", "contacts", own))

    assert got == {r.id for r in records if passes(r)}


value_texts = st.sampled_from(
    ["", "lead", "Past Client", "San Antonio", "São Paulo", "Anna-Lisa", "hot, cold", "x"]
)
valued_rows = st.lists(
    st.tuples(
        names,
        value_texts,
        value_texts,
        st.lists(value_texts, max_size=3),
        value_texts,
        value_texts,
    ),
    max_size=30,
)
value_terms = st.sampled_from(
    ["an", "ant", "sa", "sao", "pa", "client", "ho", "cold", "lisa", "-l", "o,"]
)


@settings(max_examples=200, deadline=None)
@given(valued_rows, st.lists(value_terms, min_size=1, max_size=2, unique=True), st.integers(1, 8))
def test_value_fields_match_rank_and_highlight_as_the_reference(rows, words, limit):
    """Status, stage, tags and city are matched once per distinct value, not indexed per
    record: the results, their order and their spans must not show the difference. The
    company (an indexed field) holds the same texts, so a record can match both ways."""
    query = " ".join(words)
    records = [
        contact(
            i,
            first_name=name or None,
            status=status or None,
            stage=stage or None,
            tags=tuple(t for t in tags if t),
            city=city or None,
            company=company or None,
        )
        for i, (name, status, stage, tags, city, company) in enumerate(rows)
    ]
    terms = [fold(w) for w in query.split()]
    index = SearchIndex()
    index.rebuild("contacts", "brivity", records)
    hits = index.search(query, limit=limit).groups.get("brivity", [])
    matching = reference(records, query).get("brivity", set())
    expected = sorted(
        (reference_score(r, terms), i) for i, r in enumerate(records) if r.id in matching
    )[:limit]
    assert [(h.score, h.record.id) for h in hits] == [(s, records[i].id) for s, i in expected]
    for hit in hits:
        for name in ("status", "stage", "tags", "city"):
            assert hit.spans[name] == spans(field_text(hit.record, name), terms), name


def test_a_segment_past_64_kib_decodes_every_offset():
    """Offsets are kept as two bytes plus their high half once per run: every bigram's
    offsets, across several 64 KiB blocks and on very short lines, equal a scan's."""
    records = [
        contact(i, first_name=("Anna" if i % 3 else "Zo"), last_name=f"K{i}", email=f"a{i}@x.io")
        for i in range(9000)
    ]
    index = SearchIndex()
    index.rebuild("contacts", "brivity", records)
    segment = index._segments[("contacts", "brivity")]
    data = segment.data
    assert len(data) > 3 * 65536
    codes = (data[:-1].astype(np.uint16) << 8) | data[1:]
    for bigram in (b"an", b"nn", b"k1", b"@x", b"zo", b"0@"):
        code = (bigram[0] << 8) | bigram[1]
        assert segment.offsets_of(code).tolist() == np.flatnonzero(codes == code).tolist()
    _, owners = segment.occurrences(b"a8999")
    assert owners.tolist() == [8999]
    assert index.search("k8999").counts == {"brivity": 1}
    assert index.search("anna").counts == {"brivity": 6000}


def test_index_memory_counts_what_it_holds(index):
    segments = list(index._segments.values())
    assert index.nbytes == sum(s.nbytes for s in segments)
    for segment in segments:
        floor = len(segment.text) + segment.lows.nbytes + segment.starts.nbytes
        assert segment.nbytes > floor


def test_a_field_separator_that_got_past_cleaning_does_not_break_the_index():
    records = [contact(1, first_name="Ann\x1fMarie"), contact(2, first_name="Bo", last_name="Ann")]
    index = SearchIndex()
    index.rebuild("contacts", "brivity", records)
    hits = index.search("ann").groups["brivity"]
    assert [(h.record.id, h.score) for h in hits] == [("brivity:1", 0), ("brivity:2", 0)]


def test_created_filter_takes_a_day_month_year_or_range() -> None:
    made = {
        "c:1": "2026-06-07T23:59:59Z",  # the Sunday before the week
        "c:2": "2026-06-08T00:00:00Z",  # its Monday
        "c:3": "2026-06-14T12:00:00Z",  # its Sunday
        "c:4": "2026-07-01T09:00:00Z",
        "c:5": None,  # a CRM that gives no creation time
    }
    contacts = [
        Contact(id=i, source="c", remote_id=i[2:], user_id="u", first_name="Ann", remote_created=t)
        for i, t in made.items()
    ]
    idx = SearchIndex()
    idx.rebuild("contacts", "c", contacts)
    assert ids(idx.search("created:2026-06-08..2026-06-14")) == {"c:2", "c:3"}
    assert ids(idx.search("ann created:2026-06")) == {"c:1", "c:2", "c:3"}
    assert ids(idx.search("created:2026-06-14..2026-07")) == {"c:3", "c:4"}
    assert ids(idx.search("created:2026")) == {"c:1", "c:2", "c:3", "c:4"}
    assert {r.id for r in idx.matching("created:2026-07-01", "contacts")} == {"c:4"}
    assert parse_query("created:2026-06-08..2026-06-14").created == ("2026-06-08", "2026-06-14")
    with pytest.raises(QueryError, match="created:2026-06-31 is not a date"):
        parse_query("created:2026-06-31")
    with pytest.raises(QueryError, match="ends before it starts"):
        parse_query("created:2026-06-14..2026-06-08")
    with pytest.raises(QueryError, match=r"takes a date .* or a range of two"):
        parse_query("created:last-week")
