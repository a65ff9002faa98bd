"""One mapping change as the Mapping screen makes it: the maps it would give, its undo."""

from __future__ import annotations

from pathlib import Path

from crm_tui.custom_columns import Column
from crm_tui.fields.edit import Edit, edited, undo
from crm_tui.fields.service import current_mappings
from crm_tui.sources.mapping_file import save_column, save_mapping

LENDER = Column("lender", "Lender")


def test_edited_leaves_the_original_alone() -> None:
    before = current_mappings(Path("/nonexistent/mappings.toml"))
    edit = Edit("followupboss", "contacts", "custom.lender", "customLender", LENDER)
    after = edited(before, edit)
    assert after.overrides == {"followupboss": {"contacts": {"custom.lender": "customLender"}}}
    assert after.columns == {"lender": LENDER}
    assert before.overrides == {} and before.columns == {}
    unmapped = edited(after, Edit("followupboss", "contacts", "custom.lender", None))
    assert unmapped.overrides == {"followupboss": {"contacts": {}}}


def test_undo_puts_back_a_new_column_and_mapping(tmp_path: Path) -> None:
    path = tmp_path / "mappings.toml"
    path.write_text("# kept\n")
    before = current_mappings(path)
    edit = Edit("followupboss", "contacts", "custom.lender", "customLender", LENDER)
    save_mapping(path, edit.source, edit.stream, edit.target, "customLender", LENDER)
    undo(before, edit, path)
    assert current_mappings(path).overrides.get("followupboss", {}) == {}
    assert current_mappings(path).columns == {}
    assert "# kept" in path.read_text()


def test_undo_restores_a_previous_path_and_column(tmp_path: Path) -> None:
    path = tmp_path / "mappings.toml"
    save_mapping(path, "followupboss", "contacts", "custom.lender", "old", LENDER)
    before = current_mappings(path)
    renamed = Column("lender", "Mortgage lender", "text")
    edit = Edit("followupboss", "contacts", "custom.lender", "customLender", renamed)
    save_mapping(path, edit.source, edit.stream, edit.target, "customLender", renamed)
    save_column(path, renamed)
    undo(before, edit, path)
    after = current_mappings(path)
    assert after.overrides["followupboss"]["contacts"] == {"custom.lender": "old"}
    assert after.columns["lender"] == LENDER
