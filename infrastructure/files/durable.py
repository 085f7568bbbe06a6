"""Atomic, durable file replacement: a reader finds the old content or the new, never a mix.

The sequence: a temp file beside the target, fsync, ``os.replace``, then fsync of
the directory, so that the rename itself survives a power cut.
"""

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

TEMP_SUFFIX = ".tmp"
FILE_MODE = 0o644
_MAKE_DIR_ATTEMPTS = 3


@contextmanager
def locked_directory(directory: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory`` itself: the processes of one host that
    take it change what is inside one at a time (closing the descriptor releases it)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def tried_lock(path: Path, mode: int = 0o600) -> Iterator[bool]:
    """Whether this process got the exclusive ``flock`` on the file ``path`` (made if
    missing) without waiting; held for the block when it did."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def is_temp(name: str) -> bool:
    """A write in progress (or one a crash left behind): never a blob."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(directory: Path, root: Path) -> None:
    """Create ``directory`` (inside ``root``) and fsync each parent that gained an entry."""
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
    missing: list[Path] = []
    current = directory
    while current != root and not current.is_dir():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with suppress(FileExistsError):
            path.mkdir()
        fsync_dir(path.parent)


def _temp_file(path: Path, root: Path) -> tuple[int, str]:
    """A temp file beside ``path``; retried if a concurrent delete pruned the directory."""
    for attempt in range(_MAKE_DIR_ATTEMPTS):
        make_dirs(path.parent, root)
        try:
            return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        except FileNotFoundError:
            if attempt == _MAKE_DIR_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


class AtomicWrite:
    """The temp file that becomes ``path`` on ``commit``; ``discard`` leaves ``path`` as it was.

    Blocking: run it in a worker thread. A streamed write holds one across many
    thread hops, which is why this is an object and not a ``with`` block.
    """

    def __init__(self, path: Path, root: Path) -> None:
        """Create the temp file (and the directories up from ``root``) beside ``path``."""
        fd, temp_name = _temp_file(path, root)
        self.path = path
        self.temp = Path(temp_name)
        self.handle: IO[bytes] = os.fdopen(fd, "wb")
        self._moved = False

    def commit(self) -> int:
        """Make the bytes durable and move them into place; returns the bytes written."""
        try:
            os.fchmod(self.handle.fileno(), FILE_MODE)
            self.handle.flush()
            os.fsync(self.handle.fileno())
            written = self.handle.tell()
            self.handle.close()
            os.replace(self.temp, self.path)
            self._moved = True
            fsync_dir(self.path.parent)
        except BaseException:
            self.discard()
            raise
        return written

    def discard(self) -> None:
        """Close and remove the temp file (a no-op for what is already gone)."""
        with suppress(OSError):
            self.handle.close()
        if not self._moved:
            with suppress(OSError):
                self.temp.unlink()
