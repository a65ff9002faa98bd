"""mappings.toml changed from the program: one entry set or removed, the rest of the file
kept to the byte; refusals say why and write nothing; saves from two processes both land."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from crm_tui.config import ConfigError
from crm_tui.custom_columns import Column
from crm_tui.sources.mapping import load_mappings
from crm_tui.sources.mapping_file import (
    MappingRefused,
    Saved,
    read_mappings,
    remove_column,
    remove_mapping,
    save_column,
    save_mapping,
)

HAND_WRITTEN = """\
# My mappings: hand-written, keep my notes.
[followupboss.contacts]  # FUB people
company = "customCompanyName"   # the company
custom.budget = "customBudget"

# Columns people see
[columns.lender]
label = "Lender"   # shown in Browse
type = "text"
note = "ask Dana"     # a key crm-tui does not read

[hubspot.deals]
name = "properties.dealname"
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    file = tmp_path / "mappings.toml"
    file.write_text(HAND_WRITTEN)
    return file


def test_a_mapping_added_and_removed_leaves_the_file_as_it_was(path):
    save_mapping(
        path,
        "followupboss",
        "contacts",
        "custom.lender",
        "customLender",
        Column("lender", "Lender", "text"),
    )
    assert path.read_text() == HAND_WRITTEN.replace(
        'custom.budget = "customBudget"\n',
        'custom.budget = "customBudget"\n"custom.lender" = "customLender"\n',
    )
    remove_mapping(path, "followupboss", "contacts", "custom.lender")
    assert path.read_text() == HAND_WRITTEN


def test_a_new_table_goes_at_the_end_and_comes_out_again(path):
    save_mapping(
        path, "pipedrive", "deals", "custom.mls", "custom_fields.abc", Column("mls", "MLS", "text")
    )
    assert path.read_text() == HAND_WRITTEN + (
        '\n[pipedrive.deals]\n"custom.mls" = "custom_fields.abc"\n'
        '\n[columns.mls]\nlabel = "MLS"\ntype = "text"\n'
    )
    remove_mapping(path, "pipedrive", "deals", "custom.mls")
    remove_column(path, "mls")
    assert path.read_text() == HAND_WRITTEN


def test_values_change_where_they_stand_with_their_comments(path):
    save_mapping(path, "followupboss", "contacts", "company", "customBrokerage")
    save_mapping(path, "followupboss", "contacts", "custom.budget", "customPriceRange")
    save_column(path, Column("lender", "Mortgage lender", "list"))
    assert path.read_text() == (
        HAND_WRITTEN.replace('"customCompanyName"   # the', '"customBrokerage"   # the')
        .replace('custom.budget = "customBudget"', 'custom.budget = "customPriceRange"')
        .replace('label = "Lender"   #', 'label = "Mortgage lender"   #')
        .replace('type = "text"', 'type = "list"')
    )
    mappings = load_mappings(path)
    assert mappings.columns["lender"] == Column("lender", "Mortgage lender", "list")
    assert mappings.overrides["followupboss"]["contacts"]["custom.budget"] == "customPriceRange"


def test_a_dotted_custom_key_is_removed_where_it_is(path):
    remove_mapping(path, "followupboss", "contacts", "custom.budget")
    assert path.read_text() == HAND_WRITTEN.replace('custom.budget = "customBudget"\n', "")


def test_tables_written_in_several_places_are_edited_in_place(tmp_path):
    path = tmp_path / "mappings.toml"
    text = (
        "[followupboss.contacts]\n"
        'custom.budget = "b"\n'
        'custom.lender = "l"\n'
        "[columns.budget]\n"
        'type = "money"\n'
        "[followupboss.deals]\n"  # followupboss again, after another table
        'name = "n"\n'
    )
    path.write_text(text)
    save_mapping(path, "followupboss", "contacts", "custom.budget", "b2")
    save_mapping(path, "followupboss", "deals", "custom.mls", "mls")
    assert path.read_text() == text.replace('"b"', '"b2"').replace(
        'name = "n"\n', 'name = "n"\n"custom.mls" = "mls"\n'
    )
    remove_mapping(path, "followupboss", "contacts", "custom.lender")
    remove_mapping(path, "followupboss", "deals", "custom.mls")
    assert path.read_text() == text.replace('"b"', '"b2"').replace('custom.lender = "l"\n', "")
    assert load_mappings(path).overrides["followupboss"] == {
        "contacts": {"custom.budget": "b2"},
        "deals": {"name": "n"},
    }


