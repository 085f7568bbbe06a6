"""Sealed text columns: a record's code, outputs, errors, events' messages and log pieces
in the database (ADR 0031).

A row's write draws one data key; each sealed value carries it, wrapped by the active
key-encryption key and bound to the row (``evaluations|<id>``, another tenant's
``<tenant>/evaluations|<id>``), and its own nonce, with
the row and the column as associated data: a value moved to another row or column does
not open. A value is ``\\x1bcrse1:<base64>``; anything else is a value stored in clear
before encryption was turned on, and is read as it is. Unwrapped data keys are kept in a
small LRU, so a row's columns (and a page of rows read again) unwrap once.
"""

import base64
import binascii
import copy
import functools
import os
from collections.abc import Mapping
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from application.backends import Backend
from application.errors import BackendUnavailableError
from application.ports.sealed_blobs import Rewrap
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.crypto.keyring import (
    KEY_BYTES,
    NONCE_BYTES,
    WRAPPED_BYTES,
    Keyring,
    UnwrapError,
)

PREFIX = "\x1bcrse1:"
_ROW = b"crucible/row/v1|"
_COLUMN = b"crucible/column/v1|"


class SealedColumnError(BackendUnavailableError):
    """A sealed value does not open: tampered with, moved, or its key is not in the file
    (503: the database holds the value, this service cannot read it)."""

    def __init__(self, message: str) -> None:
        super().__init__(Backend.DATABASE, message)


class RowSealer:
    """Seals the values of one row's write under one new data key."""

    def __init__(self, keyring: Keyring, row: str) -> None:
        self._row = row.encode()
        data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        kid, wrapped = keyring.wrap(data_key, _ROW + self._row)
        self._aead = AESGCM(data_key)
        self._head = bytes([len(kid)]) + kid.encode() + wrapped

    def text(self, column: str, value: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), _aad(self._row, column))
        return PREFIX + base64.b64encode(self._head + nonce + sealed).decode("ascii")


class ColumnSeal:
    """Seals (when ``seal``) and opens one tenant's text columns; without a keyring, clear
    values pass and a sealed one raises ``SealedColumnError``.

    Rows are bound with their tenant: another tenant's row of the same id is another row
    (``<tenant>/evaluations|<id>``; the default tenant's rows keep the names they had
    before tenants), so a value copied into it does not open. ``of`` gives another
    tenant's seal, sharing the unwrapped data keys.
    """

    def __init__(
        self,
        keyring: Keyring | None = None,
        *,
        seal: bool = False,
        metadata_keys: frozenset[str] = frozenset(),
        tenant: TenantId = DEFAULT_TENANT,
    ) -> None:
        self._keyring = keyring
        self.seals = seal and keyring is not None
        self.metadata_keys = metadata_keys
        self.tenant = tenant
        self._tenant_part = _tenant_part(tenant)
        self._unwrap = functools.lru_cache(maxsize=4096)(self._unwrap_uncached)

    def of(self, tenant: TenantId) -> "ColumnSeal":
        """This seal for ``tenant``'s rows."""
        if tenant == self.tenant:
            return self
        other = copy.copy(self)
        other.tenant = tenant
        other._tenant_part = _tenant_part(tenant)
        return other

    def row(self, row: str) -> RowSealer | None:
        """A sealer for one row's write, or ``None`` when values are stored in clear."""
        if not self.seals or self._keyring is None:
            return None
        return RowSealer(self._keyring, self._tenant_part + row)

    def one(self, row: str, column: str, value: str) -> str:
        """One value sealed under a data key of its own (when sealing)."""
        sealer = self.row(row)
        return value if sealer is None else sealer.text(column, value)

    def open(self, row: str, column: str, value: str) -> str:
        if not value.startswith(PREFIX):
            return value
        row = self._tenant_part + row
        try:
            raw = base64.b64decode(value[len(PREFIX) :], validate=True)
            length = raw[0]
            head_end = 1 + length + WRAPPED_BYTES
            aead = self._unwrap(raw[:head_end], row)
            nonce = raw[head_end : head_end + NONCE_BYTES]
            plain = aead.decrypt(nonce, raw[head_end + NONCE_BYTES :], _aad(row.encode(), column))
        except (binascii.Error, IndexError, InvalidTag, UnwrapError, ValueError) as error:
            raise SealedColumnError(
                f"{row} {column}: a sealed value does not open ({error})"
            ) from None
        return plain.decode()

    def rewrap(self, row: str, column: str, value: str) -> tuple[Rewrap, str]:
        """``value`` with its data key under the active key (its ciphertext untouched), or
        sealed when stored in clear and sealing is on."""
        if not value.startswith(PREFIX):
            if not self.seals:
                return Rewrap.CLEAR, value
            return Rewrap.SEALED, self.one(row, column, value)
        assert self._keyring is not None  # a sealed value's row is only read with keys
        try:
            raw = base64.b64decode(value[len(PREFIX) :], validate=True)
            length = raw[0]
            kid = raw[1 : 1 + length].decode("ascii", errors="replace")
            head_end = 1 + length + WRAPPED_BYTES
            if kid == self._keyring.active:
                return Rewrap.CURRENT, value
            context = _ROW + (self._tenant_part + row).encode()
            data_key = self._keyring.unwrap(kid, raw[1 + length : head_end], context)
        except (binascii.Error, IndexError, UnwrapError) as error:
            raise SealedColumnError(f"{row} {column}: cannot re-wrap ({error})") from None
        active, wrapped = self._keyring.wrap(data_key, context)
        head = bytes([len(active)]) + active.encode() + wrapped
        return Rewrap.REWRAPPED, PREFIX + base64.b64encode(head + raw[head_end:]).decode("ascii")

    def open_optional(self, row: str, column: str, value: str | None) -> str | None:
        return None if value is None else self.open(row, column, value)

    def _unwrap_uncached(self, head: bytes, row: str) -> AESGCM:
        if self._keyring is None:
            raise UnwrapError("sealed, and no ENCRYPTION_KEYS_FILE")
        length = head[0]
        kid = head[1 : 1 + length].decode("ascii", errors="replace")
        data_key = self._keyring.unwrap(kid, head[1 + length :], _ROW + row.encode())
        return AESGCM(data_key)

    # -- a record's metadata: only the keys named in ENCRYPTED_METADATA_KEYS ---------------

    def seal_metadata(self, sealer: RowSealer, metadata: Mapping[str, Any]) -> dict[str, Any]:
        return {
            key: sealer.text(f"metadata.{key}", msgspec.json.encode(value).decode())
            if key in self.metadata_keys
            else value
            for key, value in metadata.items()
        }

    def open_metadata(self, row: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
        return {
            key: msgspec.json.decode(self.open(row, f"metadata.{key}", value))
            if isinstance(value, str) and value.startswith(PREFIX)
            else value
            for key, value in metadata.items()
        }


def _tenant_part(tenant: TenantId) -> str:
    """What a tenant's row names start with: nothing for the default tenant's, whose names
    are those of before tenants."""
    return "" if tenant == DEFAULT_TENANT else f"{tenant}/"


def _aad(row: bytes, column: str) -> bytes:
    return _COLUMN + row + b"|" + column.encode()


NO_COLUMN_SEAL = ColumnSeal()
