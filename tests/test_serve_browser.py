"""`crm-tui serve` in a real headless Chromium: the page loads, the Status screen's source
names appear, typing a query on Search shows results; without the token nothing opens.

Chromium comes from Debian's packages (installed here when /usr/bin/chromium is absent);
the tests are skipped, saying why, only when it cannot be installed.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from crm_tui.config import DISPLAY_NAMES
from crm_tui.serve import is_loopback, page_url, same_token
from tests.helpers.cdp import Browser, ensure_chromium
from tests.helpers.env import run_crm

DEMO_SOURCES = ("brivity", "topproducer", "followupboss", "hubspot", "pipedrive", "lofty")


@pytest.fixture(scope="module")
def chromium() -> None:
    reason = ensure_chromium()
    if reason is not None:
        pytest.skip(f"headless Chromium is not available: {reason}")


def _first_line(stream: object, timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()  # type: ignore[attr-defined]
    return lines.get(timeout=timeout)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`crm-tui serve --demo` on a free loopback port: the URL it printed (with its token)."""
    home = tmp_path_factory.mktemp("serve-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "FUB_", "HUBSPOT_"))}
    env.update(
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_STATE_HOME=str(home / "state"),
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crm_tui",
            "serve",
            "--demo",
            "--contacts",
            "60",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=home,
    )
    try:
        line = _first_line(process.stdout, timeout=180)
        found = re.search(r"http://\S+", line)
        assert found, f"no URL printed: {line!r} {process.stderr.read() if process.poll() else ''}"
        yield found.group(0)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


async def test_the_page_shows_status_then_search_results(chromium: None, served: str) -> None:
    browser = Browser()
    try:
        await browser.start()
        await browser.send("Page.navigate", url=served)
        for name in DEMO_SOURCES:  # the Status screen's table of sources
            await browser.wait_for_text(re.escape(DISPLAY_NAMES[name]))
        assert await browser.evaluate("document.querySelector('.xterm-screen') !== null")
        assert await browser.evaluate("document.body.classList.contains('-first-byte')")

        await browser.type("2")  # Search, where the box has the focus
        await browser.wait_for_text(r"Search every source")
        since = len(browser.frames)
        await browser.type("jo")
        shown = await browser.wait_for_text(r"\d[\d,]* contacts\s+\(", since=since)
        assert int(shown.split()[0].replace(",", "")) > 0
    finally:
        await browser.close()


async def test_without_the_token_nothing_opens(chromium: None, served: str) -> None:
    base = served.split("?", 1)[0]
    token = served.split("token=", 1)[1]
    browser = Browser()
    try:
        await browser.start()
        await browser.send("Page.navigate", url=base)
        text = ""
        for _ in range(50):
            text = await browser.evaluate("document.body ? document.body.innerText : ''") or ""
            if text:
                break
            await _pause()
        assert "needs the URL with its token" in text
        assert not await browser.evaluate("document.querySelector('.xterm-screen') !== null")
        assert browser.frames == []  # no app was started: no websocket at all
    finally:
        await browser.close()

    ws_base = base.replace("http://", "ws://").rstrip("/")
    async with aiohttp.ClientSession() as session:
        for url in (base, f"{base}?token=wrong", f"{base}?token={token[:-1]}"):
            async with session.get(url) as answer:
                assert answer.status == 403
        for url in (f"{ws_base}/ws", f"{ws_base}/ws/wrong"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url)
            assert refused.value.status == 403
        # the right token from a page of another site (cross-site websocket hijacking)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{ws_base}/ws/{token}", origin="https://evil.example")
        assert refused.value.status == 403
        async with session.get(served) as answer:
            assert answer.status == 200
            assert answer.headers["Referrer-Policy"] == "no-referrer"
            assert f"/ws/{token}" in await answer.text()


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.1)


def test_a_public_address_needs_public_and_warns(tmp_path: Path) -> None:
    refused = run_crm("serve", "--host", "0.0.0.0", env={})
    assert refused.returncode == 2
    assert "--public" in refused.stderr
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: the warning comes first, then
    # the bind fails, so nothing ever listens beyond loopback
    warned = run_crm("serve", "--host", "192.0.2.1", "--public", "--port", "1", env={})
    assert "no login of its own" in warned.stderr
    assert warned.returncode != 0


def test_loopback_and_tokens() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.2", "example.com", "::"))
    assert same_token("abc", "abc") and not same_token("abd", "abc")
    assert not same_token(None, "abc") and not same_token("", "abc")
    assert page_url("::1", 8000, "t") == "http://[::1]:8000/?token=t"
    assert page_url("127.0.0.1", 8000, None, "https://crm.example.com/") == (
        "https://crm.example.com/"
    )
