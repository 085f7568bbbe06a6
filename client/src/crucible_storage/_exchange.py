"""What both clients do around each exchange of a plan: the headers, whether and when
to send it again, and the result or error its last attempt comes to."""

from typing import Any, TypeVar

import httpx

from crucible_storage._plan import Call, Reconnect, Reply, Request, Sleep
from crucible_storage._upload import Upload
from crucible_storage.errors import TransportError, error_for
from crucible_storage.retry import (
    Backoff,
    delay_after_answer,
    delay_after_error,
    may_resend,
    retry_after,
)

T = TypeVar("T")

USER_AGENT = "crucible-storage-client/0.1.0"


def prepare_headers(request: Request, api_key: str | None) -> dict[str, str]:
    """The headers of every attempt of ``request``: the caller's trace context travels too."""
    headers = {"User-Agent": USER_AGENT, **request.headers}
    if api_key is not None:
        headers["X-API-Key"] = api_key
    _inject_trace(headers)
    return headers


def _inject_trace(headers: dict[str, str]) -> None:
    try:
        from opentelemetry import propagate
    except ImportError:
        return
    propagate.inject(headers)


def resendable(request: Request, headers: dict[str, str]) -> bool:
    content = request.content
    replayable = content.replayable if isinstance(content, Upload) else True
    return may_resend(request.method, headers, replayable)


def wait_before_retry(
    call: Call[Any],
    outcome: Reply | Exception,
    *,
    attempt: int,
    retries: int,
    resend: bool,
    backoff: Backoff,
) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None: ``outcome`` is final."""
    if not resend or attempt >= retries:
        return None
    if isinstance(outcome, Exception):
        return delay_after_error(backoff, attempt, outcome)
    if outcome.status < 400 or outcome.status in call.ok:
        return None
    return delay_after_answer(backoff, attempt, outcome.status, outcome.headers)


def finish(call: Call[T], outcome: Reply | Exception) -> T:
    """The result of a call's last attempt, or the error it maps to."""
    if isinstance(outcome, Exception):
        raise TransportError(
            f"{call.request.method} {call.request.path}: {type(outcome).__name__}: {outcome}",
            request_id=call.request.headers.get("X-Request-ID"),
        ) from outcome
    if outcome.status >= 400 and outcome.status not in call.ok:
        raise error_for(outcome.status, outcome.headers, outcome.body)
    return call.parse(outcome)


# A stream silent this long is taken for dead (the service sends a keepalive every 15 s
# by default) and opened again: a connection a NAT dropped never tells.
STREAM_IDLE_S = 60.0


def build_stream(
    http: httpx.Client | httpx.AsyncClient, request: Request, headers: dict[str, str]
) -> httpx.Request:
    """The request that opens a stream: the client's timeouts, but a read may wait for the
    next event of a quiet stream."""
    base = http.timeout
    timeout = httpx.Timeout(
        connect=base.connect, read=STREAM_IDLE_S, write=base.write, pool=base.pool
    )
    return http.build_request(
        request.method, request.path, params=request.params, headers=headers, timeout=timeout
    )


def pause(step: Sleep | Reconnect, backoff: Backoff) -> float:
    """Seconds to wait for a ``Sleep``, or before a stream is opened again."""
    if isinstance(step, Sleep):
        return step.seconds
    wait = retry_after(step.retry_after)
    if wait is not None:
        return min(wait, backoff.max_retry_after)
    return backoff.delay(min(step.attempt, 30))  # 2**attempt stays a float
