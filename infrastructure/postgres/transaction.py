"""One request's connection and transaction on the asyncpg pool: the ``UnitOfWork``."""

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg

from application.errors import ConnectionLimit, ConnectionsExhaustedError
from application.ports.unit_of_work import UnitOfWork
from domain.tenancy import TenantId
from infrastructure.postgres.tenancy import begin
from infrastructure.sql.errors import BACKEND, REFUSALS, translate_errors

T = TypeVar("T")

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]
else:
    Connection = asyncpg.Connection
Statement = Callable[[Connection], Awaitable[T]]

# A pooled connection that died while idle (server restart, idle timeout, a proxy
# dropping it) fails its first statement with one of these; nothing ran, so the
# statement is retried once on a new connection. This is the pool's pre-ping,
# paid only when a connection is actually dead instead of on every checkout.
_STALE_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    ConnectionError,
)


def rows_affected(status: str) -> int:
    """Rows touched, from asyncpg's command tag (``INSERT 0 1``, ``UPDATE 1``)."""
    return int(status.rsplit(" ", 1)[-1])


@dataclass(frozen=True)
class HeldWrite:
    """A statement held back until the commit or the next statement, whichever comes first.

    Held, it can still be joined by the statement that follows (a new record and its
    audit entry become one ``WITH … INSERT``), and a unit of work that holds nothing
    else commits it as that one statement, without ``BEGIN`` and ``COMMIT``: one round
    trip instead of four. That takes a statement that sets its tenant itself (an
    ``INSERT`` after ``tenancy.SCOPE``); one that cannot (an ``UPDATE``) is not
    ``alone`` and commits in a transaction. ``check`` sees the command tag and raises
    what the adapter would have raised at once (a taken id, a version that moved on).
    ``joinable`` names the record whose audit entry may still join it.
    """

    sql: str
    arguments: tuple[Any, ...]
    check: Callable[[str], Awaitable[None]]
    joinable: str | None = None
    alone: bool = True


