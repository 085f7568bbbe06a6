"""IdempotencyKeys routes claims and answers between the database's store and the fallback.

The primary here is the memory store behind an outage switch; the fallback is the
file store the service keeps beside its journal.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from application.backends import Backend
from application.errors import BackendUnavailableError
from application.failover.idempotency import IdempotencyKeys
from application.failover.primary import PrimaryState
from application.ports.idempotency_store import IdempotencyStore, KeyRecord, StoredResponse
from domain.access import AccessScope, Caller
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.files.idempotency import FileIdempotencyStore
from infrastructure.memory.idempotency import MemoryIdempotencyStore

pytestmark = pytest.mark.anyio

GATEWAY = Caller("gateway", AccessScope.WRITE)
ANSWER = StoredResponse(status=200, headers=(("content-type", "application/json"),), body=b"{}")


class FixedClock:
    def __init__(self) -> None:
        self.at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


class OutageStore(MemoryIdempotencyStore):
    """The memory store, unreachable while ``down`` (as the SQL store is when PostgreSQL is)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise BackendUnavailableError(Backend.DATABASE, "connection refused")

    async def claim(self, claim: KeyRecord, *, now: datetime) -> KeyRecord | None:
        self._check()
        return await super().claim(claim, now=now)

    async def complete(self, answer: KeyRecord) -> None:
        self._check()
        await super().complete(answer)


class World:
    def __init__(self, root: Path, *, fallback: bool = True) -> None:
        self.clock = FixedClock()
        self.primary = OutageStore()
        self.fallback: IdempotencyStore | None = FileIdempotencyStore(root) if fallback else None
        self.mirror = FileIdempotencyStore(root, durable=False) if fallback else None
        self.state = PrimaryState(self.clock)
        self.keys = IdempotencyKeys(
            self.primary,
            self.fallback,
            self.mirror,
            self.clock,
            self.state,
            ttl=timedelta(hours=1),
            lease=timedelta(minutes=1),
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


async def test_while_the_primary_serves_keys_are_claimed_there(world: World) -> None:
    assert await world.keys.claim(GATEWAY, "k") is None

    assert (DEFAULT_TENANT, "gateway", "k") in world.primary.records


async def test_an_answer_is_mirrored_beside_the_journal(world: World) -> None:
    await world.keys.claim(GATEWAY, "k")
    await world.keys.complete(GATEWAY, "k", "f" * 64, ANSWER)

    assert world.fallback is not None
    mirrored = await world.fallback.find(DEFAULT_TENANT, "gateway", "k", now=world.clock.now())
    assert mirrored is not None
    assert mirrored.response == ANSWER


async def test_an_answer_given_before_an_outage_is_found_during_it(world: World) -> None:
    await world.keys.claim(GATEWAY, "k")
    await world.keys.complete(GATEWAY, "k", "f" * 64, ANSWER)
    world.primary.down = True

    held = await world.keys.claim(GATEWAY, "k")

    assert held is not None
    assert held.response == ANSWER


async def test_during_an_outage_a_key_is_claimed_and_answered_in_the_fallback(
    world: World,
) -> None:
    world.primary.down = True

    assert await world.keys.claim(GATEWAY, "k") is None
    again = await world.keys.claim(GATEWAY, "k")
    await world.keys.complete(GATEWAY, "k", "f" * 64, ANSWER)
    world.primary.down = False
    after = await world.keys.claim(GATEWAY, "k")

    assert again is not None
    assert again.in_flight()
    assert after is not None
    assert after.response == ANSWER
    assert (DEFAULT_TENANT, "gateway", "k") not in world.primary.records


async def test_a_primary_known_down_is_not_asked_again(world: World) -> None:
    world.primary.down = True
    world.state.mark_down()

    await world.keys.claim(GATEWAY, "k")
    await world.keys.complete(GATEWAY, "k", "f" * 64, ANSWER)

    assert world.primary.calls == 0


async def test_without_a_fallback_an_outage_is_the_callers_503(tmp_path: Path) -> None:
    world = World(tmp_path, fallback=False)
    world.primary.down = True

    with pytest.raises(BackendUnavailableError):
        await world.keys.claim(GATEWAY, "k")


async def test_release_frees_the_key_in_both_stores(world: World) -> None:
    world.primary.down = True
    await world.keys.claim(GATEWAY, "k")
    world.primary.down = False

    await world.keys.release(GATEWAY, "k")

    assert await world.keys.claim(GATEWAY, "k") is None


class UnreadableStore(MemoryIdempotencyStore):
    """A fallback directory that cannot be read (permissions, a failed disk)."""

    async def find(
        self, tenant: TenantId, caller: str, key: str, *, now: datetime
    ) -> KeyRecord | None:
        raise BackendUnavailableError(Backend.FILE, "EACCES: Permission denied")


async def test_an_unreadable_fallback_does_not_refuse_what_the_primary_serves(
    world: World,
) -> None:
    world.keys = IdempotencyKeys(
        world.primary,
        UnreadableStore(),
        None,
        world.clock,
        world.state,
        ttl=timedelta(hours=1),
        lease=timedelta(minutes=1),
    )

    assert await world.keys.claim(GATEWAY, "k") is None
    assert (DEFAULT_TENANT, "gateway", "k") in world.primary.records

    world.state.mark_down()
    with pytest.raises(BackendUnavailableError):
        await world.keys.claim(GATEWAY, "other")
