from __future__ import annotations

import logging
import os
import stat

from crm_tui.logs import MASK, SecretMasker, setup_logging


def test_secret_inside_an_exception_message_is_masked(tmp_path):
    log_file = tmp_path / "logs" / "crm.log"
    setup_logging(log_file, SecretMasker(["hunter2-canary"]))
    log = logging.getLogger("crm_tui.test")
    try:
        raise ValueError("request failed with key hunter2-canary in it")
    except ValueError:
        log.exception("failed for %s", "hunter2-canary")
    log.info("plain %s", "hunter2-canary")
    for handler in logging.getLogger("crm_tui").handlers:
        handler.flush()
    text = log_file.read_text()
    assert "hunter2-canary" not in text
    assert text.count(MASK) >= 3
    assert "ValueError" in text  # the traceback is still there, only the secret is gone


def test_log_file_is_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        setup_logging(tmp_path / "l" / "crm.log", SecretMasker())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "l" / "crm.log").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "l").stat().st_mode) == 0o700


def test_masker_masks_the_longest_secret_whole():
    masker = SecretMasker(["abc", "abcdef"])
    assert masker("x abcdef y abc") == f"x {MASK} y {MASK}"
