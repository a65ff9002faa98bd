"""Status (home): every source's state, counts, progress and last error; sync from here.
While edits of vendor records wait, were refused or met a conflict, a line says how many
and `o` opens the Outbox."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static

from crm_tui.config import DISPLAY_NAMES, SOURCE_NAMES, Settings, config_dir
from crm_tui.models import SourceStatus, SyncState
from crm_tui.screens.base import ModeScreen
from crm_tui.screens.confirm import ConfirmScreen
from crm_tui.screens.outbox import OutboxScreen
from crm_tui.screens.store_error import store_error_text
from crm_tui.sources.messages import QUIET_SOURCES, home_short
from crm_tui.sync.plan import read_plan
from crm_tui.sync.shown import shown_status, worker_syncs
from crm_tui.timefmt import exact, relative
from crm_tui.widgets.safe import safe, safe_block
from crm_tui.writeback.shown import open_line

# Colour and a symbol: the state must read without colour too.
STATE_LOOK = {
    SyncState.IDLE: ("●", "idle", "green"),
    SyncState.SYNCING: ("↻", "syncing", "cyan"),
    SyncState.WAITING: ("⧗", "waiting", "yellow"),
    SyncState.ERROR: ("✖", "error", "red"),
    SyncState.RATE_LIMITED: ("⏸", "rate limited", "yellow"),
    SyncState.DISABLED: ("○", "disabled", "dim"),
}


def not_loaded() -> Text:
    return Text("✖ not loaded", style="red")


def state_text(state: SyncState) -> Text:
    symbol, word, colour = STATE_LOOK[state]
    return Text(f"{symbol} {word}", style=colour)


def shown_state(status: SourceStatus) -> Text:
    """The state, or that another process is syncing a source idle here."""
    if status.busy_elsewhere and status.state is SyncState.IDLE:
        return Text("↻ elsewhere", style="cyan")
    return state_text(status.state)


def progress_text(status: SourceStatus) -> str:
    if status.waiting_for:
        return f"waiting for {status.waiting_for}"
    p = status.progress
    if p is None:
        return f"busy: {status.busy_elsewhere}" if status.busy_elsewhere else ""
    of = f" of {p.total:,}" if p.total else ""
    return f"{p.stream} {p.records:,}{of}"


def getting_started(settings: Settings) -> Text | None:
    """With no CRM configured: where the settings go, what each source needs, and how to
    set one up or try the demo. None once any CRM is configured, and in a team database
    (the team's worker has the keys)."""
    names = [n for n in SOURCE_NAMES if n not in QUIET_SOURCES]
    if settings.database_url is not None or any(settings.source_config(n).enabled for n in names):
        return None
    text = Text("No CRM is set up yet: ", style="bold")
    text.append("k", style="bold reverse")
    text.append(" sets one up here; to try crm-tui first, quit and run ")
    text.append("crm-tui --demo", style="bold")
    text.append(" (six simulated CRMs).\nSettings are read from ")
    text.append(home_short(config_dir() / ".env"), style="bold")
    text.append(" (then ./.env and the environment). Each source needs:")
    width = max(len(DISPLAY_NAMES.get(n, n)) for n in names) + 2
    for name in names:
        needs = ", ".join(settings.source_config(name).missing) or "nothing more"
        text.append(f"\n  {DISPLAY_NAMES.get(name, name):<{width}}{needs}")
    return text


class StatusScreen(ModeScreen):
    DEFAULT_CSS = """
    StatusScreen #getting-started {
        display: none; height: auto; padding: 0 1; background: $accent 15%;
    }
    StatusScreen #outbox-line { display: none; height: auto; padding: 0 1; color: $warning; }
    """
    BINDINGS = [
        Binding("s", "sync_selected", "Sync", id="status.sync"),
        Binding("F", "full_sync", "Full sync", id="status.full_sync"),
        Binding("a", "sync_all", "Sync all", id="status.sync_all"),
        Binding("x", "cancel", "Cancel", id="status.cancel"),
        Binding("c", "clear", "Clear", id="status.clear"),
        Binding("C", "clear_all", "Clear all", id="status.clear_all"),
        Binding("t", "test", "Test", id="status.test"),
        Binding("k", "setup", "Set up", id="status.setup"),
        Binding("o", "outbox", "Outbox", id="status.outbox"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="store-error-banner")
        yield Static(id="getting-started")
        table: DataTable[Text] = DataTable(id="sources", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(id="outbox-line")
        with VerticalScroll(id="source-detail"):
            yield Static(id="detail-text")
            yield ProgressBar(id="sync-progress", show_eta=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#sources", DataTable)
        for title in ("Source", "State", "Last sync", "Contacts", "Deals", "Progress", "Next run"):
            table.add_column(title, key=title)
        table.focus()
        super().on_mount()

    @property
    def selected(self) -> str | None:
        table = self.query_one("#sources", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def status_of(self, name: str) -> SourceStatus:
        return shown_status(self.crm.store, self.crm.settings, name)

    def refresh_data(self) -> None:
        error = self.crm.store_error
        banner = self.query_one("#store-error-banner", Static)
        banner.display = error is not None
        if error is not None:
            banner.update(store_error_text(error))
        start = getting_started(self.crm.settings) if error is None else None
        welcome = self.query_one("#getting-started", Static)
        welcome.display = start is not None
        if start is not None:
            welcome.update(start)
        summary = open_line(self.crm.outbox_open)
        line = self.query_one("#outbox-line", Static)
        line.display = bool(summary)
        line.update(Text(summary))
        table = self.query_one("#sources", DataTable)
        row = table.cursor_row
        table.clear()
        for name in self.crm.store.sources():
            s = self.status_of(name)
            # counts of a cache that could not be read would be zeros that look true
            table.add_row(
                safe(DISPLAY_NAMES.get(name, name), "bold"),
                not_loaded() if error else shown_state(s),
                safe(relative(s.last_sync)),
                safe("?" if error else f"{s.contact_count:,}"),
                safe("?" if error else f"{s.deal_count:,}"),
                safe(progress_text(s)),
                safe(relative(s.next_run) if s.next_run else ""),
                key=name,
            )
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))
        self.show_detail()
        self.refresh_bindings()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        name = self.selected
        detail = self.query_one("#detail-text", Static)
        bar = self.query_one("#sync-progress", ProgressBar)
        if name is None:
            detail.update("")
            return
        s = self.status_of(name)
        cfg = self.crm.settings.source_config(name)
        text = Text()
        text.append(f"{DISPLAY_NAMES.get(name, name)}  ", style="bold")
        text.append_text(shown_state(s))
        text.append("\n")
        if worker_syncs(self.crm.settings, name):
            done = "Synced" if s.last_sync else "Not synced yet"
            text.append(f"{done} by the team's worker (no keys needed here)\n")
        elif not cfg.enabled:
            text.append("Not configured. Missing: " + ", ".join(cfg.missing) + "\n", style="yellow")
        else:
            text.append(f"Mode: {cfg.mode}\n")
        text.append(f"Last sync: {relative(s.last_sync)} ({exact(s.last_sync)})\n")
        if self.crm.store_error is not None:
            text.append("Contacts and deals: not loaded (the database could not be read)\n", "red")
        else:
            text.append(f"Contacts: {s.contact_count:,}   Deals: {s.deal_count:,}\n")
        if s.next_run:
            text.append(f"Next scheduled run: {exact(s.next_run)}\n")
        if s.rate is not None and s.rate.remaining is not None:
            when = relative(s.rate.observed_at)
            text.append(f"Rate budget: {s.rate.describe()} (reported {when})\n")
        if cfg.enabled:
            text.append(f"Reads: {read_plan(name, self.crm.settings)}\n")
        if s.retry_at:
            text.append(f"Rate limited until {exact(s.retry_at)}\n", style="yellow")
        if s.waiting_for:
            text.append(f"Waiting for {s.waiting_for}\n", style="yellow")
        test = self.crm.engine.last_tests.get(name)
        if test is not None:
            text.append("Connection test: ")
            text.append_text(safe_block(test.message, "green" if test.ok else "red"))
            text.append("\n")
        if s.last_error:
            text.append("Last error:\n", style="bold red")
            text.append_text(safe_block(s.last_error, "red"))
        detail.update(text)
        if s.progress is not None:
            bar.display = True
            bar.update(total=s.progress.total, progress=s.progress.records)
        else:
            bar.display = False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        name = self.selected
        if action == "cancel":
            return name is not None and self.crm.engine.is_running(name)
        if action in ("sync_selected", "full_sync", "test"):
            return name is not None and self.crm.settings.source_config(name).enabled
        if action == "outbox":  # offered while something is open: history is in Audit
            return bool(self.crm.outbox_open)
        return True

    def action_outbox(self) -> None:
        self.app.push_screen(OutboxScreen())

    def action_sync_selected(self) -> None:
        if self.selected:
            self.crm.sync_source(self.selected)

    def action_full_sync(self) -> None:
        if self.selected:
            self.crm.sync_source(self.selected, full=True)

    def action_setup(self) -> None:
        self.crm.open_setup(self.selected)

    def action_sync_all(self) -> None:
        self.crm.sync_all()

    def action_cancel(self) -> None:
        if self.selected:
            self.crm.cancel_sync(self.selected)

    def action_test(self) -> None:
        if self.selected:
            self.run_worker(
                self.crm.test_connection(self.selected), group="test", exit_on_error=False
            )

    def action_clear(self) -> None:
        name = self.selected
        if name is None:
            return
        display = DISPLAY_NAMES.get(name, name)

        def answered(yes: bool | None) -> None:
            if yes:
                self._clear(name)

        question = f"Clear the cached data of {display}?" + self._imports_note(name)
        self.app.push_screen(ConfirmScreen(question), answered)

    def _clear(self, source: str | None) -> None:
        """One source's cache cleared, or (None) every source's."""
        self.run_worker(
            self.crm.clear_cache(source),
            group="clear",
            name="clearing the cache",
            exit_on_error=False,
        )

    def action_clear_all(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._clear(None)

        question = "Clear the cached data of every source?" + self._imports_note(None)
        self.app.push_screen(ConfirmScreen(question), answered)

    def _imports_note(self, source: str | None) -> str:
        """Imported rows exist only in the cache: say that clearing drops them."""
        imported = self.crm.store.imported_count(source)
        if not imported:
            return ""
        return f" {imported:,} rows imported from files go too (import the files again)."
