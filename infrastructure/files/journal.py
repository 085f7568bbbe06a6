"""The failover journal on the local disk: fsync'd JSON lines, one segment per process.

Layout under ``FILE_STORAGE_PATH/journal/``: ``<uuid>.jsonl`` segments and a
``.replay.lock``. Each process appends to its own segment, so writers never
interleave lines; every append holds the segment's ``flock`` and is fsync'd before
it returns. The replayer takes ``.replay.lock`` (one replayer among all processes
sharing the directory), reads every segment, and deletes a segment only under its
lock and only when every entry in it is applied. A writer whose segment was deleted
under it (``st_nlink == 0``) starts a new one, so no entry lands in a deleted file.

A line without its newline is the torn tail of a process killed mid-write: it was
never acknowledged and is ignored.
"""

import contextlib
import errno
import fcntl
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import msgspec
import structlog

from application.backends import Backend
from application.errors import BackendUnavailableError
from application.intents import ENTRY_DECODER, ENTRY_ENCODER, JournalEntry, entry_of
from application.ports.journal import Journal, JournalStats
from domain.tenancy import TenantId, qualified_id
from infrastructure.crypto.lines import SEALED as SEALED_LINE
from infrastructure.crypto.lines import LineSeal, tag_of
from infrastructure.crypto.sealed import SealedDataError
from infrastructure.files.durable import fsync_dir
from infrastructure.metrics import journaled

BACKEND = Backend.FALLBACK  # the name /health and the errors use
SUFFIX = ".jsonl"
# A fully replayed segment that held lines no version of the service could read.
CORRUPT_SUFFIX = ".corrupt"
LOCK_NAME = ".replay.lock"
_CONTEXT = b"journal"

log = structlog.get_logger(__name__)


@dataclass
class _Segment:
    """What has been parsed of one segment so far (it only ever grows)."""

    inode: int
    offset: int = 0
    entries: list[JournalEntry] = field(default_factory=list)


