"""What every mode screen shares: the header, the footer, and store subscriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual.screen import Screen
from textual.widgets import Header
from textual.worker import Worker

from crm_tui.store import StoreChange
from crm_tui.widgets.mode_tabs import ModeTabs

if TYPE_CHECKING:
    from crm_tui.app import CrmApp


class FollowsStore:
    """Mixed into a screen that shows what the store holds. Store changes arrive once per
    page of a sync; the screen repaints at most ten times a second, so a fast sync cannot
    flood the event loop with redraws."""

    _refresh_pending = False
    app: Any
    is_current: bool
    set_timer: Any

    @property
    def crm(self) -> CrmApp:
        return cast("CrmApp", self.app)

    def follow_store(self) -> None:
        """Subscribe (from on_mount), then show what the store holds now."""
        self.crm.store_changed.subscribe(self, self.on_store_change)  # type: ignore[arg-type]
        self.refresh_data()

    def on_store_change(self, change: StoreChange) -> None:
        if self.is_current and not self._refresh_pending:
            self._refresh_pending = True
            self.set_timer(0.1, self._throttled_refresh)

    def _throttled_refresh(self) -> None:
        self._refresh_pending = False
        if self.is_current:
            self.refresh_data()

    def refresh_data(self) -> None:
        """Re-read what this screen shows from the store."""


class ModeScreen(FollowsStore, Screen[None]):
    _tabs_mounted = False

    def on_mount(self) -> None:
        self._mount_tabs()
        self.follow_store()

    def _mount_tabs(self) -> None:
        """The screens as tabs, under the header, this one highlighted."""
        if self._tabs_mounted:  # a subclass's on_mount calls this one too
            return
        mode = next((n for n, cls in self.crm.MODES.items() if type(self) is cls), None)
        headers = self.query(Header)
        if mode is not None and headers:
            self._tabs_mounted = True
            self.mount(ModeTabs(mode), after=headers.first())

    def on_screen_resume(self) -> None:
        self.refresh_data()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker of this screen that failed is told as the app's own are: its message
        does not bubble up to the app (a refused clear of the cache said nothing)."""
        self.crm.report_failure(event)
