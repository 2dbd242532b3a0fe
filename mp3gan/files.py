"""Atomic file writes: the one home for "an error or Ctrl-C never leaves a half-written file".

Every output mp3gan writes (audio, exported models, reports, figures, manifests, caches)
goes to a temporary file beside its destination and is renamed into place only when
complete. The rename is atomic on one filesystem, so a reader (another loader worker, a
user's player) sees the old file or the new one, never a part. A command line that
writes files also turns SIGTERM and SIGHUP into an exception (:func:`signals_interrupt`),
so that `kill` or a closed terminal clean up the way Ctrl-C does.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path


def temporary_beside(path: str | os.PathLike) -> Path:
    """A new, empty, uniquely named file in ``path``'s folder (created if missing).

    Hidden (leading dot) and ending in ``.part``, so folder scans and users can tell it
    is unfinished. Created with the permissions a plain ``open()`` gives (the kernel
    applies the umask; reading the umask would mean setting it, which races with other
    threads). The caller publishes it with :func:`publish` or deletes it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename a finished temporary file onto ``path`` (atomic on one filesystem)."""
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s contents to; on leaving the block it
    becomes ``path``, or is deleted if the block raised (Ctrl-C included)."""
    tmp = temporary_beside(path)
    try:
        yield tmp
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C's KeyboardInterrupt so the same cleanup runs
    (temporary files deleted); ``exit_status`` is the shell's 128 + signal number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit_status = 128 + signum


@contextlib.contextmanager
def signals_interrupt(signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """Inside the block, the given signals raise :class:`Terminated` in the main thread.

    After the first, further ones are ignored until the block ends, so a second `kill`
    cannot interrupt the cleanup the first one started. Main thread only (Python runs
    signal handlers there).
    """

    def handler(signum: int, frame) -> None:
        for s in signums:
            signal.signal(s, signal.SIG_IGN)
        raise Terminated(signum)

    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
