"""Choices and options several command groups share: the sources, the record types, and a
record's fields as `--first-name`, `--email`, ... (local and vendor edits take the same)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from crm_tui.config import SOURCE_NAMES
from crm_tui.models import RecordKind

if TYPE_CHECKING:
    from crm_tui.custom_columns import Column

TYPE_CHOICE = click.Choice(["contact", "deal"])
SOURCE_CHOICE = click.Choice(list(SOURCE_NAMES))


def with_default(
    *decls: str, kind: click.ParamType, default: object, help: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An option taking a value, its default shown in --help."""
    return click.option(*decls, type=kind, default=default, show_default=True, help=help)


def record_kind(value: str) -> RecordKind:
    return "contacts" if value == "contact" else "deals"


def declared_columns() -> dict[str, Column]:
    """The custom columns mappings.toml declares: filter keys of a search."""
    from crm_tui.fields.service import columns

    return {column.name: column for column in columns()}


CONTACT_FLAGS = (
    "first-name",
    "last-name",
    "email",
    "phone",
    "company",
    "status",
    "stage",
    "tag",
    "street",
    "city",
    "state",
    "postal-code",
)
DEAL_FLAGS = (
    "name",
    "amount",
    "currency",
    "stage",
    "probability",
    "close-date",
    "property-address",
    "status",
    "contact-id",
)
_DESTINATIONS = {"tag": "tags", "contact-id": "contact_remote_id"}


def field_options(flags: Sequence[str]) -> list[Any]:
    return [
        click.option(
            f"--{flag}", _DESTINATIONS.get(flag, flag.replace("-", "_")), multiple=flag == "tag"
        )
        for flag in flags
    ]


CONTACT_OPTIONS = field_options(CONTACT_FLAGS)
DEAL_OPTIONS = field_options(DEAL_FLAGS)
EDIT_OPTIONS = field_options(list(dict.fromkeys(CONTACT_FLAGS + DEAL_FLAGS)))


def with_options(options: list[Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def given(values: dict[str, Any]) -> dict[str, Any]:
    """The field options given, tuples (repeated options) as lists."""
    return {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in values.items()
        if v is not None and v != ()
    }