def test_a_table_with_a_persons_comment_is_kept_when_emptied(path):
    remove_mapping(path, "followupboss", "contacts", "company")
    remove_mapping(path, "followupboss", "contacts", "custom.budget")
    text = path.read_text()
    assert "[followupboss.contacts]  # FUB people\n" in text
    assert "# Columns people see\n" in text
    assert (
        "followupboss" not in load_mappings(path).overrides
        or not (load_mappings(path).overrides["followupboss"]["contacts"])
    )


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("zillow", "contacts", "company", "x"), "unknown source 'zillow'"),
        (("followupboss", "leads", "company", "x"), "unknown stream 'leads'"),
        (("followupboss", "contacts", "nickname", "x"), "nickname: unknown field"),
        (("followupboss", "contacts", "raw", "x"), "raw: unknown field"),
        (("followupboss", "contacts", "company", "a..b"), "company: not a path"),
        (("followupboss", "contacts", "company", "emails[x]"), "company: not a path"),
        (("followupboss", "contacts", "company", ""), "company: not a path"),
        (("followupboss", "contacts", "custom.my-col", "x"), "custom.my-col: a custom column"),
        (("followupboss", "contacts", "custom.", "x"), "custom.: a custom column"),
    ],
)
def test_invalid_entries_are_refused_with_the_reason_and_nothing_written(path, args, reason):
    with pytest.raises(MappingRefused) as refused:
        save_mapping(path, *args)
    assert reason in str(refused.value)
    assert "\n" not in str(refused.value)
    assert path.read_text() == HAND_WRITTEN


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        (Column("lender", "Lender", "currency"), "type: 'currency' is not one of"),
        (Column("lender", " ", "text"), "label: not a name"),
        (Column("lender", "Lender\x1b[2J", "text"), "label: not a name"),
    ],
)
def test_a_bad_column_declaration_is_refused(path, column, reason):
    with pytest.raises(MappingRefused) as refused:
        save_mapping(path, "followupboss", "contacts", "custom.lender", "x", column)
    assert reason in str(refused.value)
    with pytest.raises(MappingRefused, match=r"custom\.lender"):
        save_mapping(path, "followupboss", "contacts", "custom.other", "x", Column("lender", "L"))
    assert path.read_text() == HAND_WRITTEN


def test_the_callers_check_can_refuse_after_reading_what_the_file_would_say(path):
    seen = []

    def refuse(mappings):
        seen.append(mappings.overrides["followupboss"]["contacts"]["remote_id"])
        raise MappingRefused("most records would have no id")

    with pytest.raises(MappingRefused, match="no id"):
        save_mapping(path, "followupboss", "contacts", "remote_id", "nothing", check=refuse)
    assert seen == ["nothing"]
    assert path.read_text() == HAND_WRITTEN


def test_a_broken_file_is_named_and_never_overwritten(path):
    """A problem the file has already is the file's (ConfigError, exit 3, as every reader of
    it says), not the change's (MappingRefused, exit 2)."""
    path.write_text("[followupboss.contacts\ncompany = 1\n")
    with pytest.raises(ConfigError, match=str(path)):
        save_mapping(path, "followupboss", "contacts", "company", "x")
    path.write_text('[fub.contacts]\ncompany = "x"\n')  # parses, but an unknown source
    with pytest.raises(ConfigError, match="line 1: unknown source 'fub'") as broken:
        save_mapping(path, "followupboss", "contacts", "company", "x")
    with pytest.raises(ConfigError) as read:
        read_mappings(path)
    assert str(broken.value) == str(read.value)  # the same words as a sync would say
    for change in (
        lambda: remove_mapping(path, "followupboss", "contacts", "company"),
        lambda: save_column(path, Column("lender", "Lender", "text")),
        lambda: remove_column(path, "lender"),
    ):
        with pytest.raises(ConfigError, match="unknown source 'fub'"):
            change()
    assert path.read_text() == '[fub.contacts]\ncompany = "x"\n'


def test_removing_a_column_takes_its_whole_table_out(path):
    """`[columns.lender]` has a key crm-tui does not read (`note`): the declaration goes with
    it, or the column would still be read (as text); the comment above its header stays."""
    remove_column(path, "lender")
    assert "lender" not in load_mappings(path).columns
    assert path.read_text() == HAND_WRITTEN.replace(
        '[columns.lender]\nlabel = "Lender"   # shown in Browse\ntype = "text"\n'
        'note = "ask Dana"     # a key crm-tui does not read\n\n',
        "",
    )


