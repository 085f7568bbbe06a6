"""When to send a request again, and after how long: one policy for both clients.

A write is sent again only with its ``Idempotency-Key`` (the service then
answers the first attempt's result instead of applying it twice) and only when
its body can be produced again.
"""

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

RETRY_STATUSES = frozenset({408, 429})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Failures where the request may not have arrived, or its answer was lost.
RETRY_ERRORS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter: attempt ``n`` waits a random time in
    ``[0, min(cap, base * 2**n)]``, so clients that failed together do not return together.

    ``max_retry_after`` bounds how long a ``Retry-After`` from the service may hold a call.
    """

    base: float = 0.5
    cap: float = 8.0
    max_retry_after: float = 60.0
    rng: Callable[[float, float], float] = field(default=random.uniform, compare=False)

    def delay(self, attempt: int) -> float:
        return self.rng(0.0, min(self.cap, self.base * 2**attempt))


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def may_resend(method: str, headers: Mapping[str, str], replayable: bool) -> bool:
    """A read always; a write only with an idempotency key and a body that can be sent again."""
    if method in SAFE_METHODS:
        return True
    return replayable and "idempotency-key" in {name.lower() for name in headers}


def delay_after_answer(
    backoff: Backoff, attempt: int, status: int, headers: Mapping[str, str]
) -> float | None:
    """The wait before the next attempt after an answer, or None when it is final.

    A 409 is retried only with ``Retry-After``: the service's sign that the same
    idempotency key is still being processed (every other 409 is final).
    """
    wait = retry_after(headers.get("retry-after"))
    if status == 409:
        return None if wait is None else min(wait, backoff.max_retry_after)
    if status not in RETRY_STATUSES and status < 500:
        return None
    if wait is not None:
        return min(wait, backoff.max_retry_after)
    return backoff.delay(attempt)


def delay_after_error(backoff: Backoff, attempt: int, error: Exception) -> float | None:
    """The wait before the next attempt after a transport failure, or None when it is final."""
    return backoff.delay(attempt) if isinstance(error, RETRY_ERRORS) else None
