"""Hostile import files: encodings, unbalanced quotes, files that are not files, files that
change, big files (bounded memory), and the user's mappings.toml. Through the real command
in a subprocess where the behaviour is the command's."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_tui.sources.csv_import import parse_csv
from crm_tui.sources.errors import ImportFileError
from crm_tui.sources.imports import plan_import
from crm_tui.sources.topproducer import CONTACTS_EXPORT

NAMES = ("Łukasz", "李", "José", "Zoë")


def crm(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """crm-tui in its own process, memory capped: a file read without bound fails fast
    rather than taking the machine with it."""

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    env = {**os.environ, "CRM_USER_ID": "alice"}
    return subprocess.run(
        [sys.executable, "-m", "crm_tui", "--data-dir", str(cwd / "data"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        preexec_fn=cap_memory,
    )


def contacts_file(tmp_path: Path, data: bytes, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- encodings -----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_by_their_byte_order_marks(tmp_path, encoding):
    text = "First Name,Last Name\r\n" + "".join(f"{n},Lee\r\n" for n in NAMES)
    bom = "\ufeff".encode(encoding)
    path = contacts_file(tmp_path, bom + text.encode(encoding))
    done = crm("import", "topproducer", str(path), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    plan = json.loads(done.stdout)["plans"][0]
    assert (plan["encoding"], plan["encodingWarnings"], plan["valid"]) == (encoding, [], 4)
    listed = json.loads(crm("contacts", "--json", cwd=tmp_path).stdout)["contacts"]
    assert sorted(c["first_name"] for c in listed) == sorted(NAMES)


def test_a_file_mixing_utf8_and_cp1252_says_which_lines(tmp_path):
    lines = [
        b"First Name,Last Name\n",
        "José,Núñez\n".encode(),  # line 2: UTF-8
        "Zoë,Ng\n".encode("cp1252"),  # line 3: Windows-1252
        b"Ana,Lee\n",
        "Renée,Dupré\n".encode("cp1252"),  # line 5
    ]
    path = contacts_file(tmp_path, b"".join(lines))
    done = crm("import", "topproducer", str(path), "--json", cwd=tmp_path)
    plan = json.loads(done.stdout)["plans"][0]
    assert plan["encoding"] == "utf-8"
    assert plan["encodingWarnings"] == [{"lines": [3, 5], "count": 2, "assumed": "cp1252"}]
    listed = json.loads(crm("contacts", "--json", cwd=tmp_path).stdout)["contacts"]
    assert sorted(c["name"] for c in listed) == ["Ana Lee", "José Núñez", "Renée Dupré", "Zoë Ng"]

    text = crm("import", "topproducer", str(path), "--dry-run", cwd=tmp_path).stdout
    assert "encoding: utf-8" in text
    assert "warning: lines 3, 5 decoded as cp1252, not as utf-8" in text


def test_a_whole_cp1252_file_is_cp1252_without_warnings():
    table = parse_csv(
        "First Name,Last Name\nJosé,Núñez\nZoë,Ng\n".encode("cp1252"), CONTACTS_EXPORT
    )
    assert (table.encoding, table.encoding_warnings) == ("cp1252", [])
    assert [r["First Name"] for r in table.rows] == ["José", "Zoë"]


# -- quotes --------------------------------------------------------------------------------

SWALLOWED = (
    b"First Name,Last Name,Notes\n"
    b"Ana,Lee,fine\n"
    b'Bo,Ng,"a note that never closes\n'  # line 3
    b"Cy,Do,ok\n"
    b'Di,"Ek",x\n'
    b'Ed,Fo,"a real note\nover two lines"\n'  # lines 6-7, legitimate
    b"Gil,Ho,last\n"
)


def test_an_unbalanced_quote_is_an_error_naming_its_line_and_swallows_nothing(tmp_path):
    path = contacts_file(tmp_path, SWALLOWED)
    done = crm("import", "topproducer", str(path), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    plan = body["plans"][0]
    assert [e["line"] for e in plan["errors"]] == [3]
    assert "unbalanced quote" in plan["errors"][0]["error"]
    assert (plan["rows"], plan["valid"]) == (6, 5)
    listed = json.loads(crm("contacts", "--json", cwd=tmp_path).stdout)["contacts"]
    names = {c["first_name"]: c for c in listed}
    assert sorted(names) == ["Ana", "Cy", "Di", "Ed", "Gil"]  # Bo's row alone is lost
    assert names["Ed"]["metadata"]["Notes"] == "a real note\nover two lines"

    text = crm("import", "topproducer", str(path), "--dry-run", cwd=tmp_path).stdout
    assert "1 unreadable" in text and "error: line 3: unbalanced quote" in text


def test_a_quote_running_to_the_end_of_the_file():
    data = b'First Name,Last Name\nAna,Lee\nBo,"Ng\nCy,Do\nDi,Ek\n'
    table = parse_csv(data, CONTACTS_EXPORT)
    assert [line for line, _ in table.errors] == [3]
    assert "runs to the end of the file" in table.errors[0][1]
    good = [r for r in table.rows if not hasattr(r, "reason")]
    assert [r["First Name"] for r in good] == ["Ana", "Cy", "Di"]


def test_notes_with_line_breaks_and_commas_are_not_flagged():
    data = (
        b"First Name,Last Name,Notes\n"
        b'Ana,Lee,"Called, left a message,\nthen e-mailed, twice"\n'
        b'Bo,Ng,"line one\nline two\nline three"\n'
    )
    table = parse_csv(data, CONTACTS_EXPORT)
    assert table.errors == []
    assert [r["Notes"] for r in table.rows] == [
        "Called, left a message,\nthen e-mailed, twice",
        "line one\nline two\nline three",
    ]


# -- files that are not files, or change -----------------------------------------------------


def test_dev_zero_a_fifo_and_a_directory_are_refused_before_reading(tmp_path):
    fifo = tmp_path / "contacts.csv"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    for path, kind in (
        (Path("/dev/zero"), "a character device"),
        (fifo, "a FIFO"),
        (folder, "a directory"),
    ):
        with pytest.raises(ImportFileError) as info:
            plan_import("topproducer", path, "alice")
        assert f"is {kind}" in info.value.details and str(path) in info.value.details
    done = crm("import", "topproducer", str(fifo), "--json", cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert "a FIFO (named pipe), not a regular file" in json.loads(done.stdout)["details"]
    done = crm("import", "topproducer", "/dev/zero", cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and "a character device" in done.stderr


def test_a_file_that_grows_while_read_is_refused(tmp_path):
    from crm_tui.sources.csv_import import CsvStream

    row = b"Ana,Lee,ana@example.com\n"
    path = contacts_file(tmp_path, b"First Name,Last Name,Email\n" + row * 200_000)  # ~5 MB
    stream = CsvStream(path, CONTACTS_EXPORT)  # opened: the size is taken now
    with path.open("ab") as handle:
        handle.write(row * 10)
    with pytest.raises(ImportFileError, match="grew while it was read"):
        for _ in stream:
            pass


def test_a_file_that_changed_after_its_plan_is_not_applied(tmp_path):
    path = contacts_file(tmp_path, b"First Name,Last Name\nAna,Lee\n")
    plan = plan_import("topproducer", path, "alice")
    path.write_bytes(b"First Name,Last Name\nBo,Ng\nCy,Do\n")
    with pytest.raises(ImportFileError, match="changed after it was planned"):
        next(plan.batches())


# -- streaming -----------------------------------------------------------------------------


def test_batches_stream_the_valid_records_in_file_order(tmp_path):
    path = contacts_file(
        tmp_path,
        b"Contact ID,First Name,Last Name,Email\n"
        b"1,Ana,Lee,old@example.com\n"
        b"2,Bo,Ng,\n"
        b",,,\n"  # blank: not a row
        b"3,,,\n"  # no name: still a record (it has an id)
        b"1,Ana,Lee,new@example.com\n",  # the same id again: the later row wins
    )
    plan = plan_import("topproducer", path, "alice")
    assert (plan.rows, plan.valid, plan.duplicates) == (4, 3, 1)
    batches = list(plan.batches(size=2))
    assert [[r.remote_id for r in b] for b in batches] == [["1", "2"], ["3", "1"]]
    assert batches[-1][-1].email == "new@example.com"

    done = crm("import", "topproducer", str(path), "--json", cwd=tmp_path)
    assert json.loads(done.stdout)["applied"][0]["written"] == 3  # records, not rows
    listed = json.loads(crm("contacts", "--json", cwd=tmp_path).stdout)["contacts"]
    assert {c["remote_id"]: c["email"] for c in listed} == {
        "1": "new@example.com",
        "2": None,
        "3": None,
    }


def test_a_big_import_holds_neither_its_rows_nor_its_records(tmp_path):
    """Peak memory of the real command on a ~25 MB file; the whole file as rows and
    records took about 15 times the file's size."""
    path = tmp_path / "contacts.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("Contact ID,First Name,Last Name,Email,Notes\n")
        for i in range(120_000):
            handle.write(f'{i},José {i},Lee,p{i}@example.com,"note {i}\nsecond line {"x" * 120}"\n')
    assert path.stat().st_size > 20_000_000
    peak = peak_rss(["import", "topproducer", str(path), "--dry-run", "--json"], tmp_path)
    assert peak < 150 * 2**20, f"{peak / 2**20:.0f} MiB"
    # and the import itself, which writes every record: batches, never the cache
    peak = peak_rss(["import", "topproducer", str(path), "--json"], tmp_path)
    assert peak < 300 * 2**20, f"{peak / 2**20:.0f} MiB"


