"""A loopback port that refuses connections for as long as the test needs it."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """Bound and never listening: a connection is refused, and no other process can take
    the port meanwhile (a probed-then-closed port can be taken before the test connects)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])
