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
from crm_tui.search import ranking
from crm_tui.search import segment as segment_module
from crm_tui.search.facets import Facets, held_by
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


@pytest.fixture(scope="module", params=["ours", "other", "other, companies in the lines"])
def data(request: pytest.FixtureRequest) -> tuple[dict[str, list[Contact]], SearchIndex]:
    """Per data shape, the streams and their index. Both shapes' companies repeat, so most
    segments match them as values; the third fixture keeps them in the lines."""
    if request.param == "ours":
        records = list(_synthetic.contacts(3000, seed=11))
    else:
        records = list(_othershape.other_contacts(4000, seed=12))
    streams = streams_of(records)
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "other, companies in the lines":
            patch.setattr(segment_module, "COMPANY_REPEATS", len(records) + 1)
        index = indexed(streams)
    apart = [s._company_apart for s in index._segments.values() if len(s.records)]
    assert not any(apart) if "lines" in request.param else any(apart)
    return streams, index


@pytest.mark.parametrize("limit, threads", [(50, False), (3, True)], ids=["50", "3-threads"])
def test_counts_and_ranked_hits_equal_the_reference(
    data: tuple[dict[str, list[Contact]], SearchIndex], limit: int, threads: bool, monkeypatch
) -> None:
    """With `threads`, every query is ranked on two threads, however narrow."""
    if threads:
        monkeypatch.setattr(ranking, "TWO_THREADS_WORK", 0)
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


def test_each_bigrams_best_place_is_its_best_offsets_place() -> None:
    """`least_place`, worked out a slice of the text at a time, against every offset of
    every line placed one at a time (slices far smaller than the text, so names run
    across their edges)."""
    records = list(_othershape.other_contacts(600, seed=4))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(segment_module, "_LEAST_SLICE", 997)
        built = segment_module.Segment.build(records)
    text = bytes(built.text)
    expected: dict[int, int] = {}
    for line in text.split(b"\n")[:-1]:
        name_end = line.find(SEP) if SEP in line else len(line)
        for at in range(len(line) - 1):
            pair = line[at : at + 2]
            if any(b in pair for b in b" \x1f"):
                continue  # not indexed: no term holds them
            start = at == 0 or line[at - 1 : at] in (b" ", SEP)
            here = (0 if start else 1) + (0 if at < name_end else 2)
            code = pair[0] << 8 | pair[1]
            expected[code] = min(expected.get(code, 4), here)
    placed = np.flatnonzero(built.least_place < 4)
    got = {int(code): int(built.least_place[code]) for code in placed if code}  # 0: not indexed
    assert got == expected
    assert 0 in got.values() and 3 in got.values()


def test_a_terms_rarest_bigram_is_the_same_looked_up_either_way(monkeypatch) -> None:
    """A typed word's bigrams are looked up one at a time, a long term's in numpy: the
    same bigram, place in the term and count either way."""
    built = segment_module.Segment.build(list(_othershape.other_contacts(500, seed=6)))
    terms = [b"ma", b"garcia", b"keller", b"zzq", b"williams realty" * 3, b"an" * 20, b"e@"]
    short = [built.rarest(t) for t in terms]
    monkeypatch.setattr(segment_module, "_SHORT_TERM", 0)
    assert [built.rarest(t) for t in terms] == short
    assert all(count > 0 for _, _, count in short[:3])


def test_codes_held_compared_one_at_a_time_equal_the_gather() -> None:
    codes = np.random.default_rng(3).integers(0, 300, 5000).astype(np.uint16)
    for marked in ([], [7], [1, 2, 299], list(range(0, 300, 7))):
        hit = np.zeros(300, dtype=bool)
        hit[marked] = True
        assert np.array_equal(held_by(hit, codes), hit[codes]), marked


@pytest.mark.parametrize("repeats", [1, 10**6], ids=["values", "lines"])
def test_a_company_across_lines_scores_as_the_reference(monkeypatch, repeats: int) -> None:
    """Ingest keeps a newline in a field (notes have them); the line reads it as a space,
    so does a company matched as a value: "foster" starts a word of it either way."""
    monkeypatch.setattr(segment_module, "COMPANY_REPEATS", repeats)
    made = list(_othershape.other_contacts(60, seed=9))
    records = [replace(r, source="brivity", company="Long\nFoster Realty") for r in made]
    streams = {"brivity": records}
    index = indexed(streams)
    assert index._segments[("contacts", "brivity")]._company_apart is (repeats == 1)
    for text in ("foster", "long foster", "realty"):
        result = index.search(text, "contacts", limit=60)
        got = [(h.score, h.record.id) for h in result.groups["brivity"]]
        assert got == reference(streams, text)["brivity"], text
        assert all(h.spans["company"] for h in result.groups["brivity"]), text
