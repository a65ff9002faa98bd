"""The app shell: quitting safely, audit runs never left running, errors and empty states."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import hypothesis
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st
from textual.widgets import DataTable, Input

from crm_tui.app import CrmApp, make_app
from crm_tui.config import config_dir, read_env_file
from crm_tui.demo.servers import DemoServers, Faults
from crm_tui.envfile import save_settings
from crm_tui.screens.cluster import ClusterScreen, record_columns
from crm_tui.screens.confirm import ConfirmScreen, QuitConfirmScreen
from crm_tui.screens.setup import SetupScreen
from crm_tui.sources.messages import vendor_said
from crm_tui.store import CacheStore, Database
from crm_tui.store.owners import LEASE_TTL_SECONDS, Owner, _machine, start_time
from crm_tui.sync.engine import SyncEngine
from crm_tui.widgets.mode_tabs import TABS, ModeTabs
from tests.helpers.env import make_settings
from tests.helpers.ports import refusing_port
from tests.helpers.tui import idle, until

SIZE = (120, 40)


def runs(path: Path) -> list[tuple[int, str, str | None, str | None]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT id, source, ended_at, outcome FROM sync_runs ORDER BY id"
        ).fetchall()


# -- quitting ------------------------------------------------------------------------------


@pytest.mark.parametrize("faulty_servers", [Faults(latency=1.0)], indirect=True)
@pytest.mark.parametrize("key", ["q", "ctrl+q"])
async def test_quit_during_a_sync_asks_then_cancels_and_audits_it(
    tmp_path: Path, faulty_servers: DemoServers, key: str
) -> None:
    env = {k.lower(): v for k, v in faulty_servers.env().items()}
    settings = make_settings(tmp_path, **env)
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded)
        app.sync_source("followupboss")
        await until(pilot, lambda: app.engine.is_running("followupboss"))
        await pilot.press(key)
        assert isinstance(app.screen, QuitConfirmScreen)
        assert "A sync of Follow Up Boss is running: quit and cancel it?" in app.screen.question
        await pilot.press(key)  # asking again does not stack a second question
        assert len([s for s in app.screen_stack if isinstance(s, QuitConfirmScreen)]) == 1
        await pilot.press("n")
        assert not isinstance(app.screen, QuitConfirmScreen)
        assert app.engine.is_running("followupboss")  # "no" left the sync alone
        await pilot.press(key, "y")
        await until(pilot, lambda: app._exit)
        assert not app.engine.running()
    rows = runs(settings.database_path)
    assert rows, "the sync left no audit row"
    assert all(ended for _, _, ended, _ in rows)
    assert {outcome for *_, outcome in rows} <= {"cancelled", "interrupted", "success"}
    assert rows[0][3] == "cancelled"


async def test_quit_with_nothing_running_quits_at_once(settings) -> None:
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded)
        assert app.running_work() == []
        await pilot.press("ctrl+q")
        await until(pilot, lambda: app._exit or isinstance(app.screen, QuitConfirmScreen))
        assert not isinstance(app.screen, QuitConfirmScreen)
        assert app._exit  # exiting


async def test_palette_quit_asks_while_a_save_runs(settings) -> None:
    app = make_app(settings, sync_stale=False)
    release = asyncio.Event()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded)
        app.run_worker(release.wait(), group="form", name="save contact")
        await pilot.pause(0.05)
        await app.action_quit()  # what the palette's "Quit the application" runs
        await pilot.pause(0.05)
        assert isinstance(app.screen, QuitConfirmScreen)
        assert app.screen.question == "A save is running: quit and cancel it?"
        await pilot.press("escape")
        release.set()
        await idle(pilot)
        assert app.running_work() == []


# -- runs whose process is gone --------------------------------------------------------------


def _open_run(conn: sqlite3.Connection, source: str, owner: str | None) -> int:
    cursor = conn.execute(
        "INSERT INTO sync_runs (user_id, source, started_at, owner)"
        " VALUES ('alice', ?, '2026-01-01T00:00:00Z', ?)",
        (source, owner),
    )
    return int(cursor.lastrowid or 0)


def _owner(conn: sqlite3.Connection, owner: Owner, heartbeat: float) -> None:
    conn.execute(
        "INSERT INTO owners (id, host, machine, pid, started, heartbeat_at) VALUES (?,?,?,?,?,?)",
        (owner.id, owner.host, owner.machine, owner.pid, owner.started, heartbeat),
    )


def test_next_start_marks_runs_of_dead_processes_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "data" / "crm.db"
    Database(path).close()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        here = _machine()
        now = time.time()
        with sqlite3.connect(path) as conn:
            owners = {
                "dead-here": (Owner("dead-here", "me", here, dead.pid, "1"), now),
                "live-here": (Owner("live-here", "me", here, live.pid, start_time(live.pid)), 0.0),
                "fresh-away": (Owner("fresh-away", "far", "other-boot/1", 1, "1"), now),
                "stale-away": (
                    Owner("stale-away", "far", "other-boot/1", 1, "1"),
                    now - LEASE_TTL_SECONDS - 5,
                ),
            }
            for owner, heartbeat in owners.values():
                _owner(conn, owner, heartbeat)
            ids = {name: _open_run(conn, name, name) for name in owners}
            ids["swept"] = _open_run(conn, "swept", "no-such-owner")
            ids["legacy"] = _open_run(conn, "legacy", None)
        db = Database(path)  # the next start of any crm-tui process
        db.close()
        outcome = {run_id: (ended, out) for run_id, _, ended, out in runs(path)}
        assert outcome[ids["dead-here"]][1] == "interrupted"
        assert outcome[ids["stale-away"]][1] == "interrupted"
        assert outcome[ids["swept"]][1] == "interrupted"
        assert outcome[ids["legacy"]][1] == "interrupted"
        assert outcome[ids["live-here"]] == (None, None)  # a live process on this host
        assert outcome[ids["fresh-away"]] == (None, None)  # its lease has not expired
        with sqlite3.connect(path) as conn:
            why = conn.execute(
                "SELECT error_message FROM sync_runs WHERE id = ?", (ids["dead-here"],)
            ).fetchone()[0]
            left = {r[0] for r in conn.execute("SELECT id FROM owners")}
        assert why == f"process {dead.pid} ended before it finished"
        assert left == {"live-here", "fresh-away"}
    finally:
        live.kill()
        live.wait()


def test_a_run_keeps_its_owner_alive_and_closing_interrupts_it(tmp_path: Path) -> None:
    path = tmp_path / "data" / "crm.db"
    db = Database(path)
    run_id = db.start_run("alice", "pipedrive", "2026-01-01T00:00:00Z")
    other = Database(path)  # another process starting meanwhile (same PID: alive)
    other.close()
    assert runs(path)[0][2] is None
    with sqlite3.connect(path) as conn:  # the run names an owner row with a heartbeat
        assert conn.execute(
            "SELECT 1 FROM sync_runs r JOIN owners o ON o.id = r.owner WHERE r.id = ?",
            (run_id,),
        ).fetchone()
    db.close()  # a quit that could not wait for the run
    assert runs(path)[0][3] == "interrupted"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM owners").fetchone()[0] == 0


# -- errors that say what to fix --------------------------------------------------------------


@contextlib.contextmanager
def _hanging_server() -> Iterator[int]:
    """A loopback server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def _fub(tmp_path: Path, **values: object):
    values.setdefault("fub_api_key", "fub-test-key-12345")
    return make_settings(tmp_path, **values)


