"""Set up a source from inside the app: pick it, type its key(s) into password inputs, test
the connection in place, save to the config dir's `.env` (0600). A secret typed here is
never shown again: not after saving, not in a notice, not in the log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Select, Static

from crm_tui.config import (
    DISPLAY_NAMES,
    ConfigError,
    Settings,
    config_dir,
    typed_problems,
    winning_source,
)
from crm_tui.envfile import save_settings
from crm_tui.sources.kit import Setting
from crm_tui.sources.messages import QUIET_SOURCES, home_short
from crm_tui.sources.registry import CONNECTORS
from crm_tui.widgets.safe import safe, safe_block

if TYPE_CHECKING:
    from crm_tui.app import CrmApp


def setup_sources() -> list[str]:
    """Sources a person configures (Local needs nothing)."""
    return [n for n, cls in CONNECTORS.items() if cls.settings and n not in QUIET_SOURCES]


def current_value(settings: Settings, setting: Setting) -> str:
    """What an input starts with: a plain setting's value; never a secret's."""
    if setting.secret:
        return ""
    value = getattr(settings, setting.field, None)
    return "" if value is None else str(value)


def with_values(settings: Settings, values: dict[str, str]) -> Settings:
    """`settings` with `values` (by variable) on top, validated like any other."""
    data = settings.model_dump()
    data.update({k.lower(): v for k, v in values.items()})
    try:
        return type(settings)(_env_file=None, **data)  # type: ignore[call-arg]
    except ValueError as exc:  # pydantic's ValidationError: which field, without its value
        problems = getattr(exc, "errors", lambda: [])()
        named = ", ".join(str(p["loc"][0]).upper() for p in problems if p.get("loc"))
        raise ConfigError(f"not valid: {named or 'a setting'}") from None


class SetupScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    SetupScreen { align: center middle; }
    SetupScreen #setup {
        width: 95%; max-width: 100; height: 95%; border: thick $accent;
        background: $surface; padding: 0 1;
    }
    SetupScreen #setup-title { height: auto; }
    SetupScreen #setup-fields { height: 1fr; }
    SetupScreen #setup-fields Input { margin-bottom: 1; }
    SetupScreen #setup-fields Label { width: 1fr; }
    SetupScreen #setup-result { height: auto; max-height: 4; }
    SetupScreen #setup-buttons { height: auto; align: center middle; }
    SetupScreen Button { margin: 0 1; }
    """
    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="setup.close"),
        Binding("ctrl+t", "test", "Test connection", id="setup.test"),
        Binding("ctrl+s", "save", "Save to .env", id="setup.save"),
    ]

    def __init__(self, source: str | None = None) -> None:
        super().__init__()
        choices = setup_sources()
        self.source = source if source in choices else choices[0]

    @property
    def crm(self) -> CrmApp:
        return cast("CrmApp", self.app)

    def compose(self) -> ComposeResult:
        with Vertical(id="setup"):
            yield Static(id="setup-title")
            yield Select(
                [(DISPLAY_NAMES.get(n, n), n) for n in setup_sources()],
                value=self.source,
                allow_blank=False,
                id="setup-source",
            )
            yield VerticalScroll(id="setup-fields")
            yield Static(id="setup-result")
            with Horizontal(id="setup-buttons"):
                yield Button("Test (ctrl+t)", id="setup-test")
                yield Button("Save (ctrl+s)", id="setup-save", variant="primary")
                yield Button("Close (esc)", id="setup-close")
        yield Footer()

    async def on_mount(self) -> None:
        await self._show_fields()

    def _settings(self) -> tuple[Setting, ...]:
        """The source's settings, what it cannot do without first."""
        declared = CONNECTORS[self.source].settings
        return tuple(sorted(declared, key=lambda s: (not s.required, not s.secret)))

    async def _show_fields(self) -> None:
        path = home_short(config_dir() / ".env")
        title = Text("Set up a source", style="bold")
        title.append(f"  saved to {path} (private to you)", style="dim")
        self.query_one("#setup-title", Static).update(title)
        fields = self.query_one("#setup-fields", VerticalScroll)
        await fields.remove_children()
        settings = self.crm.settings
        widgets: list[Any] = []
        for setting in self._settings():
            is_set = getattr(settings, setting.field, None) is not None
            need = "required" if setting.required else "optional"
            label = Text(setting.env, style="bold")
            label.append(f"  {need} · {setting.help}", style="dim")
            widgets.append(Label(label))
            placeholder = "set: type to replace it" if setting.secret and is_set else need
            widgets.append(
                Input(
                    current_value(settings, setting),
                    placeholder=placeholder,
                    password=setting.secret,
                    id=f"env-{setting.env}",
                )
            )
        await fields.mount_all(widgets)
        self.query_one("#setup-result", Static).update("")
        inputs = fields.query(Input)
        if inputs:
            inputs.first().focus()

    @on(Select.Changed, "#setup-source")
    async def _source_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.source:
            self.source = event.value
            await self._show_fields()

    def typed(self) -> dict[str, str]:
        """The variables a person changed: a secret left empty keeps what is set."""
        settings = self.crm.settings
        values = {}
        for setting in self._settings():
            value = self.query_one(f"#env-{setting.env}", Input).value.strip()
            if value and value != current_value(settings, setting):
                values[setting.env] = value
        return values

    def _report(self, text: str, ok: bool) -> None:
        self.query_one("#setup-result", Static).update(safe_block(text, "green" if ok else "red"))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {"setup-test": self.action_test, "setup-save": self.action_save}
        actions.get(event.button.id or "", self.dismiss)()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_test()

    def _candidate(self, values: dict[str, str]) -> Settings | None:
        """The settings with `values` typed on top, or None (and why, on the screen)."""
        problems = typed_problems(values, self.crm.env_file)
        if problems:
            self._report("; ".join(problems), False)
            return None
        try:
            return with_values(self.crm.settings, values)
        except ConfigError as exc:
            self._report(str(exc), False)
            return None

    @work(exclusive=True, group="setup-test", exit_on_error=False)
    async def action_test(self) -> None:
        candidate = self._candidate(self.typed())
        if candidate is None:
            return
        missing = candidate.source_config(self.source).missing
        if missing:
            self._report("Still missing: " + ", ".join(missing), False)
            return
        self._report("Testing…", True)
        result = await self.crm.test_with(candidate, self.source)
        self._report(f"{'✔' if result.ok else '✖'} {result.message}", result.ok)

    def action_save(self) -> None:
        values = self.typed()
        if not values:
            self._report("Nothing to save: type a value first", False)
            return
        candidate = self._candidate(values)
        if candidate is None:
            return
        path = self.crm.env_file or config_dir() / ".env"
        try:
            save_settings(path, values)
        except OSError as exc:
            self._report(f"Cannot write {home_short(path)}: {exc.strerror or exc}", False)
            return
        for setting in self._settings():  # nothing typed stays on the screen
            if setting.secret:
                self.query_one(f"#env-{setting.env}", Input).value = ""
        names = ", ".join(values)
        note = f"Saved {names} to {home_short(path)}"
        for name in values:  # another source holding it wins at the next start: say which
            source = winning_source(name, self.crm.env_file)
            if source is not None and source != str(path):
                note += f"; {name} from {home_short(Path(source)) if '/' in source else source}"
                note += " wins at the next start"
        applied = self.crm.apply_settings(candidate)
        note += "" if applied else " (applied at the next start: a sync or webhooks are running)"
        self._report(note, True)
        self.crm.notify(note, markup=False)
        self.query_one("#setup-title", Static).update(safe(note, "bold"))
