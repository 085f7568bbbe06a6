"""Key-encryption keys (KEKs) from ``ENCRYPTION_KEYS_FILE``, and data keys wrapped by them.

The file holds one key per line, ``<id> <base64 of 32 bytes>``; ``#`` starts a comment.
The last key is the active one: new data keys are wrapped by it, and the older ones
stay to unwrap what they wrapped until ``rotate-keys`` has re-wrapped it all. A key's
id is stored beside each wrapped data key, so the file may gain keys but must keep
every key some stored data still names.
"""

import base64
import binascii
import functools
import os
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
WRAPPED_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_WRAP_CONTEXT = b"crucible/data-key/v1|"


class KeyringError(ValueError):
    """The keys file is unreadable or malformed; the message names the line, never a key."""


class UnwrapError(ValueError):
    """A wrapped data key names an unknown key id, or does not open under it."""


class Keyring:
    """KEKs by id; ``active`` wraps, any of them unwraps."""

    def __init__(self, keys: Mapping[str, bytes], active: str) -> None:
        if active not in keys:
            raise KeyringError(f"the active key {active!r} is not in the keyring")
        self._keys = {kid: AESGCM(secret) for kid, secret in keys.items()}
        self.active = active
        # A data key read again (a hot cached record, a page's rows) is unwrapped once.
        self.unwrap = functools.lru_cache(maxsize=8192)(self._unwrap)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]:
        """``data_key`` sealed under the active KEK, bound to ``context`` and the KEK's id."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.active].encrypt(nonce, data_key, _aad(self.active, context))
        return self.active, nonce + sealed

    def _unwrap(self, kid: str, wrapped: bytes, context: bytes) -> bytes:
        kek = self._keys.get(kid)
        if kek is None:
            raise UnwrapError(f"no key {kid!r} in ENCRYPTION_KEYS_FILE")
        try:
            return kek.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _aad(kid, context))
        except InvalidTag:
            raise UnwrapError(f"a data key does not open under key {kid!r}") from None


def _aad(kid: str, context: bytes) -> bytes:
    return _WRAP_CONTEXT + kid.encode() + b"|" + context


# The id a header carries for a data key wrapped by the evaluation key of the evaluation it
# is bound to (crypto-shredding, ADR 0033) rather than by a KEK; no KEK id starts with "~".
EVALUATION_KID = "~e"


def _evaluation_aad(evaluation_id: str, context: bytes) -> bytes:
    return _aad(EVALUATION_KID, evaluation_id.encode() + b"|" + context)


def wrap_under(evaluation_key: bytes, evaluation_id: str, data_key: bytes, context: bytes) -> bytes:
    """``data_key`` sealed under ``evaluation_id``'s key, bound to it and to ``context``."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(evaluation_key).encrypt(
        nonce, data_key, _evaluation_aad(evaluation_id, context)
    )
    return nonce + sealed


# A data key read again (a hot cached record, a blob's segments) is unwrapped once, as
# ``Keyring.unwrap`` does. Its entries hold the evaluation keys themselves, so destroying
# a key empties it (``EvaluationKeyring.destroy``): no destroyed key stays in memory.
@functools.lru_cache(maxsize=8192)
def unwrap_under(
    evaluation_key: bytes, evaluation_id: str, wrapped: bytes, context: bytes
) -> bytes:
    try:
        return AESGCM(evaluation_key).decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _evaluation_aad(evaluation_id, context)
        )
    except InvalidTag:
        raise UnwrapError(
            f"a data key does not open under the evaluation key of {evaluation_id!r}"
        ) from None


def parse_keyring(text: str, source: str = "ENCRYPTION_KEYS_FILE") -> Keyring:
    """Read the keys file's text; errors name ``source`` and the line number only."""
    keys: dict[str, bytes] = {}
    active = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not _KEY_ID.fullmatch(parts[0]):
            raise KeyringError(f"{source} line {number}: expected '<id> <base64 key>'")
        kid, encoded = parts
        try:
            secret = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise KeyringError(f"{source} line {number}: the key is not base64") from None
        if len(secret) != KEY_BYTES:
            raise KeyringError(f"{source} line {number}: a key must be {KEY_BYTES} bytes")
        if kid in keys:
            raise KeyringError(f"{source} line {number}: key id {kid!r} is defined twice")
        keys[kid] = secret
        active = kid
    if not keys:
        raise KeyringError(f"{source} holds no key")
    return Keyring(keys, active)


def load_keyring(path: Path) -> Keyring:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyringError(f"ENCRYPTION_KEYS_FILE {path}: cannot read it ({exc})") from None
    return parse_keyring(text, f"ENCRYPTION_KEYS_FILE {path}")


def new_key_line(now: datetime | None = None) -> str:
    """A fresh key in the file's format; its id sorts by creation time."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    secret = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()
    return f"k{stamp}-{secrets.token_hex(3)} {secret}\n"


def append_new_key(path: Path) -> str:
    """Append a new (now active) key to ``path``, created owner-only; returns its id."""
    line = new_key_line()
    if path.exists():
        parse_keyring(path.read_text(encoding="utf-8"), str(path))  # never append to garbage
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
        if path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            handle.write("\n")
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    return line.split()[0]