async def _test(settings) -> str:
    engine = SyncEngine(settings, CacheStore(settings.user_id, Database(settings.database_path)))
    try:
        return (await engine.test_connection("followupboss")).message
    finally:
        await engine.aclose()
        engine.store.db.close()


@pytest.mark.usefixtures("no_retry_sleep")
async def test_a_closed_port_names_the_address_and_the_refusal(tmp_path: Path) -> None:
    with refusing_port() as port:
        settings = _fub(tmp_path, fub_api_base_url=f"http://127.0.0.1:{port}/v1")
        assert await _test(settings) == f"cannot connect to 127.0.0.1:{port} (connection refused)"


@pytest.mark.usefixtures("no_retry_sleep")
async def test_a_hanging_server_says_how_long_it_was_given(tmp_path: Path) -> None:
    with _hanging_server() as port:
        settings = _fub(
            tmp_path, fub_api_base_url=f"http://127.0.0.1:{port}/v1", crm_http_timeout_seconds=0.3
        )
        assert await _test(settings) == "the server did not answer within 0.3 s"


@respx.mock
@pytest.mark.usefixtures("no_retry_sleep")
async def test_network_errors_are_never_auth_errors(tmp_path: Path) -> None:
    settings = _fub(tmp_path, fub_api_base_url="https://fub.example/v1")
    route = respx.get("https://fub.example/v1/people")
    route.side_effect = httpx.ConnectError("connection failed")
    assert await _test(settings) == "cannot connect to fub.example:443 (connection failed)"
    route.side_effect = httpx.ReadTimeout("timed out")
    assert await _test(settings) == "the server did not answer within 15 s"


