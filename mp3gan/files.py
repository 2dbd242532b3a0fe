"""Atomic file writes: the one home for "an error or Ctrl-C never leaves a half-written file".

Every output mp3gan writes (audio, exported models, reports, figures, manifests, caches)
goes to a temporary file beside its destination and is renamed into place only when
complete. The rename is atomic on one filesystem, so a reader (another loader worker, a
user's player) sees the old file or the new one, never a part.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def temporary_beside(path: str | os.PathLike) -> Path:
    """A new, empty, uniquely named file in ``path``'s folder (created if missing).

    Hidden (leading dot) and ending in ``.part``, so folder scans and users can tell it
    is unfinished. The caller publishes it with :func:`publish` or deletes it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename a finished temporary file onto ``path``, with the permissions a plain
    ``open()`` would have given (mkstemp makes files owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
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
