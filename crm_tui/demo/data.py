"""Deterministic demo data: people and deals for each simulated CRM, generated on demand.

Record `i` of a source is a pure function of (seed, source, i), so a server can serve page
9,000 of a million without building the other pages. Sources share part of one population of
people (so the same person shows up in two or three CRMs, spelled a little differently), and
a few records at fixed positions are hostile on purpose.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from crm_tui.demo.clock import FIXED, DemoClock

FIRST = (
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Nancy",
    "Daniel",
    "Lisa",
    "Matthew",
    "Betty",
    "Anthony",
    "Margaret",
    "Mark",
    "Sandra",
    "Donald",
    "Ashley",
    "Steven",
    "Kimberly",
    "Paul",
    "Emily",
    "Andrew",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Melissa",
    "George",
    "Deborah",
    "Timothy",
    "Stephanie",
    "Ronald",
    "Rebecca",
    "Jason",
    "Laura",
    "Edward",
    "Sharon",
    "Jeffrey",
    "Cynthia",
    "Ryan",
    "Kathleen",
    "Jacob",
    "Amy",
    "Gary",
    "Angela",
    "Nicholas",
    "Shirley",
    "Eric",
    "Anna",
    "Jonathan",
    "Brenda",
    "Stephen",
    "Pamela",
    "Larry",
    "Emma",
    "Justin",
    "Nicole",
    "Scott",
    "Helen",
    "Brandon",
    "Samantha",
    "Benjamin",
    "Katherine",
    "Samuel",
    "Christine",
    "Gregory",
    "Debra",
    "Alexander",
    "Rachel",
    "Frank",
    "Carolyn",
    "Raymond",
    "Janet",
    "Jack",
    "Catherine",
    "Dennis",
    "Maria",
    "Jerry",
    "Heather",
)
LAST = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Gomez",
    "Phillips",
    "Evans",
    "Turner",
    "Diaz",
    "Parker",
    "Cruz",
    "Edwards",
    "Collins",
    "Reyes",
    "Stewart",
    "Morris",
    "Morales",
    "Murphy",
    "Cook",
    "Rogers",
    "Gutierrez",
    "Ortiz",
    "Morgan",
    "Cooper",
    "Peterson",
    "Bailey",
    "Reed",
    "Kelly",
    "Howard",
    "Ramos",
    "Kim",
    "Cox",
    "Ward",
    "Richardson",
    "Watson",
    "Brooks",
    "Chavez",
    "Wood",
    "James",
    "Bennett",
    "Gray",
    "Mendoza",
    "Ruiz",
    "Hughes",
    "Price",
    "Alvarez",
)
COMPANIES = (
    "Keller Williams",
    "RE/MAX Capital",
    "Coldwell Banker",
    "Compass",
    "eXp Realty",
    "Sotheby's Realty",
    "Century 21 Lonestar",
    "Redfin",
    "Hilltop Mortgage",
    "Lone Star Title",
    "Barton Creek Builders",
    "Austin Home Inspections",
    "Oak Hill Insurance",
    "Capital City Lending",
    "Travis County Title",
    None,
    None,
)
CITIES = (
    ("Austin", "TX", "787"),
    ("Round Rock", "TX", "786"),
    ("Cedar Park", "TX", "786"),
    ("Georgetown", "TX", "786"),
    ("Pflugerville", "TX", "786"),
    ("Dallas", "TX", "752"),
    ("Houston", "TX", "770"),
    ("San Antonio", "TX", "782"),
    ("Denver", "CO", "802"),
    ("Phoenix", "AZ", "850"),
    ("Nashville", "TN", "372"),
    ("Raleigh", "NC", "276"),
)
STREETS = (
    "Oak",
    "Maple",
    "Cedar",
    "Pecan",
    "Elm",
    "Lamar",
    "Congress",
    "Barton Springs",
    "Riverside",
    "Guadalupe",
    "Burnet",
    "Mesa",
    "Bluebonnet",
    "Live Oak",
    "Willow",
)
SUFFIXES = ("St", "Ave", "Dr", "Ln", "Blvd", "Ct", "Way", "Trl")
TAGS = (
    "buyer",
    "seller",
    "investor",
    "first-time",
    "relocation",
    "luxury",
    "past-client",
    "sphere",
    "open-house",
    "referral",
)
NICKNAMES = {
    "William": "Bill",
    "Robert": "Bob",
    "Elizabeth": "Liz",
    "Michael": "Mike",
    "Jennifer": "Jen",
    "Richard": "Rick",
    "Joseph": "Joe",
    "Thomas": "Tom",
    "Christopher": "Chris",
    "Daniel": "Dan",
    "Matthew": "Matt",
    "Katherine": "Kate",
}
#: Names with letters beyond ASCII, and the ASCII some CRMs hold them in.
NATIVE_FIRST = {
    "Søren": "Soren", "Łukasz": "Lukasz", "Ayşe": "Ayse", "Bjørn": "Bjorn", "Đorđe": "Dorde",
    "Þóra": "Thora", "Małgorzata": "Malgorzata", "Zoë": "Zoe", "Çağla": "Cagla",
}  # fmt: skip
NATIVE_LAST = {
    "Østergaard": "Ostergaard", "Wołoszyn": "Woloszyn", "Yıldırım": "Yildirim",
    "Dæhlie": "Daehlie", "Kovačević": "Kovacevic", "Guðmundsdóttir": "Gudmundsdottir",
    "Świątek": "Swiatek", "Brontë": "Bronte", "Øberg": "Oberg",
}  # fmt: skip
PLUS_TAGS = ("zillow", "realtor", "redfin", "homes")
EXTENSIONS = (" ext. 12", " x204", " #7", ", extension 31")
#: How a CRM's spelling of a person may differ, as the duplicate finder's quality is
#: reported: each record says which of these its spelling has.
SPELLING_KINDS = ("plus_tag", "gmail_dots", "transliteration", "nickname", "phone_extension")

BRIVITY_STATUSES = ("new", "unqualified", "hot", "warm", "cold", "nurture", "past client")
BRIVITY_STAGES = ("Lead", "Prospect", "Client", "Closed")
FUB_STAGES = (
    "Lead",
    "Prospect",
    "Active Client",
    "Under Contract",
    "Closed",
    "Past Client",
    "Sphere",
    "Trash",
)
FUB_DEAL_STAGES = (
    "Buyer Consultation",
    "Showing",
    "Offer Submitted",
    "Under Contract",
    "Closed",
    "Lost",
)
TP_STATUSES = ("Prospect", "Active", "Lead", "Client", "Archived")
DEAL_STATUSES = ("Active", "Pending", "Closed", "Cancelled")

#: Hostile people placed at the start of every source, by record index.
HOSTILE_NAMES: tuple[tuple[str, str], ...] = (
    ("[@click=app.quit]Bob[/]", "Markup"),
    ("[/oops]", "Broken"),
    ('[link="https://x"]y[/link]', "Linky"),
    ("Esc\x1b]0;pwned\x07ape", "Control\x1b[2J"),
    ("José", "Ñúñez"),
    ("Zoë", "Brontë"),
    ("민준", "김"),
)
MISSING_ID_INDEX = len(HOSTILE_NAMES)  # this record has no id at all
NO_EMAIL_INDEX = MISSING_ID_INDEX + 1  # this one has no e-mail
LONG_NOTE_INDEX = MISSING_ID_INDEX + 2  # and this one a 10,000-character note
SOURCES = ("brivity", "followupboss", "topproducer", "hubspot", "pipedrive", "lofty")
# Where each source's records start in the shared population: overlaps make duplicates.
_POPULATION_OFFSET = {
    "brivity": 0.0,
    "followupboss": 0.6,
    "topproducer": 0.3,
    "hubspot": 0.15,
    "pipedrive": 0.45,
    "lofty": 0.5,
}


@dataclass(frozen=True, slots=True)
class Person:
    """One human in the shared population, before any CRM's spelling is applied."""

    index: int
    first: str
    last: str
    email: str | None
    phone_digits: str
    company: str | None
    street: str
    city: str
    state: str
    zip: str
    tags: tuple[str, ...]