def test_a_symlinked_file_is_written_where_it_points(tmp_path):
    """A dotfile manager's link stays a link, as with the .env file."""
    real = tmp_path / "dotfiles" / "mappings.toml"
    real.parent.mkdir()
    real.write_text(HAND_WRITTEN)
    real.chmod(0o640)
    link = tmp_path / "config" / "mappings.toml"
    link.parent.mkdir()
    link.symlink_to(real)
    save_mapping(link, "hubspot", "deals", "name", "properties.title")
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert 'name = "properties.title"' in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert [p.name for p in link.parent.iterdir()] == ["mappings.toml"]  # no lock, no temp


def test_crlf_line_endings_stay_crlf(tmp_path):
    path = tmp_path / "mappings.toml"
    crlf = HAND_WRITTEN.replace("\n", "\r\n").encode()
    path.write_bytes(crlf)
    save_mapping(path, "pipedrive", "deals", "custom.mls", "custom_fields.abc")
    save_mapping(path, "followupboss", "contacts", "company", "customBrokerage")
    data = path.read_bytes()
    assert b"\n" not in data.replace(b"\r\n", b"") and b'"custom.mls"' in data
    assert load_mappings(path).overrides["followupboss"]["contacts"]["company"] == (
        "customBrokerage"
    )
    save_mapping(path, "followupboss", "contacts", "company", "customCompanyName")
    remove_mapping(path, "pipedrive", "deals", "custom.mls")
    assert path.read_bytes() == crlf  # to the byte


def test_a_save_can_be_undone_unless_another_landed_since(path, tmp_path):
    saved: list[Saved] = []
    save_mapping(path, "followupboss", "contacts", "company", "x", saved=saved)
    assert saved[0].undo() is True
    assert path.read_text() == HAND_WRITTEN  # comments and all
    saved.clear()
    save_mapping(path, "followupboss", "contacts", "company", "x", saved=saved)
    save_mapping(path, "hubspot", "deals", "name", "y")  # another save, after it
    assert saved[0].undo() is False
    assert 'company = "x"' in path.read_text() and 'name = "y"' in path.read_text()
    fresh = tmp_path / "new" / "mappings.toml"
    remove: list[Saved] = []
    save_mapping(fresh, "lofty", "contacts", "company", "a", saved=remove)
    assert remove[0].undo() is True and not fresh.exists()  # there was no file


def test_removing_what_is_not_there_says_so(path):
    with pytest.raises(MappingRefused, match="does not map email"):
        remove_mapping(path, "followupboss", "contacts", "email")
    with pytest.raises(MappingRefused, match="no column 'budget'"):
        remove_column(path, "budget")


def test_the_files_mode_is_kept_and_a_new_file_is_private(path, tmp_path):
    path.chmod(0o644)
    save_mapping(path, "followupboss", "contacts", "company", "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    fresh = tmp_path / "config" / "mappings.toml"
    old = os.umask(0)
    try:
        save_mapping(fresh, "lofty", "contacts", "custom.x", "a")
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700
    assert fresh.read_text() == '[lofty.contacts]\n"custom.x" = "a"\n'
    assert [p.name for p in fresh.parent.iterdir() if p.name.startswith(".mappings.toml.")] == [
        ".mappings.toml.lock"
    ]  # no temporary file left behind


def _save_many(path: str, worker: int, count: int) -> None:
    for n in range(count):
        save_mapping(
            Path(path),
            "followupboss",
            "contacts",
            f"custom.w{worker}_{n}",
            f"field{worker}_{n}",
            Column(f"w{worker}_{n}", f"Worker {worker} #{n}", "text"),
        )


def test_two_processes_saving_at_once_both_land(path):
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_save_many, args=(str(path), w, 15)) for w in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    mappings = load_mappings(path)
    mapped = mappings.overrides["followupboss"]["contacts"]
    for w in (1, 2):
        for n in range(15):
            assert mapped[f"custom.w{w}_{n}"] == f"field{w}_{n}"
            assert mappings.columns[f"w{w}_{n}"].label == f"Worker {w} #{n}"
    text = path.read_text()
    for line in HAND_WRITTEN.splitlines():
        assert line in text  # every hand-written line, comments included
