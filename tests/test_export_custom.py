"""Exports carry the custom columns: a CSV/XLSX column each (headed by the label), `custom`
in JSON, an escaped X-CRM- property each in vCard. The files are read back."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from openpyxl import load_workbook

from crm_tui.custom_columns import Column
from crm_tui.export import export
from crm_tui.models import Contact, Deal

CUSTOM = [
    Column("lender", "Lender"),
    Column("price_range", "Price range", "money"),
    Column("closing_date", "Closing date", "date"),
    Column("areas", "Areas", "list"),
    Column("email", "email"),  # a label repeating a unified field's header
]


def people() -> list[Contact]:
    return [
        Contact(
            id="followupboss:1",
            source="followupboss",
            remote_id="1",
            user_id="u",
            first_name="Ana",
            custom={
                "lender": "=Quicken; Loans, Inc\\",
                "price_range": Decimal("450000.50"),
                "closing_date": "2026-12-15",
                "areas": ("Hyde Park", "Zilker, South"),
                "email": "other@example.com",
            },
        ),
        Contact(id="followupboss:2", source="followupboss", remote_id="2", user_id="u"),
    ]


def test_csv_has_a_column_per_custom_column(tmp_path: Path) -> None:
    out = tmp_path / "c.csv"
    assert export(out, "csv", "contacts", people(), custom=CUSTOM) == 2
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    header = next(csv.reader(out.open(encoding="utf-8", newline="")))
    assert header[-5:] == ["Lender", "Price range", "Closing date", "Areas", "custom.email"]
    first, second = rows
    assert first["Lender"] == "'=Quicken; Loans, Inc\\"  # formula-like: neutralised
    assert first["Price range"] == "450000.50"
    assert first["Closing date"] == "2026-12-15"
    assert first["Areas"] == "Hyde Park; Zilker, South"
    assert first["custom.email"] == "other@example.com"
    assert first["email"] == ""  # the unified field, untouched
    assert [second[h] for h in header[-5:]] == [""] * 5


def test_xlsx_cells_are_typed(tmp_path: Path) -> None:
    out = tmp_path / "c.xlsx"
    export(out, "xlsx", "contacts", people(), custom=CUSTOM)
    sheet = load_workbook(out).active
    rows = list(sheet.iter_rows(values_only=True))
    header = list(rows[0])
    first = dict(zip(header, rows[1], strict=True))
    assert first["Lender"] == "=Quicken; Loans, Inc\\"  # a string cell, not a formula
    assert sheet.cell(row=2, column=header.index("Lender") + 1).data_type == "s"
    assert first["Price range"] == 450000.5
    assert first["Closing date"] == datetime(2026, 12, 15)
    assert first["Areas"] == "Hyde Park; Zilker, South"
    assert first["custom.email"] == "other@example.com"


def test_json_carries_custom(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    export(out, "json", "contacts", people(), custom=CUSTOM)
    first, second = json.loads(out.read_text())["contacts"]
    assert first["custom"] == {
        "lender": "=Quicken; Loans, Inc\\",
        "price_range": "450000.50",
        "closing_date": "2026-12-15",
        "areas": ["Hyde Park", "Zilker, South"],
        "email": "other@example.com",
    }
    assert second["custom"] == {}


def test_vcard_carries_escaped_x_properties(tmp_path: Path) -> None:
    out = tmp_path / "c.vcf"
    export(out, "vcf", "contacts", people(), custom=CUSTOM)
    text = out.read_bytes().decode("utf-8").replace("\r\n ", "")  # unfold
    first, second = text.split("END:VCARD\r\n")[:2]
    props = dict(line.split(":", 1) for line in first.split("\r\n")[2:] if line)
    assert props["X-CRM-LENDER"] == "=Quicken\\; Loans\\, Inc\\\\"
    assert props["X-CRM-PRICE-RANGE"] == "450000.50"
    assert props["X-CRM-CLOSING-DATE"] == "2026-12-15"
    assert props["X-CRM-AREAS"] == "Hyde Park,Zilker\\, South"
    assert "X-CRM-" not in second  # no values, no properties


def test_deals_csv_too(tmp_path: Path) -> None:
    out = tmp_path / "d.csv"
    deal = Deal(
        id="pipedrive:1", source="pipedrive", remote_id="1", user_id="u", custom={"lender": "Q"}
    )
    export(out, "csv", "deals", [deal], custom=CUSTOM[:1])
    (row,) = csv.DictReader(out.open(encoding="utf-8", newline=""))
    assert row["Lender"] == "Q"
