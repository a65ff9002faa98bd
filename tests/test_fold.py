"""Folding for matching: letters NFKD leaves alone are transliterated from a maintained table,
highlights land on the original characters, and FOLD_VERSION follows the table."""

from __future__ import annotations

import importlib
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_tui.dedup.keys import name_key
from crm_tui.fold_table import LETTERS
from crm_tui.search.highlight import spans
from crm_tui.search.index import SearchIndex
from crm_tui.text import _FOLD_RULES, FOLD_VERSION, fold, fold_version, fold_with_positions
from tests.helpers.records import cached_contact

#: (as written, as typed): the issue's letters, each in a real name.
PAIRS = [
    ("Wałęsa", "walesa"),
    ("Søren", "soren"),
    ("Ærø", "aero"),
    ("Œuvray", "oeuvray"),
    ("Straße", "strasse"),
    ("Đorđević", "dordevic"),
    ("Þórsdóttir", "thorsdottir"),
    ("Yıldırım", "yildirim"),
    ("Guðrún", "gudrun"),
    ("Ħamrun", "hamrun"),
    ("Ŀlorenç", "llorenc"),
    ("col·legi", "collegi"),
    ("Ŋugi", "ngugi"),
    ("Ɛkɔ", "eko"),
    ("Ǣthelred", "aethelred"),
]


@pytest.mark.parametrize(("written", "typed"), PAIRS)
def test_letters_nfkd_leaves_alone_fold_to_what_people_type(written: str, typed: str) -> None:
    assert fold(written) == typed
    assert fold(written.upper()) == typed
    assert fold(written.lower()) == typed


def test_capitals_without_a_simple_uppercase_pair_fold_too() -> None:
    assert fold("WAŁĘSA ØSTERGÅRD ẞ İSTANBUL") == "walesa ostergard ss istanbul"


def test_a_string_of_only_such_letters() -> None:
    assert fold("łøæœßđþıðħŀ") == "loaeoessdthidhl"
    assert fold("ŁØÆŒẞĐÞIÐĦĿ") == "loaeoessdthidhl"


def test_other_scripts_and_emoji_are_not_transliterated() -> None:
    assert fold("東京 😀 Ølé") == "東京 😀 ole"
    assert fold("김민준 👍🏽") == unicodedata.normalize("NFKD", "김민준 👍🏽")
    assert fold("Москва Ωμέγα") == "москва ωμεγα"  # lowercased and unaccented, still theirs


def test_letters_with_no_letter_transliteration_stay_as_they_are() -> None:
    # anyascii writes these as punctuation (`'`, `k.`): a query's apostrophe must not match them
    assert fold("ʔaʔa") == "ʔaʔa"
    assert fold("Ꝁ") == "ꝁ"


def reference_fold(text: str) -> str:
    """fold() the slow, obvious way: every step on every character."""
    nfkd = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in nfkd if not unicodedata.combining(c)).casefold()
    return bare.translate(str.maketrans({**LETTERS, "·": ""}))


#: Latin letters, their accents, other scripts' marks and letters, emoji: every path of fold()
MIXED = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x24F),
    st.characters(min_codepoint=0x250, max_codepoint=0x36F),
    st.characters(min_codepoint=0x1D00, max_codepoint=0x1EFF),
    st.characters(min_codepoint=0xA720, max_codepoint=0xA7FF),
    st.characters(max_codepoint=0x2FFFF, exclude_categories=["Cs"]),
)


@given(st.text(MIXED, max_size=30))
def test_fold_equals_the_step_by_step_reference(text: str) -> None:
    assert fold(text) == reference_fold(text)


@given(st.text(MIXED, max_size=30))
def test_positions_fold_char_by_char_as_fold_does_the_whole(text: str) -> None:
    folded, origin = fold_with_positions(text)
    assert folded == fold(text)
    assert len(origin) == len(folded)
    assert origin == sorted(origin)
    assert all(0 <= i < len(text) for i in origin)


