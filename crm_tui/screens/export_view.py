"""ctrl+s on a list: export what it shows (Search's matches, a Browse filter, People's
selection) as CSV, XLSX or vCard, with the CLI's writer (crm_tui/export.py: 0600 files,
formula-safe cells, record fields only, so no secret can reach it).

Files go to the data dir's `exports` folder, never the current directory: the app may
have been started anywhere (a repository, $HOME), and the toast names the file.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Static

from crm_tui.export import export
from crm_tui.models import Record, RecordKind

if TYPE_CHECKING:
    from crm_tui.app import CrmApp

EXPORT_BINDINGS = [Binding("ctrl+s", "export_view", "Export", id="view.export")]
EXTENSIONS = {"csv": "csv", "xlsx": "xlsx", "vcf": "vcf"}


def export_path(folder: Path, kind: str, fmt: str, now: datetime) -> Path:
    """A new file of its own, named after what it holds (a record kind, a chart): two
    exports in one second (two screens, two processes on one data dir) never replace each
    other; the name is claimed by creating it (0600)."""
    stem, ext = f"{kind}-{now:%Y%m%d-%H%M%S}", EXTENSIONS[fmt]
    for n in itertools.count(1):
        path = folder / (f"{stem}.{ext}" if n == 1 else f"{stem}-{n}.{ext}")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        return path
    raise AssertionError("unreachable")


class FormatScreen(ModalScreen[str | None]):
    """Which format: c, x or v (vCard for contacts only); esc leaves it."""

    BINDINGS = [
        Binding("c", "choose('csv')", "CSV", id="export.csv"),
        Binding("x", "choose('xlsx')", "XLSX", id="export.xlsx"),
        Binding("v", "choose('vcf')", "vCard", id="export.vcf"),
        Binding("escape", "choose('')", "Cancel", id="export.cancel"),
    ]

    def __init__(self, what: str, kind: RecordKind) -> None:
        super().__init__()
        self.what = what
        self.kind = kind

    def compose(self) -> ComposeResult:
        with Vertical(id="export-dialog"):
            yield Static(f"Export {self.what}", markup=False)
            with Horizontal(id="export-buttons"):
                yield Button("c CSV", id="csv")
                yield Button("x XLSX", id="xlsx")
                if self.kind == "contacts":
                    yield Button("v vCard", id="vcf")
                yield Button("esc Cancel", id="cancel")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action == "choose" and parameters == ("vcf",) and self.kind != "contacts")

    def action_choose(self, fmt: str) -> None:
        self.dismiss(fmt or None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)


class ExportView(Screen[None]):
    """Mixed into a list screen that says what it shows."""

    BINDINGS = EXPORT_BINDINGS

    async def view_records(self) -> tuple[RecordKind, Sequence[Record]]:
        raise NotImplementedError

    def action_export_view(self) -> None:
        self.run_worker(self._ask(), group="export", exit_on_error=False)

    async def _ask(self) -> None:
        kind, records = await self.view_records()
        if not records:
            self.notify("Nothing shown to export", markup=False)
            return

        def chosen(fmt: str | None) -> None:
            if fmt:
                self.run_worker(self._write(fmt, kind, records), group="export")

        self.app.push_screen(FormatScreen(f"{len(records):,} {kind}", kind), chosen)

    async def _write(self, fmt: str, kind: RecordKind, records: Sequence[Record]) -> None:
        folder = cast("CrmApp", self.app).settings.data_dir / "exports"
        path: Path | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = export_path(folder, kind, fmt, datetime.now())
            custom = list(cast("CrmApp", self.app).index.columns.values())
            count = await asyncio.to_thread(export, path, fmt, kind, records, custom=custom)
        except (OSError, ValueError) as exc:
            if path is not None and path.exists() and not path.stat().st_size:
                path.unlink()  # the name claimed, nothing written
            self.notify(f"Export failed: {exc}", severity="error", markup=False)
            return
        self.notify(f"Exported {count:,} {kind} to {path}", markup=False, timeout=10)