def rng(seed: int, *parts: object) -> random.Random:
    """The same numbers for the same seed and parts, on every machine and run."""
    return random.Random(f"{seed}:" + ":".join(map(str, parts)))


def person(seed: int, index: int) -> Person:
    r = rng(seed, "person", index)
    first, last = r.choice(FIRST), r.choice(LAST)
    city, state, zip3 = r.choice(CITIES)
    email = f"{first}.{last}{index % 997}@{r.choice(('gmail.com', 'yahoo.com', 'outlook.com', 'icloud.com'))}".lower()  # noqa: E501
    native = rng(seed, "native", index)
    if native.random() < 0.04:  # a draw of its own: everyone else stays as they were
        first, last = native.choice(list(NATIVE_FIRST)), native.choice(list(NATIVE_LAST))
        plain = f"{NATIVE_FIRST[first]}.{NATIVE_LAST[last]}"
        email = f"{plain}{index % 997}@{email.split('@')[1]}".lower()
    return Person(
        index=index,
        first=first,
        last=last,
        email=email,
        phone_digits=f"{r.randint(201, 989)}{r.randint(200, 999)}{r.randint(0, 9999):04d}",
        company=r.choice(COMPANIES),
        street=f"{r.randint(100, 9999)} {r.choice(STREETS)} {r.choice(SUFFIXES)}",
        city=city,
        state=state,
        zip=f"{zip3}{r.randint(0, 99):02d}",
        tags=tuple(sorted(set(r.sample(TAGS, r.randint(0, 3))))),
    )


