"""The record mirror as files: ``evaluations/{id}/metadata.json``, ``events.jsonl``, ``log.txt``
(another tenant's under ``tenants/{tenant}/``, ``domain.blob_paths``).

Each evaluation's directory is locked (``flock`` on the directory itself) while
one of its files changes, so the workers of one host never interleave there.
``metadata.json`` is replaced atomically and only by a newer version; an event
is one appended line (kept once by ``event_id`` when read); a log piece is
written at its own byte offset, so pieces committed in one order and mirrored
in another still land where the log has them, and a piece that never arrived
reads back as a gap of NUL bytes (text never holds NUL: the API refuses it).
Everything is fsync'd before the call returns.

With a ``LineSeal`` (``ENCRYPTION=on``) every file is sealed (ADR 0031): ``metadata.json``
is one sealed line, each event line is sealed on its own, and each log piece is a sealed
line of ``log.sealed`` naming its offset (a sealed piece cannot be written at its byte
offset). Files from before, in clear, are still read beside them.
"""

import builtins
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

import anyio.to_thread
import msgspec
import structlog
from prometheus_client import Counter

from application.ports.record_mirror import (
    MirroredEvaluation,
    MirrorReader,
    RecordMirror,
    Unreadable,
)
from application.queries import RecordTally
from domain.blob_paths import TENANTS, evaluation_prefix, evaluations_prefix
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import DEFAULT_TENANT, TenantId, parse_tenant, qualified_id
from domain.timeline import EvaluationEvent, LogChunk, log_with_gaps
from infrastructure.crypto.lines import SEALED as SEALED_PREFIX
from infrastructure.crypto.lines import LineSeal
from infrastructure.crypto.sealed import SealedDataError
from infrastructure.files.durable import (
    FILE_MODE,
    AtomicWrite,
    fsync_dir,
    locked_directory,
    make_dirs,
)

log = structlog.get_logger(__name__)

MIRROR_FAILURES = Counter(
    "crucible_storage_mirror_failures_total",
    "Committed writes the record mirror (FILE_MIRROR) could not copy (logged with the id)",
    ["operation"],
)

RECORD_NAME = "metadata.json"
EVENTS_NAME = "events.jsonl"
LOG_NAME = "log.txt"
SEALED_LOG_NAME = "log.sealed"
MIRROR_NAMES = frozenset({RECORD_NAME, EVENTS_NAME, LOG_NAME, SEALED_LOG_NAME})

_encoder = msgspec.json.Encoder()
_records = msgspec.json.Decoder(Evaluation)
_events = msgspec.json.Decoder(EvaluationEvent)

P = ParamSpec("P")
T = TypeVar("T")


class _Version(msgspec.Struct):
    """Only the version of a stored record, to compare without decoding it whole."""

    version: int = 0


class _EventId(msgspec.Struct):
    """Only an event line's id, to count distinct events without decoding them whole."""

    event_id: str


class _Piece(msgspec.Struct):
    """One log piece of ``log.sealed``: where it goes and what it holds."""

    offset: int
    content: str


_version_of = msgspec.json.Decoder(_Version)
_event_ids = msgspec.json.Decoder(_EventId)
_pieces = msgspec.json.Decoder(_Piece)


class _Files:
    """Reads and writes one evaluation's files, sealed or in clear (``seal``), each sealed
    line bound to the evaluation's qualified id (``evaluation``): a line copied into another
    tenant's directory does not open."""

    def __init__(self, directory: Path, seal: LineSeal | None, evaluation: str) -> None:
        self.directory = directory
        self._seal = seal
        self._evaluation = evaluation

    def _context(self, name: str) -> bytes:
        return f"mirror|{self._evaluation}|{name}".encode()

    def out(self, name: str, data: bytes) -> bytes:
        if self._seal is None:
            return data
        # In a worker thread: the evaluation's key is made there when it has none yet.
        return self._seal.seal(data, self._context(name), self._evaluation, fetch=True)

    def into(self, name: str, data: bytes) -> bytes:
        """The bytes of a line or file; ``msgspec.DecodeError`` when a sealed one is not
        readable (torn, tampered with, or its key is not in the keys file)."""
        if self._seal is None:
            if data.startswith(SEALED_PREFIX):
                raise msgspec.DecodeError("sealed, and no ENCRYPTION_KEYS_FILE")
            return data
        try:
            return self._seal.open(data, self._context(name), self._evaluation)
        except SealedDataError as error:
            raise msgspec.DecodeError(f"sealed and does not open: {error}") from None

    def record_bytes(self) -> bytes:
        return self.into(RECORD_NAME, (self.directory / RECORD_NAME).read_bytes())

    def event_lines(self) -> builtins.list[bytes]:
        try:
            return (self.directory / EVENTS_NAME).read_bytes().splitlines()
        except FileNotFoundError:
            return []

    def log_size(self) -> int:
        """Bytes of the log copied (a stat, unless pieces are sealed)."""
        if not (self.directory / SEALED_LOG_NAME).exists():
            try:
                return (self.directory / LOG_NAME).stat().st_size
            except FileNotFoundError:
                return 0
        return len(self.log_bytes([]))

    def log_bytes(self, problems: builtins.list[str]) -> bytes:
        """The log as it was copied: ``log.txt``'s bytes with ``log.sealed``'s pieces in
        place (a piece that never arrived is NUL bytes)."""
        try:
            data = bytearray((self.directory / LOG_NAME).read_bytes())
        except FileNotFoundError:
            data = bytearray()
        path = self.directory / SEALED_LOG_NAME
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            return bytes(data)
        for number, line in enumerate(lines, start=1):
            try:
                piece = _pieces.decode(self.into(SEALED_LOG_NAME, line))
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                problems.append(f"{path}: line {number} unreadable ({error})")
                continue
            content = piece.content.encode()
            end = piece.offset + len(content)
            if end > len(data):
                data.extend(bytes(end - len(data)))
            data[piece.offset : end] = content
        return bytes(data)


