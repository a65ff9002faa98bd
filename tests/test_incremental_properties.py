"""Incremental sync, as properties over scripted vendor changes (real HTTP, the demo
simulators): whatever the vendor does between and during syncs, the incremental syncs alone
already hold every change the vendor reports, and a full reconcile after them leaves exactly
the cache a fresh full refresh into an empty data dir gives.

One simulator serves every example; its overlay keeps what earlier examples changed. That is
fine: each example compares with a fresh full refresh taken at its own end.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from crm_tui.config import Settings
from crm_tui.demo.changes import Change, Kind
from crm_tui.demo.data import pipedrive_id
from crm_tui.demo.servers import DemoServers, start_demo_servers
from crm_tui.faults import fault_point
from crm_tui.models import Outcome, RecordKind, SyncReport, record_id
from crm_tui.store import CacheStore, Database
from crm_tui.sync.engine import SyncEngine
from crm_tui.timefmt import parse_utc
from tests.helpers.env import make_settings

pytestmark = pytest.mark.usefixtures("no_retry_sleep")

USER = "alice"
#: source -> its collections in the simulator's overlay, per stream.
COLLECTIONS: dict[str, dict[RecordKind, str]] = {
    "followupboss": {"contacts": "followupboss:people", "deals": "followupboss:deals"},
    "hubspot": {"contacts": "hubspot:contacts", "deals": "hubspot:deals"},
    "pipedrive": {"contacts": "pipedrive:persons", "deals": "pipedrive:deals"},
}
#: Streams read from the watermark on; the others (FUB deals) are read in full every sync.
INCREMENTAL: dict[str, tuple[RecordKind, ...]] = {
    "followupboss": ("contacts",),
    "hubspot": ("contacts", "deals"),
    "pipedrive": ("contacts", "deals"),
}
#: Deletions an incremental read cannot see: Pipedrive lists no deleted persons. Only the
#: reconcile removes them. (FUB deals are not incremental: every sync removes their deletions.)
UNREPORTED_DELETIONS = frozenset({"pipedrive:persons"})
#: How far in the past a back-dated change is stamped at most: just inside the overlap the
#: sync reads again (a vendor clock or a commit lagging is what it is for), so a sync that
#: read one second too little would miss it.
MAX_BACKDATE = Settings.model_fields["crm_sync_overlap_seconds"].default - 1

Snapshot = dict[RecordKind, dict[str, dict[str, Any]]]


# -- the steps an example is made of -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edit:
    """One vendor change. `pick` chooses the record among the candidates, `fresh` prefers
    records created during the run (so updates and deletes hit them too)."""

    stream: RecordKind
    kind: Kind
    pick: int
    fresh: bool
    when: Literal["now", "same_moment", "backdated"]
    backdate: int = 0  # seconds, for "backdated"


@dataclass(frozen=True, slots=True)
class Sync:
    """An incremental sync; `during` is applied from inside it, after the first page of
    `during_stream` (between pages or before the deletion listings)."""

    during: Edit | None = None
    during_stream: RecordKind = "contacts"


@dataclass(frozen=True, slots=True)
class Burst:
    """`size` updates at once, round the collection's generated records: more than a Follow
    Up Boss page (100), so the incremental reads that follow (this example's and, within the
    overlap, the next ones') take several pages and a change can land between them."""

    stream: RecordKind
    size: int


@dataclass(frozen=True, slots=True)
class Reconcile:
    """A full read in the middle of the run: incremental syncs must go on from it."""


Step = Edit | Sync | Burst | Reconcile

streams = st.sampled_from(("contacts", "deals"))
edits = st.builds(
    Edit,
    stream=streams,
    kind=st.sampled_from(("create", "update", "update", "delete")),
    pick=st.integers(0, 10_000),
    fresh=st.booleans(),
    when=st.sampled_from(("now", "now", "same_moment", "backdated")),
    backdate=st.integers(1, MAX_BACKDATE),
)
syncs = st.builds(Sync, during=st.none() | edits, during_stream=streams)
steps = st.one_of(
    edits,
    edits,  # changes and syncs twice as often as the rest
    syncs,
    syncs,
    st.builds(Burst, stream=streams, size=st.integers(101, 140)),
    st.just(Reconcile()),
)


# -- applying changes --------------------------------------------------------------------------


@dataclass
class Vendor:
    """The simulator as one example changes it: what it applied, for the checks."""

    servers: DemoServers
    source: str
    applied: list[Change] = field(default_factory=list)

    def apply(self, edit: Edit) -> Change | None:
        """The change `edit` describes, or None when the overlay refuses it (a deleted
        record, one that never changes): such a step is simply skipped."""
        collection = COLLECTIONS[self.source][edit.stream]
        index = None if edit.kind == "create" else self._target(collection, edit)
        try:
            change = self.servers.apply_change(collection, edit.kind, index, self._moment(edit))
        except (KeyError, ValueError):
            return None
        self.applied.append(change)
        return change

    def burst(self, burst: Burst) -> None:
        for index in range(burst.size):
            self.apply(Edit(burst.stream, "update", index, fresh=False, when="now"))

    def _target(self, collection: str, edit: Edit) -> int:
        overlay = self.servers.overlay
        created = overlay.created(collection)
        if edit.fresh and len(created):
            return created[edit.pick % len(created)]
        base = next(t.base for t in overlay.targets() if t.name == collection)
        return edit.pick % base

    def _moment(self, edit: Edit) -> float | None:
        if edit.when == "backdated":
            return time.time() - edit.backdate
        if edit.when == "same_moment" and self.applied:
            return self.applied[-1].at  # a tie with the previous change, to the millisecond
        return None

    def unreported_deletions(self) -> set[str]:
        """Cache ids of the records deleted where no incremental read can see it."""
        return {
            record_id("pipedrive", str(pipedrive_id(c.index)))
            for c in self.applied
            if c.kind == "delete" and c.collection in UNREPORTED_DELETIONS
        }


@contextmanager
def changing_during(vendor: Vendor, edit: Edit | None, stream: RecordKind) -> Iterator[None]:
    """`edit` applied once, from inside the sync, when the engine has read the first page of
    `stream`: the change lands while the sync is under way."""
    if edit is None:
        yield
        return
    point = f"page:{vendor.source}:{stream}"
    pending = [edit]

    def hook(name: str) -> None:
        if name == point and pending:
            vendor.apply(pending.pop())
        fault_point(name)

    with mock.patch("crm_tui.sync.engine.fault_point", hook):
        yield
    assert not pending, f"the sync never reached {point}"  # else the step proved nothing


# -- caches --------------------------------------------------------------------------------------


def comparable(record: Any) -> dict[str, Any]:
    values = record.to_json()
    values.pop("synced_at")  # when we read it, not what the vendor holds
    return values


def snapshot(store: CacheStore, source: str) -> Snapshot:
    return {
        stream: {r.id: comparable(r) for r in store.records(stream, source)}
        for stream in COLLECTIONS[source]
    }


def reloaded(settings: Settings, source: str) -> Snapshot:
    """The cache as another process would load it from the database."""
    db = Database(settings.database_path)
    try:
        store = CacheStore(USER, db)
        store.load_sync()
        return snapshot(store, source)
    finally:
        db.close()


def demo_settings(servers: DemoServers, data_dir: Path) -> Settings:
    env = {k.lower(): v for k, v in servers.env().items()}
    return make_settings(data_dir, crm_user_id=USER, **env)


@asynccontextmanager
async def engine_on(settings: Settings) -> AsyncIterator[SyncEngine]:
    db = Database(settings.database_path)
    store = CacheStore(USER, db)
    store.load_sync()  # as the CLI and the app do
    engine = SyncEngine(settings, store)
    try:
        yield engine
    finally:
        await engine.aclose()
        db.close()


async def sync(engine: SyncEngine, source: str, *, full: bool = False) -> SyncReport:
    report = await engine.sync_source(source, full=full)
    failed = {s: r.error for s, r in report.streams.items() if r.outcome is not Outcome.SUCCESS}
    assert not failed, failed
    return report


async def fresh_full(servers: DemoServers, source: str) -> Snapshot:
    """What a full refresh into an empty data dir holds now."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = demo_settings(servers, Path(tmp))
        async with engine_on(settings) as engine:
            await sync(engine, source)
            return snapshot(engine.store, source)


def watermarks(engine: SyncEngine, source: str) -> dict[RecordKind, str | None]:
    db = engine.store.db
    assert db is not None
    return {s: db.bookmark(USER, source, s).watermark for s in INCREMENTAL[source]}


def assert_incremental(report: SyncReport, source: str) -> None:
    """The streams that can be read incrementally were: the property is about them."""
    modes = {s: report.streams[s].mode for s in INCREMENTAL[source]}
    assert set(modes.values()) == {"incremental"}, modes


def assert_forward(
    before: dict[RecordKind, str | None], after: dict[RecordKind, str | None]
) -> None:
    """No incremental sync moves a watermark back: it would read again what it has."""
    for stream, mark in after.items():
        assert mark is not None and mark >= (before[stream] or ""), (stream, before, after)


def assert_same_except(got: Snapshot, want: Snapshot, lingering: set[str]) -> None:
    """`got` equals `want`, except that records in `lingering` may still be in `got`."""
    for stream in want:
        extra = set(got[stream]) - set(want[stream])
        assert extra <= lingering, (stream, "kept", sorted(extra - lingering))
        missing = set(want[stream]) - set(got[stream])
        assert not missing, (stream, "missing", sorted(missing))
        differ = {i: (got[stream][i], v) for i, v in want[stream].items() if got[stream][i] != v}
        assert not differ, (stream, "differ", differ)


# -- the properties ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers() -> Iterator[DemoServers]:
    # 120 contacts: two Follow Up Boss / HubSpot pages, so a change lands between pages.
    running = start_demo_servers(contacts=120, seed=23, fub_rate_limit=10_000)
    yield running
    running.stop()


async def run_steps(
    engine: SyncEngine, vendor: Vendor, source: str, plan: list[Step], first: Sync
) -> None:
    """The initial full read (with `first.during` applied during it), then `plan`, then one
    quiet incremental sync: a change made during the last sync may land after that sync read
    past it, and it is the next sync's to pick up."""
    with changing_during(vendor, first.during, first.during_stream):
        await sync(engine, source)
    marks = watermarks(engine, source)
    for step in [*plan, Sync()]:
        if isinstance(step, Edit):
            vendor.apply(step)
            continue
        if isinstance(step, Burst):
            vendor.burst(step)
            continue
        if isinstance(step, Reconcile):
            await sync(engine, source, full=True)
            marks = watermarks(engine, source)  # a full read may set it anywhere it saw
            continue
        with changing_during(vendor, step.during, step.during_stream):
            assert_incremental(await sync(engine, source), source)
        assert_forward(marks, now := watermarks(engine, source))
        marks = now


@pytest.mark.parametrize("source", list(COLLECTIONS))
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples every run: CI must not depend on a lucky draw
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=st.lists(steps, min_size=1, max_size=12), first=syncs)
def test_incremental_syncs_then_a_reconcile_equal_a_fresh_full_refresh(
    servers: DemoServers, source: str, plan: list[Step], first: Sync
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(
            check_example(demo_settings(servers, Path(tmp)), Vendor(servers, source), plan, first)
        )


async def check_example(settings_: Settings, vendor: Vendor, plan: list[Step], first: Sync) -> None:
    source = vendor.source
    async with engine_on(settings_) as engine:
        await run_steps(engine, vendor, source, plan, first)
        incremental = snapshot(engine.store, source)
        want = await fresh_full(vendor.servers, source)
        # Every change the vendor reports is already in: only what it cannot report
        # (Pipedrive's deleted persons) may still be there.
        assert_same_except(incremental, want, vendor.unreported_deletions())
        assert reloaded(settings_, source) == incremental  # memory followed the database
        await sync(engine, source, full=True)
        assert snapshot(engine.store, source) == want
        assert reloaded(settings_, source) == want
        # What the examples did, for --hypothesis-show-statistics.
        event(f"changes applied: {len(vendor.applied)}")
        event("kinds: " + ",".join(sorted({c.kind for c in vendor.applied})))


# -- a quiet vendor costs next to nothing ----------------------------------------------------


@pytest.fixture(scope="module")
def large_servers() -> Iterator[DemoServers]:
    # Enough records that a full read takes several pages everywhere (Pipedrive's hold 500).
    running = start_demo_servers(contacts=1600, seed=29, fub_rate_limit=10_000)
    yield running
    running.stop()


HANDFUL = 3  # an incremental read's requests: the changes, then a deletion listing


def in_window(records: dict[str, dict[str, Any]], since: str) -> int:
    """How many records an incremental read from `since` lists again (the overlap)."""
    return sum(1 for r in records.values() if (r["remote_updated"] or "") >= since)


def since_of(mark: str | None, overlap: int) -> str:
    start = parse_utc(mark)
    assert start is not None, mark
    return (start - timedelta(seconds=overlap)).strftime("%Y-%m-%dT%H:%M:%SZ")


ROUNDS = 3


def touched(source: str, n: int) -> list[tuple[str, int]]:
    """The records round `n` changes: two contacts and a deal."""
    contacts, deals = COLLECTIONS[source]["contacts"], COLLECTIONS[source]["deals"]
    return [(contacts, 30 + n), (contacts, 40 + n), (deals, 3 * n)]


def change_round(servers: DemoServers, source: str, n: int) -> None:
    """Round `n` of changes: two updates in one second, a deal, and a contact back-dated
    into the overlap."""
    moment = float(int(time.time()))  # one whole second for the contacts: a tie
    for collection, index in touched(source, n):
        servers.apply_change(collection, "update", index, at=moment)
    contacts = COLLECTIONS[source]["contacts"]
    servers.apply_change(contacts, "update", 50 + n, at=time.time() - 60)


def back_date_latest(servers: DemoServers, source: str) -> None:
    """Every record the rounds changed (the rounds may share a second) changed again,
    stamped a minute earlier: the next sync sees nothing as late as its watermark."""
    for n in range(ROUNDS):
        for collection, index in touched(source, n):
            servers.apply_change(collection, "update", index, at=time.time() - 60)


@pytest.mark.parametrize("source", list(COLLECTIONS))
async def test_watermark_only_moves_forward_and_a_quiet_sync_reads_only_the_overlap(
    large_servers: DemoServers, source: str, tmp_path: Path
) -> None:
    settings_ = demo_settings(large_servers, tmp_path)
    async with engine_on(settings_) as engine:
        full = await sync(engine, source)
        marks = watermarks(engine, source)
        for n in range(ROUNDS):
            change_round(large_servers, source, n)
            assert_incremental(await sync(engine, source), source)
            assert_forward(marks, now := watermarks(engine, source))
            marks = now
        back_date_latest(large_servers, source)
        older = await sync(engine, source)
        for stream in INCREMENTAL[source]:  # the sync saw only earlier times: kept
            seen = older.streams[stream].watermark
            assert seen is not None and seen < (marks[stream] or ""), (stream, seen, marks)
        assert watermarks(engine, source) == marks
        # Nothing changed since: what is read again is the overlap window, no more.
        quiet = await sync(engine, source)
        assert watermarks(engine, source) == marks
        cached = snapshot(engine.store, source)
        for stream in INCREMENTAL[source]:
            read = quiet.streams[stream]
            since = since_of(marks[stream], settings_.crm_sync_overlap_seconds)
            assert (read.written, read.deleted) == (in_window(cached[stream], since), 0), stream
            assert read.requests <= HANDFUL, (stream, read.requests)
        # ...where the full read of the contacts took many pages.
        assert full.streams["contacts"].requests > HANDFUL
