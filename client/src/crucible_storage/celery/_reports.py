"""The reports: task states and events, their idempotency keys, and sending them
so that nothing raises into Celery.
"""

import hashlib
import logging
import time
import traceback as traceback_module
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from crucible_storage import StorageClient
from crucible_storage.celery._clients import ClientSource, PerProcessClient
from crucible_storage.celery._task_call import EvaluationIdOf, TaskCall
from crucible_storage.errors import (
    Accepted,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ServerError,
    StorageError,
    TransportError,
)
from crucible_storage.models import CeleryUpdateResult

_FINAL_BACKOFF_CAP = 5.0

logger = logging.getLogger("crucible_storage.celery")


@dataclass
class Report:
    """What one signal tells about one task, ready to send."""

    evaluation_id: str
    task_id: str
    task_name: str
    attempt: int
    hostname: str | None = None
    redelivered: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def key(self, state: str, step: str, *extra: str) -> str:
        """The idempotency key (and event id, at most 64 characters) of one call."""
        parts = "\x1f".join((self.task_id, str(self.attempt), state, step, *extra))
        digest = hashlib.sha256(parts.encode()).hexdigest()[:32]
        return f"celery-{state.lower()}-{step}-{digest}"

    def worker(self) -> tuple[str, ...]:
        """What tells two deliveries of one attempt apart (``acks_late`` redelivery)."""
        return (self.hostname or "", "redelivered" if self.redelivered else "first")

    def metadata(self, **more: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "celery_task_id": self.task_id,
            "task": self.task_name,
            "attempt": self.attempt,
        }
        if self.hostname:
            base["hostname"] = self.hostname
        if self.redelivered:
            base["redelivered"] = True
        return {**base, **self.details, **more}


class Reporter:
    """Maps tasks to their evaluations and sends their reports with this process's client."""

    def __init__(
        self, client: ClientSource, evaluation_id: EvaluationIdOf, final_report_deadline: float
    ) -> None:
        self.clients = PerProcessClient(client)
        self._evaluation_id = evaluation_id
        self._final_deadline = final_report_deadline

    def report_for(
        self,
        call: TaskCall | None,
        *,
        attempt: int,
        hostname: Any = None,
        redelivered: bool = False,
        details: dict[str, Any] | None = None,
    ) -> Report | None:
        if call is None:
            return None
        evaluation = self._map(call)
        if evaluation is None:
            return None
        return Report(
            evaluation_id=evaluation,
            task_id=call.id,
            task_name=call.name,
            attempt=attempt,
            hostname=hostname if isinstance(hostname, str) and hostname else None,
            redelivered=redelivered,
            details=details or {},
        )

    def _map(self, call: TaskCall) -> str | None:
        try:
            evaluation = self._evaluation_id(call)
        except Exception:
            logger.exception("evaluation_id failed for task %s[%s]", call.name, call.id)
            return None
        return evaluation if isinstance(evaluation, str) and evaluation else None

    def retry_state(self, report: Report) -> None:
        # The same call (and key) from before_task_publish and from task_retry.
        self.celery_update(report, "RETRY", retries=report.attempt + 1)

    def celery_update(
        self,
        report: Report,
        state: str,
        *extra: str,
        retries: int | None = None,
        output: str | None = None,
        error: str | None = None,
        final: bool = False,
    ) -> Any:
        fields: dict[str, Any] = {"task_state": state, "celery_task_id": report.task_id}
        if retries is not None:
            fields["retries"] = retries
        payload = "output" if output is not None else "error" if error is not None else None
        if output is not None:
            fields["output"] = output
        if error is not None:
            fields["error"] = error

        def send(body: dict[str, Any], step: str) -> Callable[[StorageClient], Any]:
            key = report.key(state, step, *extra)
            return lambda client: client.evaluations.celery_update(
                report.evaluation_id, idempotency_key=key, **body
            )

        try:
            return self.call(report, state, send(fields, "state"), final=final, refused=True)
        except (InvalidRequest, PayloadTooLarge) as refusal:
            if payload is None or names_the_key(refusal):
                # A key reused with another body is no refused payload: a note would not help.
                _log_refusal(report, state, refusal)
                return None
            # The state matters more than the payload: send it with a note instead.
            logger.warning(
                "%s of task %s[%s] refused by the service (%s); sent without it",
                payload,
                report.task_name,
                report.task_id,
                refusal,
            )
            fields[payload] = f"[{payload} not stored: {refusal}]"
            try:
                return self.call(report, state, send(fields, "noted"), final=final, refused=True)
            except (InvalidRequest, PayloadTooLarge) as again:
                _log_refusal(report, state, again)
                return None

    def event(
        self,
        report: Report,
        kind: str,
        state: str,
        message: str,
        *extra: str,
        at: datetime | None = None,
    ) -> None:
        key = report.key(state, "event", *extra)
        self.call(
            report,
            kind,
            lambda client: client.events.add(
                report.evaluation_id,
                kind,
                message=storable(message),
                metadata=report.metadata(state=state),
                timestamp=at or now(),
                event_id=key,
                idempotency_key=key,
            ),
        )

    def call(
        self,
        report: Report,
        what: str,
        call: Callable[[StorageClient], Any],
        *,
        final: bool = False,
        refused: bool = False,
    ) -> Any:
        """Send one report; never raises (``refused``: a 400/413/422 is raised to the caller).

        Returns the call's result, the ``Accepted`` of a 202, or None when not delivered.

        A final report is sent again until the deadline while the service is down
        or failing: its idempotency key makes the repeats safe.
        """
        deadline = time.monotonic() + (self._final_deadline if final else 0.0)
        for attempt in _count():
            try:
                return call(self.clients.get())
            except Accepted as accepted:
                return accepted  # delivered: durable in the failover journal, applied at replay
            except NotFound:
                logger.warning(
                    "evaluation %s of task %s[%s] does not exist; %s not reported",
                    report.evaluation_id,
                    report.task_name,
                    report.task_id,
                    what,
                )
                return None
            except (InvalidRequest, PayloadTooLarge):
                if refused:
                    raise
                logger.exception(
                    "%s of task %s[%s] refused", what, report.task_name, report.task_id
                )
                return None
            except (ServerError, TransportError) as error:
                wait = min(_FINAL_BACKOFF_CAP, 0.5 * 2**attempt)
                if time.monotonic() + wait >= deadline:
                    logger.error(
                        "%s of task %s[%s] for evaluation %s not reported: %s",
                        what,
                        report.task_name,
                        report.task_id,
                        report.evaluation_id,
                        error,
                    )
                    return None
                time.sleep(wait)
            except StorageError:
                logger.exception(
                    "%s of task %s[%s] not reported", what, report.task_name, report.task_id
                )
                return None
        return None


