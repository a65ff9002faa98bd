"""Headless Chromium driven over the Chrome DevTools Protocol (aiohttp's websocket client,
which textual-serve brings): enough to load a page, type, and read what the page received.

textual-serve's xterm.js draws on a canvas (WebGL, else a 2D canvas), so the terminal's text
is in no DOM node; what the app sent is read from the page's own websocket frames instead
(the Network domain reports every frame the page receives), with the escape sequences taken
out.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)
_ESCAPES = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")


def ensure_chromium(timeout: float = 600) -> str | None:
    """Debian's chromium, installed when absent; None when it is there, else the reason."""
    if CHROMIUM.exists():
        return None
    if shutil.which("apt-get") is None:
        return "no /usr/bin/chromium and no apt-get to install it"
    try:
        for step in (
            ["apt-get", "update"],
            ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
        ):
            done = subprocess.run(step, capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0:
                return f"{' '.join(step)} failed: {done.stderr.strip()[-300:]}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not install chromium: {exc}"
    return None if CHROMIUM.exists() else "apt-get installed no /usr/bin/chromium"


def plain(data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return _ESCAPES.sub("", text)


class Browser:
    """One headless Chromium and a connection to its first page."""

    def __init__(self) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="crm-chromium-"))
        self.process = subprocess.Popen(
            [
                str(CHROMIUM),
                *FLAGS,
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.frames: list[str] = []  # websocket frames the page received, as plain text
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, within: float = 30) -> None:
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + within
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as answer:
            pages = [t for t in await answer.json() if t["type"] == "page"]
        self._ws = await self._session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        await self.send("Network.enable")
        await self.send("Page.enable")
        await self.send("Runtime.enable")

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            event = json.loads(message.data)
            if "id" in event and event["id"] in self._pending:
                self._pending.pop(event["id"]).set_result(event)
            elif event.get("method") == "Network.webSocketFrameReceived":
                response = event["params"]["response"]
                payload = response["payloadData"]
                data = base64.b64decode(payload) if response.get("opcode") == 2 else payload
                self.frames.append(plain(data))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        assert self._ws is not None
        call = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call] = future
        await self._ws.send_json({"id": call, "method": method, "params": params})
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def wait_for_text(self, pattern: str, since: int = 0, within: float = 60) -> str:
        """Until the app's output (frames from `since` on) matches `pattern`: the match."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = re.search(pattern, "".join(self.frames[since:]))
            if found:
                return found.group(0)
            await asyncio.sleep(0.2)
        seen = "".join(self.frames[since:])[-1500:]
        raise AssertionError(f"{pattern!r} never appeared; the app's last output: {seen!r}")

    async def type(self, text: str) -> None:
        """Keys into the terminal, as a person types them (xterm.js reads its textarea)."""
        await self.evaluate("document.querySelector('.xterm-helper-textarea').focus()")
        for character in text:
            await self.send("Input.insertText", text=character)
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        with contextlib.suppress(Exception):
            if self._ws is not None:
                await self._ws.close()
        if self._session is not None:
            await self._session.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)