class FileRecordMirror(RecordMirror, MirrorReader):
    """``RecordMirror`` and ``MirrorReader`` under one root (``FILE_STORAGE_PATH``)."""

    def __init__(self, root: Path, seal: LineSeal | None = None) -> None:
        self._root = root
        self._seal = seal

    def directory(self, tenant: TenantId, evaluation_id: str) -> Path:
        return self._root / evaluation_prefix(tenant, evaluation_id)

    async def record(self, tenant: TenantId, evaluation: Evaluation) -> None:
        await self._run("record", tenant, evaluation.id, self._write_record, tenant, evaluation)

    async def event(self, tenant: TenantId, event: EvaluationEvent) -> None:
        await self._run("event", tenant, event.evaluation_id, self._append_event, tenant, event)

    async def log(self, tenant: TenantId, chunk: LogChunk) -> None:
        await self._run("log", tenant, chunk.evaluation_id, self._write_log, tenant, chunk)

    async def forget(self, tenant: TenantId, evaluation_id: EvaluationId) -> None:
        await self._run("forget", tenant, evaluation_id, self._forget, tenant, evaluation_id)

    async def _run(
        self,
        operation: str,
        tenant: TenantId,
        evaluation_id: EvaluationId,
        work: Callable[P, None],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> None:
        try:
            await anyio.to_thread.run_sync(lambda: work(*args, **kwargs))
        except OSError as error:
            MIRROR_FAILURES.labels(operation).inc()
            log.error(
                "mirror_write_failed",
                operation=operation,
                tenant=tenant,
                evaluation_id=evaluation_id,
                error=str(error),
            )

    def _open(self, tenant: TenantId, evaluation_id: EvaluationId) -> _Files:
        """The evaluation's files, its directory made when it has none yet."""
        files = self._files(tenant, evaluation_id)
        if not files.directory.is_dir():
            make_dirs(files.directory, self._root)
        return files

    def _files(self, tenant: TenantId, evaluation_id: str) -> _Files:
        return _Files(
            self.directory(tenant, evaluation_id), self._seal, qualified_id(tenant, evaluation_id)
        )

    def _write_record(self, tenant: TenantId, evaluation: Evaluation) -> None:
        files = self._open(tenant, evaluation.id)
        directory = files.directory
        path = directory / RECORD_NAME
        with locked_directory(directory):
            with contextlib.suppress(FileNotFoundError, msgspec.DecodeError):
                if _version_of.decode(files.record_bytes()).version >= evaluation.version:
                    return  # a newer (or the same) version got here first
            write = AtomicWrite(path, self._root)
            try:
                write.handle.write(files.out(RECORD_NAME, _encoder.encode(evaluation)))
            except BaseException:
                write.discard()
                raise
            write.commit()

    def _append_event(self, tenant: TenantId, event: EvaluationEvent) -> None:
        files = self._open(tenant, event.evaluation_id)
        directory = files.directory
        line = files.out(EVENTS_NAME, _encoder.encode(event))
        with locked_directory(directory):
            self._append(directory / EVENTS_NAME, line + b"\n", None)

    def _write_log(self, tenant: TenantId, chunk: LogChunk) -> None:
        files = self._open(tenant, chunk.evaluation_id)
        directory = files.directory
        if self._seal is not None:
            piece = _encoder.encode(_Piece(offset=chunk.offset, content=chunk.content))
            line = files.out(SEALED_LOG_NAME, piece)
            with locked_directory(directory):
                self._append(directory / SEALED_LOG_NAME, line + b"\n", None)
            return
        with locked_directory(directory):
            self._append(directory / LOG_NAME, chunk.content.encode(), chunk.offset)

    def _append(self, path: Path, data: bytes, offset: int | None) -> None:
        """Write all of ``data`` at ``offset`` (``None``: a line at the end), fsync'd; a new
        file's directory entry too. A line after a torn one (a crash mid-append) starts on
        a line of its own, so one torn line never takes the next event with it."""
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            if offset is None:
                end = os.fstat(fd).st_size
                if end and os.pread(fd, 1, end - 1) != b"\n":
                    data = b"\n" + data
                offset = end  # the directory's lock keeps the end where it is
            _write_all(fd, data, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(path.parent)

    def _forget(self, tenant: TenantId, evaluation_id: EvaluationId) -> None:
        directory = self.directory(tenant, evaluation_id)
        if not directory.is_dir():
            return
        with locked_directory(directory):
            for name in MIRROR_NAMES:
                with contextlib.suppress(FileNotFoundError):
                    (directory / name).unlink()
        with contextlib.suppress(OSError):  # not empty: a blob the purge has not removed yet
            directory.rmdir()

    def tenants(self) -> Iterator[TenantId]:
        """The tenants the tree holds a directory of (blocking): the default tenant, and
        each ``tenants/<tenant>/`` of a valid name but ``default``."""
        yield DEFAULT_TENANT
        for name in _subdirectories(self._root / TENANTS):
            with contextlib.suppress(ValueError):
                tenant = parse_tenant(name)
                if tenant != DEFAULT_TENANT:
                    yield tenant

    def directories(self, tenant: TenantId) -> Iterator[str]:
        """``tenant``'s evaluations' directory names, as the tree lists them (blocking)."""
        yield from _subdirectories(self._root / evaluations_prefix(tenant))

    def _everyone(self) -> Iterator[tuple[TenantId, str]]:
        for tenant in self.tenants():
            for name in self.directories(tenant):
                yield tenant, name

    async def count(self) -> int:
        return await anyio.to_thread.run_sync(lambda: sum(1 for _ in self._everyone()))

    async def tallies(self, tenant: TenantId) -> dict[str, RecordTally]:
        def read() -> dict[str, RecordTally]:
            found: dict[str, RecordTally] = {}
            for name in self.directories(tenant):
                with contextlib.suppress(OSError, msgspec.DecodeError):
                    found[name] = _tally(self._files(tenant, name))
            return found

        return await anyio.to_thread.run_sync(read)

    async def evaluations(self) -> AsyncIterator[MirroredEvaluation | Unreadable]:
        names = await anyio.to_thread.run_sync(lambda: sorted(self._everyone()))
        for tenant, name in names:
            directory = self.directory(tenant, name)
            yield await anyio.to_thread.run_sync(read_mirrored, directory, self._seal, tenant)


def _subdirectories(path: Path) -> Iterator[str]:
    if not path.is_dir():
        return
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir():
                yield entry.name


def _tally(files: _Files) -> RecordTally:
    """A copy's version, distinct event ids and log bytes (raises for an unreadable record)."""
    version = _version_of.decode(files.record_bytes()).version
    events: set[str] = set()
    for line in files.event_lines():
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            events.add(_event_ids.decode(files.into(EVENTS_NAME, line)).event_id)
    return RecordTally(version=version, events=len(events), log_bytes=files.log_size())


def _write_all(fd: int, data: bytes, offset: int) -> None:
    """``pwrite`` until every byte is down (a nearly full disk writes short, not failing)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written == 0:
            raise OSError(f"no byte written at offset {offset}")
        view, offset = view[written:], offset + written


def read_mirrored(
    directory: Path, seal: LineSeal | None = None, tenant: TenantId = DEFAULT_TENANT
) -> MirroredEvaluation | Unreadable:
    """One evaluation's copy (of ``tenant``, whose directory it is); what is torn or
    missing in it is named in ``problems``."""
    files = _Files(directory, seal, qualified_id(tenant, directory.name))
    path = directory / RECORD_NAME
    try:
        record = _records.decode(files.record_bytes())
    except FileNotFoundError:
        return Unreadable(path=str(path), reason="no metadata.json")
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as error:
        return Unreadable(path=str(path), reason=str(error))
    if record.id != directory.name:
        return Unreadable(path=str(path), reason=f"holds {record.id!r}, not {directory.name!r}")
    problems: builtins.list[str] = []
    events = _read_events(files, problems)
    text = _read_log(files, problems)
    return MirroredEvaluation(
        tenant=tenant, record=record, events=events, log=text, problems=problems
    )


def _read_events(files: _Files, problems: builtins.list[str]) -> builtins.list[EvaluationEvent]:
    path = files.directory / EVENTS_NAME
    seen: set[str] = set()
    events: builtins.list[EvaluationEvent] = []
    for number, line in enumerate(files.event_lines(), start=1):
        try:
            event = _events.decode(files.into(EVENTS_NAME, line))
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            problems.append(f"{path}: line {number} unreadable ({error})")
            continue
        if event.event_id not in seen:
            seen.add(event.event_id)
            events.append(event)
    events.sort(key=lambda event: event.timestamp)  # stable: ties keep the append order
    return events


def _read_log(files: _Files, problems: builtins.list[str]) -> str:
    text, gap = log_with_gaps(files.log_bytes(problems))
    if gap is not None:
        path = files.directory / LOG_NAME
        problems.append(f"{path}: a piece never written at byte {gap} (blank in the rebuilt log)")
    return text