@pytest.mark.usefixtures("no_retry_sleep")
async def test_a_host_name_that_does_not_resolve_is_named(tmp_path: Path) -> None:
    settings = _fub(tmp_path, fub_api_base_url="https://fub.invalid/v1")  # never resolves
    assert await _test(settings) == (
        "cannot connect to fub.invalid:443 (no such host name: check the base URL)"
    )


@respx.mock
async def test_a_refused_key_names_the_setting_and_the_file_it_is_in(tmp_path: Path) -> None:
    env_file = config_dir() / ".env"
    env_file.parent.mkdir(parents=True)
    env_file.write_text("# mine\nFUB_API_KEY=fub-test-key-12345\n")
    settings = _fub(tmp_path, fub_api_base_url="https://fub.example/v1")
    respx.get("https://fub.example/v1/people").respond(
        401, json={"errorMessage": "Invalid API key fub-test-key-12345", "code": 401}
    )
    message = await _test(settings)
    assert message == (
        f"the API key was refused: check FUB_API_KEY in {env_file}\nInvalid API key ********"
    )
    respx.get("https://fub.example/v1/people").respond(422, json={"errors": [{"x": 1}]})
    assert await _test(settings) == "the server answered HTTP 422"  # never raw JSON


@respx.mock
async def test_a_refused_key_in_the_app_says_the_name_once_and_what_to_fix(tmp_path) -> None:
    settings = _fub(tmp_path, fub_api_base_url="https://fub.example/v1")
    respx.get(url__startswith="https://fub.example/v1/").respond(
        401, json={"errorMessage": "Invalid API key"}
    )
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded)
        app.sync_source("followupboss")
        await until(pilot, lambda: any("refused" in str(n.message) for n in app._notifications))
        [toast] = [str(n.message) for n in app._notifications if "refused" in str(n.message)]
    assert toast.startswith("Follow Up Boss: the API key was refused: set FUB_API_KEY in ")
    assert toast.endswith("\nInvalid API key")
    assert toast.count("Follow Up Boss") == 1 and "contacts:" not in toast


# -- one notice after syncing everything ----------------------------------------------------


async def test_sync_all_gives_one_notice_and_local_adds_none(tmp_path, demo_servers) -> None:
    env = {k.lower(): v for k, v in demo_servers.env().items()}
    env["fub_api_key"] = "refused-key-000"
    app = make_app(make_settings(tmp_path, **env), sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded)
        await pilot.press("a")
        await until(pilot, lambda: app._batch is None and not app.engine.running(), within=60)
        await idle(pilot)
        messages = [str(n.message) for n in app._notifications]
    synced = [m for m in messages if "synced" in m or "failed" in m or "Local" in m]
    assert synced == [
        f"{len(app.engine.enabled()) - 2} sources synced, 1 failed:"
        " Follow Up Boss: the API key was refused (FUB_API_KEY)"
    ]


# -- People: merging a cluster whose names differ, the compare view at 80 and 200 --------------


