"""Contacts shaped unlike _synthetic's: skewed (Zipf-like) names, cities and companies,
accented and non-English names, multi-word companies, varied e-mail and phone patterns,
over six sources of unequal size. Seeded and deterministic. Search's speed depends on how
often a term occurs, so a benchmark on uniform data alone would miss the slow shapes."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from itertools import accumulate

from crm_tui.models import Contact

#: Six sources, as a real cache holds them: unequal shares of the records.
SOURCE_SHARES = (
    ("followupboss", 34),
    ("brivity", 22),
    ("hubspot", 16),
    ("lofty", 12),
    ("topproducer", 10),
    ("pipedrive", 6),
)
SOURCES = tuple(name for name, _ in SOURCE_SHARES)

FIRST = (
    "Maria", "Jose", "Anna", "Nguyễn Thị", "Mohammed", "Wei", "Søren", "Zoë", "François",
    "Björn", "Łucja", "Małgorzata", "Siobhán", "Seán", "Aoife", "Renée", "José Luis", "Jürgen",
    "Ingrid", "Lars", "Astrid", "Priya", "Arjun", "Ana", "Carmen", "Antonio", "Juan", "Luis",
    "Sofía", "Camila", "Hiroshi", "Yuki", "Kenji", "Olga", "Dmitri", "Ivan", "Fatima", "Aisha",
    "Omar", "Chloé", "Noël", "Agnieszka", "Krzysztof", "Zoltán", "Ágnes", "Emily", "Michael",
    "Sarah", "David", "Jennifer", "Christopher", "Jessica", "Matthew", "Ashley", "Daniel",
    "Amanda", "Andrew", "Stephanie", "Joshua", "Nicole", "Kevin", "Elizabeth", "Brian",
    "Megan", "Ryan", "Lauren", "Jason", "Rachel", "Eric", "Hannah", "Mateo", "Valentina",
    "Thảo", "Minh", "Đức", "Ngọc", "Ülkü", "Çağla", "Ömer", "Þóra", "Eiður", "Dagný",
)  # fmt: skip
LAST = (
    "Garcia", "Nguyen", "Müller", "Smith", "Rodriguez", "O'Brien", "Wałęsa", "Kowalski",
    "Johansson", "Sørensen", "Lefèvre", "Schröder", "García-López", "Martínez", "Hernández",
    "López", "González", "Pérez", "Sánchez", "Ramírez", "Torres", "Flores", "Rivera", "Gómez",
    "Díaz", "Reyes", "Cruz", "Morales", "Ortiz", "Gutiérrez", "Chávez", "Ramos", "Ruiz",
    "Álvarez", "Mendoza", "Castillo", "Jiménez", "Moreno", "Romero", "Herrera", "Medina",
    "Aguilar", "Vargas", "Castro", "Guzmán", "Fernández", "Wang", "Li", "Zhang", "Liu", "Chen",
    "Yang", "Huang", "Zhao", "Wu", "Zhou", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Võ",
    "Đặng", "Bùi", "Đỗ", "Ngô", "Dương", "Lý", "Kim", "Park", "Choi", "Jung", "Kang", "Cho",
    "Yoon", "Jang", "Lim", "Han", "Oh", "Seo", "Shin", "Kwon", "Hwang", "Ahn", "Song", "Yoo",
    "Hong", "Jeon", "Patel", "Shah", "Singh", "Kumar", "Sharma", "Gupta", "Mehta", "Iyer",
    "Reddy", "Rao", "Nair", "Das", "Bose", "Sen", "Ghosh", "Dubois", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Fournier", "Girard", "Bonnet",
    "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent", "Ferrari", "Russo", "Bianchi",
    "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno", "Gallo", "Conti", "De Luca",
    "Costa", "Giordano", "Mancini", "Rizzo", "Lombardi", "Moretti", "Nowak", "Wiśniewski",
    "Wójcik", "Kowalczyk", "Kamiński", "Lewandowski", "Zieliński", "Szymański", "Woźniak",
    "Dąbrowski", "Kozłowski", "Jankowski", "Mazur", "Kwiatkowski", "Krawczyk", "Piotrowski",
    "Grabowski", "Nowakowski", "Pawłowski", "Michalski", "Nielsen", "Jensen", "Hansen",
    "Pedersen", "Andersen", "Christensen", "Larsen", "Rasmussen", "Jørgensen", "Petersen",
    "Madsen", "Kristensen", "Olsen", "Thomsen", "Poulsen", "Johnson", "Williams", "Brown",
    "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson",
    "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Robinson", "Walker",
    "Young", "Allen", "King", "Wright", "Scott", "Hill", "Green", "Adams", "Baker", "Nelson",
    "Carter", "Mitchell", "Roberts", "Turner", "Phillips", "Campbell", "Parker", "Evans",
    "Edwards", "Collins", "Stewart", "Morris", "Murphy", "Cook", "Rogers", "Morgan", "Cooper",
    "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ó Súilleabháin", "MacGiolla", "Þórsson",
    "Guðmundsdóttir", "Öztürk", "Yılmaz", "Çelik", "Şahin", "Doğan", "Ünal", "Kılıç",
)  # fmt: skip
COMPANIES = (
    "Keller Williams Realty", "Coldwell Banker Bain of Seattle", "RE/MAX Northwest Realtors",
    "Berkshire Hathaway HomeServices", "Century 21 Real Estate", "Sotheby's International Realty",
    "Compass", "eXp Realty", "Redfin", "Windermere Real Estate", "Howard Hanna",
    "Long & Foster", "William Raveis Real Estate", "Douglas Elliman", "The Corcoran Group",
    "Baird & Warner", "John L. Scott Real Estate", "Engel & Völkers", "Müller Immobilien GmbH",
    "Société Générale Immobilier", "Quicken Loans", "Rocket Mortgage", "Wells Fargo Home Mortgage",
    "Guild Mortgage", "First American Title", "Fidelity National Title", "Chicago Title",
    "Stewart Title", "Old Republic Title", "Keller Williams Capital Properties",
    "Coldwell Banker Realty", "Realty One Group", "HomeSmart", "Fathom Realty",
    "United Real Estate", "Nguyễn & Sons Construction", "O'Brien Property Management",
)  # fmt: skip
#: One city far ahead of the rest (with 1M records, 100k+ each for the first ones).
CITIES = (
    ("Houston", "TX"), ("San Antonio", "TX"), ("Los Angeles", "CA"), ("Seattle", "WA"),
    ("Austin", "TX"), ("Miami", "FL"), ("Chicago", "IL"), ("Phoenix", "AZ"), ("Denver", "CO"),
    ("São Paulo", "SP"), ("Montréal", "QC"), ("Zürich", "ZH"), ("Kraków", "MA"),
    ("Malmö", "M"), ("Düsseldorf", "NW"), ("Bellevue", "WA"), ("Tacoma", "WA"),
    ("Spokane", "WA"), ("Boise", "ID"), ("Portland", "OR"), ("Salt Lake City", "UT"),
    ("Las Vegas", "NV"), ("Albuquerque", "NM"), ("El Paso", "TX"), ("Fort Worth", "TX"),
    ("Coeur d'Alene", "ID"), ("Saint Paul", "MN"), ("Winston-Salem", "NC"),
)  # fmt: skip
CITY_WEIGHTS = (180, 120, 105, 70, 60, 50, 45, 40, 35) + (10,) * (len(CITIES) - 9)
TAGS = (
    "buyer", "seller", "investor", "first time buyer", "relocation", "luxury", "vip",
    "sphere of influence", "open house 2026-05", "zillow lead", "realtor.com", "past client",
    "referral", "builder", "cash buyer", "55+", "rental", "farm: north end", "do not call",
)  # fmt: skip
STATUSES = {
    "followupboss": ("New", "Attempted contact", "Active Client", "Nurture", "Closed", "Trash"),
    "brivity": ("Lead", "Prospect", "Client", "Past Client", "Archived"),
    "hubspot": ("subscriber", "lead", "marketingqualifiedlead", "opportunity", "customer"),
    "lofty": ("New Lead", "Hot", "Warm", "Cold", "Closed"),
    "topproducer": ("Prospect", "Active", "Inactive", "Sold"),
    "pipedrive": ("Open", "Won", "Lost"),
}
DOMAINS = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "aol.com")


def zipf(count: int, s: float = 1.0) -> list[float]:
    """Cumulative Zipf weights for `count` items: item k is held 1/k^s as often as the first."""
    return list(accumulate(1.0 / (k**s) for k in range(1, count + 1)))


_FIRST_W, _LAST_W = zipf(len(FIRST), 0.9), zipf(len(LAST), 1.0)
_COMPANY_W, _TAG_W = zipf(len(COMPANIES), 1.1), zipf(len(TAGS), 0.8)
_CITY_W = list(accumulate(CITY_WEIGHTS))
_SOURCE_W = list(accumulate(share for _, share in SOURCE_SHARES))


def ascii_word(text: str) -> str:
    """A name as an e-mail address spells it: lowercase ASCII letters only."""
    from crm_tui.text import fold

    return "".join(c for c in fold(text) if "a" <= c <= "z")


def _pick(r: random.Random, items: Sequence[str], weights: list[float]) -> str:
    return r.choices(items, cum_weights=weights)[0]


def _email(r: random.Random, first: str, last: str, company: str | None, i: int) -> str | None:
    f, s = ascii_word(first) or "x", ascii_word(last) or "y"
    pattern = r.randrange(7)
    if pattern == 0:
        return None
    if pattern == 1 and company:
        return f"{f[0]}{s}@{ascii_word(company)[:14]}.com"
    local = (f"{f}.{s}", f"{f}{s}{i % 997}", f"{f[0]}{s}", f"{s}.{f}{i % 89}", f"{f}_{s}")
    return f"{local[pattern % 5]}@{r.choice(DOMAINS)}"


def _phone(r: random.Random) -> str | None:
    a, b, c = r.randint(201, 989), r.randint(200, 999), r.randint(0, 9999)
    style = r.randrange(6)
    if style == 0:
        return None
    return (
        f"+1 {a}-{b}-{c:04d}",
        f"{a}.{b}.{c:04d}",
        f"({a}) {b}-{c:04d}",
        f"{a}{b}{c:04d}",
        f"+44 20 {b}{c // 10} {c % 10}{a}",
    )[style - 1]


def _surname(r: random.Random) -> str:
    last = _pick(r, LAST, _LAST_W)
    if r.random() < 0.05:  # a double surname
        return f"{last}-{_pick(r, LAST, _LAST_W)}"
    return last


def other_contacts(count: int, seed: int = 7, user_id: str = "bench") -> Iterator[Contact]:
    """`count` contacts, the same for the same seed; sources by SOURCE_SHARES."""
    r = random.Random(seed)
    for i in range(count):
        source = r.choices(SOURCES, cum_weights=_SOURCE_W)[0]
        first, last = _pick(r, FIRST, _FIRST_W), _surname(r)
        company = _pick(r, COMPANIES, _COMPANY_W) if r.random() < 0.6 else None
        city, state = r.choices(CITIES, cum_weights=_CITY_W)[0]
        tags = tuple(dict.fromkeys(r.choices(TAGS, cum_weights=_TAG_W, k=r.randrange(4))))
        remote = str(900_000 + i)
        yield Contact(
            id=f"{source}:{remote}",
            source=source,
            remote_id=remote,
            user_id=user_id,
            first_name=first,
            last_name=last,
            email=_email(r, first, last, company, i),
            phone=_phone(r),
            company=company,
            status=r.choice(STATUSES[source]),
            tags=tags,
            city=city,
            state=state,
            synced_at="2026-11-25T00:00:00Z",
            raw=f'{{"id":{remote}}}',
        )
