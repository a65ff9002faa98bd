"""Connections: each source's settings (secrets only as set/missing), capabilities, tests."""

from __future__ import annotations

from pydantic import SecretStr
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from crm_tui.config import DISPLAY_NAMES, Settings
from crm_tui.screens.base import ModeScreen
from crm_tui.sources.registry import CONNECTORS
from crm_tui.sync.shown import WORKER_SYNCS, worker_syncs
from crm_tui.timefmt import exact
from crm_tui.widgets.safe import safe, safe_block


class ConnectionsScreen(ModeScreen):
    BINDINGS = [
        Binding("t", "test", "Test connection", id="connections.test"),
        Binding("k", "setup", "Set up", id="connections.setup"),
        Binding("m", "map_fields", "Map fields", id="connections.map"),
    ]

    def action_map_fields(self) -> None:
        if self.selected:
            self.crm.open_mapping(self.selected)

    def action_setup(self) -> None:
        self.crm.open_setup(self.selected)

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="connections", cursor_type="row")
        with VerticalScroll(id="connection-scroll"):  # long help scrolls, the header stays
            yield Static(id="connection-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#connections", DataTable)
        table.add_columns("Source", "Enabled", "Mode", "Capabilities", "Last test")
        table.focus()
        super().on_mount()

    @property
    def selected(self) -> str | None:
        table = self.query_one("#connections", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def refresh_data(self) -> None:
        table = self.query_one("#connections", DataTable)
        row = table.cursor_row
        table.clear()
        settings = self.crm.settings
        for name, cfg in settings.sources().items():
            caps = ""
            if cfg.enabled:
                flags = self.crm.engine.source(name).capabilities.flags()
                caps = ", ".join(k for k, on in flags.items() if on)
            test = self.crm.engine.last_tests.get(name)
            table.add_row(
                safe(DISPLAY_NAMES[name], "bold"),
                _enabled(settings, name),
                safe(cfg.mode or "-"),
                safe(caps),
                safe(
                    "" if test is None else ("ok" if test.ok else "failed"),
                    "" if test is None else ("green" if test.ok else "red"),
                ),
                key=name,
            )
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))
        self.show_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        name = self.selected
        if name is None:
            return
        settings = self.crm.settings
        cfg = settings.source_config(name)
        text = Text()
        text.append(f"{DISPLAY_NAMES[name]}\n", style="bold")
        declared = CONNECTORS[name].settings
        width = max((len(s.env) for s in declared), default=0) + 2
        for setting in declared:
            value = getattr(settings, setting.field)
            if isinstance(value, SecretStr):
                shown = Text("set", "green")
            elif value is None:
                shown = Text("missing" if setting.required else "not set", "yellow")
            else:
                shown = safe(value)
            text.append(f"  {setting.env:<{width}}")
            text.append_text(shown)
            text.append(f"  {setting.help}\n", style="dim")
        if cfg.mode == "database":
            text.append(f"  Database: {settings.database_location}\n")
        if cfg.enabled:
            for note in self.crm.engine.source(name).capabilities.notes:
                text.append(f"  Note: {note}\n", style="yellow")
        if worker_syncs(settings, name):
            text.append(f"  {WORKER_SYNCS}\n", style="dim")
        elif cfg.missing:
            text.append("  needs: " + ", ".join(cfg.missing) + "\n", style="yellow")
        interval = settings.crm_sync_interval_minutes
        text.append(f"  Sync interval: {f'{interval} min' if interval else 'off'}\n")
        test = self.crm.engine.last_tests.get(name)
        if test is not None:
            text.append(f"  Last test ({exact(test.checked_at)}): ")
            text.append_text(safe_block(test.message, "green" if test.ok else "red"))
        self.query_one("#connection-detail", Static).update(text)

    def action_test(self) -> None:
        if self.selected:
            self.run_worker(
                self.crm.test_connection(self.selected), group="test", exit_on_error=False
            )


def _enabled(settings: Settings, name: str) -> Text:
    if worker_syncs(settings, name):
        return Text("by the worker", "dim")
    return Text("yes", "green") if settings.source_config(name).enabled else Text("no", "yellow")
