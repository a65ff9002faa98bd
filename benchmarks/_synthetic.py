"""Synthetic records for benchmarks: realistic, seeded, cheap to make in bulk."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

from crm_tui.demo.data import CITIES, COMPANIES, FIRST, LAST, TAGS
from crm_tui.models import Contact

SOURCES = ("brivity", "followupboss", "topproducer")


def contacts(count: int, seed: int = 1, user_id: str = "bench") -> Iterator[Contact]:
    r = random.Random(seed)
    statuses = ("lead", "prospect", "client", "past client", "nurture")
    for i in range(count):
        source = SOURCES[i % 3]
        first, last = r.choice(FIRST), r.choice(LAST)
        city, state, _ = r.choice(CITIES)
        remote = str(100_000 + i)
        yield Contact(
            id=f"{source}:{remote}",
            source=source,
            remote_id=remote,
            user_id=user_id,
            first_name=first,
            last_name=last,
            email=f"{first}.{last}{i % 9973}@example.com".lower(),
            phone=f"({r.randint(201, 989)}) {r.randint(200, 999)}-{r.randint(0, 9999):04d}",
            company=r.choice(COMPANIES),
            status=r.choice(statuses),
            stage="Lead",
            tags=tuple(r.sample(TAGS, r.randint(0, 2))),
            city=city,
            state=state,
            postal_code=f"{r.randint(10000, 99999)}",
            synced_at="2026-11-25T00:00:00Z",
            raw=f'{{"id":{remote}}}',
        )


def rss_bytes() -> int:
    """Resident memory of this process (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