def test_the_table_holds_each_letter_as_written_and_casefolded_alike() -> None:
    assert LETTERS["Ł"] == LETTERS["ł"] == "l"
    pairs = [(k, k.casefold()) for k in LETTERS if k.casefold() != k]
    assert len(pairs) > 100
    for written, folded in pairs:
        assert LETTERS.get(folded, folded) == LETTERS[written], written
    assert all(v.isascii() and v.isalpha() and v == v.lower() for v in LETTERS.values())


@pytest.mark.parametrize(
    ("text", "term", "expected"),
    [
        ("Lech Wałęsa", "walesa", [(5, 11)]),
        ("Lech Wałęsa", "wale", [(5, 9)]),
        ("Straße 5", "strasse", [(0, 6)]),
        ("Straße 5", "se", [(4, 6)]),  # half of `ß` -> `ss` lights the whole letter
        ("Æsir", "aesir", [(0, 4)]),
        ("Þór Ærø", "aero", [(4, 7)]),
        ("Jose\u0301 Ruiz", "jose", [(0, 5)]),  # the combining accent goes with its `e`
        ("Wa\u0142e\u0328sa", "wale", [(0, 5)]),
    ],
)
def test_spans_point_at_the_original_characters(
    text: str, term: str, expected: list[tuple[int, int]]
) -> None:
    assert spans(text, [term]) == expected


def test_search_finds_walesa_and_highlights_the_written_name() -> None:
    index = SearchIndex()
    index.rebuild(
        "contacts",
        "brivity",
        [
            cached_contact("brivity", 1, "u", first_name="Lech", last_name="Wałęsa"),
            cached_contact("brivity", 2, "u", first_name="Søren", last_name="Kierkegaard"),
            cached_contact("brivity", 3, "u", first_name="Lech", last_name="Walker"),
        ],
    )
    result = index.search("walesa")
    [hit] = result.groups["brivity"]
    assert hit.record.id == "brivity:1"
    assert hit.spans["name"] == [(5, 11)]
    [hit] = index.search("SOREN kierk").groups["brivity"]
    assert (hit.record.id, hit.spans["name"]) == ("brivity:2", [(0, 5), (6, 11)])


def test_duplicate_keys_use_the_same_fold() -> None:
    assert name_key("Søren", "Kierkegaard") == name_key("Soren", "Kierkegaard")
    assert name_key("Lech", "WAŁĘSA") == name_key("lech", "walesa")


def test_fold_version_follows_the_table_the_unicode_data_and_the_rules() -> None:
    unicode_version = unicodedata.unidata_version
    assert fold_version(LETTERS, unicode_version, _FOLD_RULES) == FOLD_VERSION
    assert fold_version(dict(reversed(LETTERS.items())), unicode_version, _FOLD_RULES) == (
        FOLD_VERSION
    )
    changed = {**LETTERS, "ŋ": "n"}
    assert fold_version(changed, unicode_version, _FOLD_RULES) != FOLD_VERSION
    assert fold_version(LETTERS, "99.0.0", _FOLD_RULES) != FOLD_VERSION
    assert fold_version(LETTERS, unicode_version, _FOLD_RULES + 1) != FOLD_VERSION
    assert isinstance(FOLD_VERSION, str) and 0 < len(FOLD_VERSION) <= 16


def test_the_committed_table_matches_the_library() -> None:
    """tools/make_fold_table.py run now gives the committed table, and every Latin letter
    folds to anyascii's transliteration wherever that is letters."""
    pytest.importorskip("anyascii", reason="the dev extra's anyascii checks the fold table")
    tool = importlib.import_module("tools.make_fold_table")
    assert tool.build_table() == LETTERS
    letters = tool.latin_letters()
    assert len(letters) > 1000  # the blocks were read, not skipped
    checked = 0
    for letter in letters:
        expected = tool.ascii_letters(letter)
        if expected is not None:
            assert fold(letter) == expected, f"U+{ord(letter):04X}"
            checked += 1
    assert checked > 1000


def test_the_fold_benchmark_runs_at_a_small_size() -> None:
    script = Path(__file__).parent.parent / "benchmarks" / "fold_bench.py"
    done = subprocess.run(
        [sys.executable, str(script), "--names", "200"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'Lech Wałęsa' -> 'lech walesa'" in done.stdout
