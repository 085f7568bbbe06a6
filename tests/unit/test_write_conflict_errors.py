"""A transaction PostgreSQL ended for a concurrent one: the adapters' ``WriteConflictError``
(not an outage, so failover never journals it) and the 503 the edge makes of it."""

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from application.backends import Backend
from application.errors import BackendUnavailableError, WriteConflictError
from infrastructure.sql.errors import translate_errors
from interfaces.http.errors import PROBLEM_BASE, exception_map


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.DeadlockDetectedError("deadlock detected"),
        asyncpg.SerializationError("could not serialize access due to concurrent update"),
        sa_exc.DBAPIError("UPDATE", None, asyncpg.DeadlockDetectedError("deadlock detected")),
    ],
)
def test_a_transaction_ended_for_another_is_a_write_conflict(error: Exception) -> None:
    with pytest.raises(WriteConflictError) as raised, translate_errors("commit"):
        raise error
    assert not isinstance(raised.value, BackendUnavailableError)
    assert raised.value.backend == Backend.DATABASE
    assert raised.value.detail.split(":")[0] in {"DeadlockDetectedError", "SerializationError"}


def test_other_statement_errors_pass_unchanged() -> None:
    with pytest.raises(asyncpg.UniqueViolationError), translate_errors("write"):
        raise asyncpg.UniqueViolationError("duplicate key value")


def test_the_503_names_the_cause_and_asks_for_the_same_write_again() -> None:
    """A 503 and not a 409: an ``Idempotency-Key`` never keeps a 5xx, so the client's
    retry with the same key runs the write (a kept 409 would answer every retry)."""
    answer = exception_map(5.0)[WriteConflictError](
        WriteConflictError(Backend.DATABASE, "DeadlockDetectedError: deadlock detected")
    )
    assert answer.status_code == 503
    assert answer.type_ == PROBLEM_BASE + "unavailable"
    assert answer.headers == {"Retry-After": "1"}
    assert answer.extra == {"backend": "database", "cause": "write-conflict"}
    assert "nothing was stored" in str(answer.detail)
    assert "DeadlockDetectedError: deadlock detected" in str(answer.detail)
