"""Synthetic records for benchmarks: realistic, seeded, cheap to make in bulk."""

from __future__ import annotations

import contextlib
import ctypes
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from crm_tui.demo.data import CITIES, COMPANIES, FIRST, LAST, TAGS
from crm_tui.models import Contact, Deal

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


def held_bytes() -> int:
    """Resident memory after glibc hands freed heap pages back: what is really held, not
    what a build's temporaries left in malloc's free lists (worth 700 B a contact at 100k)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: plain RSS
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_bytes()


def duplicated_contacts(count: int, seed: int = 1, user_id: str = "bench") -> Iterator[Contact]:
    """`count` contacts of about count/1.85 people: each person is held by one, two or three
    sources, spelled a little differently in each (case, phone format, +1)."""
    r = random.Random(seed)
    made = person = 0
    while made < count:
        first, last = r.choice(FIRST), r.choice(LAST)
        digits = f"{r.randint(201, 989)}{r.randint(200, 999)}{r.randint(0, 9999):04d}"
        email = f"{first}.{last}{person}@example.com".lower()
        copies = r.choices((1, 2, 3), weights=(40, 35, 25))[0]
        for source in r.sample(SOURCES, copies)[: count - made]:
            remote = str(100_000 + made)
            shout = r.random() < 0.1
            yield Contact(
                id=f"{source}:{remote}",
                source=source,
                remote_id=remote,
                user_id=user_id,
                first_name=first.upper() if shout else first,
                last_name=last.upper() if shout else last,
                email=email if r.random() < 0.9 else None,
                phone=(f"({digits[:3]}) {digits[3:6]}-{digits[6:]}", f"+1 {digits}")[made % 2],
                synced_at="2026-11-25T00:00:00Z",
                raw=f'{{"id":{remote}}}',
            )
            made += 1
        person += 1


#: Each source's own stage names, as its deals carry them (the Pipeline maps them).
DEAL_STAGES = {
    "followupboss": ("Lead", "Showing", "Offer Submitted", "Under Contract", "Closed", "Lost"),
    "brivity": ("Active", "Pending", "Closed", "Cancelled"),
    "hubspot": ("appointmentscheduled", "contractsent", "closedwon", "closedlost"),
    "pipedrive": ("1", "2", "3", "4"),
}


def deals(count: int, seed: int = 1, user_id: str = "bench") -> Iterator[Deal]:
    """Deals spread over four sources, their stages, 2024-2027 close dates and amounts;
    Follow Up Boss's payload holds `commissionValue` and Brivity's a GCI column, as the
    vendors send them (the Pipeline reads GCI from there)."""
    r = random.Random(seed)
    names = tuple(DEAL_STAGES)
    for i in range(count):
        source = names[i % len(names)]
        amount = r.randrange(150_000, 2_500_000, 500)
        remote = str(500_000 + i)
        if source == "followupboss":
            raw = f'{{"id":{remote},"price":{amount},"commissionValue":{amount * 0.03:.2f}}}'
        elif source == "brivity":
            raw = f'{{"Address":"{i} Oak St","GCI":"{amount * 0.025:,.2f}"}}'
        else:
            raw = f'{{"id":"{remote}"}}'
        yield Deal(
            id=f"{source}:{remote}",
            source=source,
            remote_id=remote,
            user_id=user_id,
            name=f"{i} Oak St",
            amount=Decimal(amount),
            stage=r.choice(DEAL_STAGES[source]),
            status="open",
            close_date=f"{r.randint(2024, 2027)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
            synced_at="2026-11-25T00:00:00Z",
            raw=raw,
        )
