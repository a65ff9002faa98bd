"""Fixed data for pictures of the app: hand-made records over an emptied data dir, or the
Pipeline over the demo's records with "now" fixed."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from crm_tui.app import CrmApp, make_app
from crm_tui.config import Settings
from crm_tui.models import Contact, Deal, Outcome, StreamReport, SyncReport
from crm_tui.store import CacheStore, Database
from tests.helpers.env import make_settings
from tests.helpers.pipeline_data import NOW as PIPELINE_NOW
from tests.helpers.pipeline_data import seed_demo
from tests.helpers.records import cached_contact

# One per test process: two runs at once (two checkouts on one machine) wiped each other's
# data mid-test. No picture shows it.
SNAPSHOT_DIR = Path(tempfile.gettempdir()) / f"crm-tui-snapshot-{os.getpid()}"
FIRST = ("Ana", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo")
LAST = ("Lee", "Ng", "Ortiz", "Park", "Quinn", "Ruiz", "Shaw", "Tran", "Uddin", "Vega")


def people() -> list[Contact]:
    out = []
    for i in range(30):
        source = ("brivity", "followupboss", "topproducer")[i % 3]
        out.append(
            cached_contact(
                source,
                i,
                "snap",
                first_name=FIRST[i % 10],
                last_name=LAST[(i * 3) % 10],
                email=f"{FIRST[i % 10].lower()}.{LAST[(i * 3) % 10].lower()}@example.com",
                phone=f"(512) 555-{1000 + i}",
                company="Compass" if i % 4 else None,
                status=("lead", "client", "past client")[i % 3],
                city="Austin",
                state="TX",
            )
        )
    out.append(
        cached_contact(
            "brivity", 999, "snap", first_name="[@click=app.quit]Bob[/]", last_name="[/oops]"
        )
    )
    return out


def deals() -> list[Deal]:
    return [
        Deal(
            id=f"followupboss:{i}",
            source="followupboss",
            remote_id=str(i),
            user_id="snap",
            name=f"{100 + i} Oak St, Austin, TX",
            amount=Decimal(350_000 + 25_000 * i),
            stage="Under Contract",
            status="Active",
            close_date="2026-12-15",
        )
        for i in range(8)
    ]


def snapshot_settings():
    """Settings over an emptied SNAPSHOT_DIR, Follow Up Boss set up but never reachable."""
    shutil.rmtree(SNAPSHOT_DIR, ignore_errors=True)
    return make_settings(
        SNAPSHOT_DIR,
        crm_data_dir=SNAPSHOT_DIR,
        crm_user_id="snap",
        fub_api_key="snapshot-key",
        fub_api_base_url="http://127.0.0.1:9/v1",
    )


async def seed(store: CacheStore, db: Database) -> None:
    records = people()
    for source in ("brivity", "followupboss", "topproducer"):
        await store.replace_stream(source, "contacts", [r for r in records if r.source == source])
    await store.replace_stream("followupboss", "deals", deals())
    store.update_status(
        "followupboss",
        last_error="deals: Failed to fetch deals: Request timeout after 15 seconds",
    )
    await store.save_status("followupboss")
    report = SyncReport(
        "followupboss",
        Outcome.PARTIAL,
        started_at="2026-11-25T10:00:00Z",
        ended_at="2026-11-25T10:00:42Z",
        error="deals: Failed to fetch deals: Request timeout after 15 s",
    )
    report.streams["contacts"] = StreamReport(
        "contacts", read=10, written=10, ended_at="2026-11-25T10:00:20Z"
    )
    run = db.start_run("snap", "followupboss", report.started_at)
    db.finish_run(run, report)


def build_app(settings: Settings, *, pipeline: bool = False, **options: Any) -> CrmApp:
    """The app over the hand-made records above, or with `pipeline` the demo's records and 30
    fixed runs per source (tests/helpers/pipeline_data.py), "now" fixed."""
    db = Database(settings.database_path)
    store = CacheStore("snap", db)
    if pipeline:
        asyncio.run(seed_demo(store))
        options.setdefault("clock", lambda: PIPELINE_NOW)
    else:
        asyncio.run(seed(store, db))
    db.close()
    return make_app(settings, sync_stale=False, **options)
