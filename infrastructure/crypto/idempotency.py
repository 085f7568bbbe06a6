"""``SealedIdempotencyStore``: the answers kept for ``Idempotency-Key`` retries, sealed.

A kept answer is the response a write got: a whole record, code and output included. Its
body is sealed under a data key of its own, bound to the caller and the key. The ids of
the evaluations it names stay in clear in front of it (``\\xffids:["<id>"]\\n``), so that
erasing an evaluation still finds the answers that hold it. Bodies kept in clear before
are read as they are.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from application.backends import Backend
from application.errors import BackendUnavailableError
from application.ports.idempotency_store import IdempotencyStore, KeyRecord
from domain.tenancy import TenantId
from infrastructure.crypto.keyring import Keyring
from infrastructure.crypto.sealed import (
    SealedDataError,
    open_value,
    seal_value,
)

TAG = b"\xffids:"
_ID_FIELDS = ("id", "eval_id", "evaluation_id")


class SealedIdempotencyStore(IdempotencyStore):
    def __init__(self, inner: IdempotencyStore, keyring: Keyring, *, seal: bool = True) -> None:
        self._inner = inner
        self._keyring = keyring
        self._seal = seal

    async def claim(self, claim: KeyRecord, *, now: datetime) -> KeyRecord | None:
        return self._opened(await self._inner.claim(claim, now=now))

    async def find(
        self, tenant: TenantId, caller: str, key: str, *, now: datetime
    ) -> KeyRecord | None:
        return self._opened(await self._inner.find(tenant, caller, key, now=now))

    async def complete(self, answer: KeyRecord) -> None:
        response = answer.response
        if self._seal and response is not None:
            context = _context(answer.caller, answer.key)
            sealed = seal_value(self._keyring, context, response.body)
            body = TAG + msgspec.json.encode(_ids_in(response.body)) + b"\n" + sealed
            answer = msgspec.structs.replace(
                answer, response=msgspec.structs.replace(response, body=body)
            )
        await self._inner.complete(answer)

    async def release(self, tenant: TenantId, caller: str, key: str) -> None:
        await self._inner.release(tenant, caller, key)

    async def purge(self, now: datetime, tenant: TenantId) -> int:
        return await self._inner.purge(now, tenant)

    async def forget_answers_with(self, tenant: TenantId, needles: Sequence[bytes]) -> int:
        # An id is a needle in clear in front of a sealed body (``TAG``) as in a clear one.
        return await self._inner.forget_answers_with(tenant, needles)

    def _opened(self, record: KeyRecord | None) -> KeyRecord | None:
        if record is None or record.response is None:
            return record
        body = record.response.body
        if not body.startswith(TAG):
            return record
        sealed = body[body.index(b"\n") + 1 :]
        try:
            plain = open_value(self._keyring, _context(record.caller, record.key), sealed)
        except SealedDataError as error:
            raise BackendUnavailableError(
                Backend.DATABASE, f"a kept Idempotency-Key answer does not open: {error}"
            ) from None
        return msgspec.structs.replace(
            record, response=msgspec.structs.replace(record.response, body=plain)
        )


def _context(caller: str, key: str) -> bytes:
    return f"idempotency|{caller}|{key}".encode()


def _ids_in(body: bytes) -> Sequence[str]:
    """The evaluation ids an answer's JSON names, at any depth (none when it is not JSON)."""
    try:
        decoded: Any = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return []
    found: dict[str, None] = {}
    pending = [decoded]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            found.update(
                (item, None) for name in _ID_FIELDS if isinstance(item := value.get(name), str)
            )
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return list(found)
