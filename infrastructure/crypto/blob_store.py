"""``SealedBlobStore``: any ``BlobStore`` with its bytes compressed, then sealed (ADR 0031).

It wraps a store built with ``compress=False`` and does the compression itself, so that
zstd runs on the plaintext and AES-GCM on what zstd made (the other order compresses
nothing). Blobs written in clear before encryption was turned on are read as they are,
told apart by their first byte (``sealed.MAGIC``).
"""

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import anyio.to_thread
import zstandard

from application.backends import Backend
from application.errors import BackendUnavailableError
from application.ports.blob_store import BlobEntry, BlobStore
from application.ports.sealed_blobs import Rewrap, SealedBlobs
from domain.blob_paths import parse_blob_path
from domain.tenancy import qualified_id
from infrastructure.crypto.evaluation_keys import EvaluationKeyring, Sealing
from infrastructure.crypto.keyring import EVALUATION_KID, Keyring, UnwrapError
from infrastructure.crypto.sealed import (
    HEADER_MAX,
    SEGMENT,
    Cipher,
    Header,
    SealedDataError,
    is_sealed,
    open_all,
    open_stream,
    parse_header,
    plain_size,
    seal_all,
    seal_stream,
    segment_offset,
)
from infrastructure.files.blob_store import COMPRESSION_LEVEL, check_stream_range
from infrastructure.files.keys import check_blob_key, is_compressed_key

# Compressing and sealing this much or more runs in a worker thread, off the event loop
# (zstd and AES-GCM release the GIL), as the stores themselves compress.
_IN_THREAD = 16 * 1024
T = TypeVar("T")


async def _off_the_loop(size: int, work: Callable[..., T], *args: Any) -> T:
    if size >= _IN_THREAD:
        return await anyio.to_thread.run_sync(work, *args)
    return work(*args)


def _compressor() -> zstandard.ZstdCompressor:
    return zstandard.ZstdCompressor(level=COMPRESSION_LEVEL)