def population_index(source: str, i: int, count: int) -> int:
    return int(_POPULATION_OFFSET[source] * count) + i


def _phone(digits: str, style: int) -> str:
    a, b, c = digits[:3], digits[3:6], digits[6:]
    return (f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"+1 {a}-{b}-{c}", f"{a}.{b}.{c}")[style % 4]


@dataclass(frozen=True, slots=True)
class Spelled:
    """A person as one CRM holds them: names and phone formats vary between CRMs."""

    first: str
    last: str
    email: str | None
    phone: str
    note: str | None
    kinds: frozenset[str] = frozenset()  # which of SPELLING_KINDS this spelling has


def spelled(seed: int, source: str, i: int, p: Person, count: int) -> Spelled:
    r = rng(seed, "spell", source, i)
    first, last, email = p.first, p.last, p.email
    kinds: set[str] = set()
    if r.random() < 0.15 and first in NICKNAMES:
        first = NICKNAMES[first]
        kinds.add("nickname")
    if r.random() < 0.1:
        first, last = first.upper(), last.upper()
    if r.random() < 0.05 and p.company:
        # a work address in this CRM only: colleagues with one first name may share it
        email = f"{p.first}@{''.join(c for c in p.company if c.isalnum())}.com".lower()
    note = None
    variant = rng(seed, "variant", source, i)  # draws of its own: the others stay as they were
    if first in NATIVE_FIRST and variant.random() < 0.5:
        first, last = NATIVE_FIRST[first], NATIVE_LAST.get(last, last)
        kinds.add("transliteration")
    if email and variant.random() < 0.06:
        local, domain = email.split("@")
        mark = "-" if domain == "yahoo.com" else "+"  # Yahoo's disposable addresses use "-"
        email = f"{local}{mark}{variant.choice(PLUS_TAGS)}@{domain}"
        kinds.add("plus_tag")
    if email and email.endswith("@gmail.com") and variant.random() < 0.15:
        local, domain = email.split("@")
        local = local.replace(".", "", 1) if "." in local else f"{local[:2]}.{local[2:]}"
        email = f"{local}@{domain}"
        kinds.add("gmail_dots")
    extension = variant.choice(EXTENSIONS) if variant.random() < 0.05 else ""
    if extension:
        kinds.add("phone_extension")
    if i < len(HOSTILE_NAMES):
        kinds -= {"nickname", "transliteration"}
        first, last = HOSTILE_NAMES[i]
    if i == NO_EMAIL_INDEX:
        email = None
    if i == LONG_NOTE_INDEX:
        note = ("Long note. " * 1000)[:10_000]
    style = SOURCES.index(source) + (1 if r.random() < 0.3 else 0)
    digits = p.phone_digits
    if r.random() < 0.03:  # a new number this CRM alone has heard of
        digits = f"{r.randint(201, 989)}{r.randint(200, 999)}{r.randint(0, 9999):04d}"
    phone = _phone(digits, style) + extension
    planted = _planted(seed, source, p.index, count)
    if planted is not None:
        first, last, email, phone = planted
        kinds.clear()
    return Spelled(first, last, email, phone, note, frozenset(kinds))