def applied(result: Any) -> bool:
    """The service took the state now (not ignored as late, not only journaled)."""
    return isinstance(result, CeleryUpdateResult) and result.reason is None


def delivered(result: Any) -> bool:
    """Taken now, or journaled during a database outage (a 202), to be applied at replay."""
    return isinstance(result, Accepted) or applied(result)


def names_the_key(error: StorageError) -> bool:
    """A 422 for an ``Idempotency-Key`` reused with another body."""
    field = error.field if isinstance(error, InvalidRequest) else None
    return isinstance(field, str) and field.lower() == "idempotency-key"


def now() -> datetime:
    return datetime.now(UTC)


def _count() -> Iterator[int]:
    attempt = 0
    while True:
        yield attempt
        attempt += 1


def storable(text: str) -> str:
    """The service refuses NUL characters (PostgreSQL cannot store them)."""
    return text.replace("\x00", "\ufffd")


def output_text(result: Any) -> str | None:
    """A task's return value as the evaluation's output: text as is, the rest as JSON."""
    if result is None:
        return None
    if isinstance(result, str):
        return storable(result)
    try:
        return storable(msgspec.json.encode(result, enc_hook=repr).decode())
    except (TypeError, ValueError, msgspec.EncodeError):
        return storable(repr(result))


def error_text(exception: Any, traceback: Any, einfo: Any) -> str:
    formatted = getattr(einfo, "traceback", None)
    if isinstance(formatted, str) and formatted:
        return storable(formatted)
    if isinstance(exception, BaseException):
        lines = traceback_module.format_exception(type(exception), exception, traceback)
        return storable("".join(lines))
    return storable(repr(exception))


def _log_refusal(report: Report, state: str, error: StorageError) -> None:
    logger.error(
        "%s of task %s[%s] for evaluation %s refused by the service: %s",
        state,
        report.task_name,
        report.task_id,
        report.evaluation_id,
        error,
    )
