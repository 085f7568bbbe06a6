"""Sealed lines: one sealed value per line of a JSON-lines file (ADR 0031, ADR 0033).

``sealed:<base64>``: a data key wrapped by a KEK. ``sealed~<id> [<tag> ]<base64>``: a data
key wrapped by the evaluation key of ``<id>`` (crypto-shredding), which the reader needs
before it can open the line; ``<tag>`` is what the file keeps in clear beside it (the
journal: the entry's id, so that an entry whose key is destroyed can still be removed).
No JSON line starts with ``s``, so lines written in clear before encryption was turned on
are told apart and still read.

Lines are sealed and opened in worker threads (the journal's reads, every mirror file);
an evaluation key this process does not hold is asked of the key table from there.
"""

import base64
import binascii
import functools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import anyio.from_thread
from anyio import NoEventLoopError

from infrastructure.crypto.evaluation_keys import EvaluationKeyring, Sealing
from infrastructure.crypto.keyring import EVALUATION_KID, Keyring, UnwrapError, unwrap_under
from infrastructure.crypto.sealed import (
    HEADER_MAX,
    Cipher,
    SealedDataError,
    open_all,
    open_value,
    parse_header,
    seal_all,
)

PREFIX = b"sealed:"
EVALUATION_PREFIX = b"sealed~"
SEALED = b"sealed"  # what every sealed line starts with
T = TypeVar("T")


class LineSeal:
    """Seals a line's bytes (when ``seal``) under a data key of its own; opens sealed ones.

    ``shred``: a line bound to an evaluation gets its data key wrapped by the evaluation's
    key (``keys``); ``fetch`` (from a worker thread) lets ``seal`` make that key when this
    process does not hold it, else such a line is sealed under the KEK.
    """

    def __init__(
        self,
        keyring: Keyring,
        *,
        seal: bool = True,
        keys: EvaluationKeyring | None = None,
        shred: bool = False,
    ) -> None:
        self._sealing = Sealing(keyring, keys, shred=shred and seal)
        self.seals = seal

    def seal(
        self,
        data: bytes,
        context: bytes,
        evaluation_id: str | None = None,
        *,
        tag: str | None = None,
        fetch: bool = False,
    ) -> bytes:
        """``data`` (one line, without its newline) as stored."""
        if not self.seals:
            return data
        cipher = self._cipher(context, evaluation_id, fetch=fetch)
        encoded = base64.b64encode(seal_all(cipher, data))
        if cipher.header.kid != EVALUATION_KID or evaluation_id is None:
            return PREFIX + encoded
        named = [evaluation_id, *([] if tag is None else [tag])]
        return EVALUATION_PREFIX + " ".join(named).encode() + b" " + encoded

    def _cipher(self, context: bytes, evaluation_id: str | None, *, fetch: bool) -> Cipher:
        sealing = self._sealing
        keys = sealing.keys
        if (
            fetch
            and keys is not None
            and evaluation_id is not None
            and not keys.known(evaluation_id)
        ):
            # Made or fetched as every other seal does: the KEK when the database is away.
            cipher = _from_thread(functools.partial(sealing.new, context, evaluation_id))
            if cipher is not None:
                return cipher
        return sealing.new_known(context, evaluation_id)

    def open(self, line: bytes, context: bytes, evaluation_id: str | None = None) -> bytes:
        """The line's bytes; ``SealedDataError`` when a sealed line does not open (its
        evaluation key destroyed included)."""
        if line.startswith(EVALUATION_PREFIX):
            return self._open_under_evaluation(line, context, evaluation_id)
        if not line.startswith(PREFIX):
            return line
        return open_value(self._sealing.keyring, context, _decoded(line[len(PREFIX) :]))

    def _open_under_evaluation(
        self, line: bytes, context: bytes, evaluation_id: str | None
    ) -> bytes:
        named, encoded = _split(line)
        owner = named[0]
        if evaluation_id is not None and owner != evaluation_id:
            raise SealedDataError(f"a line of {owner!r} where {evaluation_id!r} was expected")
        sealed = _decoded(encoded)
        header = parse_header(sealed[:HEADER_MAX])
        if header.kid != EVALUATION_KID:
            raise SealedDataError("a line named for an evaluation, sealed under a KEK")
        key = None
        keys = self._sealing.keys
        if keys is not None:
            key = keys.known(owner) or _from_thread(functools.partial(keys.key, owner))
        if key is None:
            raise SealedDataError(f"the evaluation key of {owner!r} is destroyed")
        try:
            data_key = unwrap_under(key, owner, header.wrapped, context)
        except UnwrapError as error:
            raise SealedDataError(str(error)) from None
        return open_all(Cipher(header, data_key, context), sealed)


def tag_of(line: bytes) -> str | None:
    """The clear tag of a line sealed under an evaluation key, if it has one."""
    if not line.startswith(EVALUATION_PREFIX):
        return None
    try:
        named, _ = _split(line)
    except SealedDataError:
        return None
    return named[1] if len(named) > 1 else None


def _split(line: bytes) -> tuple[list[str], bytes]:
    """(the id and tag, the base64) of a ``sealed~`` line."""
    fields = line[len(EVALUATION_PREFIX) :].split(b" ")
    if len(fields) not in (2, 3) or not all(fields):
        raise SealedDataError("a sealed line's names are torn")
    try:
        return [field.decode("ascii") for field in fields[:-1]], fields[-1]
    except UnicodeDecodeError:
        raise SealedDataError("a sealed line's names are not ASCII") from None


def _decoded(encoded: bytes) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise SealedDataError("a sealed line is not base64") from None


def _from_thread(call: Callable[[], Coroutine[Any, Any, T | None]]) -> T | None:
    """``call`` (a coroutine function) run on the event loop from a worker thread;
    ``None`` when not in one (the key is then not to be had without waiting)."""
    try:
        result = anyio.from_thread.run(call)
    except NoEventLoopError:
        return None
    except UnwrapError as error:  # the key's row does not open under the keys file
        raise SealedDataError(str(error)) from None
    return result
