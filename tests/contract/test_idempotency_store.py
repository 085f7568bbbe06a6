"""IdempotencyStore contract: memory, files, SQLite and PostgreSQL keep keys alike.

A claim is atomic (two concurrent claims of one key: one wins), an answer is kept
until it expires, an in-flight key whose request died frees itself after its lease,
and keys of two callers never meet.
"""

import hashlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from application.ports.idempotency_store import IdempotencyStore, KeyRecord, StoredResponse
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.crypto.idempotency import SealedIdempotencyStore
from infrastructure.files.idempotency import FileIdempotencyStore
from infrastructure.memory.idempotency import MemoryIdempotencyStore
from infrastructure.postgres.idempotency import PgIdempotencyStore
from infrastructure.postgres.pool import create_pool
from infrastructure.sql.engine import create_engine, create_session_maker
from infrastructure.sql.idempotency import SqlIdempotencyStore
from interfaces.settings import DatabaseSettings
from tests.contract.conftest import ROW_SECURED
from tests.keys import fresh_keyring
from tests.row_security import emptied

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
LEASE = NOW + timedelta(minutes=5)
EXPIRES = NOW + timedelta(days=1)
ANSWER = StoredResponse(
    status=200,
    headers=(("content-type", "application/json"), ("etag", '"2"')),
    body=b'{"id": "eval-1", "status": "running"}',
)


_POSTGRES = pytest.mark.postgres


KINDS: list[Any] = [
    "memory",
    "files",
    "files-mirror",
    "sqlite",
    "sealed-sqlite",
    pytest.param("postgres", marks=_POSTGRES),
    pytest.param("postgres-sqlalchemy", marks=_POSTGRES),
]
# Connected as the service's role under row-level security (ADR 0032).
ROW_SECURED_KINDS = [
    pytest.param(f"postgres{ROW_SECURED}", marks=_POSTGRES),
    pytest.param(f"postgres-sqlalchemy{ROW_SECURED}", marks=_POSTGRES),
]


@pytest.fixture(params=KINDS + ROW_SECURED_KINDS)
def store_kind(request: pytest.FixtureRequest) -> Iterator[tuple[str, str | None]]:
    kind: str = request.param
    if kind.endswith(ROW_SECURED):
        owner, url = request.getfixturevalue("row_secured_postgres_urls")
        emptied(owner, "idempotency_keys")
        yield kind, url
    elif kind.removeprefix("sealed-").startswith(("sqlite", "postgres")):
        database = kind.removeprefix("sealed-").split("-", maxsplit=1)[0]
        yield kind, request.getfixturevalue(f"migrated_{database}_url")
    else:
        yield kind, None


@pytest.fixture
async def store(
    store_kind: tuple[str, str | None], tmp_path: Path
) -> AsyncIterator[IdempotencyStore]:
    kind, url = store_kind
    if kind == "memory":
        yield MemoryIdempotencyStore()
        return
    if kind.startswith("files"):
        yield FileIdempotencyStore(tmp_path, durable=kind == "files")
        return
    assert url is not None
    sealed = kind.startswith("sealed-")
    kind = kind.removeprefix("sealed-").removesuffix(ROW_SECURED)
    settings = DatabaseSettings(url=url, pool_size=5)
    engine = create_engine(settings)
    pool = await create_pool(settings) if kind == "postgres" else None
    try:
        store: IdempotencyStore = (
            PgIdempotencyStore(pool) if pool else SqlIdempotencyStore(create_session_maker(engine))
        )
        if sealed:  # ENCRYPTION=on: every kept body sealed
            store = SealedIdempotencyStore(store, fresh_keyring())
        for tenant in (DEFAULT_TENANT, ACME):  # the database is the run's: left by others
            await store.purge(datetime.max.replace(tzinfo=UTC), tenant)
        yield store
    finally:
        if pool is not None:
            await pool.close()
        await engine.dispose()


ACME = TenantId("acme")


async def _claim(
    store: IdempotencyStore,
    key: str = "key-1",
    *,
    caller: str = "gateway",
    now: datetime = NOW,
    tenant: TenantId = DEFAULT_TENANT,
) -> KeyRecord | None:
    claim = KeyRecord.claimed(
        caller,
        key,
        tenant=tenant,
        lease_until=now + (LEASE - NOW),
        expires_at=now + (EXPIRES - NOW),
    )
    return await store.claim(claim, now=now)


async def _answer(
    store: IdempotencyStore,
    key: str = "key-1",
    *,
    caller: str = "gateway",
    fingerprint: str = "f" * 64,
    response: StoredResponse = ANSWER,
    expires_at: datetime = EXPIRES,
    tenant: TenantId = DEFAULT_TENANT,
) -> None:
    answer = KeyRecord.answered(
        caller,
        key,
        tenant=tenant,
        fingerprint=fingerprint,
        response=response,
        expires_at=expires_at,
    )
    await store.complete(answer)


