"""Driver failures translated at the adapter boundary.

A use case sees ``BackendUnavailableError`` for anything that means "the
database cannot be reached right now" (so failover can kick in), ``WriteConflictError``
for a transaction the database ended to break a deadlock (tried again, not journaled), and
never a SQLAlchemy or driver exception type. Everything else propagates unchanged.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc

from application.backends import Backend
from application.errors import (
    BackendUnavailableError,
    ConnectionLimit,
    ConnectionsExhaustedError,
    StatementTimeoutError,
    WriteConflictError,
)
from infrastructure.metrics import CONNECTIONS_REFUSED, timed

BACKEND = Backend.DATABASE

# asyncpg ships no type information; its connection errors are recognised by name.
_ASYNCPG_CONNECTION_ERRORS = frozenset(
    {
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CannotConnectNowError",
        "TooManyConnectionsError",
        "PostgresConnectionError",
        "ConnectionRejectionError",
        "InterfaceError",
        "InternalClientError",
        "QueryCanceledError",
        "AdminShutdownError",
        "CrashShutdownError",
    }
)


def _chain(error: BaseException) -> list[BaseException]:
    """``error``, the DBAPI error it wraps and their causes (the driver's own error last)."""
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in found and len(found) < 8:
        found.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return found


def _is_asyncpg_connection_error(error: BaseException) -> bool:
    return any(
        type(link).__module__.startswith("asyncpg")
        and any(cls.__name__ in _ASYNCPG_CONNECTION_ERRORS for cls in type(link).__mro__)
        for link in _chain(error)
    )


def short_reason(error: BaseException) -> str:
    """One line naming the driver error, for reports and ``BackendUnavailableError``."""
    origin = _chain(error)[-1]
    text = str(origin).strip().splitlines()[0] if str(origin).strip() else ""
    name = type(origin).__name__
    return f"{name}: {text[:200]}" if text else name


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database is unreachable, overloaded or timed out."""
    if isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return _is_asyncpg_connection_error(error) or any(
            isinstance(link, (OSError, TimeoutError)) for link in _chain(error)
        )
    if isinstance(error, (OSError, TimeoutError)):
        return True
    return _is_asyncpg_connection_error(error)


# SQLSTATEs of a transaction PostgreSQL ended for another's sake, having written nothing
# of it: deadlock_detected and serialization_failure.
ENDED_FOR_ANOTHER = frozenset({"40P01", "40001"})


def ended_for_another(error: BaseException) -> bool:
    """Whether ``error`` is PostgreSQL ending the transaction to break a deadlock (or a
    serialization failure), which a new attempt may not meet again."""
    return any(getattr(link, "sqlstate", None) in ENDED_FOR_ANOTHER for link in _chain(error))


# SQLSTATE of a connection PostgreSQL refuses for want of a free slot: "sorry, too many
# clients already", and "remaining connection slots are reserved" for ordinary roles.
TOO_MANY_CONNECTIONS = "53300"


def _refused_for_slots(link: BaseException) -> bool:
    return (
        type(link).__name__ == "TooManyConnectionsError"
        or getattr(link, "sqlstate", None) == TOO_MANY_CONNECTIONS
    )


def connection_limit(error: BaseException) -> ConnectionLimit | None:
    """The limit that left a request without a connection, if that is what ``error`` says:
    the server's slots (53300) or SQLAlchemy's pool, whose checkout timed out."""
    chain = _chain(error)
    if any(_refused_for_slots(link) for link in chain):
        return ConnectionLimit.SERVER_SLOTS
    if any(isinstance(link, sa_exc.TimeoutError) for link in chain):
        return ConnectionLimit.POOL
    return None


@dataclass(frozen=True)
class Refusal:
    """A request of this process that got no connection: when, which limit, the driver's word."""

    at: float  # time.monotonic()
    limit: ConnectionLimit
    reason: str


class _Refusals:
    """The last refusal, so ``/health`` reports what requests met and its own probe did not:
    the probe's pooled connection may be open while a request that needs one more is refused."""

    def __init__(self) -> None:
        self.last: Refusal | None = None

    def note(self, error: ConnectionsExhaustedError) -> ConnectionsExhaustedError:
        self.last = Refusal(time.monotonic(), error.limit, error.detail)
        CONNECTIONS_REFUSED.labels(error.limit.value).inc()
        return error

    def since(self, within_s: float) -> Refusal | None:
        """The last refusal if it came less than ``within_s`` seconds ago."""
        last = self.last
        if last is None or time.monotonic() - last.at >= within_s:
            return None
        return last


REFUSALS = _Refusals()


def unavailable(error: BaseException) -> BackendUnavailableError:
    if any(type(link).__name__ == "QueryCanceledError" for link in _chain(error)):
        return StatementTimeoutError(BACKEND, short_reason(error))
    limit = connection_limit(error)
    if limit is not None:
        return REFUSALS.note(ConnectionsExhaustedError(BACKEND, short_reason(error), limit))
    return BackendUnavailableError(BACKEND, short_reason(error))


@contextmanager
def translate_errors(operation: str = "statement") -> Iterator[None]:
    """Re-raise connection-level failures as ``BackendUnavailableError`` and a transaction
    ended for a concurrent one as ``WriteConflictError``; time the block."""
    try:
        with timed(BACKEND, operation):
            yield
    except (BackendUnavailableError, WriteConflictError):
        raise
    except Exception as error:
        if ended_for_another(error):
            raise WriteConflictError(BACKEND, short_reason(error)) from error
        if is_unavailable(error):
            raise unavailable(error) from error
        raise
