"""Exports a spreadsheet cannot turn into formulas, written so that no path can be abused:
the real command in a subprocess, real files, symlinks, FIFOs, sockets and devices."""

from __future__ import annotations

import csv
import io
import os
import resource
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import load_workbook

HOSTILE = ("=1+1", " =1+1", '\x00=HYPERLINK("http://x")', "+1 512", "@SUM(A1)", "-2+3", "\t=1")
# What each becomes once imported (cleaning strips NUL and the spaces around a value).
CLEANED = ("=1+1", "=1+1", '=HYPERLINK("http://x")', "+1 512", "@SUM(A1)", "-2+3", "=1")
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def crm(
    *args: str, cwd: Path, preexec=None, stdin=None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "crm_tui", "--data-dir", str(cwd / "data"), *args],
        capture_output=True,
        cwd=cwd,
        env={**os.environ, "CRM_USER_ID": "alice"},
        timeout=timeout,
        preexec_fn=preexec,
    )


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    """A contacts export and a closings export full of formula-looking cells, imported."""
    contacts = io.StringIO()
    writer = csv.writer(contacts)
    writer.writerow(["Contact ID", "First Name", "Last Name", "Company", "City", "Cell", "Groups"])
    for i, value in enumerate(HOSTILE):
        writer.writerow([f"c{i}", value, "Lee", value, value, value, value])
    writer.writerow(["plain", "Ana", "Lee", "Acme", "Austin", "512 555 0101", "vip"])
    (tmp_path / "contacts.csv").write_text(contacts.getvalue(), encoding="utf-8")
    closings = io.StringIO()
    writer = csv.writer(closings)
    writer.writerow(["Transaction ID", "Property Address", "Sale Price", "Status"])
    for i, value in enumerate(HOSTILE):
        writer.writerow([f"d{i}", value, "-500", value])
    (tmp_path / "closings.csv").write_text(closings.getvalue(), encoding="utf-8")
    for name in ("contacts.csv", "closings.csv"):
        done = crm("import", "topproducer", str(tmp_path / name), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    return tmp_path


def safe_csv_cell(value: str) -> bool:
    return not value.lstrip(" \n").startswith(TRIGGERS)


@pytest.mark.parametrize("kind", ["contact", "deal"])
def test_csv_cells_that_look_like_formulas_get_a_quote(imported, kind):
    out = imported / f"{kind}s.csv"
    done = crm("export", "--type", kind, "--format", "csv", "-o", str(out), cwd=imported)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert len(rows) == (8 if kind == "contact" else 7)
    for row in rows:
        for name, value in row.items():
            if name == "amount":
                assert value == "-500"  # a number stays a number
            else:
                assert safe_csv_cell(value), (name, value)
    by_id = {row["remote_id"]: row for row in rows}
    for i, value in enumerate(CLEANED):
        row = by_id[f"c{i}" if kind == "contact" else f"d{i}"]
        field = "first_name" if kind == "contact" else "property_address"
        assert row[field] == "'" + value
    if kind == "contact":
        assert by_id["plain"]["first_name"] == "Ana"  # harmless text untouched


@pytest.mark.parametrize("kind", ["contact", "deal"])
def test_xlsx_cells_are_never_formulas(imported, kind):
    out = imported / f"{kind}s.xlsx"
    done = crm("export", "--type", kind, "--format", "xlsx", "-o", str(out), cwd=imported)
    assert done.returncode == 0, done.stderr
    sheet = load_workbook(out).active
    rows = list(sheet.iter_rows())
    header = [c.value for c in rows[0]]
    texts = []
    for row in rows[1:]:
        for name, value in zip(header, row, strict=True):
            assert value.data_type != "f", (name, value.value)
            if name == "amount":
                assert (value.data_type, value.value) == ("n", -500)
            if isinstance(value.value, str):
                texts.append(value.value)
    field = header.index("first_name" if kind == "contact" else "property_address")
    assert sorted(r[field].value for r in rows[1:] if r[field].value != "Ana") == sorted(CLEANED)
    assert "=1+1" in texts  # the text itself, as a string cell


def test_standard_output_takes_every_format(imported):
    done = crm("export", "--type", "deal", "--format", "xlsx", "-o", "-", cwd=imported)
    assert done.returncode == 0, done.stderr
    sheet = load_workbook(io.BytesIO(done.stdout)).active
    assert sheet.max_row == 8
    assert done.stderr == b""  # no "wrote ... to -"
    done = crm("export", "--type", "contact", "--format", "csv", "-o", "-", cwd=imported)
    assert len(list(csv.DictReader(io.StringIO(done.stdout.decode())))) == 8


# -- paths ---------------------------------------------------------------------------------


def export_to(path: Path, cwd: Path, **kwargs) -> subprocess.CompletedProcess[bytes]:
    return crm("export", "--format", "csv", "-o", str(path), cwd=cwd, **kwargs)


def test_a_symlink_is_refused_and_its_target_untouched(imported):
    target = imported / "precious.txt"
    target.write_text("keep me\n")
    target.chmod(0o644)
    link = imported / "out.csv"
    link.symlink_to(target)
    done = export_to(link, imported)
    assert done.returncode == 2
    assert f"{link} is a symbolic link".encode() in done.stderr
    assert target.read_text() == "keep me\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert link.is_symlink()


def test_a_folder_that_does_not_exist_is_named(imported):
    done = export_to(imported / "nowhere" / "out.csv", imported)
    assert done.returncode == 2
    assert (
        done.stderr.decode()
        .strip()
        .endswith(f"{imported / 'nowhere'} is not a folder that exists; create it first")
    )
    assert not (imported / "nowhere").exists()


def test_directories_devices_fifos_and_sockets_are_refused(imported):
    folder = imported / "folder"
    folder.mkdir()
    fifo = imported / "pipe"
    os.mkfifo(fifo)
    listener = socket.socket(socket.AF_UNIX)
    sock = imported / "sock"
    listener.bind(str(sock))
    cases = [(folder, "a directory"), (fifo, "a FIFO"), (sock, "a socket")]
    # A device of our own, never the system's /dev/null: a regression run as root would
    # chmod it for everyone.
    device = imported / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        cases.append((device, "a character device"))
    except PermissionError:  # not root, or a container that forbids it
        pass
    try:
        for path, what in cases:
            done = export_to(path, imported, timeout=60)  # a FIFO must not block
            assert done.returncode == 2, (path, done.stderr)
            assert f"{path} is {what}".encode() in done.stderr
    finally:
        listener.close()
    assert list(imported.glob(".*.tmp")) == []


def test_an_existing_file_is_replaced_never_written_into(imported):
    out = imported / "out.csv"
    out.write_text("old\n")
    out.chmod(0o644)
    other_name = imported / "hard-link.csv"
    os.link(out, other_name)
    done = export_to(out, imported, preexec=lambda: os.umask(0))
    assert done.returncode == 0, done.stderr
    assert b"wrote 8 contacts to" in done.stderr
    assert out.read_text().startswith("id,")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    # The file it did not create keeps its content and its mode.
    assert other_name.read_text() == "old\n"
    assert stat.S_IMODE(other_name.stat().st_mode) == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    rows = "".join(f"{i},Name{i},Lee,n{i}@example.com,Acme Realty,Austin\n" for i in range(3000))
    source = tmp_path / "contacts.csv"
    source.write_text("Contact ID,First Name,Last Name,Email,Company,City\n" + rows)
    assert crm("import", "topproducer", str(source), cwd=tmp_path).returncode == 0
    out = tmp_path / "out.csv"
    out.write_bytes(b"the previous export")

    def small_files() -> None:  # a full disk, as far as this process can tell
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    done = crm("export", "--format", "csv", "-o", str(out), cwd=tmp_path, preexec=small_files)
    assert done.returncode == 1
    assert done.stderr.decode().strip() == f"error: Cannot write: {out}: File too large"
    assert out.read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
