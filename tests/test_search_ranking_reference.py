"""The index's counts, ranked hits and full rankings equal a slow reference's: a Python loop
over every record, scoring each on its whole searchable text. Run on thousands of records of
both benchmark data shapes (skewed, accented, multi-word companies, six sources) and
hundreds of queries drawn from them, so a faster ranking cannot change a result unseen."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from crm_tui.models import Contact
from crm_tui.search.facets import Facets
from crm_tui.search.fields import SEP, haystack
from crm_tui.search.index import SearchIndex
from crm_tui.search.query import parse_query
from crm_tui.store import CacheStore
from crm_tui.text import digits, fold

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))

import _othershape
import _synthetic


def searchable(record: Contact) -> bytes:
    """The record's line and its value fields (status, stage, tags, city), folded."""
    values = [record.status, record.stage, ", ".join(record.tags), record.city]
    return SEP.join([haystack(record).encode(), *(fold(v or "").encode() for v in values)])


def place(text: bytes, term: bytes) -> int:
    """0: a name word starts with it; 1: in the name; 2: a word of another field starts
    with it; 3: elsewhere."""
    name = text.split(SEP, 1)[0]
    if name.startswith(term) or b" " + term in name:
        return 0
    if term in name:
        return 1
    return 2 if SEP + term in text or b" " + term in text else 3


def reference(streams: dict[str, list[Contact]], text: str) -> dict[str, list[tuple[int, str]]]:
    """Per source, every match as (score, id), best first, ties in stream order."""
    query = parse_query(text)
    terms = sorted({t.encode() for t in query.terms}, key=len, reverse=True)
    out: dict[str, list[tuple[int, str]]] = {}
    for source, records in streams.items():
        if query.sources and source not in query.sources:
            continue
        keep = Facets(records).mask(query, np.arange(len(records)))
        found = []
        for n, record in enumerate(records):
            line = searchable(record)
            if keep[n] and all(t in line for t in terms):
                found.append((sum(place(line, t) for t in terms), n, record.id))
        if found:
            out[source] = [(score, rid) for score, _, rid in sorted(found)]
    return out


def drawn_queries(records: Sequence[Contact], count: int, seed: int) -> Iterator[str]:
    """Queries of every shape the benchmark measures, taken from the records."""
    r = random.Random(seed)
    for _ in range(count):
        a, b = r.choice(records), r.choice(records)
        name = fold(f"{a.first_name} {a.last_name}").split()
        word = r.choice(name)
        shapes = [
            word,
            word[:3],
            word[r.randrange(max(1, len(word) - 2)) :][:2],
            f"{word} {fold(b.last_name or 'x')}",
            f"{word[:2]} {fold(b.first_name or 'x')[:2]}",
            f"{word} status:{fold(b.status or 'lead').replace(' ', '-')}",
            f"{word[:2]} city:{fold(b.city or 'x').split()[0]}",
            fold(a.city or "xx"),
            fold(a.company or "no company"),
            (a.email or "zz@").split("@")[0][: r.randint(3, 8)],
            digits(a.phone)[2:8] or "00",
            f"{word} tag:{fold(a.tags[0]).split()[0] if a.tags else 'buyer'}",
            f"{word[:3]} {fold(b.city or 'x')[:1]}",  # a lone letter
            f"{fold(', '.join(a.tags))[2:9]} {word[:2]}",  # tags, and across two of them
            # terms most records hold, with a filter: the filter goes first
            f"{r.choice(['co', 'er', 'e', 'a', 'ex'])} status:{fold(b.status or 'x')[:4]}",
            f"{r.choice(['on', 'e', 'l', 'om'])} tag:{fold(b.tags[0])[:3] if b.tags else 'x'}",
            f"{r.choice('qxzj')}{r.choice('qxzj')}{r.choice('qxzj')}",
        ]
        yield r.choice(shapes)


def indexed(streams: dict[str, list[Contact]]) -> SearchIndex:
    store = CacheStore("u")
    for source, records in streams.items():
        store._records["contacts"][source] = {r.id: r for r in records}
    index = SearchIndex()
    index.rebuild_from(store, kinds=("contacts",))
    return index


