"""The sealed format: a header, then AES-GCM segments (ADR 0031).

::

    magic (8) | id length (1) | KEK id | wrapped data key (60) | nonce prefix (7) | segments

Each segment seals ``SEGMENT`` bytes of plaintext (the last one fewer, possibly none)
under the blob's own data key, with the nonce ``prefix | index (4) | last (1)`` and the
associated data ``context`` (the blob's key): a segment cannot be moved to another
place or blob, dropped from the end or reordered without failing to open. Fixed-size
segments let a range read start at the segment it needs, and the header holds all the
key material, so ``rotate-keys`` rewrites only the header.

The magic begins with 0xFF, which no UTF-8 text starts with: a blob stored in clear
before encryption was turned on is told apart by its first byte and still read.
"""

import os
import struct
from collections.abc import AsyncIterator

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from infrastructure.crypto.keyring import KEY_BYTES, TAG_BYTES, WRAPPED_BYTES, Keyring, UnwrapError

MAGIC = b"\xffCRSEAL1"
SEGMENT = 64 * 1024
SEALED_SEGMENT = SEGMENT + TAG_BYTES
PREFIX_BYTES = 7
# The longest header: magic, a 64-character id, the wrapped key and the nonce prefix.
HEADER_MAX = len(MAGIC) + 1 + 64 + WRAPPED_BYTES + PREFIX_BYTES
_AAD = b"crucible/blob/v1|"


class SealedDataError(ValueError):
    """Sealed bytes are torn, tampered with or belong elsewhere."""


class Header(msgspec.Struct, frozen=True):
    kid: str
    wrapped: bytes
    prefix: bytes

    def encode(self) -> bytes:
        kid = self.kid.encode()
        return MAGIC + bytes([len(kid)]) + kid + self.wrapped + self.prefix

    @property
    def size(self) -> int:
        return len(MAGIC) + 1 + len(self.kid) + WRAPPED_BYTES + PREFIX_BYTES


def is_sealed(head: bytes) -> bool:
    return head.startswith(MAGIC)


def parse_header(head: bytes) -> Header:
    """The header at the start of ``head`` (which holds at least ``HEADER_MAX`` bytes or
    the whole blob)."""
    if not is_sealed(head) or len(head) < len(MAGIC) + 1:
        raise SealedDataError("not sealed data")
    at = len(MAGIC)
    length = head[at]
    kid_end = at + 1 + length
    wrapped_end = kid_end + WRAPPED_BYTES
    end = wrapped_end + PREFIX_BYTES
    if len(head) < end:
        raise SealedDataError("the header is torn")
    return Header(
        kid=head[at + 1 : kid_end].decode("ascii", errors="replace"),
        wrapped=head[kid_end:wrapped_end],
        prefix=head[wrapped_end:end],
    )


def plain_size(sealed: int, header: Header) -> int:
    """Plaintext bytes of a sealed blob of ``sealed`` bytes."""
    body = sealed - header.size
    full, rest = divmod(body, SEALED_SEGMENT)
    if body < TAG_BYTES or 0 < rest < TAG_BYTES:
        raise SealedDataError("the sealed data is torn")
    return full * SEGMENT if rest == 0 else full * SEGMENT + rest - TAG_BYTES


class Cipher:
    """One blob's data key and nonce prefix: seals or opens its segments."""

    def __init__(self, header: Header, data_key: bytes, context: bytes) -> None:
        self.header = header
        self._aead = AESGCM(data_key)
        self._aad = _AAD + context

    @classmethod
    def new(cls, keyring: Keyring, context: bytes) -> "Cipher":
        data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        kid, wrapped = keyring.wrap(data_key, context)
        return cls(Header(kid, wrapped, os.urandom(PREFIX_BYTES)), data_key, context)

    @classmethod
    def of(cls, header: Header, keyring: Keyring, context: bytes) -> "Cipher":
        return cls(header, keyring.unwrap(header.kid, header.wrapped, context), context)

    def _nonce(self, index: int, last: bool) -> bytes:
        if index >= 1 << 32:
            raise SealedDataError("too many segments")
        return self.header.prefix + struct.pack(">IB", index, last)

    def seal(self, index: int, plain: bytes, *, last: bool) -> bytes:
        return self._aead.encrypt(self._nonce(index, last), plain, self._aad)

    def open(self, index: int, sealed: bytes, *, last: bool) -> bytes:
        try:
            return self._aead.decrypt(self._nonce(index, last), sealed, self._aad)
        except InvalidTag:
            raise SealedDataError(f"segment {index} does not open") from None


def seal_value(keyring: Keyring, context: bytes, plain: bytes) -> bytes:
    """``plain`` sealed whole under a new data key bound to ``context``."""
    return seal_all(Cipher.new(keyring, context), plain)


def open_value(keyring: Keyring, context: bytes, sealed: bytes) -> bytes:
    """What ``seal_value`` sealed; ``SealedDataError`` when it does not open (its key
    included: not in the keyring, or bound to another context)."""
    try:
        return open_all(Cipher.of(parse_header(sealed[:HEADER_MAX]), keyring, context), sealed)
    except UnwrapError as error:
        raise SealedDataError(str(error)) from None


def seal_all(cipher: Cipher, plain: bytes) -> bytes:
    view = memoryview(plain)
    count = max(1, -(-len(view) // SEGMENT))
    parts = [cipher.header.encode()]
    for index in range(count):
        piece = bytes(view[index * SEGMENT : (index + 1) * SEGMENT])
        parts.append(cipher.seal(index, piece, last=index == count - 1))
    return b"".join(parts)


def open_all(cipher: Cipher, sealed: bytes) -> bytes:
    body = memoryview(sealed)[cipher.header.size :]
    plain_size(len(sealed), cipher.header)  # refuses a torn length
    count = max(1, -(-len(body) // SEALED_SEGMENT))
    return b"".join(
        cipher.open(
            index,
            bytes(body[index * SEALED_SEGMENT : (index + 1) * SEALED_SEGMENT]),
            last=index == count - 1,
        )
        for index in range(count)
    )


async def seal_stream(cipher: Cipher, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The header, then each segment once the next byte (or the end) shows whether it is last."""
    yield cipher.header.encode()
    buffer = bytearray()
    index = 0
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) > SEGMENT:
            yield cipher.seal(index, bytes(buffer[:SEGMENT]), last=False)
            del buffer[:SEGMENT]
            index += 1
    yield cipher.seal(index, bytes(buffer), last=True)


async def open_stream(
    cipher: Cipher, body: AsyncIterator[bytes], first_index: int = 0
) -> AsyncIterator[bytes]:
    """Plaintext of the segments in ``body`` (sealed bytes from segment ``first_index`` on)."""
    buffer = bytearray()
    index = first_index
    async for chunk in body:
        buffer += chunk
        while len(buffer) > SEALED_SEGMENT:
            yield cipher.open(index, bytes(buffer[:SEALED_SEGMENT]), last=False)
            del buffer[:SEALED_SEGMENT]
            index += 1
    if len(buffer) < TAG_BYTES:
        raise SealedDataError("the sealed data is torn")
    yield cipher.open(index, bytes(buffer), last=True)


def segment_offset(header: Header, index: int) -> int:
    """Where segment ``index`` starts in the sealed blob."""
    return header.size + index * SEALED_SEGMENT