# Measured from a small go-between: a child's peak memory starts at its parent's size when it
# forks, and pytest's own is hundreds of megabytes by the end of the suite.
_MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)
"""


def peak_rss(args: list[str], cwd: Path) -> int:
    """The peak resident memory of one crm-tui process, in bytes."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, "-m", "crm_tui", "--data-dir", str(cwd / "data"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "CRM_USER_ID": "alice"},
        timeout=300,
    )
    code, peak = map(int, done.stdout.split())
    assert code == 0, done.stderr
    return peak


# -- mappings.toml -------------------------------------------------------------------------


def test_import_applies_mappings_toml_as_a_sync_does(tmp_path):
    config = tmp_path / "home" / "config" / "crm-tui"  # XDG_CONFIG_HOME, set by conftest
    config.mkdir(parents=True)
    (config / "mappings.toml").write_text('[topproducer.contacts]\ncompany = "Brokerage"\n')
    exports = tmp_path / "exports"
    exports.mkdir()
    path = exports / "contacts.csv"
    path.write_text("Contact ID,First Name,Last Name,Brokerage\n7,Ana,Lee,Acme Realty\n")
    done = crm("import", "topproducer", str(path), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    imported = json.loads(crm("contacts", "--json", cwd=tmp_path).stdout)["contacts"]
    assert [c["company"] for c in imported] == ["Acme Realty"]

    # The same file through a sync of the TopProducer export folder maps the same way.
    synced_dir = tmp_path / "synced"
    sync_env = {"TOPPRODUCER_IMPORT_DIR": str(exports), "CRM_DATA_DIR": str(synced_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "crm_tui", "sync", "topproducer", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "CRM_USER_ID": "alice", **sync_env},
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "crm_tui", "contacts", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "CRM_USER_ID": "alice", **sync_env},
        timeout=120,
    )
    synced = json.loads(listed.stdout)["contacts"]
    assert [(c["id"], c["company"]) for c in synced] == [(c["id"], c["company"]) for c in imported]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300).map(lambda b: b.replace(b"x", b"\r")), st.data())
def test_lines_split_alike_however_the_file_is_chunked(data, draw):
    """Reads come in chunks; a \\r\\n may straddle two of them."""
    from crm_tui.sources.csv_import import _split_lines

    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=8)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert list(_split_lines(chunks)) == data.splitlines(keepends=True)