async def _open_flagged_cluster(pilot, app) -> None:
    await until(pilot, lambda: app.loaded and not app.engine.running(), within=60)
    await until(pilot, lambda: bool(app.review.sections.get("names_differ")), within=30)
    await pilot.press("f6", "v", "enter")
    await until(pilot, lambda: isinstance(app.screen, ClusterScreen))


async def test_merging_names_that_differ_shows_the_merged_record_first(synced_settings) -> None:
    app = make_app(synced_settings, sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_flagged_cluster(pilot, app)
        plan = app.screen.plan
        before = app.store.count("contacts", "local")
        await pilot.press("m")
        await idle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        question = app.screen.question
        assert "their names differ" in question and "The merged record will be:" in question
        assert f"  first name: {plan['first_name'].value}" in question
        assert f"  email: {plan['email'].value}"[:40] in question
        assert len(question.splitlines()) <= 14  # with its buttons, inside 24 rows
        await pilot.press("n")
        await idle(pilot)
        assert app.store.count("contacts", "local") == before


async def test_the_compare_view_scrolls_by_record_at_80_and_shows_all_at_200(
    demo_settings,
) -> None:
    app = make_app(demo_settings, sync_on_start=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_flagged_cluster(pilot, app)
        screen = app.screen
        table = screen.query_one("#compare", DataTable)
        records = len(screen.records)
        width, fit = record_columns(table.size.width, records)
        assert fit == 1 and width >= 20
        assert table.fixed_columns == 2  # the field names and the merged record stay
        widths = sum(c.get_render_width(table) for c in table.ordered_columns[: 2 + fit])
        assert widths <= table.size.width  # the merged record and one record, uncut
        assert "←/→ for the others" in str(screen.query_one("#cluster-title").render())
        await pilot.press("right")
        start = table.scroll_x
        await pilot.press(*["right"] * records)
        assert table.cursor_coordinate.column == 1 + records  # the last record
        assert table.scroll_x > start  # scrolled to it
    app = make_app(demo_settings, sync_on_start=False, sync_stale=False)
    async with app.run_test(size=(200, 50)) as pilot:
        await _open_flagged_cluster(pilot, app)
        table = app.screen.query_one("#compare", DataTable)
        width, fit = record_columns(table.size.width, len(app.screen.records))
        assert fit == len(app.screen.records)
        assert table.ordered_columns[2].width == width > 20  # wider than at 80
        total = sum(c.get_render_width(table) for c in table.ordered_columns)
        assert total <= table.size.width < total + (fit + 1) * 3  # the width it has, used


# -- the six screens as tabs ------------------------------------------------------------------


def _tabs(app) -> tuple[str, list[str]]:
    tabs = app.screen.query_one(ModeTabs)
    text = tabs.render()
    current = [text.plain[s.start : s.end].strip() for s in text.spans if "reverse" in str(s.style)]
    return text.plain, current


@pytest.mark.parametrize("size", [(80, 24), (200, 50), (60, 20)])
async def test_the_tabs_show_every_screen_and_the_current_one(settings, size) -> None:
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.loaded)
        for key, mode in [
            ("f1", "status"),
            ("f3", "browse"),
            ("f6", "people"),
            ("f5", "connections"),
        ]:
            await pilot.press(key)
            await idle(pilot)
            assert app.current_mode == mode
            plain, current = _tabs(app)
            assert len(plain) <= size[0]
            for n in range(1, 8):
                assert f"F{n} " in plain or size[0] < 75
            names = next(t[1:] for t in TABS if t[0] == mode)
            shown = current[0].split(" ", 1)[1]
            assert len(current) == 1 and any(name.startswith(shown) for name in names)
        if size[0] >= 80:  # the longest names give way first: Connections, then Pipeline
            assert "F4 Audit" in plain and "F6 People" in plain and "F7 Pipe" in plain
        if size[0] >= 90:
            assert "F5 Connections" in plain and "F7 Pipeline" in plain


async def test_clicking_a_tab_opens_its_screen(settings) -> None:
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.loaded)
        plain, _ = _tabs(app)
        await pilot.click(ModeTabs, offset=(plain.index("F4 Audit") + 2, 0))
        await idle(pilot)
        assert app.current_mode == "audit"
        assert _tabs(app)[1] == ["F4 Audit"]
        plain, _ = _tabs(app)
        await pilot.click(ModeTabs, offset=(plain.index("F2 Search") + 1, 0))
        await idle(pilot)
        assert app.current_mode == "search"


