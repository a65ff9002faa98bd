"""Every source crm-tui knows, in the order the app shows them. Adding a CRM: its module in
`sources/` declares a Source, and one line here; settings, `.env.example`, the Connections
screen, People's badges, `crm-tui import` and `doctor` are all built from this list."""

from __future__ import annotations

from crm_tui.sources.base import Source, SourceContext
from crm_tui.sources.brivity import BrivitySource
from crm_tui.sources.followupboss import FollowUpBossSource
from crm_tui.sources.hubspot import HubSpotSource
from crm_tui.sources.kit import CsvExport
from crm_tui.sources.local import LocalSource
from crm_tui.sources.lofty import LoftySource
from crm_tui.sources.pipedrive import PipedriveSource
from crm_tui.sources.topproducer import TopProducerSource

CONNECTORS: dict[str, type[Source]] = {
    cls.name: cls
    for cls in (
        BrivitySource,
        TopProducerSource,
        FollowUpBossSource,
        HubSpotSource,
        PipedriveSource,
        LoftySource,
        LocalSource,
    )
}
SOURCE_NAMES: tuple[str, ...] = tuple(CONNECTORS)
DISPLAY_NAMES: dict[str, str] = {name: cls.display_name for name, cls in CONNECTORS.items()}
SHORT_NAMES: dict[str, str] = {name: cls.short_name for name, cls in CONNECTORS.items()}


def build_source(name: str, ctx: SourceContext) -> Source:
    try:
        return CONNECTORS[name](ctx)
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(CONNECTORS)}") from None


def csv_exports() -> dict[str, tuple[str, CsvExport]]:
    """`crm-tui import` command -> (source, its first export: the one that describes the
    command), for every source that imports files."""
    found: dict[str, tuple[str, CsvExport]] = {}
    for cls in CONNECTORS.values():
        for export in cls.exports:
            found.setdefault(export.command, (cls.name, export))
    return found
