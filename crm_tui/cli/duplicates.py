"""`duplicates`, `merge` and `reject`: the same person in several records, reviewed and
merged into one local contact (or marked not the same person)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from crm_tui.cli.command import Reply, headless
from crm_tui.cli.errors import EXIT_CONFIG, EXIT_USAGE, CliError
from crm_tui.cli.local import local_crm
from crm_tui.cli.options import SOURCE_CHOICE, with_default
from crm_tui.cli.runtime import Runtime, run
from crm_tui.text import single_line

if TYPE_CHECKING:
    from crm_tui.dedup import People
    from crm_tui.dedup.review import Review


def _min_confidence(
    default: float, help: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return with_default("--min-confidence", kind=click.FloatRange(0, 1), default=default, help=help)


def _review(rt: Runtime) -> tuple[People, Review]:
    """Every cluster in its section, with the user's decisions from the database."""
    from crm_tui.dedup import DuplicateFinder
    from crm_tui.dedup.review import Review

    store = rt.store
    people = DuplicateFinder(rt.settings.crm_phone_region, store.shelf).refresh(store)
    db, user = rt.store.db, rt.store.user_id
    if db is None:
        return people, Review.of(people, ())
    return people, Review.of(people, db.rejections(user), db.merges(user))


def _settled_json(cluster: Any, review: Review) -> dict[str, Any]:
    """A merged cluster, with the merge that settled it (for `merge --undo`)."""
    entry = review.entry_for(cluster)
    return {**cluster.to_json(), "merge_id": entry.id if entry is not None else None}


def _cluster(people: People, cluster_id: str) -> Any:
    cluster = people.by_id.get(cluster_id)
    if cluster is None:
        raise CliError(
            "Unknown cluster", f"no cluster {cluster_id}; see crm-tui duplicates", EXIT_USAGE
        )
    return cluster


@click.command("duplicates")
@_min_confidence(0.0, "Only clusters at least this sure (0-1).")
@click.option("--source", type=SOURCE_CHOICE, help="Only clusters that include this source.")
@headless()
def duplicates(rt: Runtime, min_confidence: float, source: str | None) -> Reply:
    """The same person in several records, across and inside sources.

    Records are linked by e-mail (as the mail server reads it) or phone (E.164); names
    confirm or veto a link, never make one. `clusters` are left to review (names that
    differ last); `possible` share only a name and a street or city; `settled` were merged;
    `rejected` were marked not the same person. Example: crm-tui duplicates --json
    """
    from crm_tui.dedup.review import select

    _, review = _review(rt)
    shown = {
        name: select(clusters, min_confidence, source) for name, clusters in review.sections.items()
    }
    clusters = shown["open"] + shown["names_differ"]
    payload = {
        "success": True,
        "clusters": [c.to_json() for c in clusters],
        "total": len(clusters),
        "possible": [c.to_json() for c in shown["possible"]],
        "settled": [_settled_json(c, review) for c in shown["merged"]],
        "rejected": [c.to_json() for c in shown["rejected"]],
    }
    return Reply(payload, lambda: _print_clusters(rt, clusters, shown))


def _print_clusters(rt: Runtime, clusters: list[Any], shown: dict[str, list[Any]]) -> None:
    for c in clusters:
        flag = "  (names differ: check)" if c.flagged else ""
        click.echo(f"{c.id}  {c.confidence:.2f}  {', '.join(c.sources)}{flag}")
        for member in c.members:
            record = rt.store.get("contacts", member)
            name = single_line(record.name if record else "")
            click.echo(f"    {member}  {name}")
    click.echo(
        f"{len(clusters)} cluster(s) to review; {len(shown['possible'])} possible, "
        f"{len(shown['merged'])} merged, {len(shown['rejected'])} not the same person"
    )


@click.command("merge")
@click.argument("cluster_id", required=False)
@click.option("--prefer", type=SOURCE_CHOICE, help="Take this source's values first.")
@click.option("--all", "every", is_flag=True, help="Merge every cluster left to review.")
@_min_confidence(0.95, "With --all: only clusters at least this sure.")
@click.option("--source", type=SOURCE_CHOICE, help="With --all: only clusters with this source.")
@click.option("--dry-run", is_flag=True, help="With --all: say what would merge, merge nothing.")
@click.option("--undo", "undo_id", type=int, help="Undo the merge with this merge_id.")
@click.option(
    "--force", is_flag=True, help="Merge a cluster whose names differ, or a possible one."
)
@click.option(
    "--write-back",
    is_flag=True,
    help="Also send the chosen values to each vendor record of the cluster that takes edits"
    " (through the outbox, each with its conflict check; nothing is deleted).",
)
@headless()
def merge(
    rt: Runtime,
    cluster_id: str | None,
    prefer: str | None,
    every: bool,
    min_confidence: float,
    source: str | None,
    dry_run: bool,
    undo_id: int | None,
    force: bool,
    write_back: bool,
) -> Reply:
    """Create or update one local CRM contact from a duplicate cluster, or many.

    Each field takes the most recently updated non-empty value (or --prefer's); the linked
    source ids are kept on the local contact. Vendor CRMs are never written to. --all
    merges the clusters left to review whose names agree (never "names differ" or possible
    ones); each merge has a merge_id that --undo takes back.
    Examples: crm-tui merge p0135889936 --prefer followupboss --json;
    crm-tui merge --all --min-confidence 0.95 --dry-run; crm-tui merge --undo 12
    """
    chosen = [x for x in (cluster_id, every or None, undo_id) if x is not None]
    if len(chosen) != 1:
        raise CliError(
            "Say what to merge",
            "give exactly one of: a cluster id, --all, --undo ID",
            EXIT_USAGE,
        )
    if undo_id is not None:
        return _undo_merge(rt, undo_id)
    if every:
        return _merge_all(rt, min_confidence, source, dry_run)
    return _merge_one(rt, str(cluster_id), prefer, force, write_back)


