"""Printing a command's result: JSON in the integration guide's shapes with `--json`, plain
aligned text otherwise."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from crm_tui.text import single_line

if TYPE_CHECKING:
    from crm_tui.cli.runtime import Runtime

JSON_HELP = "Print JSON (guide shapes)."
CELL_WIDTH = 40


def emit(
    rt: Runtime, payload: dict[str, Any], human: Callable[[], object], masked: bool = False
) -> None:
    """`payload` as JSON with --json (`masked`: with the settings' secrets masked), else
    `human()`."""
    if rt.json:
        text = json.dumps(payload, ensure_ascii=False, default=str)
        click.echo(rt.loaded_masker(text) if masked else text)
    else:
        human()


def say(rt: Runtime, line: str, err: bool = False) -> None:
    """One line of human output: vendor values and errors on one line, secrets masked."""
    click.echo(rt.masker(single_line(line)), err=err)


def cut(value: str, width: int = CELL_WIDTH) -> str:
    """`value` in at most `width` characters: a longer one ends in an ellipsis, after its last
    whole word when that keeps most of the width."""
    if len(value) <= width:
        return value
    head = value[: width - 1]
    space = head.rfind(" ")
    if space >= width * 2 // 3:
        head = head[:space]
    return head.rstrip() + "…"


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """A plain aligned table: no colour, no box drawing, safe to pipe. Long values are cut
    with an ellipsis, and one line on stderr says where the full text is."""
    full = [[single_line("" if v is None else str(v)) for v in row] for row in rows]
    cells = [[cut(v) for v in row] for row in full]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    line = "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers))
    click.echo(line.rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip())
    if cells != full:
        click.echo(
            f"note: values longer than {CELL_WIDTH} characters were cut (…);"
            " --json prints the full text",
            err=True,
        )
