"""`crm-tui doctor`: the settings, the database, the files' modes and owners, and every
enabled source's connection, each a row that says what is wrong and what to do; with
`--repair`, a damaged database rebuilt (store/repair.py) and every source re-synced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_tui.config import DISPLAY_NAMES, ConfigError, Settings, config_dir, default_env_files
from crm_tui.models import Failure, SyncReport
from crm_tui.sources.mapping import check_mappings
from crm_tui.sources.messages import one_line
from crm_tui.sources.registry import CONNECTORS
from crm_tui.store import CacheStore, Database
from crm_tui.store.health import (
    EXIT_CONFIG,
    EXIT_DAMAGED,
    Check,
    data_dir_check,
    data_files,
    database_checks,
    failed,
    file_checks,
    ok,
    warning,
)
from crm_tui.store.repair import RepairReport, repair_database
from crm_tui.sync.engine import SyncEngine
from crm_tui.sync.shown import WORKER_SYNCS, worker_syncs

EXIT_REMOTE = 4
# The failure to fix first comes first: a setting can make every later check meaningless
# (another data dir, wrong keys), a damaged database loses data, a remote may just be down.
SEVERITY = (EXIT_CONFIG, EXIT_DAMAGED, EXIT_REMOTE)


def worst(codes: list[int]) -> int:
    failing = [c for c in codes if c]
    if not failing:
        return 0
    return min(failing, key=lambda c: SEVERITY.index(c) if c in SEVERITY else len(SEVERITY))


@dataclass
class DoctorReport:
    settings: list[Check] = field(default_factory=list)
    database: list[Check] = field(default_factory=list)
    files: list[Check] = field(default_factory=list)
    sources: list[Check] = field(default_factory=list)
    repair: RepairReport | None = None
    after: list[Check] = field(default_factory=list)  # the database's checks after a repair
    sync: dict[str, SyncReport] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def checks(self) -> list[Check]:
        return [*self.settings, *self.database, *self.files, *self.sources]

    @property
    def standing(self) -> list[Check]:
        """What still holds: a repaired database's checks replace the ones before."""
        database = self.after if self.repair is not None else self.database
        return [*self.settings, *database, *self.files, *self.sources]

    @property
    def exit_code(self) -> int:
        codes = [c.exit_code for c in self.standing if c.failed]
        codes += [sync_exit_code(r) for r in (self.sync or {}).values() if not r.success]
        return worst(codes)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"checks": [c.to_json() for c in self.checks]}
        if self.repair is not None:
            out["repair"] = self.repair.to_json()
            out["after"] = [c.to_json() for c in self.after]
        if self.sync is not None:
            out["sync"] = {name: r.to_guide() for name, r in self.sync.items()}
        out["notes"] = self.notes
        return out


def sync_exit_code(report: SyncReport) -> int:
    auth = any(s.failure is Failure.AUTH for s in report.streams.values())
    return EXIT_CONFIG if auth else EXIT_REMOTE


async def run_doctor(
    load: Callable[[], Settings],
    env_file: Path | None,
    *,
    repair: bool,
    sync: bool,
    keymap_problems: Callable[[Path], list[str]] | None = None,
) -> DoctorReport:
    """`keymap_problems`: the app's own check of keymap.toml (binding ids live on its
    screens, which this module does not import)."""
    report = DoctorReport()
    settings = _settings(load, report)
    if settings is None:
        if repair:
            report.notes.append("not repaired: without settings the database is unknown")
        return report
    report.settings.append(mappings_check(config_dir() / "mappings.toml"))
    if keymap_problems is not None:
        keymap = config_dir() / "keymap.toml"
        report.settings.append(keymap_check(keymap, keymap_problems(keymap)))
    team = settings.database_url is not None
    if team:
        from crm_tui.team.health import team_database_checks

        report.database = team_database_checks(settings)
    else:
        report.database = database_checks(settings.database_path)
    stored = [] if team else data_files(settings.database_path, settings.log_file)
    report.files = [
        data_dir_check(settings.data_dir),
        *file_checks(
            [
                *stored,
                *([settings.log_file] if team else []),
                *(p for p in default_env_files(env_file) if p.exists()),
            ]
        ),
    ]
    report.sources = [*source_checks(settings), *await connection_checks(settings)]
    if repair:
        await _repair(report, settings, sync)
    return report


# -- settings ------------------------------------------------------------------------------