class SealedBlobStore(BlobStore, SealedBlobs):
    """Seals what it writes (when ``seal``) and opens what it reads; clear blobs pass."""

    def __init__(
        self,
        inner: BlobStore,
        keyring: Keyring,
        backend: Backend,
        *,
        seal: bool = True,
        keys: EvaluationKeyring | None = None,
        shred: bool = False,
    ) -> None:
        """``shred``: a blob under an evaluation's directory is sealed under that evaluation's
        key (ADR 0033); ``keys`` opens such blobs whatever ``shred`` says."""
        self._inner = inner
        self._keyring = keyring
        self._sealing = Sealing(keyring, keys, shred=shred and seal)
        self._backend = backend
        self.seals = seal

    @property
    def inner(self) -> BlobStore:
        return self._inner

    async def put(self, key: str, data: bytes) -> int:
        check_blob_key(key)
        cipher = await self._new_cipher(key) if self.seals else None
        body, size = await _off_the_loop(len(data), self._stored_form, key, bytes(data), cipher)
        await self._inner.put(key, body)
        return size

    def _stored_form(self, key: str, data: bytes, cipher: Cipher | None) -> tuple[bytes, int]:
        """What ``put`` stores, and the size it reports (compressed, before the seal)."""
        stored = _compressor().compress(data) if is_compressed_key(key) else data
        if cipher is None:
            return stored, len(stored)
        return seal_all(cipher, stored), len(stored)

    async def get(self, key: str) -> bytes:
        raw = await self._inner.get(key)
        with self._corrupt(key):
            cipher = None
            if is_sealed(raw):
                cipher = await self._cipher(key, parse_header(raw[:HEADER_MAX]))
            return await _off_the_loop(len(raw), self._plain_form, key, raw, cipher)

    def _plain_form(self, key: str, raw: bytes, cipher: Cipher | None) -> bytes:
        if cipher is not None:
            raw = open_all(cipher, raw)
        if is_compressed_key(key):
            return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
        return raw

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        check_blob_key(key)
        counted = _Counted(_compress(chunks) if is_compressed_key(key) else chunks)
        source = counted.chunks()
        if self.seals:
            source = seal_stream(await self._new_cipher(key), source)
        await self._inner.put_stream(key, source)
        return counted.size

    async def stream(
        self, key: str, chunk_size: int = 65_536, start: int = 0
    ) -> AsyncIterator[bytes]:
        check_stream_range(chunk_size, start)
        if is_compressed_key(key):
            source = _decompress(self._stored(key), key, self._backend)
            skip = start
        elif start:
            source, skip = await self._from(key, start)
        else:
            source, skip = self._stored(key), 0
        async for chunk in _rechunk(source, chunk_size, skip):
            yield chunk

    async def stream_stored(self, key: str, chunk_size: int = 65_536) -> AsyncIterator[bytes]:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        async for chunk in _rechunk(self._stored(key), chunk_size, 0):
            yield chunk

    async def stored_size(self, key: str) -> int:
        size = await self._inner.stored_size(key)
        header = await self._header(key)
        if header is None:
            return size
        with self._corrupt(key):
            return plain_size(size, header)

    async def delete(self, key: str) -> None:
        await self._inner.delete(key)

    def entries(self, prefix: str = "") -> AsyncIterator[BlobEntry]:
        return self._inner.entries(prefix)

    async def rewrap(self, key: str) -> Rewrap:
        """Put ``key``'s data key under the active KEK (rewriting the header only), or
        seal a clear blob; the blob's name and plaintext stay the same."""
        header = await self._header(key)
        if header is not None and header.kid in (self._keyring.active, EVALUATION_KID):
            return Rewrap.CURRENT  # an evaluation key's data keys need nothing (ADR 0033)
        if header is None and not self.seals:
            return Rewrap.CLEAR
        if header is None:
            sealed = seal_stream(await self._new_cipher(key), self._inner.stream(key))
            await self._inner.put_stream(key, sealed)
            return Rewrap.SEALED
        with self._corrupt(key):
            data_key = self._keyring.unwrap(header.kid, header.wrapped, key.encode())
        kid, wrapped = self._keyring.wrap(data_key, key.encode())
        fresh = Header(kid, wrapped, header.prefix).encode()
        await self._inner.put_stream(key, _after(fresh, self._inner.stream(key, start=header.size)))
        return Rewrap.REWRAPPED

    # -- reading ---------------------------------------------------------------------------

    async def _stored(self, key: str) -> AsyncIterator[bytes]:
        """The bytes as stored before sealing: opened when sealed, as they are when clear."""
        source = self._inner.stream(key)
        head = bytearray()
        async for chunk in source:
            head += chunk
            if len(head) >= HEADER_MAX:
                break
        if not is_sealed(bytes(head)):
            if head:
                yield bytes(head)
            async for chunk in source:
                yield chunk
            return
        with self._corrupt(key):
            header = parse_header(bytes(head))
            cipher = await self._cipher(key, header)
            async for plain in open_stream(cipher, _after(bytes(head[header.size :]), source)):
                yield plain

    async def _from(self, key: str, start: int) -> tuple[AsyncIterator[bytes], int]:
        """A range read of an uncompressed blob: from the segment that holds ``start``."""
        header = await self._header(key)
        if header is None:
            return self._inner.stream(key, start=start), 0
        index = start // SEGMENT
        with self._corrupt(key):
            cipher = await self._cipher(key, header)
        body = self._inner.stream(key, start=segment_offset(header, index))
        return self._opened(key, cipher, body, index), start - index * SEGMENT

    async def _opened(
        self, key: str, cipher: Cipher, body: AsyncIterator[bytes], index: int
    ) -> AsyncIterator[bytes]:
        with self._corrupt(key):
            async for plain in open_stream(cipher, body, index):
                yield plain

    async def _header(self, key: str) -> Header | None:
        head = bytearray()
        source = self._inner.stream(key, chunk_size=HEADER_MAX)
        try:
            async for chunk in source:
                head += chunk
                if len(head) >= HEADER_MAX:
                    break
        finally:
            await source.aclose()  # type: ignore[attr-defined]
        if not is_sealed(bytes(head)):
            return None
        with self._corrupt(key):
            return parse_header(bytes(head))

    async def _new_cipher(self, key: str) -> Cipher:
        return await self._sealing.new(key.encode(), evaluation_of(key))

    async def _cipher(self, key: str, header: Header) -> Cipher:
        return await self._sealing.of(header, key.encode(), evaluation_of(key))

    def _corrupt(self, key: str) -> AbstractContextManager[None]:
        return _corrupt(key, self._backend)


def evaluation_of(key: str) -> str | None:
    """The qualified id of the evaluation a blob belongs to (``evaluations/<id>/…``: the id;
    ``tenants/<tenant>/evaluations/<id>/…``: ``<tenant>/<id>``), whose key seals it."""
    path = parse_blob_path(key)
    return None if path is None else qualified_id(path.tenant, path.evaluation_id)


@contextmanager
def _corrupt(key: str, backend: Backend) -> Iterator[None]:
    """Sealed bytes that do not open, or a zstd frame that does not decode: a corrupt blob."""
    try:
        yield
    except (SealedDataError, UnwrapError, zstandard.ZstdError) as exc:
        raise BackendUnavailableError(backend, f"blob '{key}' does not open: {exc}") from exc


class _Counted:
    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self.size = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._source:
            self.size += len(chunk)
            yield chunk


async def _after(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


async def _compress(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    compressor = _compressor().compressobj()
    async for chunk in chunks:
        if out := await _off_the_loop(len(chunk), compressor.compress, chunk):
            yield out
    yield compressor.flush()


async def _decompress(
    chunks: AsyncIterator[bytes], key: str, backend: Backend
) -> AsyncIterator[bytes]:
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    async for chunk in chunks:
        with _corrupt(key, backend):
            data = decompressor.decompress(chunk)
        if data:
            yield data


async def _rechunk(source: AsyncIterator[bytes], size: int, skip: int) -> AsyncIterator[bytes]:
    """``source`` from byte ``skip`` on, in chunks of at most ``size`` bytes."""
    async for chunk in source:
        data = chunk
        if skip:
            dropped = min(skip, len(data))
            data = data[dropped:]
            skip -= dropped
        for offset in range(0, len(data), size):
            yield data[offset : offset + size]
