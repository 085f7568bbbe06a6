"""Where an output or error lives, and the policy that decides it.

The policy is a pure function of the text and the thresholds: text up to
``large_file_threshold`` UTF-8 bytes stays inline in the database (which
compresses large values itself), anything larger goes to the blob store,
zstd-compressed when over ``compression_threshold``, with the first
``preview_size`` characters kept inline as the preview.
"""

from enum import StrEnum
from typing import Literal

import msgspec

from domain.blob_paths import evaluation_prefix
from domain.errors import UnsatisfiableRangeError
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId

PayloadKind = Literal["output", "error"]


class PayloadLocation(StrEnum):
    INLINE = "inline"
    FILE = "file"
    S3 = "s3"


class StorageThresholds(msgspec.Struct, frozen=True):
    large_file_threshold: int = 102_400
    compression_threshold: int = 10_240
    preview_size: int = 1_000
    # The last characters of a blob-stored payload kept in the record, for search (where a
    # traceback ends); 0 keeps none.
    tail_size: int = 1_000


class StoredPayload(msgspec.Struct, frozen=True):
    """What the record knows of one output or error.

    ``text`` is the whole content when inline and the preview otherwise, so a
    record can always be shown without touching the blob store.
    """

    location: PayloadLocation
    size: int
    text: str
    compressed: bool = False
    key: str | None = None
    # A blob-stored payload's last characters (``tail_size``), searched beside ``text``.
    tail: str | None = None

    @property
    def truncated(self) -> bool:
        return self.location is not PayloadLocation.INLINE


class RoutedPayload(msgspec.Struct, frozen=True):
    """A routing decision: the record's view plus, for a blob, the bytes to store."""

    stored: StoredPayload
    blob: bytes | None = None


def blob_key(
    tenant: TenantId,
    evaluation_id: EvaluationId,
    kind: PayloadKind,
    *,
    compressed: bool,
    token: str,
) -> str:
    """The blob store key of one write of a payload: ``evaluations/{id}/{kind}.{token}.txt[.zst]``
    (under ``tenants/{tenant}/`` for a tenant but the default, ``domain.blob_paths``).

    Every write gets a new ``token``, so a blob is never replaced in place: the
    record that points at it stays right until a commit points it elsewhere, and
    the replaced blob is deleted only after that commit.
    """
    suffix = ".txt.zst" if compressed else ".txt"
    return f"{evaluation_prefix(tenant, evaluation_id)}{kind}.{token}{suffix}"


def preview_of(text: str, preview_size: int) -> str:
    """The first ``preview_size`` characters: slicing a str never splits a character."""
    return text[:preview_size]


def tail_of(text: str, tail_size: int) -> str | None:
    """The last ``tail_size`` characters, or ``None`` when none are kept."""
    return text[-tail_size:] if tail_size > 0 and text else None


def route_payload(
    tenant: TenantId,
    evaluation_id: EvaluationId,
    kind: PayloadKind,
    text: str,
    thresholds: StorageThresholds,
    token: str,
) -> RoutedPayload:
    """Decide where ``text`` lives; the caller compresses ``blob`` when ``compressed``."""
    encoded = text.encode("utf-8")
    size = len(encoded)
    if size <= thresholds.large_file_threshold:
        return RoutedPayload(StoredPayload(PayloadLocation.INLINE, size, text))
    compressed = size > thresholds.compression_threshold
    stored = StoredPayload(
        location=PayloadLocation.FILE,
        size=size,
        text=preview_of(text, thresholds.preview_size),
        compressed=compressed,
        key=blob_key(tenant, evaluation_id, kind, compressed=compressed, token=token),
        tail=tail_of(text, thresholds.tail_size),
    )
    return RoutedPayload(stored, encoded)


def stream_buffer_limit(thresholds: StorageThresholds) -> int:
    """Bytes of a streamed payload to hold before its route is certain.

    Past both thresholds the stream can only go to a blob, compressed; up to
    then it may still end inline (or uncompressed), so it is buffered.
    """
    return max(thresholds.large_file_threshold, thresholds.compression_threshold)


def streamed_blob_payload(
    tenant: TenantId,
    evaluation_id: EvaluationId,
    kind: PayloadKind,
    size: int,
    preview: str,
    thresholds: StorageThresholds,
    token: str,
) -> StoredPayload:
    """The record's view of a streamed payload that went past ``stream_buffer_limit``
    (its ``tail`` is set once the stream has ended)."""
    return StoredPayload(
        location=PayloadLocation.FILE,
        size=size,
        text=preview_of(preview, thresholds.preview_size),
        compressed=True,
        key=blob_key(tenant, evaluation_id, kind, compressed=True, token=token),
    )


def tail_bytes(tail_size: int) -> int:
    """Bytes of a stream's end that always hold its last ``tail_size`` characters."""
    return 4 * tail_size


def decode_tail(end: bytes, tail_size: int) -> str | None:
    """The last ``tail_size`` characters of valid UTF-8 ending in ``end`` (``end`` may
    begin inside a character: its leading continuation bytes are skipped)."""
    start = 0
    while start < len(end) and end[start] & 0xC0 == 0x80:
        start += 1
    return tail_of(end[start:].decode("utf-8"), tail_size)


class ByteRange(msgspec.Struct, frozen=True):
    """Bytes ``start`` to ``end`` (exclusive) of a payload of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start


class RequestedRange(msgspec.Struct, frozen=True, kw_only=True):
    """One byte range as a client asks for it, before the payload's size is known.

    Bytes ``start`` to ``end`` (exclusive; ``None``: to the end), or, when
    ``suffix`` is set, the last ``suffix`` bytes.
    """

    start: int = 0
    end: int | None = None
    suffix: int | None = None


def clamp_range(requested: RequestedRange, size: int) -> ByteRange:
    """The bytes of ``requested`` that a payload of ``size`` bytes holds.

    Raises ``UnsatisfiableRangeError`` when none of them lies within the content.
    """
    if requested.suffix is not None:
        if requested.suffix == 0 or size == 0:
            raise UnsatisfiableRangeError(size)
        return ByteRange(start=max(0, size - requested.suffix), end=size, size=size)
    if requested.start >= size:
        raise UnsatisfiableRangeError(size)
    end = size if requested.end is None else min(requested.end, size)
    return ByteRange(start=requested.start, end=end, size=size)
