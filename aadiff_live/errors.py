"""User-facing errors: one line that says what is wrong and how to fix it.

:class:`UserError` (exit code 2) is a problem with what the user asked for (a flag, a path that
cannot be written from the start). :class:`OutputError` (exit code 1) is an output that failed
while it was being written (the disk filled up, the folder vanished): the run was fine until
then. Both print one line ``aadiff-live: error: <msg>``, never a traceback.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem with what the user asked for. The CLI prints ``aadiff-live: error: <msg>`` and exits 2."""

    exit_code = 2


class OutputError(UserError):
    """Writing an output failed part-way (disk full, folder gone, I/O error): one line, exit code 1."""

    exit_code = 1


def os_cause(exc: BaseException) -> str:
    """The cause of an OS error in words (``No space left on device``), without errno or file name."""
    if isinstance(exc, OSError) and exc.strerror:
        return str(exc.strerror)
    return str(exc) or type(exc).__name__


def cannot_write(path: str | Path, exc: BaseException, note: str = "") -> OutputError:
    """``cannot write PATH: CAUSE[; note]`` as an :class:`OutputError` (raise it ``from None``)."""
    return OutputError(f"cannot write {path}: {os_cause(exc)}" + (f"; {note}" if note else ""))


def cannot_create(path: str | Path, exc: BaseException, flag: str) -> UserError:
    """A file that cannot even be created (a folder that only looks writable, ``/proc``): the user's path."""
    return UserError(f"cannot create {path} ({os_cause(exc)}); choose another {flag} path")
