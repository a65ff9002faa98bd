"""Which columns a table shows at a width, and how wide each is: plain arithmetic, no Textual.

Columns join in priority order while their narrowest useful width still fits (at 80 cells
City and Status come before Company); the space left then widens them, again in priority
order, up to what their values need (at 200 cells an e-mail is not cut while space is empty).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len

#: No column is widened past this: one very long value would take every other column's room.
WIDEST = 60


@dataclass(frozen=True, slots=True)
class Want:
    key: str
    least: int  # narrower than this, the column is left out
    most: int  # what its values need
    priority: int  # 0 is shown first


def need(title: str, values: Iterable[object], least: int) -> int:
    """The width a column's title and values need, between `least` and WIDEST."""
    widest = max((cell_len(str(v)) for v in values if v is not None), default=0)
    return max(least, min(WIDEST, max(widest, cell_len(title))))


def fit_widths(wants: Sequence[Want], width: int, gap: int) -> dict[str, int]:
    """Each shown column's width, by key (a column left out has none). `gap` is what each
    column costs beside its text (padding, a separator)."""
    ranked = sorted(wants, key=lambda w: w.priority)
    chosen: list[Want] = []
    used = 0
    for want in ranked:
        if used + want.least + gap <= width:
            chosen.append(want)
            used += want.least + gap
    widths = {w.key: w.least for w in chosen}
    spare = width - used
    for want in chosen:
        grow = max(0, min(spare, want.most - want.least))
        widths[want.key] += grow
        spare -= grow
    return widths