async def _claim_at_once(store: IdempotencyStore, key: str) -> list[KeyRecord | None]:
    """Eight claims of ``key`` at the same time: what each of them got."""
    results: list[KeyRecord | None] = []

    async def claim() -> None:
        results.append(await _claim(store, key))

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(claim)
    return results


async def test_a_new_key_is_claimed_and_then_held_in_flight(store: IdempotencyStore) -> None:
    assert await _claim(store) is None

    held = await _claim(store)

    assert held is not None
    assert held.in_flight()
    assert (held.caller, held.key, held.fingerprint) == ("gateway", "key-1", None)


async def test_an_answered_key_returns_its_answer_and_fingerprint(store: IdempotencyStore) -> None:
    await _claim(store)
    await _answer(store, "key-1")

    held = await _claim(store)
    found = await store.find(DEFAULT_TENANT, "gateway", "key-1", now=NOW)

    assert held is not None
    assert held.response == ANSWER
    assert held.fingerprint == "f" * 64
    assert found == held


async def test_keys_of_two_callers_never_meet(store: IdempotencyStore) -> None:
    await _claim(store, caller="gateway")
    await _answer(store, "key-1", fingerprint="a" * 64)

    assert await _claim(store, caller="worker") is None
    assert await store.find(DEFAULT_TENANT, "other", "key-1", now=NOW) is None


async def test_an_expired_answer_frees_its_key(store: IdempotencyStore) -> None:
    await _claim(store)
    await _answer(store, "key-1", fingerprint="a" * 64)
    later = EXPIRES + timedelta(seconds=1)

    assert await store.find(DEFAULT_TENANT, "gateway", "key-1", now=later) is None
    assert await _claim(store, now=later) is None


async def test_an_in_flight_key_past_its_lease_can_be_claimed_again(
    store: IdempotencyStore,
) -> None:
    await _claim(store)
    after_lease = LEASE + timedelta(seconds=1)

    assert await store.find(DEFAULT_TENANT, "gateway", "key-1", now=after_lease) is None
    assert await _claim(store, now=after_lease) is None
    assert await _claim(store, now=after_lease) is not None  # claimed by the takeover


async def test_release_frees_an_in_flight_key_but_keeps_an_answer(store: IdempotencyStore) -> None:
    await _claim(store, "running")
    await _claim(store, "answered")
    await _answer(store, "answered", fingerprint="a" * 64)

    await store.release(DEFAULT_TENANT, "gateway", "running")
    await store.release(DEFAULT_TENANT, "gateway", "answered")

    assert await store.find(DEFAULT_TENANT, "gateway", "running", now=NOW) is None
    held = await store.find(DEFAULT_TENANT, "gateway", "answered", now=NOW)
    assert held is not None
    assert held.response == ANSWER


async def test_an_answer_is_kept_without_a_claim_in_this_store(store: IdempotencyStore) -> None:
    """The fallback store mirrors answers whose claim the database held."""
    await _answer(store, "key-1", fingerprint="a" * 64)

    held = await _claim(store)

    assert held is not None
    assert held.response == ANSWER


async def test_purge_deletes_only_the_expired(store: IdempotencyStore) -> None:
    for key, expires in (("old", NOW - timedelta(seconds=1)), ("live", EXPIRES)):
        await _answer(store, key, fingerprint="a" * 64, expires_at=expires)

    assert await store.purge(NOW, DEFAULT_TENANT) == 1

    assert (
        await store.find(DEFAULT_TENANT, "gateway", "live", now=NOW - timedelta(days=1)) is not None
    )
    assert await store.find(DEFAULT_TENANT, "gateway", "old", now=NOW - timedelta(days=1)) is None


async def test_a_tenants_purge_leaves_the_other_tenants_expired_keys(
    store: IdempotencyStore,
) -> None:
    """The purge runs a round per tenant (ADR 0032): a tenant's round deletes its own
    expired keys and none of another tenant's."""
    expired = NOW - timedelta(seconds=1)
    await _answer(store, "old", fingerprint="a" * 64, expires_at=expired)
    await _answer(store, "old-acme", fingerprint="a" * 64, expires_at=expired, tenant=ACME)
    earlier = NOW - timedelta(days=1)

    assert await store.purge(NOW, ACME) == 1
    assert await store.find(ACME, "gateway", "old-acme", now=earlier) is None
    assert await store.find(DEFAULT_TENANT, "gateway", "old", now=earlier) is not None
    assert await store.purge(NOW, DEFAULT_TENANT) == 1


async def test_of_concurrent_claims_of_one_key_exactly_one_wins(store: IdempotencyStore) -> None:
    results = await _claim_at_once(store, "contended")

    assert sum(result is None for result in results) == 1
    assert all(result is None or result.in_flight() for result in results)


