"""Which mailbox an e-mail address delivers to: the key two addresses are matched on.

For matching only, never for what is stored or shown. The provider rules are validator.js's
`normalizeEmail` (github.com/validatorjs/validator.js, src/lib/normalizeEmail.js, the
maintained table most sign-up forms use): Gmail ignores dots and `+tags` and is also
`googlemail.com`; iCloud and Outlook.com drop `+tags`; Yahoo's disposable addresses are
`name-keyword`; every Yandex domain is one mailbox. Beyond that table one choice of ours:
a `+tag` is dropped at every domain (RFC 5233 sub-addressing, which Google Workspace,
Microsoft 365, Fastmail and Proton all deliver to the untagged mailbox), since lead portals
hand out `ana+zillow@...` at work domains too; the name check still has to agree before two
records link. Domains are lowercased and IDNA-encoded, so `müller.de` and
`xn--mller-kva.de` are one domain.
"""

from __future__ import annotations

import re

import idna

from crm_tui.text import fold

GMAIL = frozenset({"gmail.com", "googlemail.com"})
ICLOUD = frozenset({"icloud.com", "me.com"})
# fmt: off
OUTLOOK = frozenset({
    "hotmail.at", "hotmail.be", "hotmail.ca", "hotmail.cl", "hotmail.co.il", "hotmail.co.nz",
    "hotmail.co.th", "hotmail.co.uk", "hotmail.com", "hotmail.com.ar", "hotmail.com.au",
    "hotmail.com.br", "hotmail.com.gr", "hotmail.com.mx", "hotmail.com.pe", "hotmail.com.tr",
    "hotmail.com.vn", "hotmail.cz", "hotmail.de", "hotmail.dk", "hotmail.es", "hotmail.fr",
    "hotmail.hu", "hotmail.id", "hotmail.ie", "hotmail.in", "hotmail.it", "hotmail.jp",
    "hotmail.kr", "hotmail.lv", "hotmail.my", "hotmail.ph", "hotmail.pt", "hotmail.sa",
    "hotmail.sg", "hotmail.sk", "live.be", "live.co.uk", "live.com", "live.com.ar",
    "live.com.mx", "live.de", "live.es", "live.eu", "live.fr", "live.it", "live.nl", "msn.com",
    "outlook.at", "outlook.be", "outlook.cl", "outlook.co.il", "outlook.co.nz", "outlook.co.th",
    "outlook.com", "outlook.com.ar", "outlook.com.au", "outlook.com.br", "outlook.com.gr",
    "outlook.com.pe", "outlook.com.tr", "outlook.com.vn", "outlook.cz", "outlook.de",
    "outlook.dk", "outlook.es", "outlook.fr", "outlook.hu", "outlook.id", "outlook.ie",
    "outlook.in", "outlook.it", "outlook.jp", "outlook.kr", "outlook.lv", "outlook.my",
    "outlook.ph", "outlook.pt", "outlook.sa", "outlook.sg", "outlook.sk", "passport.com",
})
YAHOO = frozenset({
    "rocketmail.com", "yahoo.ca", "yahoo.co.uk", "yahoo.com", "yahoo.de", "yahoo.fr",
    "yahoo.in", "yahoo.it", "ymail.com",
})
YANDEX = frozenset({"yandex.ru", "yandex.ua", "yandex.kz", "yandex.com", "yandex.by", "ya.ru"})
# fmt: on
#: Domains whose rules change more than a `+tag`.
_REWRITTEN = GMAIL | YAHOO | YANDEX

_DOTS = re.compile(r"\.+")
_domains: dict[str, str] = {}


def _domain(text: str) -> str:
    """Lowercase, IDNA-encoded; a domain IDNA refuses is compared as folded text."""
    known = _domains.get(text)
    if known is None:
        lowered = text.lower().rstrip(".")
        if lowered.isascii():
            known = lowered
        else:
            try:
                known = idna.encode(lowered, uts46=True).decode("ascii")
            except idna.IDNAError:
                known = fold(lowered)
        if len(_domains) < 100_000:
            _domains[text] = known
    return known


def _undotted(local: str) -> str:
    """Gmail's rule: single dots go; a run of dots (no Gmail address has one) stays."""
    if ".." in local:
        return _DOTS.sub(lambda run: "" if len(run.group()) == 1 else run.group(), local)
    return local.replace(".", "")


def mailbox_key(value: str | None) -> str | None:
    """The mailbox `value` delivers to, as text equal for every spelling of it; None when
    it is no address at all."""
    if not value:
        return None
    text = value.strip()
    if text.isascii():  # nearly every address: lowercase is the whole fold
        text = text.lower()
        at = text.rfind("@")
        if (
            0 < at < len(text) - 1
            and "+" not in text
            and text.count("@") == 1
            and text[0] != '"'
            and text[-1] != "."
            and text[at + 1 :] not in _REWRITTEN
        ):
            return text  # nothing to drop, no provider rule: the address is its key
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return None
    domain = _domain(domain)
    if not domain:
        return None
    if local[0] == '"':  # a quoted local part is taken as it is, lowercased as all are
        return f"{local.lower()}@{domain}"
    if "@" in local:  # unquoted, an "@" cannot be part of an address
        return None
    local = fold(local)
    if domain in YAHOO:
        local = local.rsplit("-", 1)[0] if "-" in local else local
    else:
        local = local.split("+", 1)[0]
    if domain in GMAIL:
        local, domain = _undotted(local), "gmail.com"
    elif domain in YANDEX:
        domain = "yandex.ru"
    return f"{local}@{domain}" if local else None
