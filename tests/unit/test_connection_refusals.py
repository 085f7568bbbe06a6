"""A request left without a database connection is told apart from other outages: the
driver's errors as the adapters translate them, and the 503 the edge makes of them."""

from collections.abc import Iterator

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from application.backends import Backend
from application.errors import (
    BackendUnavailableError,
    ConnectionLimit,
    ConnectionsExhaustedError,
    StatementTimeoutError,
)
from infrastructure.sql.errors import REFUSALS, translate_errors, unavailable
from interfaces.http.errors import exception_map


@pytest.fixture(autouse=True)
def _forget_refusals() -> Iterator[None]:
    """The refusals noted here are this process's: an app's /health in a later test of the
    same process would report them."""
    before = REFUSALS.last
    yield
    REFUSALS.last = before


def test_a_server_out_of_slots_is_a_refusal_for_want_of_slots() -> None:
    for message in [
        "sorry, too many clients already",
        "remaining connection slots are reserved for roles with the SUPERUSER attribute",
    ]:
        error = unavailable(asyncpg.TooManyConnectionsError(message))
        assert isinstance(error, ConnectionsExhaustedError)
        assert error.limit is ConnectionLimit.SERVER_SLOTS
        assert error.backend == Backend.DATABASE
        assert error.detail == f"TooManyConnectionsError: {message}"


def test_sqlalchemys_refused_connect_and_its_pool_timeout_are_named_too() -> None:
    wrapped = sa_exc.DBAPIError("connect", None, asyncpg.TooManyConnectionsError("full"))
    assert unavailable(wrapped).__class__ is ConnectionsExhaustedError
    pool = unavailable(sa_exc.TimeoutError("QueuePool limit of size 1 overflow 1 reached"))
    assert isinstance(pool, ConnectionsExhaustedError)
    assert pool.limit is ConnectionLimit.POOL


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        TimeoutError(),
    ],
)
def test_other_outages_are_not_refusals(error: Exception) -> None:
    translated = unavailable(error)
    assert type(translated) is BackendUnavailableError


def test_a_statement_timeout_stays_a_statement_timeout() -> None:
    assert type(unavailable(asyncpg.QueryCanceledError("canceling"))) is StatementTimeoutError


def test_a_refusal_is_remembered_for_health() -> None:
    with pytest.raises(ConnectionsExhaustedError), translate_errors("read"):
        raise asyncpg.TooManyConnectionsError("sorry, too many clients already")
    last = REFUSALS.since(60)
    assert last is not None and last.limit is ConnectionLimit.SERVER_SLOTS
    assert REFUSALS.since(0) is None


def test_the_503_names_the_cause_and_asks_for_a_retry() -> None:
    answer = exception_map(5.0)[BackendUnavailableError]
    refused = answer(
        ConnectionsExhaustedError(Backend.DATABASE, "full", ConnectionLimit.SERVER_SLOTS)
    )
    assert refused.status_code == 503
    assert refused.headers == {"Retry-After": "1"}
    assert refused.extra == {"backend": "database", "cause": "connection-slots"}
    assert "connection slots (max_connections) are in use" in str(refused.detail)
    pool = answer(ConnectionsExhaustedError(Backend.DATABASE, "busy", ConnectionLimit.POOL))
    assert pool.extra == {"backend": "database", "cause": "connection-pool"}
    assert "DB_POOL_SIZE" in str(pool.detail)
    down = answer(BackendUnavailableError(Backend.DATABASE, "refused"))
    assert down.headers == {"Retry-After": "5"}
    assert down.extra == {"backend": "database"}
    soon = exception_map(0.2)[BackendUnavailableError](BackendUnavailableError(Backend.FILE, "x"))
    assert soon.headers == {"Retry-After": "1"}  # whole seconds, at least one
