"""One mapping change as the Mapping screen makes it: the maps it would give, its undo."""

from __future__ import annotations

from pathlib import Path

from crm_tui.custom_columns import Column
from crm_tui.fields.edit import Edit, apply, edited
from crm_tui.fields.service import current_mappings
from crm_tui.store import Database
from tests.helpers.env import make_settings

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


def test_a_saved_edit_is_undone_to_the_exact_text(tmp_path: Path) -> None:
    """The screen's refusal after a save (the re-map could not run) puts the file back as
    it was, comments and all."""
    settings = make_settings(tmp_path, fub_api_key="k")
    path = tmp_path / "mappings.toml"
    text = '# ours\n[followupboss.contacts]\ncompany = "customCompany"  # kept\n'
    path.write_text(text)
    db = Database(settings.database_path)
    edit = Edit("followupboss", "contacts", "custom.lender", "customLender", LENDER)
    saved = apply(db, settings, edit, path)
    db.close()
    assert saved is not None and "customLender" in path.read_text()
    assert current_mappings(path).columns == {"lender": LENDER}
    assert saved.undo() and path.read_text() == text