def streams_of(records: Sequence[Contact]) -> dict[str, list[Contact]]:
    out: dict[str, list[Contact]] = {}
    for record in records:
        out.setdefault(record.source, []).append(record)
    return out


@pytest.fixture(scope="module", params=["ours", "other"])
def data(request: pytest.FixtureRequest) -> tuple[dict[str, list[Contact]], SearchIndex]:
    if request.param == "ours":
        records = list(_synthetic.contacts(3000, seed=11))
    else:
        records = list(_othershape.other_contacts(4000, seed=12))
    streams = streams_of(records)
    return streams, indexed(streams)


@pytest.mark.parametrize("limit", [50, 3])
def test_counts_and_ranked_hits_equal_the_reference(
    data: tuple[dict[str, list[Contact]], SearchIndex], limit: int
) -> None:
    streams, index = data
    everyone = [r for records in streams.values() for r in records]
    queries = list(drawn_queries(everyone, 150, seed=limit))
    broad = 0
    for text in queries:
        expected = reference(streams, text)
        result = index.search(text, "contacts", limit=limit)
        assert result.counts == {s: len(found) for s, found in expected.items()}, text
        got = {s: [(h.score, h.record.id) for h in hits] for s, hits in result.groups.items()}
        assert got == {s: found[:limit] for s, found in expected.items()}, text
        broad += sum(len(found) > 200 for found in expected.values())
    assert broad > 5  # the broad shapes were exercised, not only rare words


def test_every_match_is_listed_in_the_reference_order(
    data: tuple[dict[str, list[Contact]], SearchIndex],
) -> None:
    streams, index = data
    everyone = [r for records in streams.values() for r in records]
    for text in drawn_queries(everyone, 40, seed=99):
        for source, found in reference(streams, text).items():
            listed = [r.id for r in index.matching(text, "contacts", sources=[source])]
            assert listed == [rid for _, rid in found], text


def test_lone_letters_long_lines_and_the_last_block_equal_the_reference() -> None:
    """A one-byte term is read from the text (no bigram holds it): in the marked blocks of
    the records left, in the whole text when a line is too long to mark, and in the text's
    last, partial block."""
    made = list(_othershape.other_contacts(400, seed=5))
    records = [replace(r, source="brivity") for r in made[:-2]]
    records.append(replace(made[-2], source="brivity", company="Lang " + "w" * 900 + " & Co"))
    records.append(replace(made[-1], source="brivity", company="Long & Foster", phone=None))
    streams = {"brivity": records}
    index = indexed(streams)
    texts = ["long &", "& co", "lang &", "& & long", "maria a", "a e", "foster r", "w &", "x q"]
    texts += [f"{fold(r.last_name or 'x')} {fold(r.first_name or 'x')[0]}" for r in made[:40]]
    for text in texts:
        expected = reference(streams, text)
        result = index.search(text, "contacts", limit=20)
        assert result.counts == {s: len(found) for s, found in expected.items()}, text
        got = {s: [(h.score, h.record.id) for h in hits] for s, hits in result.groups.items()}
        assert got == {s: found[:20] for s, found in expected.items()}, text
    assert reference(streams, "& co")["brivity"]  # the long line is found
    assert index.search("foster &").counts == {
        "brivity": 1 + sum("long & foster" in fold(r.company or "") for r in records[:-1])
    }


def test_a_filter_over_every_record_equals_the_filter_over_their_indexes() -> None:
    """Facets.mask without records (views of its arrays) keeps what it keeps given every
    index (gathers): statuses, shared statuses, cities, tags, custom-free filters."""
    records = list(_othershape.other_contacts(2000, seed=8))
    facets = Facets(records)
    everyone = np.arange(len(records))
    texts = ["status:closed", "status:lead", "city:houston", "tag:buyer", "status:new city:san"]
    texts += ["city:zz", "tag:vip status:active-client", "created:2026"]
    for text in texts:
        query = parse_query(text)
        assert np.array_equal(facets.mask(query), facets.mask(query, everyone)), text
    assert facets.mask(parse_query("city:houston")).sum() > 100  # a filter that keeps many
