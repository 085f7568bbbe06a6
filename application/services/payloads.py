"""Routing outputs and errors to where they live, and reading them back whole."""

import codecs
import secrets
from collections.abc import AsyncIterator, Mapping

import msgspec

from application.errors import BlobMissingError
from application.ports.blob_store import BlobEntry, BlobStore
from domain.blob_paths import evaluation_prefix, parse_blob_path
from domain.errors import InvalidTextError
from domain.evaluation import Evaluation, ensure_storable_text
from domain.identifiers import EvaluationId
from domain.payload import (
    ByteRange,
    PayloadKind,
    PayloadLocation,
    StorageThresholds,
    StoredPayload,
    decode_tail,
    route_payload,
    stream_buffer_limit,
    streamed_blob_payload,
    tail_bytes,
)
from domain.tenancy import TenantId

_encoder = msgspec.json.Encoder()


def new_token() -> str:
    """Names one blob write (48 random bits: two writes of one payload never collide)."""
    return secrets.token_hex(6)


def snapshot_key(tenant: TenantId, evaluation_id: EvaluationId) -> str:
    """``…evaluations/{id}/metadata.json``: enough to rebuild the record from files alone."""
    return f"{evaluation_prefix(tenant, evaluation_id)}metadata.json"


# What the record mirror (``FILE_MIRROR``) keeps beside an evaluation's blobs: never a blob.
MIRROR_NAMES = frozenset({"metadata.json", "events.jsonl", "log.txt", "log.sealed"})


def is_mirror_file(key: str) -> bool:
    """``…evaluations/{id}/metadata.json``, ``events.jsonl``, ``log.txt`` or ``log.sealed``,
    of any tenant."""
    path = parse_blob_path(key)
    return path is not None and path.name in MIRROR_NAMES


