"""Which connector serves which source name. Adding a CRM: one module and one entry here."""

from __future__ import annotations

from crm_tui.sources.base import Source, SourceContext
from crm_tui.sources.brivity import BrivitySource
from crm_tui.sources.followupboss import FollowUpBossSource
from crm_tui.sources.local import LocalSource
from crm_tui.sources.topproducer import TopProducerSource

CONNECTORS: dict[str, type[Source]] = {
    "brivity": BrivitySource,
    "topproducer": TopProducerSource,
    "followupboss": FollowUpBossSource,
    "local": LocalSource,
}


def build_source(name: str, ctx: SourceContext) -> Source:
    try:
        return CONNECTORS[name](ctx)
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(CONNECTORS)}") from None