# -- empty states and first-run setup ---------------------------------------------------------


async def test_no_source_configured_says_where_and_what_and_how_to_start(settings) -> None:
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.loaded)
        welcome = app.screen.query_one("#getting-started")
        assert welcome.display
        text = str(welcome.render())
        assert str(config_dir() / ".env") in text.replace("\n", "")
        for variable in ("BRIVITY_API_KEY", "FUB_API_KEY", "HUBSPOT_ACCESS_TOKEN", "LOFTY_API_KEY"):
            assert variable in text
        assert "crm-tui --demo" in text and "k sets one up here" in text
        await pilot.press("k")
        await idle(pilot)
        assert isinstance(app.screen, SetupScreen)


async def test_people_says_why_it_is_empty(settings) -> None:
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.loaded)
        await pilot.press("f6")
        await idle(pilot)
        summary = str(app.screen.query_one("#people-summary").render())
        assert "Nothing synced yet" in summary and "F1, then a" in summary
        await app.local.add("contacts", {"first_name": "Ann", "last_name": "Lee"})
        await until(
            pilot,
            lambda: (
                not any(w.group == "people" and not w.is_finished for w in app.workers)
                and app.store.count("contacts")
            ),
        )
        app.screen.refresh_data()
        await idle(pilot)
        summary = str(app.screen.query_one("#people-summary").render())
        assert "No duplicates found among 1 contacts" in summary


@respx.mock
async def test_setup_tests_in_place_and_saves_a_private_env_without_echoing(settings) -> None:
    secret = "fub-secret-key-4242"
    env_file = config_dir() / ".env"
    env_file.parent.mkdir(parents=True)
    env_file.write_text("# my settings\nCRM_PHONE_REGION=US\nFUB_API_KEY=old-one\n")
    env_file.chmod(0o644)
    people = respx.get("https://api.followupboss.com/v1/people").respond(
        json={"_metadata": {"total": 3}, "people": []}
    )
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.loaded)
        await pilot.press("f5")
        await idle(pilot)
        table = app.screen.query_one("#connections", DataTable)
        table.move_cursor(row=[str(k.value) for k in table.rows].index("followupboss"))
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        screen = app.screen
        assert screen.source == "followupboss"
        key_input = screen.query_one("#env-FUB_API_KEY", Input)
        assert key_input.password and app.focused is key_input  # the key first, hidden
        await pilot.press(*secret, "ctrl+t")
        await until(pilot, lambda: people.called)
        await until(pilot, lambda: "connected" in str(screen.query_one("#setup-result").render()))
        assert people.calls[-1].request.headers["authorization"].startswith("Basic ")
        await pilot.press("ctrl+s")
        await idle(pilot)
        assert key_input.value == ""  # gone from the screen once saved
        shown = " ".join(str(w.render()) for w in screen.query("Static, Label"))
        notes = " ".join(str(n.message) for n in app._notifications)
        assert secret not in shown + notes
        assert "Saved FUB_API_KEY to" in notes
        assert app.settings.source_config("followupboss").enabled
        assert "followupboss" in app.engine.enabled()
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert env_file.read_text() == (f"# my settings\nCRM_PHONE_REGION=US\nFUB_API_KEY={secret}\n")


async def test_the_syncs_a_start_makes_end_in_one_notice(demo_settings) -> None:
    app = make_app(demo_settings)  # every source is stale: each syncs as the app opens
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded)
        # the syncs start once the cache is loaded: wait for them to begin, then to end
        await until(pilot, lambda: app._batch is not None or app.engine.running(), within=60)
        await until(pilot, lambda: app._batch is None and not app.engine.running(), within=60)
        await idle(pilot)
        messages = [str(n.message) for n in app._notifications]
    remote = len(app.engine.enabled()) - 1  # Local says nothing
    assert [m for m in messages if "synced" in m] == [f"{remote} sources synced"]


