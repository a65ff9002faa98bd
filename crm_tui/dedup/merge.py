"""Merge a cluster into one local CRM contact. Nothing is ever written to a vendor CRM.

Each field takes, by default, the most recently updated non-empty value among the cluster's
records; `prefer` puts one source's values first. A value the local CRM would refuse (a
phone it cannot parse) gives way to the next candidate, so a merge never fails on one bad
field. Custom columns (`record.custom`) are carried the same way, each column on its own:
a value any member holds reaches the local contact, the newest (or preferred) one first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from crm_tui.custom_columns import CUSTOM_PREFIX
from crm_tui.dedup.clusters import Cluster
from crm_tui.local_crm import LocalCrm, ValidationFailed, validate
from crm_tui.models import CONTACT_EDITABLE, CUSTOM_FIELD, Contact
from crm_tui.store.decisions import MergeEntry
from crm_tui.store.reading import CachedRecords
from crm_tui.text import fold

MERGED_FIELDS = tuple(f for f in CONTACT_EDITABLE if f != "rating")
#: Fields where a value in capitals is a CRM's habit, not a person's spelling.
CASED_FIELDS = frozenset({"first_name", "last_name", "company", "street", "city"})


@dataclass(frozen=True, slots=True)
class FieldChoice:
    field: str
    value: Any
    record_id: str | None  # where the value came from
    candidates: tuple[tuple[str, Any], ...]  # (record id, value), best first

    def to_json(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"field": self.field, "value": value, "from": self.record_id}


def cluster_records(store: CachedRecords, cluster: Cluster) -> list[Contact]:
    """The cluster's contacts as the store holds them now."""
    found = (store.get("contacts", member) for member in cluster.members)
    return [r for r in found if isinstance(r, Contact)]


def _recency(record: Contact) -> str:
    # when the CRM last changed it; synced_at says nothing about the person's data
    return record.remote_updated or record.remote_created or ""


def _ordered(records: Sequence[Contact], prefer: str | None) -> list[Contact]:
    by_recency = sorted(records, key=_recency, reverse=True)
    return sorted(by_recency, key=lambda r: r.source != prefer) if prefer else by_recency


def plan_merge(records: Sequence[Contact], prefer: str | None = None) -> dict[str, FieldChoice]:
    """Every mergeable field's candidates and the chosen (first) one. The local contact an
    earlier merge made is a candidate like the others: a person's edit to it since is the
    most recent value, and a merge again must not undo it."""
    ordered = _ordered(records, prefer)
    plan: dict[str, FieldChoice] = {}
    for name in MERGED_FIELDS:
        candidates = tuple(
            (r.id, getattr(r, name)) for r in ordered if getattr(r, name) not in (None, "", ())
        )
        if name in CASED_FIELDS:
            candidates = _cased_first(candidates)
        first = candidates[0] if candidates else (None, None)
        plan[name] = FieldChoice(name, first[1], first[0], candidates)
    return plan


def plan_custom(records: Sequence[Contact], prefer: str | None = None) -> dict[str, FieldChoice]:
    """Each custom column a member holds a value for, keyed `custom.NAME`, its candidates
    in the order of `plan_merge` (a conflict goes to the newest record, or `prefer`'s). A
    plan of its own: the unified plan's keys stay record attributes (the compare view reads
    them with getattr)."""
    ordered = _ordered(records, prefer)
    plan: dict[str, FieldChoice] = {}
    for name in dict.fromkeys(n for r in ordered for n in r.custom):
        candidates = tuple(
            (r.id, r.custom[name]) for r in ordered if r.custom.get(name) not in (None, "", ())
        )
        if candidates:
            key = CUSTOM_PREFIX + name
            plan[key] = FieldChoice(key, candidates[0][1], candidates[0][0], candidates)
    return plan


def _custom_values(custom: dict[str, FieldChoice]) -> dict[str, Any]:
    """The local payload's `custom` object (the local CRM keeps numbers as text or numbers
    and lists as lists; each is read back as its column's type)."""
    return {key.removeprefix(CUSTOM_PREFIX): choice.value for key, choice in custom.items()}


def _cased_first(candidates: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Any], ...]:
    """`RACHEL` (a CRM that shouts) gives way to `Rachel` from another record, when the two
    are the same name: the newest spelling with both cases goes first."""
    if not candidates or not _shouted(candidates[0][1]):
        return candidates
    same = fold(str(candidates[0][1]))
    cased = next((c for c in candidates if not _shouted(c[1]) and fold(str(c[1])) == same), None)
    return candidates if cased is None else (cased, *(c for c in candidates if c is not cased))


def _shouted(value: Any) -> bool:
    return isinstance(value, str) and value.isupper() and len(value) > 1


def with_choice(plan: dict[str, FieldChoice], name: str, index: int) -> dict[str, FieldChoice]:
    """The plan with field `name` taking its `index`-th candidate (the app's field picker)."""
    current = plan[name]
    record_id, value = current.candidates[index]
    return {**plan, name: FieldChoice(name, value, record_id, current.candidates)}


