"""One journaled write per record at a time (``RecordLocks``): the same qualified id waits,
another tenant's record of the same id does not, and a lock is forgotten with its last
user."""

import anyio
import pytest

from application.failover.journaled import RecordLocks
from domain.tenancy import DEFAULT_TENANT, TenantId, qualified_id

pytestmark = pytest.mark.anyio

DEFAULTS = qualified_id(DEFAULT_TENANT, "eval-1")
ACMES = qualified_id(TenantId("acme"), "eval-1")


async def _entered(locks: RecordLocks, first: str, second: str) -> list[str]:
    """What had entered while the holder of ``first`` still held it, then in all."""
    entered: list[str] = []
    release = anyio.Event()

    async def hold(key: str, name: str, wait: bool) -> None:
        async with locks.hold(key):
            entered.append(name)
            if wait:
                await release.wait()

    async with anyio.create_task_group() as group:
        group.start_soon(hold, first, "first", True)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(hold, second, "second", False)
        await anyio.wait_all_tasks_blocked()
        while_held = list(entered)
        release.set()
    return [*while_held, "|", *entered]


async def test_the_same_record_waits_for_its_holder() -> None:
    locks = RecordLocks()
    assert await _entered(locks, DEFAULTS, DEFAULTS) == ["first", "|", "first", "second"]


async def test_another_tenants_record_of_the_same_id_does_not_wait() -> None:
    locks = RecordLocks()
    assert ACMES != DEFAULTS
    assert await _entered(locks, DEFAULTS, ACMES) == [
        "first",
        "second",
        "|",
        "first",
        "second",
    ]


async def test_a_lock_is_forgotten_with_its_last_user() -> None:
    locks = RecordLocks()
    await _entered(locks, DEFAULTS, DEFAULTS)
    async with locks.hold(ACMES):
        pass
    assert not locks._locks and not locks._users
