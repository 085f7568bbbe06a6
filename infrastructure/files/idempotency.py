"""``Idempotency-Key`` answers as files beside the failover journal.

While the database is away the keys of journaled writes must still hold, and a key
answered by the database just before it went away must still be found; so every
answer is kept here too, one small JSON file per (tenant, caller, key), written atomically
(temp file, fsync, rename; the mirror of answers the database holds without fsync). A
claim reads and writes its key's file under an exclusive lock of the directory, so of
two processes of one host one wins; claims are made here only while the database is
away, so the lock is never contended on the usual path.
"""

import fcntl
import hashlib
import os
import secrets
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import anyio
import msgspec

from application.backends import Backend
from application.errors import BackendUnavailableError
from application.ports.idempotency_store import IdempotencyStore, KeyRecord
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.files.durable import AtomicWrite, is_temp
from infrastructure.files.errors import reason

DIRECTORY = "idempotency"
LOCK_FILE = ".claims.lock"
T = TypeVar("T")
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(KeyRecord)


class FileIdempotencyStore(IdempotencyStore):
    """``IdempotencyStore`` under ``root/idempotency``; blocking I/O runs in worker threads.

    ``durable=False`` (the mirror of answers the database holds) replaces files atomically
    without fsync: a crashed process loses nothing, a power cut may lose the mirror of the
    last answers, which the database still has.

    Each file's record names its tenant (a file written before tenants reads as the
    default's), so the purge and the erasure touch their tenant's files only.
    """

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.directory = root / DIRECTORY
        self._durable = durable

    def _path(self, tenant: TenantId, caller: str, key: str) -> Path:
        """The default tenant's name is the one kept before tenants, so its files still
        match; another tenant's name holds the tenant too (ADR 0032)."""
        named = f"{caller}\0{key}" if tenant == DEFAULT_TENANT else f"{tenant}\0{caller}\0{key}"
        digest = hashlib.sha256(named.encode()).hexdigest()
        return self.directory / f"{digest}.json"

    async def claim(self, claim: KeyRecord, *, now: datetime) -> KeyRecord | None:
        return await self._run(self._claim, claim, now)

    async def find(
        self, tenant: TenantId, caller: str, key: str, *, now: datetime
    ) -> KeyRecord | None:
        # Inline: a read of a file of a few hundred bytes (or a failed open) costs less
        # than the hop to a worker thread, and every keyed write asks.
        record = self._inline(self._read, self._path(tenant, caller, key))
        return None if record is None or record.reclaimable(now) else record

    async def complete(self, answer: KeyRecord) -> None:
        if self._durable:
            await self._run(self._write, answer)
        else:  # no fsync: as quick as the read above, so inline too
            self._inline(self._write, answer)

    async def release(self, tenant: TenantId, caller: str, key: str) -> None:
        path = self._path(tenant, caller, key)
        record = await self._run(self._read, path)
        if record is not None and record.in_flight():
            await self._run(self._unlink, path)

    async def purge(self, now: datetime, tenant: TenantId) -> int:
        return await self._run(self._purge, now, tenant)

    async def _run(self, call: Callable[..., T], *args: object) -> T:
        return await anyio.to_thread.run_sync(self._inline, call, *args)

    @staticmethod
    def _inline(call: Callable[..., T], *args: object) -> T:
        try:
            return call(*args)
        except OSError as error:
            detail = f"idempotency keys: {reason(error)}"
            raise BackendUnavailableError(Backend.FILE, detail) from error

    def _claim(self, record: KeyRecord, now: datetime) -> KeyRecord | None:
        """Under the directory's lock (processes of one host): the live holder, or this
        claim written in place of an absent, expired or abandoned one."""
        path = self._path(record.tenant, record.caller, record.key)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = self._read(path)
            if held is not None and not held.reclaimable(now):
                return held
            self._write(record)
            return None
        finally:
            os.close(fd)  # releases the lock

    def _read(self, path: Path) -> KeyRecord | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return _DECODER.decode(data)
        except msgspec.DecodeError:
            return None  # unreadable: taken as absent, so the next claim replaces it

    def _write(self, record: KeyRecord) -> None:
        path = self._path(record.tenant, record.caller, record.key)
        if not self._durable:
            self.directory.mkdir(parents=True, exist_ok=True)
            temp = self.directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
            temp.write_bytes(_ENCODER.encode(record))
            os.replace(temp, path)
            return
        write = AtomicWrite(path, self.directory.parent)
        try:
            write.handle.write(_ENCODER.encode(record))
        except BaseException:
            write.discard()
            raise
        write.commit()

    @staticmethod
    def _unlink(path: Path) -> None:
        with suppress(FileNotFoundError):
            path.unlink()

    def _purge(self, now: datetime, tenant: TenantId) -> int:
        purged = 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if is_temp(entry.name) or not entry.name.endswith(".json"):
                continue
            record = self._read(Path(entry.path))
            if record is not None and record.tenant == tenant and record.expires_at <= now:
                self._unlink(Path(entry.path))
                purged += 1
        return purged

    async def forget_answers_with(self, tenant: TenantId, needles: Sequence[bytes]) -> int:
        return await self._run(self._forget, tenant, tuple(needles)) if needles else 0

    def _forget(self, tenant: TenantId, needles: tuple[bytes, ...]) -> int:
        """Under the claims' lock, like a claim: no answer is written over a removal."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        forgotten = 0
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            for entry in list(os.scandir(self.directory)):
                if is_temp(entry.name) or not entry.name.endswith(".json"):
                    continue
                record = self._read(Path(entry.path))
                if record is None or record.tenant != tenant or record.response is None:
                    continue
                if any(needle in record.response.body for needle in needles):
                    self._unlink(Path(entry.path))
                    forgotten += 1
        finally:
            os.close(fd)
        return forgotten