class FileJournal(Journal):
    name = "file"
    durable = True

    def __init__(self, root: Path, seal: LineSeal | None = None) -> None:
        """``seal``: each line sealed (``ENCRYPTION=on``); clear lines are still read."""
        self._seal = seal
        self.directory = root / "journal"
        self._fd: int | None = None
        self._last_sequence = 0
        self._lock = anyio.Lock()
        self._segments: dict[str, _Segment] = {}
        # Reads run in worker threads and share the parse cache.
        self._cache_lock = threading.Lock()

    async def append(self, entry: JournalEntry) -> JournalEntry:
        async with self._lock:
            sequence = max(self._last_sequence + 1, time.time_ns())
            stored = msgspec.structs.replace(entry, sequence=sequence)
            line = self._encode(stored) + b"\n"
            try:
                await anyio.to_thread.run_sync(self._append_line, line)
            except OSError as error:
                log.error("journal_write_failed", error=str(error))
                raise BackendUnavailableError(BACKEND, f"journal: {error.strerror}") from error
            self._last_sequence = sequence
            journaled()
            return stored

    def _append_line(self, line: bytes) -> None:
        while True:
            fd = self._fd if self._fd is not None else self._open_segment()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_nlink == 0:  # the replayer deleted it: start another
                    os.close(fd)
                    self._fd = None
                    continue
                start = os.fstat(fd).st_size
                try:
                    _write_all(fd, line)
                    os.fsync(fd)
                except OSError:
                    self._abandon_tail(fd, start)
                    raise
                return
            finally:
                if self._fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _abandon_tail(self, fd: int, start: int) -> None:
        """Cut a half-written line off, or stop using a segment that cannot be cut."""
        try:
            os.ftruncate(fd, start)
            os.fsync(fd)
        except OSError:
            os.close(fd)
            self._fd = None

    def _open_segment(self) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{uuid.uuid4().hex}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fsync_dir(self.directory)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._fd = fd
        return fd

    def _encode(self, entry: JournalEntry) -> bytes:
        data = ENTRY_ENCODER.encode(entry)
        if self._seal is None:
            return data
        # Under the evaluation's key only when this process holds it: the database that
        # keeps the keys is away while the journal is written (ADR 0033).
        owner = qualified_id(entry.tenant, entry.evaluation_id)  # whose key seals it
        return self._seal.seal(data, _CONTEXT, owner, tag=entry.id)

    def _decode(self, line: bytes) -> JournalEntry:
        """An entry from its line; ``msgspec.DecodeError`` when it cannot be read."""
        if self._seal is not None:
            try:
                line = self._seal.open(line, _CONTEXT)
            except SealedDataError as error:
                raise msgspec.DecodeError(f"a sealed line does not open: {error}") from None
        elif line.startswith(SEALED_LINE):
            raise msgspec.DecodeError("a sealed line, and no ENCRYPTION_KEYS_FILE")
        return ENTRY_DECODER.decode(line)

    def _entry_id(self, line: bytes) -> str | None:
        tagged = tag_of(line)  # kept in clear: an entry whose key is destroyed still goes
        if tagged is not None:
            return tagged
        try:
            return self._decode(line).id
        except msgspec.DecodeError:
            return None

    async def has_pending(self) -> bool:
        try:
            with os.scandir(self.directory) as found:
                return any(item.name.endswith(SUFFIX) for item in found)
        except FileNotFoundError:
            return False
        except NotADirectoryError:
            return False

    async def pending(self) -> list[JournalEntry]:
        if not await self.has_pending():
            return []
        return await anyio.to_thread.run_sync(self._read_all)

    async def pending_for(self, tenant: TenantId, evaluation_id: str) -> list[JournalEntry]:
        return [entry for entry in await self.pending() if entry_of(entry, tenant, evaluation_id)]

    async def stats(self) -> JournalStats:
        entries = await self.pending()  # no thread hop when the directory holds none
        oldest = min((entry.at for entry in entries), default=None)
        return JournalStats(pending=len(entries), oldest_at=oldest)

    def _read_all(self) -> list[JournalEntry]:
        with self._cache_lock:
            return self._read_all_locked()

    def _read_all_locked(self) -> list[JournalEntry]:
        seen: set[str] = set()
        entries: list[JournalEntry] = []
        for path in self._segment_paths():
            seen.add(path.name)
            entries.extend(self._read_segment(path))
        for gone in set(self._segments) - seen:
            del self._segments[gone]
        return sorted(entries, key=lambda entry: (entry.sequence, entry.id))

    def _segment_paths(self) -> list[Path]:
        try:
            return sorted(self.directory.glob(f"*{SUFFIX}"))
        except OSError:
            return []

    def _read_segment(self, path: Path) -> list[JournalEntry]:
        try:
            with path.open("rb") as handle:
                status = os.fstat(handle.fileno())
                segment = self._segments.get(path.name)
                # A new file under the name, or one cut shorter (a line whose fsync
                # failed was taken back): parse it again from the start.
                if (
                    segment is None
                    or segment.inode != status.st_ino
                    or status.st_size < segment.offset
                ):
                    segment = self._segments[path.name] = _Segment(status.st_ino)
                handle.seek(segment.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        for line in complete.splitlines(keepends=True):
            try:
                segment.entries.append(self._decode(line.rstrip(b"\r\n")))
            except msgspec.DecodeError:
                log.error("journal_line_unreadable", segment=path.name)
            except BackendUnavailableError as error:
                # Sealed under an evaluation key this process does not hold, while the
                # database that keeps it is away (ADR 0033): the line and those after it
                # are read again next time, never skipped.
                log.warning("journal_line_key_unavailable", segment=path.name, error=str(error))
                break
            segment.offset += len(line)
        return list(segment.entries)

    async def discard(self, applied: Iterable[str]) -> set[str]:
        done = set(applied)
        return await anyio.to_thread.run_sync(self._discard, done)

    def _discard(self, done: set[str]) -> set[str]:
        with self._cache_lock:
            return self._discard_locked(done)

    def _discard_locked(self, done: set[str]) -> set[str]:
        """Remove applied entries: a segment all applied goes, a partly applied one is
        rewritten with the rest (so a journal that keeps taking writes still drains).

        Either way the file under the name is no longer the one a writer appends to
        (``st_nlink == 0`` on its descriptor), so that writer starts a new segment.
        The directory is fsync'd before the caller forgets the entries' marks: a
        removal lost in a power cut would otherwise bring them back unmarked.
        """
        gone: set[str] = set()
        for path in self._segment_paths():
            with contextlib.suppress(FileNotFoundError), path.open("rb") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # no writer mid-append
                data = handle.read()
                complete = data[: data.rfind(b"\n") + 1]
                lines = complete.splitlines()
                found = [self._entry_id(line) for line in lines]
                ids = {entry_id for entry_id in found if entry_id is not None}
                unreadable = found.count(None)
                applied = ids & done
                if not applied:
                    continue
                if ids <= done and unreadable:  # kept for an operator to read
                    path.rename(path.with_suffix(CORRUPT_SUFFIX))
                    log.error("journal_segment_kept", segment=path.name, lines=unreadable)
                elif ids <= done:
                    path.unlink()
                else:
                    kept = zip(lines, found, strict=True)
                    _rewrite(path, [line for line, entry_id in kept if entry_id not in done])
                self._segments.pop(path.name, None)
                gone |= applied
        if gone:
            fsync_dir(self.directory)
        return gone

    @asynccontextmanager
    async def replaying(self) -> AsyncIterator[bool]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = (self.directory / LOCK_NAME).open("ab")
        except OSError:
            yield False
            return
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _rewrite(path: Path, lines: list[bytes]) -> None:
    """Replace ``path`` atomically with ``lines`` (a new inode under the same name).

    Private like the segments it replaces; a failed write leaves no temp file behind.
    """
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"".join(line + b"\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