def valid_fields(
    plan: dict[str, FieldChoice], region: str, custom: dict[str, FieldChoice] | None = None
) -> dict[str, Any]:
    """The plan's values (with `custom`'s, from `plan_custom`), each refused one replaced by
    its next candidate (or left empty) until the whole contact validates. Raises
    ValidationFailed when nothing can fix it."""
    tried = dict.fromkeys(plan, 0)
    fields = {name: _plain(choice.value) for name, choice in plan.items()}
    if custom:
        fields[CUSTOM_FIELD] = _custom_values(custom)
    while True:
        try:
            validate("contacts", fields, region)
            return fields
        except ValidationFailed as failed:
            moved = False
            for name in failed.errors:
                if name in plan and fields[name] is not None:
                    tried[name] += 1
                    options = plan[name].candidates
                    fields[name] = (
                        _plain(options[tried[name]][1]) if tried[name] < len(options) else None
                    )
                    moved = True
            if not moved:
                raise


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True, slots=True)
class MergeResult:
    cluster_id: str
    record: Contact
    created: bool
    previous: dict[str, Any] | None  # the local row before an update, for undo
    fields: dict[str, Any]
    entry_id: int = 0  # its row in the merge journal (store/decisions.py)

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster_id,
            "record": self.record.to_json(),
            "created": self.created,
            "merge_id": self.entry_id,
        }


async def merge_cluster(
    local: LocalCrm,
    cluster: Cluster,
    records: Sequence[Contact],
    prefer: str | None = None,
    plan: dict[str, FieldChoice] | None = None,
    custom: dict[str, FieldChoice] | None = None,
) -> MergeResult:
    """Create (or update, when the cluster already holds one) the local contact. When
    another process merged these records meanwhile, its local contact is the one updated.
    `custom`: the custom columns' choices (default `plan_custom(records, prefer)`)."""
    plan = plan or plan_merge(records, prefer)
    custom = plan_custom(records, prefer) if custom is None else custom
    fields = valid_fields(plan, local.region, custom)
    links = [m for m in cluster.members if not m.startswith("local:")]
    existing = next((m for m in cluster.members if m.startswith("local:")), None)
    if existing is None:
        (made,) = await local.add_many("contacts", [(fields, links)], skip_linked=True)
        if made is not None:
            contact = cast(Contact, made)
            (entry_id,) = await _journal(local, [(cluster, contact, None)])
            return MergeResult(cluster.id, contact, True, None, fields, entry_id)
        existing = await _linking(local, links)
    record, previous = await local.replace(existing, fields, links=links)
    contact = cast(Contact, record)
    (entry_id,) = await _journal(local, [(cluster, contact, previous)])
    return MergeResult(cluster.id, contact, False, previous, fields, entry_id)


async def _linking(local: LocalCrm, links: Sequence[str]) -> str:
    """The local contact that links (some of) these records already."""
    store = local.store
    db = store.db
    linked = (
        await store.in_writer(db.linking_locals, store.user_id, links) if db is not None else {}
    )
    return f"local:{min(min(ids) for ids in linked.values())}"


async def merge_new_clusters(
    local: LocalCrm, clusters: Sequence[tuple[Cluster, Sequence[Contact]]]
) -> tuple[list[MergeResult], list[tuple[str, str]]]:
    """Clusters that hold no local contact yet, each into a new one, written together (one
    lease, transaction and cache update for thousands). A cluster whose values the local
    CRM refuses, or that another process merged meanwhile, is left out and named: (cluster
    id, why)."""
    planned: list[tuple[Cluster, dict[str, Any]]] = []
    failed: list[tuple[str, str]] = []
    for cluster, records in clusters:
        try:
            fields = valid_fields(plan_merge(records), local.region, plan_custom(records))
            planned.append((cluster, fields))
        except ValidationFailed as exc:
            failed.append((cluster.id, str(exc)))
    if not planned:
        return [], failed
    items = [
        (fields, [m for m in cluster.members if not m.startswith("local:")])
        for cluster, fields in planned
    ]
    made = await local.add_many("contacts", items, skip_linked=True)
    done = [
        (cluster, fields, cast(Contact, record))
        for (cluster, fields), record in zip(planned, made, strict=True)
        if record is not None
    ]
    failed.extend(
        (cluster.id, "merged already, in another process")
        for (cluster, _), record in zip(planned, made, strict=True)
        if record is None
    )
    ids = await _journal(local, [(cluster, record, None) for cluster, _, record in done])
    results = [
        MergeResult(cluster.id, record, True, None, fields, entry_id)
        for (cluster, fields, record), entry_id in zip(done, ids, strict=True)
    ]
    return results, failed


async def _journal(
    local: LocalCrm, merges: Sequence[tuple[Cluster, Contact, dict[str, Any] | None]]
) -> list[int]:
    """The merge journal's rows (store/decisions.py), for undo; zeros with no database."""
    store = local.store
    if store.db is None or not merges:
        return [0] * len(merges)
    rows = [(c.id, record.id, previous, c.members) for c, record, previous in merges]
    return cast(list[int], await store.in_writer(store.db.add_merges, store.user_id, rows))


class AlreadyUndone(LookupError):
    """The merge was undone already, here or in another process."""


class NewerMerge(LookupError):
    """A later merge changed the same local contact: undo that one first."""


async def undo_merge(local: LocalCrm, result: MergeResult | MergeEntry) -> None:
    """Take the local contact back to before the merge: removed if the merge made it, else
    restored as it was. The journal row is marked in the same transaction as the change,
    so two processes never both undo one merge and a failed undo leaves it in force."""
    store, user = local.store, local.store.user_id
    entry_id = result.entry_id if isinstance(result, MergeResult) else result.id
    record_id = result.record.id if isinstance(result, MergeResult) else result.local_id
    db = store.db

    def check() -> None:
        if db is None or not entry_id:
            return
        if db.newer_merge(user, record_id, entry_id) is not None:
            raise NewerMerge(f"a later merge changed {record_id}: undo that one first")
        if not db.mark_merge_undone(user, entry_id):
            raise AlreadyUndone(f"merge {entry_id} was undone already")

    if result.created:
        await local.revert(record_id, None, check)
    elif result.previous is not None:
        await local.revert(record_id, result.previous, check)