def slow_app(tmp_path: Path, servers: DemoServers) -> CrmApp:
    """The app on demo servers that answer late: syncs that are still running."""
    env = {k.lower(): v for k, v in servers.env().items()}
    return make_app(make_settings(tmp_path, **env), sync_stale=False)


@pytest.mark.parametrize("faulty_servers", [Faults(latency=1.0)], indirect=True)
async def test_quitting_during_several_syncs_names_them_in_one_question(
    tmp_path: Path, faulty_servers: DemoServers
) -> None:
    app = slow_app(tmp_path, faulty_servers)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.loaded)
        app.sync_source("followupboss")
        app.sync_source("brivity")
        await until(pilot, lambda: len(app.engine.running()) == 2)
        await pilot.press("q")
        assert app.screen.question == (
            "Syncs of Brivity and Follow Up Boss are running: quit and cancel them?"
        )
        await pilot.press("y")
        await until(pilot, lambda: app._exit)


@pytest.mark.parametrize("value", ["abc", "a b#c", "it's", 'q"x\\y', "x=y", "tab\there"])
def test_a_saved_value_reads_back_unchanged_and_other_lines_stay(tmp_path, value) -> None:
    path = tmp_path / "cfg" / ".env"
    path.parent.mkdir()
    path.write_text("# keep me\nexport FUB_API_KEY=old\nA=1\nFUB_API_KEY=older\n")
    save_settings(path, {"FUB_API_KEY": value})
    assert read_env_file(path) == {"fub_api_key": value, "a": "1"}
    assert path.read_text().startswith("# keep me\nFUB_API_KEY=")
    assert path.stat().st_mode & 0o777 == 0o600


@given(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
)
@hypothesis.example("\n")  # a plain-looking value with a final newline lost it
@hypothesis.example("key\n")
@hypothesis.settings(max_examples=200, deadline=None)
def test_any_saved_value_reads_back_exactly(value) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ".env"
        path.write_text('# keep\nB="multi\nFUB_API_KEY=inside"\nFUB_API_KEY=old\n')
        save_settings(path, {"FUB_API_KEY": value})
        expected = {"b": "multi\nFUB_API_KEY=inside"}
        if value:  # an empty value means unset, as everywhere in crm-tui
            expected["fub_api_key"] = value
        assert read_env_file(path) == expected


def test_a_symlinked_env_is_written_where_it_points(tmp_path) -> None:
    real = tmp_path / "dotfiles" / "env"
    real.parent.mkdir()
    real.write_text("A=1\n")
    link = tmp_path / ".env"
    link.symlink_to(real)
    save_settings(link, {"FUB_API_KEY": "k"})
    assert link.is_symlink() and read_env_file(real) == {"a": "1", "fub_api_key": "k"}


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ('{"errorMessage": "Invalid API key"}', "Invalid API key"),
        ('{"status": "error", "message": "Bad\\n[red]token[/red]"}', "Bad [red]token[/red]"),
        ('{"errors": [{"detail": "expired"}]}', "expired"),
        ('{"error": {"message": "nope"}}', "nope"),
        ('{"correlationId": "x"}', ""),
        ("<html><body>502 Bad Gateway</body></html>", ""),
        ("Bad Credentials", "Bad Credentials"),
    ],
)
def test_the_vendors_message_is_one_clean_line_never_raw_json(body, said) -> None:
    assert vendor_said(body) == said


@respx.mock
async def test_setup_never_sends_a_typed_key_where_a_folders_env_points(
    settings, tmp_path, monkeypatch
) -> None:
    folder = tmp_path / "cloned-repo"
    folder.mkdir()
    (folder / ".env").write_text("FUB_API_BASE_URL=https://evil.example/v1\n")
    monkeypatch.chdir(folder)
    evil = respx.route(host="evil.example").respond(json={"people": []})
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.loaded)
        app.open_setup("followupboss")
        await until(pilot, lambda: isinstance(app.screen, SetupScreen))
        screen = app.screen
        await pilot.press(*"real-key-123", "ctrl+t")
        await idle(pilot)
        said = str(screen.query_one("#setup-result").render())
        assert "FUB_API_BASE_URL comes from" in said and "what you typed" in said
        await pilot.press("ctrl+s")
        await idle(pilot)
    assert not evil.called
    assert not (config_dir() / ".env").exists()  # nothing saved either


