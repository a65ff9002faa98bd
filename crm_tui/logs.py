"""Logging to the user log dir, with every configured secret masked wherever it appears."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

from crm_tui.files import DataDirRefused, check_dir, check_file, secure_dir, secure_file

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
    """Every file it opens, rotated ones included, is 0600 whatever the umask. A write that
    fails (a full disk) is reported once, as one line naming the file, and logging stops:
    a log must never take a command down or fill stderr with tracebacks."""

    failed = False

    def _open(self):  # type: ignore[no-untyped-def]
        stream = super()._open()
        os.chmod(self.baseFilename, 0o600)
        return stream

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        if self.failed:
            return
        self.failed = True
        error = sys.exc_info()[1]
        reason = getattr(error, "strerror", None) or error or "write failed"
        sys.stderr.write(
            f"warning: cannot write the log file {self.baseFilename}: {reason}; logging stopped\n"
        )


def _open_log_file(log_file: Path) -> str | None:
    """Make the log's folder and file safe to use; why they cannot be used, or None. An
    unsafe folder or file (another user's, a symbolic link) is refused; one that merely
    cannot be written (a read-only data dir) only turns file logging off."""
    try:
        secure_dir(log_file.parent, "log folder")
        secure_file(log_file)
    except DataDirRefused as exc:
        folder = log_file.parent
        if (folder.exists() and check_dir(folder)) or check_file(log_file):
            raise
        return exc.details or exc.error
    except OSError as exc:
        return f"{log_file}: {exc.strerror or exc}"
    return None


def setup_logging(log_file: Path, masker: SecretMasker, level: int = logging.INFO) -> str | None:
    """Log to a private file; idempotent so tests and the CLI can call it more than once.
    Returns why nothing can be logged to the file, or None."""
    root = logging.getLogger("crm_tui")
    for old in list(root.handlers):
        if getattr(old, "_crm_tui", False):
            root.removeHandler(old)
            old.close()
    problem = _open_log_file(log_file)
    handler: logging.Handler
    if problem is None:
        handler = PrivateRotatingFileHandler(
            log_file, maxBytes=5_000_000, backupCount=3, encoding="utf-8"
        )
    else:  # not the last-resort handler either: that one writes warnings to stderr
        handler = logging.NullHandler()
    handler._crm_tui = True  # type: ignore[attr-defined]
    handler.addFilter(SecretFilter(masker))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return problem