def _merge_one(
    rt: Runtime, cluster_id: str, prefer: str | None, force: bool, write_back: bool = False
) -> Reply:
    from crm_tui.cli.writes import write_merged
    from crm_tui.dedup.merge import cluster_records, merge_cluster

    people, _ = _review(rt)
    cluster = _cluster(people, cluster_id)
    if (cluster.flagged or cluster.possible) and not force:
        why = "their names differ" if cluster.flagged else "only a name and a place agree"
        raise CliError(
            "Check before merging",
            f"{cluster_id}: {why}; see crm-tui duplicates, then add --force to merge anyway",
            EXIT_USAGE,
        )
    records = cluster_records(rt.store, cluster)
    result = run(merge_cluster(local_crm(rt), cluster, records, prefer))
    verb = "created" if result.created else "updated"
    written = write_merged(rt, result.record, records) if write_back else None

    def human() -> None:
        click.echo(
            f"{verb} {result.record.id}: {single_line(result.record.name)}"
            f" (merge {result.entry_id})"
        )
        if written is not None:
            click.echo(rt.masker(single_line(written["summary"])))

    payload = {"success": True, **result.to_json()}
    if written is not None:
        payload["write_back"] = written
    return Reply(payload, human)


def _merge_all(rt: Runtime, min_confidence: float, source: str | None, dry_run: bool) -> Reply:
    from crm_tui.dedup.review import bulk_mergeable, merge_all, plan_bulk, select

    _, review = _review(rt)
    chosen = select(review.sections["open"], min_confidence, source)
    report = plan_bulk(chosen) if dry_run else run(merge_all(local_crm(rt), chosen))
    verb = "would merge" if dry_run else "merged"
    planned = bulk_mergeable(chosen) if dry_run else []

    def human() -> None:
        for cluster in planned:
            record = rt.store.get("contacts", cluster.members[0])
            name = single_line(record.name if record else "")
            click.echo(f"{cluster.id}  {cluster.confidence:.2f}  {name}")
        for result in report.merged:
            click.echo(f"{result.cluster_id} -> {result.record.id} (merge {result.entry_id})")
        for cluster, why in report.failed:
            click.echo(f"{cluster}: not merged: {single_line(why)}")
        click.echo(f"{verb} {report.people} people ({report.records} records)")

    payload = {"success": not report.failed, **report.to_json()}
    if dry_run:
        payload["clusters"] = [c.to_json() for c in planned]
    return Reply(payload, human)


def _undo_merge(rt: Runtime, merge_id: int) -> Reply:
    from crm_tui.dedup.merge import AlreadyUndone, NewerMerge, undo_merge

    db = rt.store.db
    entry = db.merge_entry(rt.store.user_id, merge_id) if db is not None else None
    if entry is None:
        raise CliError("Unknown merge", f"no merge {merge_id}", EXIT_USAGE)
    try:
        run(undo_merge(local_crm(rt), entry))
    except AlreadyUndone as exc:
        raise CliError("Already undone", str(exc), EXIT_USAGE) from None
    except NewerMerge as exc:
        raise CliError("A later merge comes first", str(exc), EXIT_USAGE) from None
    verb = "removed" if entry.created else "restored"
    return Reply(
        {"success": True, "undone": entry.to_json(), "local_id": entry.local_id, "action": verb},
        lambda: click.echo(f"merge {merge_id} undone: {entry.local_id} {verb}"),
    )


@click.command("reject")
@click.argument("cluster_id")
@click.option("--undo", is_flag=True, help="Take the decision back: the cluster returns.")
@headless()
def reject(rt: Runtime, cluster_id: str, undo: bool) -> Reply:
    """Mark a duplicate cluster "not the same person": it leaves the list for good.

    Kept per user in the database; a record that later joins the cluster brings it back
    for review. Example: crm-tui reject p0135889936 (and --undo to take it back)
    """
    people, _ = _review(rt)
    cluster = _cluster(people, cluster_id)
    db = rt.store.db
    if db is None:
        raise CliError("No database", "decisions are kept in the database", EXIT_CONFIG)
    user = rt.store.user_id
    if cluster.settled:
        raise CliError(
            "Merged already",
            f"{cluster.id} was merged; undo the merge first (crm-tui merge --undo ID)",
            EXIT_USAGE,
        )
    if undo:
        changed = db.unreject(user, cluster.members, cluster.possible) > 0
        said = "back for review" if changed else "was not marked; nothing changed"
    else:
        db.reject(user, cluster.id, cluster.members)
        changed, said = True, "not the same person"
    payload = {
        "success": True,
        "cluster": cluster.id,
        "state": "open" if undo else "rejected",
        "changed": changed,
    }
    return Reply(payload, lambda: click.echo(f"{cluster.id}: {said}"))


COMMANDS: tuple[click.Command, ...] = (duplicates, merge, reject)
