"""The file backend's index as a file: whether it opens whole, and setting a torn one aside.

``STORAGE_BACKEND=file`` keeps its records in the file tree and an index of them in one
SQLite file under ``FILE_STORAGE_PATH/index``. The index can always be rebuilt from the
tree, so a torn one is moved aside (kept for a post-mortem), never repaired in place.
"""

import fcntl
import os
import sqlite3
from contextlib import AbstractContextManager, closing
from datetime import UTC, datetime
from pathlib import Path

from infrastructure.files.durable import fsync_dir, tried_lock

MISSING = "missing"
# The primary result codes that mean the file itself is damaged (sqlite3.h): anything else
# (locked, unable to open, out of descriptors) is a problem of the moment, never "torn".
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_SIDE_FILES = ("-wal", "-shm")


def index_problem(path: Path) -> str | None:
    """``None`` when the index opens and passes ``PRAGMA quick_check``; else what is wrong."""
    if not path.exists():
        return MISSING
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            rows = connection.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as error:
        if error.sqlite_errorcode & 0xFF not in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            raise
        return f"torn: {error}"
    found = [str(row[0]) for row in rows]
    return None if found == ["ok"] else "torn: " + "; ".join(found[:5])


def set_aside(path: Path, why: str = "torn") -> Path:
    """Move the index (and its WAL files) to ``<name>.<why>-<UTC time>``; returns the new path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.{why}-{stamp}")
    path.replace(target)
    for suffix in _SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.replace(target.with_name(target.name + suffix))
    return target


_KEY_COLUMNS = "tenant_id, evaluation_id, kid, wrapped, created_at"


def carry_keys(old: Path, new: Path) -> int | None:
    """Copy the evaluation keys of the index ``old`` into the (migrated) index ``new``;
    how many, or ``None`` when ``old`` cannot be read (torn where the keys are).

    The key table is the one part of the index the tree cannot give back: files sealed
    under an evaluation key open only with its row (crypto-shredding, ADR 0033).
    """
    if not old.exists():
        return None
    try:
        with closing(sqlite3.connect(new, uri=True)) as connection:
            connection.execute("ATTACH DATABASE ? AS old", (f"file:{old}?mode=ro",))
            cursor = connection.execute(
                f"INSERT OR IGNORE INTO evaluation_keys ({_KEY_COLUMNS}) "  # noqa: S608
                f"SELECT {_KEY_COLUMNS} FROM old.evaluation_keys"
            )
            connection.commit()
            return cursor.rowcount
    except sqlite3.DatabaseError:
        return None


def index_is_empty(path: Path) -> bool:
    """Whether the (migrated) index holds no record: a tree beside it is then indexed anew."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        return connection.execute("SELECT 1 FROM evaluations LIMIT 1").fetchone() is None


def remove_index(path: Path) -> None:
    """Delete an index file and its WAL files (a build that did not finish)."""
    for name in (path.name, *(path.name + suffix for suffix in _SIDE_FILES)):
        (path.parent / name).unlink(missing_ok=True)


def install_index(built: Path, path: Path) -> None:
    """Move a finished index into place: its WAL folded in and fsync'd first, so that the
    index at ``path`` is always a whole one (a crash mid-build leaves only ``built``)."""
    with closing(sqlite3.connect(built)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("PRAGMA journal_mode=DELETE")  # no WAL file left beside it
    fd = os.open(built, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    remove_index(path)
    built.replace(path)
    remove_index(built)
    fsync_dir(path.parent)


SERVING_NAME = ".serving"


def hold_serving(index_directory: Path) -> int:
    """Take the shared lock a serving process holds on its index for as long as it lives
    (keep the returned descriptor open); a rebuild that would replace the index asks for
    it exclusively and is refused while any process holds it."""
    fd = os.open(index_directory / SERVING_NAME, os.O_RDONLY | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def unserved(index_directory: Path) -> AbstractContextManager[bool]:
    """Whether no process serves this index (the exclusive lock, not waited for), held
    for the block: a ``serve`` that starts meanwhile waits at its own lock."""
    return tried_lock(index_directory / SERVING_NAME, 0o644)