class PayloadStore:
    """Payloads by location: new blobs go to ``blobs`` (recorded as ``location``);
    a payload is read and deleted through the store of its own recorded location,
    so records written before a switch of ``BLOB_BACKEND``, or tiered, keep working.
    """

    def __init__(
        self,
        blobs: BlobStore,
        thresholds: StorageThresholds,
        *,
        location: PayloadLocation = PayloadLocation.FILE,
        others: Mapping[PayloadLocation, BlobStore] | None = None,
        mirrored: bool = False,
    ) -> None:
        """``mirrored``: the record mirror keeps ``metadata.json`` (after each commit), so
        no snapshot is written here, and the mirror's files are not this store's blobs."""
        self._blobs = blobs
        self.mirrored = mirrored
        self._thresholds = thresholds
        self._location = location
        self._stores: dict[PayloadLocation, BlobStore] = {**(others or {}), location: blobs}

    def _store_of(self, payload: StoredPayload) -> BlobStore:
        return self._stores.get(payload.location, self._blobs)

    def _located(self, stored: StoredPayload) -> StoredPayload:
        if stored.key is None or stored.location is self._location:
            return stored
        return msgspec.structs.replace(stored, location=self._location)

    def can_store_in(self, location: PayloadLocation) -> bool:
        return location in self._stores

    async def move(self, payload: StoredPayload, target: PayloadLocation) -> StoredPayload:
        """Copy a blob to the store of ``target`` under the same key; the source is kept.

        The caller switches the record to the copy (compare-and-swap) and the
        writer then deletes the source blob, like any replaced blob.
        """
        assert payload.key is not None
        source = self._store_of(payload)
        await self._stores[target].put_stream(payload.key, source.stream(payload.key))
        return msgspec.structs.replace(payload, location=target)

    async def store(
        self, tenant: TenantId, evaluation_id: EvaluationId, kind: PayloadKind, text: str
    ) -> StoredPayload:
        """Route ``text``; a large one is written (atomically) before the record commits.

        Writing the blob first means a crash leaves at worst an orphan blob,
        never a record that points at nothing.
        """
        ensure_storable_text(kind, text)
        routed = route_payload(tenant, evaluation_id, kind, text, self._thresholds, new_token())
        if routed.blob is not None and routed.stored.key is not None:
            await self._blobs.put(routed.stored.key, routed.blob)
        return self._located(routed.stored)

    async def store_stream(
        self,
        tenant: TenantId,
        evaluation_id: EvaluationId,
        kind: PayloadKind,
        chunks: AsyncIterator[bytes],
    ) -> StoredPayload:
        """Route a streamed payload holding at most ``stream_buffer_limit`` bytes in memory.

        The stream is checked as it passes (UTF-8, no NUL): a refused byte stops
        it with ``InvalidTextError`` and leaves the stored payload as it was.
        """
        text = _TextCheck(kind)
        head = bytearray()
        limit = stream_buffer_limit(self._thresholds)
        source = aiter(chunks)
        async for chunk in source:
            head += chunk
            if len(head) > limit:
                break
        else:
            return await self.store(tenant, evaluation_id, kind, text.decode_all(bytes(head)))
        preview = text.feed(bytes(head))
        size = len(head)
        keep = tail_bytes(self._thresholds.tail_size)
        end = bytearray(head[-keep:] if keep else b"")

        async def checked() -> AsyncIterator[bytes]:
            nonlocal size, end
            yield bytes(head)
            head.clear()
            async for chunk in source:
                text.feed(chunk)
                size += len(chunk)
                if keep:
                    end = (end + chunk)[-keep:]
                yield chunk
            text.finish()

        stored = streamed_blob_payload(
            tenant, evaluation_id, kind, 0, preview, self._thresholds, new_token()
        )
        assert stored.key is not None
        await self._blobs.put_stream(stored.key, checked())
        tail = decode_tail(bytes(end), self._thresholds.tail_size)
        return self._located(msgspec.structs.replace(stored, size=size, tail=tail))

    async def write_snapshot(self, tenant: TenantId, evaluation: Evaluation) -> None:
        """Keep ``metadata.json`` beside an evaluation's blobs in step with the record."""
        if _has_blob(evaluation) and not self.mirrored:
            key = snapshot_key(tenant, evaluation.id)
            await self._blobs.put(key, _encoder.encode(evaluation))

    async def missing_blobs(self, evaluation: Evaluation) -> list[str]:
        """The keys ``evaluation`` points at that its payloads' stores do not hold."""
        missing: list[str] = []
        for payload in (evaluation.output, evaluation.error):
            if payload is not None and payload.key is not None:
                try:
                    await self._store_of(payload).stored_size(payload.key)
                except BlobMissingError:
                    missing.append(payload.key)
        return missing

    async def blobs_of(self, tenant: TenantId, evaluation_id: EvaluationId) -> list[BlobEntry]:
        """Every stored blob of one evaluation, referenced or not (snapshot included)."""
        prefix = evaluation_prefix(tenant, evaluation_id)
        return [
            entry
            for store in self._distinct()
            async for entry in store.entries(prefix)
            if not (self.mirrored and is_mirror_file(entry.key))
        ]

    async def discard(self, key: str) -> None:
        """Delete ``key`` wherever it is (a tiered blob may briefly be in two stores)."""
        for store in self._distinct():
            await store.delete(key)

    async def entries_in(self, location: PayloadLocation, prefix: str = "") -> list[BlobEntry]:
        """Every blob of the store behind ``location`` (none when it has no store)."""
        store = self._stores.get(location)
        return [] if store is None else [entry async for entry in store.entries(prefix)]

    async def discard_in(self, location: PayloadLocation, key: str) -> None:
        store = self._stores.get(location)
        if store is not None:
            await store.delete(key)

    def _distinct(self) -> list[BlobStore]:
        stores: list[BlobStore] = []
        for store in self._stores.values():
            if all(store is not seen for seen in stores):
                stores.append(store)
        return stores

    async def discard_unsaved(
        self, before: Evaluation, after: Evaluation, keep: frozenset[str] = frozenset()
    ) -> None:
        """Delete blobs written for ``after`` that no record points at (its save failed)."""
        for old, new in ((before.output, after.output), (before.error, after.error)):
            fresh = new is not None and new.key is not None and new.key not in keep
            if (
                fresh
                and new is not None
                and new.key is not None
                and (old is None or old.key != new.key or old.location != new.location)
            ):
                await self._store_of(new).delete(new.key)

    async def discard_replaced(
        self, tenant: TenantId, before: Evaluation, after: Evaluation
    ) -> None:
        """Delete blobs the committed record no longer points at."""
        for old, new in ((before.output, after.output), (before.error, after.error)):
            if (
                old is not None
                and old.key is not None
                and (new is None or new.key != old.key or new.location != old.location)
            ):
                await self._store_of(old).delete(old.key)
        if _has_blob(before) and not _has_blob(after) and not self.mirrored:
            await self._blobs.delete(snapshot_key(tenant, after.id))

    async def read_text(self, payload: StoredPayload | None) -> str | None:
        """The full text, wherever it lives."""
        if payload is None:
            return None
        if payload.location is PayloadLocation.INLINE or payload.key is None:
            return payload.text
        return (await self._store_of(payload).get(payload.key)).decode("utf-8")

    async def stream(
        self, payload: StoredPayload, byte_range: ByteRange | None = None
    ) -> AsyncIterator[bytes]:
        """The content as UTF-8 bytes, in chunks: all of it, or exactly ``byte_range``."""
        start = 0 if byte_range is None else byte_range.start
        remaining = payload.size - start if byte_range is None else byte_range.length
        if payload.location is PayloadLocation.INLINE or payload.key is None:
            yield payload.text.encode("utf-8")[start : start + remaining]
            return
        async for chunk in self._store_of(payload).stream(payload.key, start=start):
            if len(chunk) >= remaining:
                yield chunk[:remaining]
                return
            remaining -= len(chunk)
            yield chunk

    async def stored_form(self, payload: StoredPayload) -> tuple[int, AsyncIterator[bytes]] | None:
        """A compressed blob's size and bytes as stored, for clients that accept zstd."""
        if payload.key is None or not payload.compressed:
            return None
        store = self._store_of(payload)
        size = await store.stored_size(payload.key)
        return size, store.stream_stored(payload.key)


def _has_blob(evaluation: Evaluation) -> bool:
    return any(
        payload is not None and payload.key is not None
        for payload in (evaluation.output, evaluation.error)
    )


class _TextCheck:
    """Checks streamed bytes are storable text without holding them: UTF-8, no NUL."""

    def __init__(self, field: str) -> None:
        self._field = field
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def feed(self, data: bytes) -> str:
        try:
            text = self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            raise InvalidTextError(self._field, f"is not valid UTF-8 ({exc.reason})") from None
        return ensure_storable_text(self._field, text)

    def finish(self) -> None:
        self.feed(b"")
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InvalidTextError(self._field, "ends inside a UTF-8 character") from None

    def decode_all(self, data: bytes) -> str:
        text = self.feed(data)
        self.finish()
        return text