# -- planted hard cases for duplicate detection ----------------------------------------------

#: Who each planted person is, by offset from `hard_case_base`: (first, last) per source.
_PLANTED_NAMES: tuple[dict[str, tuple[str, str]], ...] = (
    {"*": ("Mark", "Taylor")},  # a couple sharing one phone
    {"*": ("Sarah", "Taylor")},
    {"*": ("Olivia", "Bennett")},  # two colleagues sharing the office e-mail
    {"*": ("Marcus", "Reed")},
    {"brivity": ("José", "Núñez"), "*": ("Jose", "Nunez")},  # with and without accents
    {"*": ("Priya", "Raman")},  # phone with and without +1, no e-mail on one side
    {"followupboss": ("Gregory", "Jonhson"), "*": ("Gregory", "Johnson")},  # a typo
)
HARD_CASES: dict[str, tuple[int, ...]] = {
    "couple_sharing_phone": (0, 1),
    "shared_office_email": (2, 3),
    "accents": (4,),
    "country_code": (5,),
    "last_name_typo": (6,),
}
OFFICE_EMAIL = "info@hilltoprealty.com"


def hard_case_base(count: int) -> int | None:
    """First planted person: inside the part of the population every source holds, past
    the hostile records at the start of each source."""
    base = int(_POPULATION_OFFSET["followupboss"] * count) + LONG_NOTE_INDEX + 3
    return base if base + len(_PLANTED_NAMES) <= count else None


def _planted(
    seed: int, source: str, index: int, count: int
) -> tuple[str, str, str | None, str] | None:
    base = hard_case_base(count)
    if base is None or not base <= index < base + len(_PLANTED_NAMES):
        return None
    offset = index - base
    names = _PLANTED_NAMES[offset]
    first, last = names.get(source, names["*"])
    plain = names["*"]
    email: str | None = f"{plain[0]}.{plain[1]}{index % 997}@gmail.com".lower()
    digits = person(seed, base if offset == 1 else index).phone_digits  # the couple's line
    phone = _phone(digits, SOURCES.index(source))
    if offset in HARD_CASES["shared_office_email"]:
        email = OFFICE_EMAIL
    if offset in HARD_CASES["country_code"]:
        phone = digits if source == "brivity" else f"+1 {digits[:3]} {digits[3:6]} {digits[6:]}"
        email = None if source == "followupboss" else email
    return first, last, email, phone


# -- ground truth --------------------------------------------------------------------------


def brivity_id(i: int) -> int:
    return 500_000 + i


def fub_id(i: int) -> int:
    return i + 1


def tp_id(i: int) -> str:
    return f"TP-{i + 1:07d}"


def hubspot_id(i: int) -> str:
    # HubSpot ids are numeric strings that can pass 2**31 in a grown portal: eleven digits
    # here, so a connector that stores them as 32-bit ints finds out. Step 50, as portals
    # hand them out; the range is far from every other source's.
    return str(90_000_000_051 + 50 * i)


def pipedrive_id(i: int) -> int:
    # a range of its own (up to a million contacts): no other source's id reads like one
    return 2_000_001 + i


def lofty_id(i: int) -> int:
    # As large as Lofty's documented examples (int64), but below 2**53: a JSON number that
    # big still reads back exactly in every client, JavaScript's included.
    return 651_095_960_136_641 + 7 * i


_REMOTE_ID = {
    "brivity": brivity_id,
    "followupboss": fub_id,
    "topproducer": tp_id,
    "hubspot": hubspot_id,
    "pipedrive": pipedrive_id,
    "lofty": lofty_id,
}


