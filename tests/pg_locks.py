"""Until a PostgreSQL backend waits on a lock: how a test knows that the interleaving it
builds has reached the point it needs, without sleeping a fixed time."""

import anyio
import asyncpg

# Any backend of the observer's database but the observer itself, or the one named ($1).
_WAITING = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid() AND ($1::int IS NULL OR pid = $1)"
)


async def until_waiting(
    observer: asyncpg.Connection, pid: int | None = None, *, within_s: float = 30.0
) -> None:
    """Return once backend ``pid`` (any other backend of ``observer``'s database when
    ``None``) waits on a lock; fail after ``within_s`` (generous: the machine is shared)."""
    deadline = anyio.current_time() + within_s
    while not await observer.fetchval(_WAITING, pid):
        if anyio.current_time() > deadline:
            who = "no backend" if pid is None else f"backend {pid}"
            raise AssertionError(f"{who} waited on a lock within {within_s:g} s")
        await anyio.sleep(0.01)