async def test_an_empty_body_and_binary_bytes_survive(store: IdempotencyStore) -> None:
    empty = StoredResponse(status=204, headers=(), body=b"")
    binary = StoredResponse(status=201, headers=(("x-a", "b"),), body=bytes(range(256)))
    await _answer(store, "empty", fingerprint="a" * 64, response=empty)
    await _answer(store, "binary", fingerprint="b" * 64, response=binary)

    got = [await store.find(DEFAULT_TENANT, "gateway", key, now=NOW) for key in ("empty", "binary")]

    assert [record.response if record else None for record in got] == [empty, binary]


async def test_of_concurrent_takeovers_of_an_expired_key_exactly_one_wins(
    store: IdempotencyStore,
) -> None:
    await _answer(store, "stale", expires_at=NOW - timedelta(seconds=1))
    results = await _claim_at_once(store, "stale")

    assert sum(result is None for result in results) == 1
    assert all(result is None or result.in_flight() for result in results)


async def test_answers_holding_a_needle_are_forgotten_expired_or_not(
    store: IdempotencyStore,
) -> None:
    def answer(body: bytes) -> StoredResponse:
        return StoredResponse(status=200, headers=(), body=body)

    await _answer(store, "a", response=answer(b'{"id":"eval-1","code":"x"}'))
    await _answer(store, "b", response=answer(b'[{"id":"eval-2"},{"id":"eval-1"}]'))
    await _answer(store, "c", response=answer(b'{"id":"eval-10"}'))  # not "eval-1"
    await _answer(store, "d", response=answer(b'{"id":"eval-3"}'), expires_at=NOW)
    await _answer(store, "e", response=answer(b"\x00\xff binary"))
    await _claim(store, "in-flight")
    await _answer(store, "a-acme", response=answer(b'{"id":"eval-1"}'), tenant=ACME)

    forgotten = await store.forget_answers_with(DEFAULT_TENANT, [b'"eval-1"', b'"eval-3"'])
    again = await store.forget_answers_with(DEFAULT_TENANT, [b'"eval-1"', b'"eval-3"'])

    assert (forgotten, again) == (3, 0)
    assert await store.find(DEFAULT_TENANT, "gateway", "a", now=NOW) is None
    assert await store.find(DEFAULT_TENANT, "gateway", "b", now=NOW) is None
    assert await store.find(DEFAULT_TENANT, "gateway", "c", now=NOW) is not None
    assert await store.find(DEFAULT_TENANT, "gateway", "e", now=NOW) is not None
    assert await store.find(DEFAULT_TENANT, "gateway", "in-flight", now=NOW) is not None
    assert await store.find(ACME, "gateway", "a-acme", now=NOW) is not None  # another tenant's
    assert await store.forget_answers_with(DEFAULT_TENANT, []) == 0


async def test_a_key_of_one_tenant_is_neither_found_nor_released_in_another(
    store: IdempotencyStore,
) -> None:
    assert await _claim(store, "running") is None
    await _answer(store, "answered")

    for key in ("running", "answered"):
        assert await store.find(ACME, "gateway", key, now=NOW) is None
    await store.release(ACME, "gateway", "running")

    held = await store.find(DEFAULT_TENANT, "gateway", "running", now=NOW)
    assert held is not None
    assert held.tenant == DEFAULT_TENANT
    assert held.in_flight()


async def test_one_caller_and_key_in_two_tenants_are_two_records(store: IdempotencyStore) -> None:
    other = StoredResponse(status=201, headers=(), body=b'{"id": "eval-acme"}')
    assert await _claim(store) is None
    assert await _claim(store, tenant=ACME) is None  # not held: another tenant's key
    await _answer(store, tenant=ACME, response=other)

    mine = await store.find(DEFAULT_TENANT, "gateway", "key-1", now=NOW)
    theirs = await store.find(ACME, "gateway", "key-1", now=NOW)
    assert mine is not None
    assert mine.in_flight()
    assert theirs is not None
    assert (theirs.tenant, theirs.response) == (ACME, other)


async def test_the_default_tenant_keeps_the_file_names_kept_before_tenants(
    tmp_path: Path,
) -> None:
    """An answer kept before tenants is found after the upgrade; another tenant's answer
    to the same caller and key is a file of its own."""
    store = FileIdempotencyStore(tmp_path)
    await _answer(store)
    await _answer(store, tenant=ACME)

    names = sorted(path.name for path in (tmp_path / "idempotency").glob("*.json"))
    before = hashlib.sha256(b"gateway\0key-1").hexdigest()
    acme = hashlib.sha256(b"acme\0gateway\0key-1").hexdigest()
    assert names == sorted([f"{before}.json", f"{acme}.json"])