def contact_truth(count: int) -> dict[str, int]:
    """Every contact the simulators serve (with an id), as record id -> the person it is."""
    return {
        f"{source}:{remote(i)}": population_index(source, i, count)
        for source, remote in _REMOTE_ID.items()
        for i in range(count)
        if i != MISSING_ID_INDEX
    }


def contact_kinds(seed: int, count: int) -> dict[str, frozenset[str]]:
    """Every served contact whose spelling differs in some way: record id -> the kinds."""
    found = {}
    for source, remote in _REMOTE_ID.items():
        for i in range(count):
            p = person(seed, population_index(source, i, count))
            kinds = spelled(seed, source, i, p, count).kinds
            if kinds and i != MISSING_ID_INDEX:
                found[f"{source}:{remote(i)}"] = kinds
    return found


def hard_case_records(count: int) -> dict[str, list[list[str]]]:
    """Each planted case: the record ids of each person in it."""
    base = hard_case_base(count)
    if base is None:
        return {}
    truth = contact_truth(count)
    people: dict[int, list[str]] = {}
    for record, who in truth.items():
        people.setdefault(who, []).append(record)
    return {
        case: [sorted(people[base + offset]) for offset in offsets]
        for case, offsets in HARD_CASES.items()
    }


def _when(seed: int, *parts: object, days: int = 900) -> date:
    return date(2024, 1, 1) + timedelta(days=rng(seed, "date", *parts).randint(0, days))


# -- custom fields: what a team adds to its CRM -------------------------------------------

LENDERS = (
    "Quicken Loans",
    "Hilltop Mortgage",
    "Capital City Lending",
    "Wells Fargo Home Mortgage",
    "Guild Mortgage",
    "Chase Home Lending",
)
PRICE_RANGES = (250_000, 400_000, 550_000, 750_000, 1_000_000, 1_500_000)
#: The record whose lender is hostile on purpose: markup that must render literally.
HOSTILE_LENDER_INDEX = 0
HOSTILE_LENDER = "[@click=app.quit]Quicken[/]"


@dataclass(frozen=True, slots=True)
class CustomValues:
    """One record's custom field values, before a vendor's shape is put on them: None is
    "no value" (about 40%, 30% and 60% of records)."""

    lender: str | None
    price_range: int | None
    closing_date: str | None  # ISO date


def custom_values(seed: int, source: str, i: int, clock: DemoClock = FIXED) -> CustomValues:
    """A generator of its own, every draw always made: the record's other fields stay as
    they were, and each value is the same on every run."""
    r = rng(seed, "custom", source, i)
    lender, has_lender = r.choice(LENDERS), r.random() < 0.6
    price, has_price = r.choice(PRICE_RANGES), r.random() < 0.7
    closing = clock.day(date(2025, 1, 1) + timedelta(days=r.randint(0, 700))).isoformat()
    has_closing = r.random() < 0.4
    if i == HOSTILE_LENDER_INDEX:
        lender, has_lender = HOSTILE_LENDER, True
    return CustomValues(
        lender if has_lender else None,
        price if has_price else None,
        closing if has_closing else None,
    )


# -- per vendor ----------------------------------------------------------------------------


def brivity_person(seed: int, i: int, count: int) -> dict[str, Any]:
    p = person(seed, population_index("brivity", i, count))
    s = spelled(seed, "brivity", i, p, count)
    r = rng(seed, "brivity", i)
    record: dict[str, Any] = {
        "id": brivity_id(i),
        "lead_id": 900_000 + i,
        "uuid": f"{seed:04x}b{i:011x}-0000-4000-8000-000000000000",
        "account_id": 4242,
        "agent_id": 17 + i % 5,
        "brivity_contact_detail_url": f"https://app.brivity.com/people/{brivity_id(i)}",
        "first_name": s.first,
        "last_name": s.last,
        "phone_number": s.phone,
        "email_address": s.email,
        "company": p.company,
        "job_title": r.choice((None, "Owner", "Engineer", "Teacher", "Nurse", "Manager")),
        "source": r.choice(("Zillow", "Realtor.com", "Website", "Referral", "Open House")),
        "status": r.choice(BRIVITY_STATUSES),
        "stage": r.choice(BRIVITY_STAGES),
        "stage_type": "lead",
        "type": "lead",
        "lead_type": r.choice(("buyer", "seller", "landlord", "tenant")),
        "description": s.note,
        "street_address": p.street,
        "city": p.city,
        "locality": p.state,
        "postal_code": p.zip,
        "country": "US",
        "market_report_count": r.randint(0, 3),
        "active_market_report_count": 0,
        "tags": list(p.tags),
    }
    if i == MISSING_ID_INDEX:
        del record["id"]
    return record


