"""The app's modes, one screen each."""

from crm_tui.screens.audit import AuditScreen
from crm_tui.screens.browse import BrowseScreen
from crm_tui.screens.connections import ConnectionsScreen
from crm_tui.screens.people import PeopleScreen
from crm_tui.screens.pipeline import PipelineScreen
from crm_tui.screens.search import SearchScreen
from crm_tui.screens.status import StatusScreen

MODES = {
    "status": StatusScreen,
    "search": SearchScreen,
    "browse": BrowseScreen,
    "audit": AuditScreen,
    "connections": ConnectionsScreen,
    "people": PeopleScreen,
    "pipeline": PipelineScreen,
}

__all__ = ["MODES"]
