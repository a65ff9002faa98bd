"""Deals and contacts whose Pipeline figures are known."""

from __future__ import annotations

from decimal import Decimal

from crm_tui.models import Contact, Deal


def deal(source: str, n: int, amount: int | None, stage: str, close: str | None, raw: str = "{}"):
    return Deal(
        f"{source}:{n}",
        source,
        str(n),
        "alice",
        name=f"{n} Oak St",
        amount=None if amount is None else Decimal(amount),
        stage=stage,
        close_date=close,
        raw=raw,
    )


def known_deals() -> list[Deal]:
    return [
        # three deals under contract, $1.2M: each CRM names the stage its own way
        deal(
            "followupboss", 1, 400_000, "Under Contract", "2026-12-15", '{"commissionValue": 12000}'
        ),
        deal("followupboss", 2, 500_000, "Pending", "2026-11-03", '{"commissionValue": "15,000"}'),
        deal("hubspot", 3, 300_000, "contractsent", "2027-05-31"),
        # closed, with the transaction report's GCI column
        deal("brivity", 4, 250_000, "Closed", "2025-12-01", '{"GCI": "7,500.00", "Address": "x"}'),
        # outside the window on both sides
        deal("brivity", 5, 100_000, "Closed", "2025-11-30", '{"GCI": "3,000.00"}'),
        deal("followupboss", 6, 900_000, "Closed", "2027-06-01", '{"commissionValue": 27000}'),
        # a Pipedrive stage id: no shared stage; no amount, no close date
        deal("pipedrive", 7, None, "3", None),
    ]


def contact(source: str, n: int, created: str | None, stage: str = "Lead") -> Contact:
    return Contact(f"{source}:{n}", source, str(n), "alice", stage=stage, remote_created=created)
