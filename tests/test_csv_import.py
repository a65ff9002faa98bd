from __future__ import annotations

import pytest

from crm_tui.sources.brivity import TRANSACTION_REPORT, BrivitySource
from crm_tui.sources.csv_import import EXTRA_COLUMN, parse_csv
from crm_tui.sources.errors import ImportFileError
from crm_tui.sources.imports import plan_import
from crm_tui.sources.mapping import build_record
from crm_tui.sources.topproducer import CONTACTS_EXPORT, CSV_MAPS

NOW = "2026-11-25T00:00:00Z"


def contacts(text: bytes):
    table = parse_csv(text, CONTACTS_EXPORT)
    return table, [
        build_record("contacts", "topproducer", "alice", CSV_MAPS["contacts"], row, NOW)
        for row in table.rows
    ]


def test_bom_and_odd_header_spelling():
    table, records = contacts(
        "\ufeffFIRST  NAME,last_name,E-Mail\nAna,Lee,ANA@X.COM\n".encode("utf-8")
    )
    assert table.columns == {
        "first_name": "FIRST  NAME",
        "last_name": "last_name",
        "email": "E-Mail",
    }
    assert (records[0].first_name, records[0].email) == ("Ana", "ana@x.com")


def test_an_e_mail_address_column_is_the_email():
    table, records = contacts(b"First Name,E-Mail Address\nAna,ana@x.co\n")
    assert table.columns["email"] == "E-Mail Address"
    assert records[0].email == "ana@x.co"


def test_semicolon_separators_and_quoted_newlines():
    text = b'First Name;Last Name;Notes\nAna;Lee;"line one\nline two; still notes"\n'
    table, records = contacts(text)
    assert table.delimiter == ";"
    assert records[0].metadata["Notes"] == "line one\nline two; still notes"


def test_latin1_bytes_decode():
    table, records = contacts("First Name,Last Name\nJos\xe9,N\xfa\xf1ez\n".encode("latin-1"))
    assert table.encoding in ("cp1252", "latin-1")
    assert records[0].name == "José Núñez"


def test_unknown_columns_are_kept_in_metadata():
    table, records = contacts(b"First Name,Last Name,Favourite Colour\nAna,Lee,teal\n")
    assert table.unmapped == ["Favourite Colour"]
    assert records[0].metadata["Favourite Colour"] == "teal"


def test_missing_required_columns_are_named():
    with pytest.raises(ImportFileError) as info:
        parse_csv(b"Email,Phone\na@b.c,555\n", CONTACTS_EXPORT)
    assert "First Name or Last Name" in str(info.value)
    with pytest.raises(ImportFileError, match="Address"):
        parse_csv(b"Status,Close Date\nClosed,01/02/2026\n", TRANSACTION_REPORT)


def test_ragged_rows_are_kept_and_reported():
    table, records = contacts(b"First Name,Last Name,Email\nAna,Lee\nBo,Ng,b@x.co,extra,more\n")
    assert table.ragged == [2, 3]
    assert records[0].email is None
    assert records[1].metadata[EXTRA_COLUMN] == ["extra", "more"]


def test_empty_and_blank_files_are_clear_errors():
    for data in (b"", b"\n\n  \n"):
        with pytest.raises(ImportFileError, match="empty"):
            parse_csv(data, CONTACTS_EXPORT)


def test_stable_ids_without_an_id_column():
    text = b"First Name,Last Name,Email\nAna,Lee,ana@x.co\nAna,Lee,ana@x.co\nBo,Ng,\n"
    _, records = contacts(text)
    assert records[0].id == records[1].id  # the same person twice: a duplicate
    assert records[0].id != records[2].id
    assert records[0].id.startswith("topproducer:csv-")


def test_brivity_transaction_report_by_alias(tmp_path):
    path = tmp_path / "report.csv"
    path.write_text(
        "Property Address,Transaction Status,Side,MLS #,Closing Price,List Price,Closed Date,"
        "Client Name,Weird\n"
        '"12 Oak St, Austin",Closed,Buyer,M1,"$500,000",,03/04/2026,Ana Lee,x\n'
        ",Closed,Buyer,M2,1,,03/04/2026,Bo,y\n"
        '"9 Elm St, Austin",Closed,Seller,M3,lots,,03/04/2026,Cy,z\n'
    )
    plan = plan_import("brivity-transactions", path, "alice")
    assert plan.columns["address"] == "Property Address"
    assert plan.columns["sale_price"] == "Closing Price"
    assert plan.metadata_only == ["Weird"]
    deal = next(plan.batches())[0]
    assert (deal.property_address, str(deal.amount), deal.close_date) == (
        "12 Oak St, Austin",
        "500000",
        "2026-03-04",
    )
    # No id column: a stable hash of MLS #, address, side, client and close date.
    assert deal.id.startswith("brivity:csv-")
    again = plan_import("brivity-transactions", path, "alice")
    assert next(again.batches())[0].id == deal.id
    # The row without an address still has an MLS id, so it maps; the bad price does not.
    assert plan.invalid.items == [(3, 4, "amount: not a number: 'lots'")]
    assert BrivitySource.field_maps["deals"]
