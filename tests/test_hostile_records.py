"""One bad record never fails a stream: numbers past every limit, lone surrogates, 10 MB
fields. That record is quarantined (or listed in the import plan) with its reason; the
other records land."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crm_tui import jsoncodec
from crm_tui.models import Outcome
from crm_tui.sources.errors import InvalidRecord
from crm_tui.sources.mapping import build_record
from crm_tui.store import CacheStore
from tests.helpers.hostile_fub import hostile_fub, person, sync_fub

DEALS = {
    "remote_id": "id",
    "name": "name",
    "amount": "price",
    "probability": "probability",
}
TEN_MB = "x" * (10 * 1024 * 1024)


def deal(**fields):
    return build_record("deals", "s", "u", DEALS, {"id": 1, "name": "A", **fields}, "now")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"price": "1E+999999999"}, "amount: out of range"),
        ({"price": "-1E+999999999"}, "amount: out of range"),
        ({"price": "1e-999999999"}, "amount: more than 20 decimal places"),
        ({"price": "9" * 5000}, "amount: not a number (longer than 64 characters)"),
        ({"probability": "1E+999999999"}, "probability: out of range"),
        ({"name": "Ana \ud800"}, "payload cannot be stored"),
        ({"note": TEN_MB}, "payload larger than 1 MiB"),
    ],
)
def test_each_hostile_value_is_an_invalid_record_with_its_reason(fields, reason):
    with pytest.raises(InvalidRecord) as info:
        deal(**fields)
    assert str(info.value).startswith(reason)


def test_both_json_paths_read_huge_integers_alike():
    exact = jsoncodec.loads(b"[18446744073709551615, 1]")
    assert exact == [18446744073709551615, 1]
    # orjson alone: a float; with a NaN token on the page the standard library reads it.
    for page in (b"[123456789012345678901234567890]", b"[123456789012345678901234567890,NaN]"):
        assert jsoncodec.loads(page)[0] == 1.2345678901234568e29
    assert jsoncodec.loads(b"[" + b"9" * 5000 + b"]") == [float("inf")]  # not a ValueError
    assert jsoncodec.loads(b'["\\ud800"]') == ["\ud800"]  # read; refused when written
    with pytest.raises(ValueError, match="lone surrogate"):
        jsoncodec.dumps({"a": "\ud800"})


def fub_deal(remote_id: int, price: str) -> bytes:
    return (f'{{"id":{remote_id},"name":"Deal {remote_id}","price":{price}}}').encode()


def people_with_bad_ones() -> list[bytes]:
    """30 good people and, among them, 3 hostile ones: 2 the cache cannot keep."""
    good_people = [person(i) for i in range(1, 31)]
    bad_people = [
        person(101, "Ana \\ud800"),  # a lone surrogate, escaped as a JSON server may write it
        person(102, note=json.dumps(TEN_MB)),
        person(103, score="9" * 5000),  # a number no parser keeps: fine, it is not mapped
    ]
    return good_people[:10] + bad_people + good_people[10:]


def deals_with_bad_ones() -> list[bytes]:
    """30 good deals, some priced oddly but validly, and among them 4 the cache cannot keep."""
    good_deals = [fub_deal(i, '"500000"') for i in range(1, 28)] + [
        fub_deal(28, '"$1,250,000.50"'),
        fub_deal(29, "0.30000000000000004"),
        fub_deal(30, '"0E+999999999"'),  # zero, however it is written
    ]
    bad_deals = [
        fub_deal(101, '"1E+999999999"'),
        fub_deal(102, '"1e-999999999"'),
        fub_deal(103, "9" * 5000),
        b'{"id":104,"name":"Deal 104","price":1,"probability":%d}' % 2**70,
    ]
    return good_deals[:10] + bad_deals + good_deals[10:]


async def test_a_real_sync_quarantines_each_bad_record_and_lands_the_rest(tmp_path, backing):
    # Probability reaches an INTEGER column: mapped here as a user's mappings.toml may map it.
    config = tmp_path / "home" / "config" / "crm-tui"
    config.mkdir(parents=True)
    (config / "mappings.toml").write_text('[followupboss.deals]\nprobability = "probability"\n')
    hostile = hostile_fub(
        tmp_path, people_with_bad_ones(), deals_with_bad_ones(), **backing.settings()
    )
    with hostile as settings:
        report, store = await sync_fub(settings)

    contacts, deals_report = report.streams["contacts"], report.streams["deals"]
    assert report.outcome is Outcome.SUCCESS, report.error
    assert (contacts.read, contacts.written, contacts.quarantined) == (33, 31, 2)
    assert (deals_report.read, deals_report.written, deals_report.quarantined) == (34, 30, 4)

    # Read back by a new process's way in: a fresh connection.
    store.db.close()
    reopened = CacheStore(settings.user_id, backing.open())
    await reopened.load()
    the_good_records_landed_with_their_values(reopened)
    each_bad_record_is_quarantined_with_its_reason(reopened, settings.user_id)
    reopened.db.close()


def the_good_records_landed_with_their_values(reopened: CacheStore) -> None:
    ids = {r.remote_id for r in reopened.records("contacts", "followupboss")}
    assert ids == {str(i) for i in range(1, 31)} | {"103"}
    amounts = {r.remote_id: r.amount for r in reopened.records("deals", "followupboss")}
    assert len(amounts) == 30
    assert [str(amounts[i]) for i in ("1", "28", "29", "30")] == [
        "500000",
        "1250000.50",
        "0.30000000000000004",
        "0",
    ]


def each_bad_record_is_quarantined_with_its_reason(reopened: CacheStore, user_id: str) -> None:
    quarantined = reopened.db.list_quarantine(user_id)
    reasons = {q["reason"] for q in quarantined}
    assert reasons == {
        "payload cannot be stored: text that cannot be encoded as UTF-8 (a lone surrogate)",
        "payload larger than 1 MiB",
        "amount: out of range",
        "amount: more than 20 decimal places",
        "amount: not a finite number",
        "probability: out of range",
    }
    big = next(q for q in quarantined if q["reason"] == "payload larger than 1 MiB")
    stored = json.loads(big["payload"])
    assert stored["truncated"] is True and stored["characters"] > 10 * 1024 * 1024
    assert len(big["payload"]) < 80 * 1024  # the first 64 KiB, escaped, and a marker
    assert stored["head"].startswith('{"id": 102')


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crm_tui", "--data-dir", str(cwd / "data"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_a_csv_import_reports_the_bad_rows_and_imports_the_others(tmp_path):
    path = tmp_path / "closings.csv"
    half_mb = "n" * (600 * 1024)
    rows = [
        "Property Address,Sale Price,Closing Date,Notes,More notes",
        "1 Oak St,500000,01/02/2026,ok,",
        "2 Oak St,1E+999999999,01/02/2026,ok,",
        "3 Oak St,1e-999999999,01/02/2026,ok,",
        f"4 Oak St,1,01/02/2026,{TEN_MB},",
        f"5 Oak St,1,01/02/2026,{'y' * 2 * 1024 * 1024},",
        f"6 Oak St,1,01/02/2026,{half_mb},{half_mb}",
        "7 Oak St,250000,01/02/2026,ok,",
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    done = run_cli("import", "topproducer", str(path), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    plan = body["plans"][0]
    assert (plan["rows"], plan["valid"], plan["invalidCount"], plan["errorCount"]) == (7, 2, 3, 2)
    assert [(i["line"], i["reason"]) for i in plan["invalid"]] == [
        (3, "amount: out of range"),
        (4, "amount: more than 20 decimal places"),
        (7, "payload larger than 1 MiB"),
    ]
    assert plan["errors"] == [
        {"line": 5, "error": "line 5: longer than 8 MiB; skipped"},
        {"line": 6, "error": "line 6: a field larger than 1 MiB"},
    ]
    assert body["applied"] == [{"file": str(path), "written": 2}]
    listed = run_cli("deals", "--source", "topproducer", "--json", cwd=tmp_path)
    names = sorted(d["name"] for d in json.loads(listed.stdout)["deals"])
    assert names == ["1 Oak St", "7 Oak St"]