class PgTransaction(UnitOfWork):
    """``UnitOfWork`` on one pooled connection, acquired on first use.

    Reads before the first write run as single statements outside a transaction
    (one round trip each; versioned updates make that safe), each setting the tenant
    itself (``tenancy.scoped``). The first write begins the transaction that ``commit``
    ends, its ``BEGIN`` setting the tenant for all that follows in it; ``close`` rolls
    back whatever was not committed and returns the connection to the pool. A write may
    instead be ``hold``-en: it runs before the next statement, or at the commit.
    """

    def __init__(
        self,
        pool: "asyncpg.Pool[asyncpg.Record]",
        acquire_timeout_s: float,
        *,
        tenant: TenantId,
    ) -> None:
        # Whose rows every statement of this unit of work reads and writes (ADR 0032).
        self.tenant = tenant
        self._pool = pool
        self._acquire_timeout_s = acquire_timeout_s
        self._connection: Connection | None = None
        # Whether this connection is inside the transaction ``_begin_if`` began.
        self._open = False
        self._held: HeldWrite | None = None

    @property
    def held(self) -> HeldWrite | None:
        """The write held for the commit, if any (an adapter may join its own to it)."""
        return self._held

    async def hold(self, write: HeldWrite) -> None:
        """Hold ``write`` for the commit in place of the one held (which runs first)."""
        await self._flush()
        self._held = write

    def rejoin(self, write: HeldWrite) -> None:
        """Replace the held write with ``write``, which does what it did and more."""
        if self._held is None:
            raise RuntimeError("nothing is held to join")
        self._held = write

    async def _flush(self) -> None:
        """Run the held write inside the transaction, before anything that may depend on it."""
        write, self._held = self._held, None
        if write is not None:
            await write.check(await self._run(_executing(write), write=True))

    async def read(self, statement: Statement[T]) -> T:
        """Run ``statement`` in the current transaction, or on its own when none is open.

        On its own, the connection goes back to the pool as soon as the rows are in: a
        read-only request used to hold it until its answer was sent, and with more
        requests in flight than connections the pool's queue (which lets newcomers
        overtake woken waiters) kept some waiting for seconds (get_cold p99 0.7-2.7 s
        against a p50 of 8 ms; 27-33 ms once nothing waited, docs/benchmarks.md).
        """
        result = await self._run(statement, write=False)
        if not self._open and self._held is None:
            await self.release()
        return result

    async def write(self, statement: Statement[T]) -> T:
        """Run ``statement`` inside the request's transaction, beginning it if needed."""
        return await self._run(statement, write=True)

    async def _run(
        self, statement: Statement[T], *, write: bool, operation: str = "", retry: bool = True
    ) -> T:
        await self._flush()
        with translate_errors(operation or ("write" if write else "read")):
            fresh = self._connection is None
            connection = await self._acquire()
            if not retry and connection.is_closed():  # known dead: nothing has been sent yet
                await self._discard()
                connection = await self._acquire()
            try:
                await self._begin_if(write, connection)
                return await statement(connection)
            except _STALE_CONNECTION_ERRORS:
                if not retry:
                    await self._discard()  # sent, so maybe applied: not retried, but not reused
                    raise
                if not fresh:
                    raise
            await self._discard()
            connection = await self._acquire()
            await self._begin_if(write, connection)
            return await statement(connection)

    async def _acquire(self) -> Connection:
        if self._connection is None:
            try:
                self._connection = await self._pool.acquire(timeout=self._acquire_timeout_s)
            except TimeoutError as error:
                # The wait covers a free connection and the connecting of a new one: only a
                # pool whose every connection is open and in use timed out on the first.
                pool = self._pool
                if pool.get_size() < pool.get_max_size() or pool.get_idle_size() > 0:
                    raise
                raise REFUSALS.note(
                    ConnectionsExhaustedError(
                        BACKEND,
                        f"all {pool.get_max_size()} connections of the pool stayed in use for "
                        f"{self._acquire_timeout_s:g} s",
                        ConnectionLimit.POOL,
                    )
                ) from error
        return self._connection

    async def _begin_if(self, write: bool, connection: Connection) -> None:
        """``BEGIN`` with the tenant's setting, one message in place of asyncpg's ``BEGIN``."""
        if write and not self._open:
            await connection.execute(begin(self.tenant))
            self._open = True

    async def commit(self) -> None:
        """Commit, then give the connection back at once.

        What follows a commit (cache and registry writes, sending the answer) needs no
        connection; holding it until the request's scope closes made requests queue on
        the pool (a create's p99 went from about 0.2 s to over 1 s with 16 requests in
        flight per worker and ten connections). A later statement acquires again.
        """
        write = self._held
        if write is not None and write.alone and not self._open:
            # One statement is its own transaction: sent alone, it commits itself. It is not
            # retried on a connection that dies under it: having been sent, it may have
            # committed (the caller treats that as an uncertain write, as any failed commit).
            # A connection already known dead is replaced before anything is sent.
            self._held = None
            status = await self._run(
                _executing(write), write=False, operation="commit", retry=False
            )
            await write.check(status)
        await self._flush()
        await self._end("COMMIT", "commit")
        await self.release()

    async def rollback(self) -> None:
        self._held = None
        await self._end("ROLLBACK", "statement")

    async def _end(self, command: str, operation: str) -> None:
        """``COMMIT`` or ``ROLLBACK`` the open transaction, if any."""
        connection, opened, self._open = self._connection, self._open, False
        if opened and connection is not None:
            with translate_errors(operation):
                await connection.execute(command)

    async def release(self) -> None:
        """Give the connection back while no transaction is open (before long I/O)."""
        if self._open or self._held is not None:
            raise RuntimeError("release() inside a transaction would lose its writes")
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._pool.release(connection)

    async def close(self) -> None:
        """End the scope: roll back anything uncommitted, give the connection back."""
        self._held = None
        connection = self._connection
        if connection is None:
            return
        try:
            if self._open:
                await self.rollback()
        except Exception:  # a broken connection is dropped, not returned for reuse
            _terminate(connection)
        finally:
            self._open = False
            self._connection = None
            await self._pool.release(connection)

    async def _discard(self) -> None:
        connection, self._connection = self._connection, None
        self._open = False
        if connection is not None:
            _terminate(connection)
            await self._pool.release(connection)
        # Whatever killed this one (a server restart, a proxy) likely killed its idle
        # siblings too: the pool replaces them as they are next acquired.
        await self._pool.expire_connections()


def _executing(write: HeldWrite) -> Statement[str]:
    return lambda connection: connection.execute(write.sql, *write.arguments)


def _terminate(connection: Connection) -> None:
    """Close ``connection`` at once; asyncpg has already detached one that it saw die."""
    with contextlib.suppress(asyncpg.InterfaceError):
        connection.terminate()