def _settings(load: Callable[[], Settings], report: DoctorReport) -> Settings | None:
    try:
        settings = load()
    except ConfigError as exc:
        report.settings.append(
            failed("settings", str(exc), "correct the setting it names", EXIT_CONFIG)
        )
        return None
    report.settings.append(ok("settings", f"loaded; user {settings.user_id}"))
    return settings


def mappings_check(path: Path) -> Check:
    return _config_file_check("mappings.toml", path, check_mappings(path), "the built-in maps")


def keymap_check(path: Path, problems: list[str]) -> Check:
    return _config_file_check("keymap.toml", path, problems, "the built-in keys")


def _config_file_check(name: str, path: Path, problems: list[str], default: str) -> Check:
    if problems:
        return failed(
            name,
            "; ".join(problems),
            f"correct it, or move it away to use {default}: {path}",
            EXIT_CONFIG,
        )
    if not path.is_file():
        return ok(name, f"none ({default})")
    return ok(name, str(path))


def source_checks(settings: Settings) -> list[Check]:
    rows = []
    for name, config in settings.sources().items():
        label = f"source {name}"
        if worker_syncs(settings, name):
            rows.append(ok(label, WORKER_SYNCS))
            continue
        if not config.enabled:
            rows.append(ok(label, "not enabled (set " + ", ".join(config.missing) + ")"))
            continue
        problem = _path_problem(settings, name)
        if problem:
            rows.append(failed(label, problem, "point the setting at it", EXIT_CONFIG))
        else:
            rows.append(ok(label, f"configured ({config.mode})"))
    return rows


def _path_problem(settings: Settings, name: str) -> str | None:
    """The files and folders a configured source's settings name, which must exist."""
    for setting in CONNECTORS[name].settings:
        path = getattr(settings, setting.field)
        if path is None or setting.kind not in ("file", "folder"):
            continue
        exists = path.is_file() if setting.kind == "file" else path.is_dir()
        if not exists:
            return f"{setting.env}: no such {setting.kind}: {path}"
    return None


# -- connections ---------------------------------------------------------------------------


async def connection_checks(settings: Settings) -> list[Check]:
    """As `crm-tui test-connection` for each enabled source: authenticate, read one small
    page. The local CRM is the database itself, checked above."""
    names = [n for n in settings.enabled_sources() if n != "local"]
    if not names:
        return []
    try:
        engine = SyncEngine(settings, CacheStore(settings.user_id))
    except ConfigError as exc:
        return [warning("connections", f"not tested: {exc}", "correct mappings.toml first")]
    try:
        results = await asyncio.gather(*(engine.test_connection(n) for n in names))
    finally:
        await engine.aclose()
    rows = []
    for result in results:
        label = f"connection {result.source}"
        if result.ok:
            rows.append(ok(label, result.message))
            continue
        auth = result.config_error
        fix = (
            f"check the {DISPLAY_NAMES.get(result.source, result.source)} credentials"
            if auth
            else "check the base URL and the network; try again later"
        )
        message = one_line(result.message)  # a report's row: the vendor's words after it
        rows.append(failed(label, message, fix, EXIT_CONFIG if auth else EXIT_REMOTE))
    return rows


# -- repair --------------------------------------------------------------------------------


async def _repair(report: DoctorReport, settings: Settings, sync: bool) -> None:
    if settings.database_url is not None:
        report.notes.append("a team database's server keeps its own pages: nothing to repair")
        return
    if not any(c.repairable for c in report.database):
        report.notes.append("the database passed its checks: nothing to repair")
        return
    path = settings.database_path
    report.repair = await asyncio.to_thread(repair_database, path)
    report.after = database_checks(path)
    if not sync:
        report.notes.append("not re-synced (--no-sync): `crm-tui sync --full` brings the rest back")
    elif not any(c.failed for c in report.after):
        report.sync = await resync(settings)


async def resync(settings: Settings) -> dict[str, SyncReport]:
    """Every enabled source, as `crm-tui sync --full` does: what the repair could not
    recover of the cache comes back from the CRMs. In full: the watermarks survived the
    repair, the rows they cover may not have."""
    db = Database(settings.database_path)
    try:
        store = CacheStore(settings.user_id, db)
        await store.load()
        engine = SyncEngine(settings, store)
        try:
            return await engine.sync_all(full=True)
        finally:
            await engine.aclose()
    finally:
        db.close()
