"""mappings.toml and keymap.toml: every problem names the file and the line, and the CLI
stops with the configuration exit code (3) before doing anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crm_tui.app import check_keymap, known_binding_ids, load_keymap, make_app
from crm_tui.config import config_dir
from crm_tui.sources.mapping import check_mappings, load_overrides
from crm_tui.sources.registry import SOURCE_NAMES
from crm_tui.tomlfile import key_line
from tests.helpers.env import make_settings
from tests.helpers.tui import idle

MAPPINGS = """\
# custom fields
[followupboss.contacts]
company = "customCompanyName"

[fub.contacts]
company = "x"
"""


def crm(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crm_tui", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CRM_DATA_DIR": str(Path.cwd().parent / "data")},
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


def config_file(name: str, text: str) -> Path:
    path = config_dir() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- mappings.toml -------------------------------------------------------------------------


def test_an_unknown_source_in_mappings_names_the_file_and_line(tmp_path):
    path = tmp_path / "mappings.toml"
    path.write_text(MAPPINGS)
    assert check_mappings(path) == [
        f"{path}, line 5: unknown source 'fub'; known sources: {', '.join(SOURCE_NAMES)}"
    ]
    with pytest.raises(ValueError, match=r"line 5: unknown source 'fub'"):
        load_overrides(path)


def test_every_problem_in_mappings_is_listed_with_its_line(tmp_path):
    path = tmp_path / "mappings.toml"
    path.write_text(
        'zillow.contacts.name = "d"\n'
        '[brivity.contacts]\ncompany = "a"\n  nickname = "b"\n\n'
        '[local.leads]\nname = "c"\n'
    )
    problems = check_mappings(path)
    assert problems == [
        f"{path}, line 1: unknown source 'zillow'; known sources: {', '.join(SOURCE_NAMES)}",
        f"{path}, line 4: [brivity.contacts] nickname: unknown field"
        " (a custom column is custom.NAME)",
        f"{path}, line 6: [local.leads]: stream must be contacts or deals",
    ]
    assert check_mappings(tmp_path / "absent.toml") == []


@pytest.mark.parametrize("command", [("sync", "--json"), ("test-connection", "--json")])
def test_every_command_that_maps_records_stops_with_exit_3(command):
    path = config_file("mappings.toml", MAPPINGS)
    result = crm(*command)
    assert result.returncode == 3, result.stdout + result.stderr
    body = json.loads(result.stdout)
    assert f"{path}, line 5: unknown source 'fub'" in body["details"]


def test_the_app_does_not_start_over_a_bad_mappings_file():
    path = config_file("mappings.toml", MAPPINGS)
    result = crm(timeout=30)
    assert result.returncode == 3
    assert f"{path}, line 5: unknown source 'fub'" in result.stderr


# -- keymap.toml ---------------------------------------------------------------------------


def test_known_binding_ids_cover_the_app_its_screens_and_widgets():
    ids = known_binding_ids()
    assert {"mode.search", "app.quit", "status.sync", "local.new", "form.save"} <= ids
    assert {"table.open", "cluster.merge", "confirm.yes", "detail.copy"} <= ids


def test_unknown_binding_ids_and_bad_values_name_the_file_and_line(tmp_path):
    path = tmp_path / "keymap.toml"
    path.write_text(
        '# my keys\n"mode.search" = "f12"\n"mode.serach" = "f11"\n"status.sync" = 5\n'
        '"nothing.like.it" = "x"\n'
    )
    keymap, problems = load_keymap(path)
    assert keymap == {"mode.search": "f12"}
    assert problems[0] == (
        f"{path}, line 3: unknown binding id 'mode.serach'; did you mean 'mode.search'?"
    )
    assert problems[1] == (
        f'{path}, line 4: \'status.sync\' needs keys as a string, such as "f12" or "ctrl+s,f5"'
    )
    assert problems[2].startswith(f"{path}, line 5: unknown binding id 'nothing.like.it'; known:")
    assert "mode.people" in problems[2]
    assert len(problems) == 3


def test_dotted_keys_without_quotes_are_binding_ids_too(tmp_path):
    path = tmp_path / "keymap.toml"
    path.write_text('mode.search = "f12"\n[table]\nopen = "o"\n')
    assert load_keymap(path) == ({"mode.search": "f12", "table.open": "o"}, [])
    path.write_text('[table]\nopne = "o"\n')
    assert check_keymap(path) == [
        f"{path}, line 2: unknown binding id 'table.opne'; did you mean 'table.open'?"
    ]


def test_a_broken_keymap_file_is_one_problem(tmp_path):
    path = tmp_path / "keymap.toml"
    path.write_text('"mode.search" = \n')
    (problem,) = check_keymap(path)
    assert problem.startswith(f"{path}: ") and "line 1" in problem


def test_the_app_does_not_start_over_an_unknown_binding_id():
    path = config_file("keymap.toml", '"mode.search" = "f12"\n\n"mode.serch" = "f11"\n')
    result = crm(timeout=30)
    assert result.returncode == 3
    assert (
        f"error: Configuration error: {path}, line 3: unknown binding id 'mode.serch'"
        in result.stderr
    )


async def test_an_app_built_directly_applies_the_good_bindings_and_says_what_it_left(tmp_path):
    config_file("keymap.toml", 'mode.search = "f12"\n"mode.nope" = "f11"\n')
    app = make_app(make_settings(tmp_path), sync_stale=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("f12")
        await idle(pilot)
        assert app.current_mode == "search"
        notes = [str(n.message) for n in app._notifications]
        assert any("unknown binding id 'mode.nope'" in note for note in notes)


def test_key_line_finds_headers_dotted_and_quoted_keys():
    text = '[a.b]\nc = 1\n"d.e" = 2\n[x]\ny.z = 3\n'
    assert key_line(text, ("a",)) == 1
    assert key_line(text, ("a", "b", "c")) == 2
    assert key_line(text, ("a", "b", "d.e")) == 3
    assert key_line(text, ("x", "y", "z")) == 5
    assert key_line(text, ("q",)) is None