def fub_updated_day(
    seed: int, i: int, r: random.Random | None = None, clock: DemoClock = FIXED
) -> date:
    """The day person i was last updated (at 09:30 UTC): the first draw of its record's
    generator, so the simulator can sort by it without building the record."""
    r = r or rng(seed, "fub", i)
    return clock.past_day(_when(seed, "fub-created", i) + timedelta(days=r.randint(0, 60)))


def _listed_stage(stage: str) -> str:
    """Follow Up Boss lists no one in the Trash stage unless asked (`includeTrash`): the
    trash is where deleted people go. The draw stays the same (so does every later one)."""
    return "Nurture" if stage == "Trash" else stage


def fub_person(seed: int, i: int, count: int, clock: DemoClock = FIXED) -> dict[str, Any]:
    p = person(seed, population_index("followupboss", i, count))
    s = spelled(seed, "followupboss", i, p, count)
    r = rng(seed, "fub", i)
    created = clock.day(_when(seed, "fub-created", i))
    record: dict[str, Any] = {
        "id": fub_id(i),
        "created": f"{created.isoformat()}T15:04:05Z",
        "updated": f"{fub_updated_day(seed, i, r, clock).isoformat()}T09:30:00Z",
        "lastActivity": None,
        "name": f"{s.first} {s.last}",
        "firstName": s.first,
        "lastName": s.last,
        "stage": _listed_stage(r.choice(FUB_STAGES)),
        "source": r.choice(("Zillow", "Realtor.com", "Facebook", "Sphere", "Sign Call")),
        "sourceUrl": None,
        "price": r.choice((0, 250_000, 400_000, 650_000, 1_200_000)),
        "assignedTo": r.choice(("Amy Agent", "Ben Broker", "Cara Closer")),
        "assignedUserId": r.randint(1, 3),
        "contacted": r.random() < 0.5,
        "emails": [{"value": s.email, "type": "home", "isPrimary": 1}] if s.email else [],
        "phones": [{"value": s.phone, "type": "mobile", "isPrimary": 1}],
        "addresses": [
            {
                "street": p.street,
                "city": p.city,
                "state": p.state,
                "code": p.zip,
                "country": "United States",
                "type": "home",
            }
        ],
        "tags": list(p.tags),
        "background": s.note,
    }
    # custom fields sit at the top level, named custom*; a field without a value is absent
    # (a PUT of null deletes one). Listed only when asked for (`fields=allFields`).
    custom = custom_values(seed, "followupboss", i, clock)
    for name, value in (
        ("customLender", custom.lender),
        ("customPriceRange", custom.price_range),
        ("customClosingDate", custom.closing_date),
    ):
        if value is not None:
            record[name] = value
    if i == MISSING_ID_INDEX:
        del record["id"]
    return record


def tp_contact(seed: int, i: int, count: int, clock: DemoClock = FIXED) -> dict[str, Any]:
    p = person(seed, population_index("topproducer", i, count))
    s = spelled(seed, "topproducer", i, p, count)
    r = rng(seed, "tp", i)
    created = clock.day(_when(seed, "tp-created", i))
    record: dict[str, Any] = {
        "id": tp_id(i),
        "firstName": s.first,
        "lastName": s.last,
        "email": s.email,
        "phone": s.phone,
        "company": p.company,
        "status": r.choice(TP_STATUSES),
        "address": p.street,
        "city": p.city,
        "state": p.state,
        "zip": p.zip,
        "notes": s.note,
        "createdAt": f"{created.isoformat()}T12:00:00Z",
    }
    if i == MISSING_ID_INDEX:
        del record["id"]
    return record