@pytest.mark.parametrize("faulty_servers", [Faults(latency=1.0)], indirect=True)
async def test_a_source_cancelled_during_sync_all_is_told_as_cancelled_not_failed(
    tmp_path: Path, faulty_servers: DemoServers
) -> None:
    app = slow_app(tmp_path, faulty_servers)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.loaded)
        app.sync_all()
        await until(pilot, lambda: app.engine.is_running("followupboss"))
        assert app.cancel_sync("followupboss")
        await until(pilot, lambda: app._batch is None and not app.engine.running(), within=60)
        await idle(pilot)
        [notice] = [str(n.message) for n in app._notifications if "synced" in str(n.message)]
    assert "1 cancelled" in notice and "Follow Up Boss" not in notice.partition("failed")[2]
    assert "did not finish" not in notice


async def test_the_schedules_sync_all_is_quiet_unless_something_failed(demo_settings) -> None:
    app = make_app(demo_settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded)
        app.sync_all_scheduled()
        await until(pilot, lambda: app._batch is None and not app.engine.running(), within=60)
        await idle(pilot)
        assert not [n for n in app._notifications if "synced" in str(n.message)]
        assert app.store.count("contacts") > 0  # it did sync
        app.sync_all()  # a person pressed `a`: told
        await until(pilot, lambda: app._batch is None and not app.engine.running(), within=60)
        await idle(pilot)
        assert [n for n in app._notifications if "synced" in str(n.message)]


def test_a_time_under_a_minute_away_is_not_just_now() -> None:
    from datetime import UTC, datetime, timedelta

    from crm_tui.timefmt import relative

    now = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)

    def stamp(seconds: int) -> str:
        return (now + timedelta(seconds=seconds)).isoformat()

    assert relative(stamp(56), now) == "in 1 min"
    assert relative(stamp(-56), now) == "1 min ago"
    assert relative(stamp(10), now) == "in a moment" and relative(stamp(-10), now) == "just now"
    assert relative(stamp(-600), now) == "10 min ago"


def ended_pid() -> int:
    """The pid of a process that has ended (a cron sync, killed)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


async def test_the_open_app_marks_a_run_whose_process_died_without_a_restart(settings) -> None:
    dead_pid = ended_pid()
    app = make_app(settings, sync_stale=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.loaded)
        path = settings.database_path
        with sqlite3.connect(path) as conn:  # begun after the app opened the database
            _owner(conn, Owner("cron", "me", _machine(), dead_pid, "1"), time.time())
            run_id = _open_run(conn, "followupboss", "cron")
        app._sweep_runs()  # what the minute's timer does
        await until(pilot, lambda: not any(w.group == "sweep" for w in app.workers))
        with sqlite3.connect(path) as conn:
            outcome = conn.execute(
                "SELECT outcome FROM sync_runs WHERE id = ?", (run_id,)
            ).fetchone()[0]
    assert outcome == "interrupted"


def test_a_key_typed_into_setup_is_masked_by_the_log_files_filter(settings) -> None:
    import logging

    from crm_tui.logs import SecretFilter, SecretMasker
    from crm_tui.screens.setup import with_values

    handler = logging.NullHandler()
    handler.addFilter(log_filter := SecretFilter(SecretMasker()))
    logging.getLogger("crm_tui").addHandler(handler)  # where setup_logging puts the file's
    try:
        app = make_app(settings, sync_stale=False)
        app._mask_everywhere(with_values(settings, {"FUB_API_KEY": "typed-key-9876"}))
        assert "typed-key-9876" not in log_filter.masker("sent typed-key-9876")
    finally:
        logging.getLogger("crm_tui").removeHandler(handler)
