"""A throwaway PostgreSQL server in a temporary directory: for the tests, the team
benchmark and trying team mode on one machine.

PostgreSQL refuses to run as root, and CI runs as root: there the server runs as the
`postgres` system user (`runuser`), in a directory that user owns. It listens on a Unix
socket in that directory (trusted: the superuser connects without a password) and on a
loopback port (password required: how agents' roles connect).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SUPERUSER = "postgres"
_SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/opt/postgresql*/bin")


class ServerUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, and none could be installed."""


def server_bindir(install: bool = True) -> Path:
    """Where `initdb` and `pg_ctl` are: `pg_config --bindir`, the Debian layout, or (as root,
    when `install`) Debian's package installed with apt-get."""
    found = _find_bindir()
    if found is None and install and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "postgresql"],
            check=False,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = _find_bindir()
    if found is None:
        raise ServerUnavailable("PostgreSQL's server binaries (initdb, pg_ctl) were not found")
    return found


def _find_bindir() -> Path | None:
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(Path(out.stdout.strip()))
    for pattern in _SEARCH:
        candidates.extend(sorted(Path("/").glob(pattern.lstrip("/")), reverse=True))
    return next(
        (c for c in candidates if (c / "initdb").exists() and (c / "pg_ctl").exists()), None
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ScratchServer:
    directory: Path
    port: int
    bindir: Path
    _as_postgres: bool

    def url(
        self, user: str = SUPERUSER, password: str | None = None, dbname: str = "postgres"
    ) -> str:
        """A connection URL: the superuser over the Unix socket, anyone else (with a
        password) over loopback TCP."""
        if password is None:
            return f"postgresql://{quote(user)}@/{dbname}?host={quote(str(self.directory))}&port={self.port}"
        # every character of the user and password that a URL reserves is %-escaped
        login = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"postgresql://{login}@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            check=False,
        )
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, argv: list[str], check: bool = True) -> None:
        if self._as_postgres:
            argv = ["runuser", "-u", SUPERUSER, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True)
        if check and result.returncode != 0:
            log = self.directory / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ServerUnavailable(f"{Path(argv[-1]).name} failed: {result.stderr.strip()} {tail}")


def start() -> ScratchServer:
    """A new server, initialised and listening; `stop()` it (or use `running()`)."""
    bindir = server_bindir()
    as_postgres = os.geteuid() == 0
    directory = Path(tempfile.mkdtemp(prefix="crm-pg-"))
    if as_postgres:
        shutil.chown(directory, SUPERUSER, SUPERUSER)
    server = ScratchServer(directory, _free_port(), bindir, as_postgres)
    try:
        server._run([
            str(bindir / "initdb"), "-D", str(directory / "data"), "-U", SUPERUSER, "-E", "UTF8",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-N",
        ])  # fmt: skip
        _listen_on_a_free_port(server)
    except BaseException:
        server.stop()  # a start that timed out may still be coming up
        raise
    return server


_PORT_ATTEMPTS = 5


def _listen_on_a_free_port(server: ScratchServer) -> None:
    for attempt in range(_PORT_ATTEMPTS):
        try:
            _listen(server)
            return
        except ServerUnavailable as exc:
            # the port was free when probed: another process may have bound it since
            if "already in use" not in str(exc) or attempt == _PORT_ATTEMPTS - 1:
                raise
            server.port = _free_port()


def _listen(server: ScratchServer) -> None:
    data = server.directory / "data"
    (server.directory / "server.log").unlink(missing_ok=True)  # this attempt's reasons only
    options = (
        f"-p {server.port} -k {server.directory} -c listen_addresses=127.0.0.1"
        # A scratch server: a lost machine loses it anyway, so no flushing to disk
        " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    server._run([
        str(server.bindir / "pg_ctl"), "-D", str(data), "-o", options,
        "-l", str(server.directory / "server.log"), "-w", "-t", "60", "start",
    ])  # fmt: skip


@contextlib.contextmanager
def running() -> Iterator[ScratchServer]:
    server = start()
    try:
        yield server
    finally:
        server.stop()
