"""highlight.folded_positions (a faster fold with positions, per character through a cache)
gives what text.fold_with_positions gives, for every kind of character the folding treats
apart: ASCII, accents, table letters (ß, ł, æ), combining marks, other scripts."""

from __future__ import annotations

import random

from crm_tui.search.highlight import folded_positions, spans
from crm_tui.text import fold_with_positions

SAMPLES = [
    "",
    "Maria Garcia",
    "José Luis García-López",
    "Wałęsa",
    "Søren Ærø",
    "Straße Œuvre",
    "Þóra Guðmundsdóttir",
    "Nguyễn Thị Đức",
    "e\u0301cole",  # a combining mark written apart: folds to nothing
    "Yılmaz Çelik",
    "ﬁnance ﬀ",  # ligatures: one character to two
    "東京 Ελλάδα Москва",
]


def test_folded_positions_equal_fold_with_positions() -> None:
    r = random.Random(4)
    pool = [chr(c) for c in range(0x20, 0x3000) if chr(c).isprintable()]
    texts = SAMPLES + ["".join(r.choices(pool, k=r.randint(1, 12))) for _ in range(3000)]
    for text in texts:
        folded, origin = folded_positions(text)
        assert (folded, list(origin)) == fold_with_positions(text), text
        again = folded_positions(text)  # from the cache now: the same
        assert (again[0], list(again[1])) == (folded, list(origin)), text


def test_spans_land_on_the_original_letters() -> None:
    assert spans("Wałęsa", ["walesa"]) == [(0, 6)]
    assert spans("Straße Öl", ["ss", "ol"]) == [(4, 5), (7, 9)]
    assert spans("e\u0301cole", ["eco"]) == [(0, 4)]
