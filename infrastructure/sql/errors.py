"""Driver failures translated at the adapter boundary.

A use case sees ``BackendUnavailableError`` for anything that means "the
database cannot be reached right now" (so failover can kick in) and never a
SQLAlchemy or driver exception type. Everything else propagates unchanged.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from application.backends import Backend
from application.errors import BackendUnavailableError, StatementTimeoutError
from infrastructure.metrics import timed

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


def unavailable(error: BaseException) -> BackendUnavailableError:
    if any(type(link).__name__ == "QueryCanceledError" for link in _chain(error)):
        return StatementTimeoutError(BACKEND, short_reason(error))
    return BackendUnavailableError(BACKEND, short_reason(error))


@contextmanager
def translate_errors(operation: str = "statement") -> Iterator[None]:
    """Re-raise connection-level failures as ``BackendUnavailableError``; time the block."""
    try:
        with timed(BACKEND, operation):
            yield
    except BackendUnavailableError:
        raise
    except Exception as error:
        if is_unavailable(error):
            raise unavailable(error) from error
        raise
