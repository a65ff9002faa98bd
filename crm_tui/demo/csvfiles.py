"""The demo's CSV exports: TopProducer contacts and closings, a Brivity transaction report."""

from __future__ import annotations

import csv
from pathlib import Path

from crm_tui.demo import data
from crm_tui.demo.clock import FIXED, DemoClock
from crm_tui.files import secure_dir

TP_CONTACT_COLUMNS = (
    "First Name",
    "Last Name",
    "Email",
    "Mobile Phone",
    "Company",
    "Status",
    "Category",
    "Address",
    "City",
    "State",
    "Zip",
    "Date Created",
)
TP_CLOSING_COLUMNS = (
    "Property Address",
    "Sale Price",
    "Status",
    "Closing Date",
    "Client",
    "MLS Number",
    "Side",
)


def _write(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    path.chmod(0o600)
    return path


def write_demo_csvs(
    folder: Path, contacts: int, seed: int, clock: DemoClock = FIXED
) -> dict[str, Path]:
    """Write the three exports under `folder`; returns their paths by role."""
    secure_dir(folder)
    tp_dir = folder / "topproducer"
    secure_dir(tp_dir)
    tp_rows = []
    for i in range(contacts):
        c = data.tp_contact(seed, i, contacts, clock)
        tp_rows.append(
            {
                "First Name": c["firstName"],
                "Last Name": c["lastName"],
                "Email": c["email"] or "",
                "Mobile Phone": c["phone"],
                "Company": c["company"] or "",
                "Status": c["status"],
                "Category": "",
                "Address": c["address"],
                "City": c["city"],
                "State": c["state"],
                "Zip": c["zip"],
                "Date Created": c["createdAt"][:10],
            }
        )
    closings = []
    for j in range(data.deal_count(contacts)):
        t = data.tp_transaction(seed, j, contacts, clock)
        closings.append(
            {
                "Property Address": t["propertyAddress"],
                "Sale Price": f"${t['salesPrice']:,}",
                "Status": t["status"],
                "Closing Date": t["closeDate"],
                "Client": t["contactId"],
                "MLS Number": t["id"],
                "Side": "Buyer",
            }
        )
    deals = range(data.deal_count(contacts))
    report = [data.brivity_transaction_row(seed, j, clock) for j in deals]
    return {
        "topproducer_contacts": _write(tp_dir / "contacts.csv", TP_CONTACT_COLUMNS, tp_rows),
        "topproducer_closings": _write(tp_dir / "closings.csv", TP_CLOSING_COLUMNS, closings),
        "brivity_transactions": _write(
            folder / "brivity-transactions.csv", tuple(report[0]), report
        ),
    }
