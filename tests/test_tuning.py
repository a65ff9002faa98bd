"""The process-wide speed settings belong to the entry points: library code that syncs,
stores and indexes leaves the interpreter as it found it until one of them asks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

# Runs in a process of its own: an app test earlier in this one has tuned it for good.
USE_THE_LIBRARY = """
import asyncio, gc, json, os, sys, tempfile, threading
from pathlib import Path

from crm_tui.models import Contact
from crm_tui.search.index import SearchIndex
from crm_tui.store import CacheStore, Database


def state(db=None):
    writer = None
    if db is not None and sys.platform == "linux":
        tid = asyncio.run(db.in_writer(threading.get_native_id))
        writer = os.getpriority(os.PRIO_PROCESS, tid)
    return {
        "collector": gc.isenabled(), "frozen": gc.get_freeze_count(),
        "thresholds": gc.get_threshold(), "switch": sys.getswitchinterval(),
        "writer_nice": writer,
    }


async def work(folder):
    store = CacheStore("alice", Database(Path(folder) / "crm.db"))
    people = [
        Contact(id=f"brivity:{n}", source="brivity", remote_id=str(n), user_id="alice",
                first_name=f"First{n}", last_name="Last")
        for n in range(5000)
    ]
    await store.replace_stream("brivity", "contacts", people)
    SearchIndex().rebuild_from(store)
    return store.db


before = state()
before["writer_nice"] = os.getpriority(os.PRIO_PROCESS, 0) if sys.platform == "linux" else None
with tempfile.TemporaryDirectory() as folder:
    db = asyncio.run(work(folder))
    after = state(db)
    db.close()
print(json.dumps([before, after]))
"""


def test_syncing_storing_and_indexing_leave_the_process_settings_alone():
    done = subprocess.run(
        [sys.executable, "-c", USE_THE_LIBRARY], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    before, after = json.loads(done.stdout)
    assert after == before


PROCESS_WIDE = re.compile(
    r"\bgc\.(disable|enable|freeze|unfreeze|set_threshold)\(|setswitchinterval\(|setpriority\("
)


def test_only_the_tuning_module_changes_process_wide_settings():
    package = Path(__file__).parent.parent / "crm_tui"
    found = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        if path.name != "tuning.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if PROCESS_WIDE.search(line)
    ]
    assert found == []
