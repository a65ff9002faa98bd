"""The duplicate finder: each source's keys kept between runs (made, saved per stream stamp
and mapped in, or patched where a few contacts changed), and the clusters they make."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import cast

from crm_tui.dedup.clusters import People, find_clusters
from crm_tui.dedup.keyarrays import Keyer, from_saved, saved_format, to_saved
from crm_tui.dedup.keys import PhoneKeys
from crm_tui.dedup.saved import EVERY_SOURCE
from crm_tui.dedup.saved import STAMP as PEOPLE_STAMP
from crm_tui.dedup.saved import WHAT as PEOPLE_WHAT
from crm_tui.dedup.saved import from_saved as people_from_saved
from crm_tui.dedup.saved import saved_format as saved_people_format
from crm_tui.dedup.saved import to_saved as people_to_saved
from crm_tui.dedup.sourcekeys import (
    REKEY_SHARE,
    BaseRecords,
    RecordList,
    SourceKeys,
    StreamBases,
)
from crm_tui.dedup.texts import texts_of
from crm_tui.models import Contact
from crm_tui.store.artifacts import ArtifactShelf
from crm_tui.store.reading import CachedRecords
from crm_tui.store.stamps import StreamStamp
from crm_tui.tuning import enter_background, gc_paused

log = logging.getLogger(__name__)
#: What the keys are saved as on an ArtifactShelf.
SHELF_WHAT = "dedup"


class DuplicateFinder:
    """Keeps each source's keys between runs: after a sync only what changed is keyed again.
    With a `shelf`, keys are saved per stream stamp, and a later start maps them in."""

    def __init__(self, region: str = "US", shelf: ArtifactShelf | None = None) -> None:
        self.phones = PhoneKeys(region)
        self.shelf = shelf
        self._format = saved_format(self.phones.region)
        self._keys: dict[str, SourceKeys] = {}
        self._stamps: dict[str, StreamStamp] = {}  # of the sources keyed as their base is
        self._lock = threading.Lock()  # two refreshes from worker threads run one at a time
        self._saving = threading.Lock()  # held while clusters are saved in the background

    def refresh(self, store: CachedRecords) -> People:
        """Re-keys the sources whose contacts changed since the last refresh. Clusters found
        afresh are saved by a thread after this returns; the next refresh waits for it, so
        the clusters it reads are not let go (by whoever holds the next ones) meanwhile."""
        with self._lock:
            self.flush()
            people, unsaved = self._refresh(store)
            if unsaved is not None:
                self._saving.acquire()  # released by the thread, once saved
                # not a daemon: a process that exits first (the CLI) waits for the save
                saver = threading.Thread(
                    target=self._save_people, args=(unsaved, people), name="dedup-save"
                )
                saver.start()
            return people

    def save_keys(self, store: CachedRecords, sources: Iterable[str]) -> None:
        """The keys of `sources` saved for the rows their streams rest on (a sync's process:
        the next start maps them in), without clustering."""
        if not isinstance(store, StreamBases):
            return
        keyer = Keyer(self.phones)
        for source in sources:
            base = store.base_of("contacts", source)
            if base is not None:
                version = store.stream_version("contacts", source)
                with gc_paused():
                    self._based(store, source, version, base, keyer)

    def flush(self) -> None:
        """Wait for the clusters being saved, if any."""
        with self._saving:
            pass

    def _refresh(self, store: CachedRecords) -> tuple[People, str | None]:
        present, stamps = {}, {}
        keyer = Keyer(self.phones)
        for source in store.sources():
            version = store.stream_version("contacts", source)  # before the records
            cached = self._keys.get(source)
            if cached is not None and cached.version == version:
                present[source] = cached
                if source in self._stamps:
                    stamps[source] = self._stamps[source]
                continue
            base = store.base_of("contacts", source) if isinstance(store, StreamBases) else None
            with gc_paused():  # young objects by the million: frozen on the way out
                if base is not None:
                    keys = self._based(store, source, version, base, keyer)
                else:
                    keys = self._streamed(store, source, version, cached, keyer)
            if keys is not None and len(keys):
                present[source] = keys
                if base is not None and not keys.patched:
                    stamps[source] = base[0]
        self._keys, self._stamps = present, stamps
        with gc_paused():
            return self._clusters(present, stamps if stamps.keys() == present.keys() else None)

    def _clusters(
        self, present: dict[str, SourceKeys], stamps: dict[str, StreamStamp] | None
    ) -> tuple[People, str | None]:
        """The clusters of these keys: read back when every source rests unchanged on saved
        rows (`stamps`) and they were saved for that combination; else found, with the
        format to save them as (None: not to be saved)."""
        fmt = None
        if stamps and self.shelf is not None:
            counted = {s: (stamp, len(present[s])) for s, stamp in stamps.items()}
            fmt = saved_people_format(self._format, counted)
        if fmt is not None:
            people = self._saved_people(fmt)
            if people is not None:
                return people, None
        return find_clusters([present[s] for s in sorted(present)], Keyer(self.phones)), fmt

    def _saved_people(self, fmt: str) -> People | None:
        shelf = cast("ArtifactShelf", self.shelf)
        artifact = shelf.open(PEOPLE_WHAT, "contacts", EVERY_SOURCE, PEOPLE_STAMP, fmt)
        if artifact is None:
            return None
        people = people_from_saved(artifact.arrays, artifact.meta)
        if people is None:
            log.warning("the saved duplicate clusters do not add up: found again")
        return people

    def _save_people(self, fmt: str, people: People) -> None:
        """In its own thread, holding `_saving`."""
        try:
            enter_background()
            shelf = cast("ArtifactShelf", self.shelf)
            with gc_paused():
                arrays, meta = people_to_saved(people)
            # another combination's clusters sit at the same stamp: replaced
            shelf.save(
                PEOPLE_WHAT, "contacts", EVERY_SOURCE, PEOPLE_STAMP, fmt, arrays, meta, replace=True
            )
        finally:
            self._saving.release()

    def _streamed(
        self,
        store: CachedRecords,
        source: str,
        version: tuple[int, int],
        cached: SourceKeys | None,
        keyer: Keyer,
    ) -> SourceKeys | None:
        """From the stream in memory: a few contacts changed since `cached`, re-key those;
        else all."""
        stream = cast("Mapping[str, Contact]", store.stream("contacts", source))
        if not stream:
            return None
        if cached is not None:
            changed = store.changed_since("contacts", source, cached.version)
            if changed is not None and len(changed) <= max(1000, REKEY_SHARE * len(cached)):
                return cached.rekeyed(version, {i: stream.get(i) for i in changed}, keyer)
        return SourceKeys.build(source, version, RecordList(stream.values()), keyer)

    def _based(
        self,
        store: CachedRecords,
        source: str,
        version: tuple[int, int],
        base: tuple[StreamStamp, BaseRecords, Iterable[str]],
        keyer: Keyer,
    ) -> SourceKeys:
        """The saved keys of the stream's base (made and saved if there are none), with the
        contacts changed since keyed again."""
        stamp, records, changed = base
        keys = self._saved(source, version, stamp, records)
        if keys is None:
            # decoded once, in order: keying and saving read every contact several times,
            # and a record read by position costs twice one read in turn
            listed = SourceKeys.build(source, version, RecordList(records), keyer)
            keys = self._save(listed, stamp, keyer, records) or replace(listed, records=records)
        current = {i: cast("Contact | None", store.get("contacts", i)) for i in changed}
        return keys.rekeyed(version, current, keyer) if current else keys

    def _saved(
        self, source: str, version: object, stamp: StreamStamp, records: BaseRecords
    ) -> SourceKeys | None:
        if self.shelf is None:
            return None
        artifact = self.shelf.open(SHELF_WHAT, "contacts", source, stamp, self._format)
        if artifact is None or artifact.stamp != stamp:
            return None  # keys of other rows: their positions are not these records'
        found = from_saved(artifact.arrays, artifact.meta, len(records))
        if found is None:
            log.warning("the saved duplicate keys of %s do not match: keyed again", source)
            return None
        keys, merged, texts = found
        return SourceKeys(source, version, keys, records, merged, texts=texts)

    def _save(
        self, keys: SourceKeys, stamp: StreamStamp, keyer: Keyer, records: BaseRecords
    ) -> SourceKeys | None:
        """Saved, and mapped back in over `records` (the base's, which `keys.records` may
        hold as a list): the page cache holds them, not this process's heap."""
        if self.shelf is None:
            return None
        contacts = cast("Sequence[Contact]", keys.records)
        names = [keyer.name(c) for c in contacts]
        arrays, meta = to_saved(keys.keys, keys.merged, texts_of(contacts, names))
        del names
        # one found unsound at this stamp would stay: replaced
        saved = self.shelf.save(
            SHELF_WHAT, "contacts", keys.source, stamp, self._format, arrays, meta, replace=True
        )
        if saved is None:
            return None
        return self._saved(keys.source, keys.version, stamp, records)

    def find(self, contacts: Sequence[Contact]) -> People:
        """Clusters of a plain list of contacts (tests, the CLI without a store)."""
        by_source: dict[str, list[Contact]] = {}
        for contact in contacts:
            by_source.setdefault(contact.source, []).append(contact)
        keyer = Keyer(self.phones)
        with gc_paused():
            parts = [
                SourceKeys.build(s, None, RecordList(by_source[s]), keyer)
                for s in sorted(by_source)
            ]
            return find_clusters(parts, keyer)
