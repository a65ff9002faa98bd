"""Logging to the user log dir, with every configured secret masked wherever it appears."""

from __future__ import annotations

import logging
import logging.handlers
import os
import traceback
from collections.abc import Iterable
from pathlib import Path

from crm_tui.store.db import secure_dir, secure_file

MASK = "********"


class SecretMasker:
    """Replaces secret values in text. Shared by the log filter, error messages and audit."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # longest first, so a secret containing another is masked whole
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def add(self, *secrets: str) -> None:
        self._secrets = sorted(
            set(self._secrets) | {s for s in secrets if s}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


class SecretFilter(logging.Filter):
    """Masks secrets in the message, its arguments and any exception text."""

    def __init__(self, masker: SecretMasker) -> None:
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.masker(record.getMessage())
        record.args = None
        if record.exc_info:
            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = self.masker(text.rstrip("\n"))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.masker(record.exc_text)
        if record.stack_info:
            record.stack_info = self.masker(record.stack_info)
        return True


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Every file it opens, rotated ones included, is 0600 whatever the umask."""

    def _open(self):  # type: ignore[no-untyped-def]
        stream = super()._open()
        os.chmod(self.baseFilename, 0o600)
        return stream


def setup_logging(log_file: Path, masker: SecretMasker, level: int = logging.INFO) -> None:
    """Log to a private file; idempotent so tests and the CLI can call it more than once."""
    secure_dir(log_file.parent)
    secure_file(log_file)
    root = logging.getLogger("crm_tui")
    for handler in list(root.handlers):
        if getattr(handler, "_crm_tui", False):
            root.removeHandler(handler)
            handler.close()
    handler = PrivateRotatingFileHandler(
        log_file, maxBytes=5_000_000, backupCount=3, encoding="utf-8"
    )
    handler._crm_tui = True  # type: ignore[attr-defined]
    handler.addFilter(SecretFilter(masker))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