def _property(seed: int, source: str, j: int) -> tuple[str, int, str]:
    r = rng(seed, "deal", source, j)
    city, state, zip3 = r.choice(CITIES)
    address = (
        f"{r.randint(100, 9999)} {r.choice(STREETS)} {r.choice(SUFFIXES)}, {city}, "
        f"{state} {zip3}{r.randint(0, 99):02d}"
    )
    price = r.randrange(180_000, 2_400_000, 500)
    return address, price, r.choice(DEAL_STATUSES)


def fub_deal(seed: int, j: int, contacts: int, clock: DemoClock = FIXED) -> dict[str, Any]:
    address, price, _ = _property(seed, "followupboss", j)
    r = rng(seed, "fub-deal", j)
    stage = r.choice(FUB_DEAL_STAGES)
    r.choice(("Buyers", "Sellers"))  # was the pipeline's name; drawn still, so later draws hold
    return {
        "id": j + 1,
        "name": address,
        "price": price,
        "stageId": FUB_DEAL_STAGES.index(stage) + 1,
        "stageName": stage,
        # one pipeline holds every stage (GET /v1/pipelines lists it): pipelineId 1 under two
        # names, as generated before, named no pipeline the simulator could list
        "pipelineId": 1,
        "pipelineName": "Transactions",
        "status": "Active" if stage != "Lost" else "Archived",
        "projectedCloseDate": clock.day(_when(seed, "fub-close", j, days=1100)).isoformat(),
        "commissionValue": round(price * 0.03, 2),
        "people": [{"id": r.randint(1, max(contacts, 1))}],
        "users": [{"id": r.randint(1, 3)}],
        "createdAt": f"{clock.day(_when(seed, 'fub-deal-created', j)).isoformat()}T10:00:00Z",
    }


def tp_transaction(seed: int, j: int, contacts: int, clock: DemoClock = FIXED) -> dict[str, Any]:
    address, price, status = _property(seed, "topproducer", j)
    r = rng(seed, "tp-deal", j)
    return {
        "id": f"TX-{j + 1:07d}",
        "propertyAddress": address,
        "salesPrice": price,
        "status": status,
        "closeDate": _closing(clock, _when(seed, "tp-close", j, days=1100), status).isoformat(),
        "contactId": tp_id(r.randint(0, max(contacts, 1) - 1)),
    }


def _closing(clock: DemoClock, when: date, status: str) -> date:
    """A closing date moved: a closed deal's has happened, an open one's may be ahead."""
    return clock.past_day(when) if status == "Closed" else clock.day(when)


def brivity_transaction_row(seed: int, j: int, clock: DemoClock = FIXED) -> dict[str, str]:
    address, price, status = _property(seed, "brivity", j)
    r = rng(seed, "brivity-deal", j)
    listed = clock.day(_when(seed, "brivity-list", j))
    close = listed + timedelta(days=r.randint(20, 120))  # ahead only while expected
    if status == "Closed":
        close = clock.happened(close)
    sold = price + r.randrange(-20_000, 20_000, 500)
    return {
        "Address": address,
        "Status": status,
        "Type": r.choice(("Buyer", "Seller")),
        "MLS #": f"MLS{seed % 100:02d}{j:07d}",
        "Agent": r.choice(("Amy Agent", "Ben Broker", "Cara Closer")),
        "List Price": f"${price:,}",
        "Sale Price": f"${sold:,}" if status == "Closed" else "",
        "GCI": f"{sold * 0.03:,.2f}" if status == "Closed" else "",
        "List Date": listed.strftime("%m/%d/%Y"),
        "Contract Date": clock.happened(listed + timedelta(days=10)).strftime("%m/%d/%Y"),
        "Close Date": close.strftime("%m/%d/%Y"),
        "Source": r.choice(("Zillow", "Referral", "Sphere")),
        "Client": f"{r.choice(FIRST)} {r.choice(LAST)}",
    }


def deal_count(contacts: int) -> int:
    return max(contacts // 5, 1)


def expected_contacts(contacts: int) -> int:
    """What a clean sync of one source keeps: every record but the one without an id."""
    return contacts - (1 if contacts > MISSING_ID_INDEX else 0)
