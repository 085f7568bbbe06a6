"""Report each Celery task's life to its evaluation: ``install(app, client=...)``.

Celery's signals drive every report: published → queued, started → running (with
the worker and the attempt), retry → the retry counted, success/failure →
completed/failed with the result or the traceback, revoked → cancelled. Task
states go through ``POST /evaluations/{id}/celery-update``, whose rules make a
duplicate or late report harmless, so every report may be sent again: each one
carries an ``Idempotency-Key`` derived from (task id, attempt, state).

Why it is built the way it is:

- Reports are synchronous, in the signal handler: a prefork child may exit right
  after its task, and a background thread would die with it unflushed. With
  ``acks_late`` the final report reaches the service before the message is acked.
- Each process has its own client. A forked pool child must not use the
  connection pool it inherited (two processes writing on one socket), so children
  create theirs in ``worker_process_init``; pass a factory for that.
- ``task_received``, ``task_revoked`` and a lost child's ``task_failure`` fire in
  the worker's main process, so the client is made lazily wherever it is needed.
- A report that cannot reach the service is logged and never raises into Celery.
  Final reports (success, failure, revoked) are retried until
  ``final_report_deadline``, so a task that fails for good does not leave its
  evaluation in a live status; a payload the service refuses is replaced by a note
  rather than losing the state.
"""

import hashlib
import inspect
import logging
import os
import threading
import time
import traceback as traceback_module
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import msgspec
from celery import Celery, signals  # type: ignore[import-untyped]

from crucible_storage import StorageClient
from crucible_storage.errors import (
    Accepted,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ServerError,
    StorageError,
    TransportError,
)

__all__ = ["Installation", "TaskCall", "default_evaluation_id", "install"]

logger = logging.getLogger("crucible_storage.celery")

_ID_PARAMETERS = ("eval_id", "evaluation_id")
_FINAL_BACKOFF_CAP = 5.0
_MAX_PENDING_PUBLISHES = 10_000


@dataclass(frozen=True)
class TaskCall:
    """A task as the signals describe it, for ``evaluation_id`` to map.

    ``task`` is ``None`` where the process does not register the task (a publisher
    that sends it by name).
    """

    name: str
    id: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    task: Any = None


EvaluationIdOf = Callable[[TaskCall], str | None]
ClientSource = StorageClient | Callable[[], StorageClient]


def default_evaluation_id(call: TaskCall) -> str | None:
    """The ``eval_id`` or ``evaluation_id`` keyword, else the first positional argument
    when the task's signature names it so; ``None`` (the task is not reported) otherwise.
    """
    for name in _ID_PARAMETERS:
        value = call.kwargs.get(name)
        if isinstance(value, str) and value:
            return value
    if call.args and _first_parameter(call.task) in _ID_PARAMETERS:
        first = call.args[0]
        if isinstance(first, str) and first:
            return first
    return None


def _first_parameter(task: Any) -> str | None:
    # ``task.run`` is bound for ``bind=True`` tasks, so ``self`` is already gone.
    run = getattr(task, "run", None)
    if run is None:
        return None
    try:
        parameters = list(inspect.signature(run).parameters.values())
    except (TypeError, ValueError):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if parameters and parameters[0].kind in positional:
        return parameters[0].name
    return None


class _PerProcessClient:
    """One client per process: a forked child never writes on its parent's sockets."""

    def __init__(self, source: ClientSource) -> None:
        self._given = source if isinstance(source, StorageClient) else None
        self._factory = None if isinstance(source, StorageClient) else source
        self._client: StorageClient | None = self._given
        self._pid = os.getpid()
        self._inherited: list[StorageClient] = []
        self._lock = threading.Lock()

    def get(self) -> StorageClient:
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._replace()
            assert self._client is not None
            return self._client

    def renew(self) -> None:
        """In a new pool child: make this process's own client now, before any task."""
        with self._lock:
            if self._pid != os.getpid():
                self._replace()

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                if self._factory is not None:
                    self._client.close()
                self._client = None

    def _replace(self) -> None:
        if self._client is not None and self._pid != os.getpid():
            # Kept, not closed: closing could shut connections the parent still uses.
            self._inherited.append(self._client)
        if self._factory is not None:
            self._client = self._factory()
        else:
            logger.warning(
                "crucible_storage.celery: a StorageClient instance crossed a fork; "
                "pass a factory (client=lambda: StorageClient(...)) so each process "
                "has its own connections"
            )
            self._client = self._given
        self._pid = os.getpid()


@dataclass
class _Report:
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


class Installation:
    """The signal handlers ``install`` connected for one app; ``uninstall()`` removes them."""

    def __init__(
        self,
        app: Celery,
        client: ClientSource,
        evaluation_id: EvaluationIdOf,
        final_report_deadline: float,
    ) -> None:
        self.app = app
        self._clients = _PerProcessClient(client)
        self._evaluation_id = evaluation_id
        self._final_deadline = final_report_deadline
        self._published_at: dict[str, datetime] = {}
        self._connected: list[tuple[Any, str]] = []

    # -- wiring ---------------------------------------------------------------------

    def _connect(self) -> None:
        handlers: list[tuple[Any, Callable[..., None]]] = [
            (signals.before_task_publish, self._on_before_publish),
            (signals.after_task_publish, self._on_after_publish),
            (signals.task_received, self._on_received),
            (signals.task_prerun, self._on_prerun),
            (signals.task_retry, self._on_retry),
            (signals.task_success, self._on_success),
            (signals.task_failure, self._on_failure),
            (signals.task_revoked, self._on_revoked),
            (signals.worker_process_init, self._on_process_init),
            (signals.worker_process_shutdown, self._on_process_shutdown),
        ]
        for signal, handler in handlers:
            uid = f"crucible_storage.celery:{id(self)}:{signal.name}"
            signal.connect(_guarded(handler), weak=False, dispatch_uid=uid)
            self._connected.append((signal, uid))

    def uninstall(self) -> None:
        """Disconnect every handler and close this process's client."""
        for signal, uid in self._connected:
            signal.disconnect(dispatch_uid=uid)
        self._connected.clear()
        with _registry_lock:
            if self in _installations:
                _installations.remove(self)
        self._clients.close()

    # -- which tasks are ours -------------------------------------------------------

    def _owns_task(self, task: Any) -> bool:
        return getattr(task, "app", None) is self.app

    def _owns_name(self, name: str) -> bool:
        if name in self.app.tasks:
            return True
        # A publisher that sends tasks by name registers none of them.
        with _registry_lock:
            return not any(name in other.app.tasks for other in _installations if other is not self)

    def _published(self, sender: Any, body: Any, headers: Any) -> TaskCall | None:
        message = _published(sender, body, headers)
        if message is None or not self._owns_name(message.name):
            return None
        task = self.app.tasks.get(message.name)
        return message if task is None else replace(message, task=task)

    def _map(self, call: TaskCall) -> str | None:
        try:
            evaluation = self._evaluation_id(call)
        except Exception:
            logger.exception("evaluation_id failed for task %s[%s]", call.name, call.id)
            return None
        return evaluation if isinstance(evaluation, str) and evaluation else None

    # -- signal handlers --------------------------------------------------------------

    def _on_before_publish(
        self, sender: Any = None, body: Any = None, headers: Any = None, **_: Any
    ) -> None:
        message = self._published(sender, body, headers)
        if message is None:
            return
        if len(self._published_at) >= _MAX_PENDING_PUBLISHES:
            self._published_at.clear()  # publishes that failed never reach after_task_publish
        self._published_at[message.id] = _now()
        retries = _int(headers.get("retries") if isinstance(headers, Mapping) else 0)
        if retries > 0:
            # A retry's message: the evaluation goes back to the queue before the message
            # exists, so the next attempt's start can never arrive before it.
            report = self._report_for(message, attempt=retries - 1)
            if report is not None:
                self._retry_state(report)

    def _on_after_publish(
        self, sender: Any = None, body: Any = None, headers: Any = None, **_: Any
    ) -> None:
        message = self._published(sender, body, headers)
        if message is None:
            return
        retries = _int(headers.get("retries") if isinstance(headers, Mapping) else 0)
        if retries > 0:
            return  # the state went before the publish; task_retry records the event
        sent_at = self._published_at.pop(message.id, None) or _now()
        report = self._report_for(message, attempt=0)
        if report is None:
            return
        self._celery_update(report, "PENDING")
        self._event(report, "task_sent", "PENDING", f"{report.task_name} sent", at=sent_at)

    def _on_received(self, request: Any = None, **_: Any) -> None:
        if request is None or not self._owns_task(getattr(request, "task", None)):
            return
        report = self._report_for(
            _call_of_worker_request(request),
            attempt=_int(_request_dict(request).get("retries")),
            hostname=getattr(request, "hostname", None),
            redelivered=_redelivered(getattr(request, "delivery_info", None)),
        )
        if report is None:
            return
        self._celery_update(report, "RECEIVED", *report.worker())
        self._event(
            report, "task_received", "RECEIVED", f"received by {report.hostname}", *report.worker()
        )

    def _on_prerun(
        self, sender: Any = None, task_id: Any = None, task: Any = None, **kwargs: Any
    ) -> None:
        task = task or sender
        if not self._owns_task(task):
            return
        request = task.request
        report = self._report_for(
            _call_of_task(task, task_id, kwargs.get("args"), kwargs.get("kwargs")),
            attempt=_int(getattr(request, "retries", 0)),
            hostname=getattr(request, "hostname", None),
            redelivered=_redelivered(getattr(request, "delivery_info", None)),
            details={"pid": os.getpid(), **({"eager": True} if request.is_eager else {})},
        )
        if report is None:
            return
        result = self._celery_update(report, "STARTED", *report.worker(), retries=report.attempt)
        if result is not None and result.reason is None and report.hostname:
            # Only when the state was taken: a late start must not rewrite a finished record.
            self._call(
                report,
                "executor_id",
                lambda client: client.evaluations.update(
                    report.evaluation_id,
                    executor_id=report.hostname,
                    idempotency_key=report.key("STARTED", "executor", *report.worker()),
                ),
            )
        where = f" on {report.hostname}" if report.hostname else ""
        self._event(
            report,
            "task_started",
            "STARTED",
            f"attempt {report.attempt + 1} started{where}",
            *report.worker(),
        )

    def _on_retry(
        self, sender: Any = None, request: Any = None, reason: Any = None, **_: Any
    ) -> None:
        if request is None or not self._owns_task(sender):
            return
        text = str(reason) if reason is not None else "retry"
        exc = getattr(reason, "exc", None)
        max_retries = getattr(sender, "max_retries", None)
        report = self._report_for(
            _call_of_task(sender, request.id, request.args, request.kwargs),
            attempt=_int(getattr(request, "retries", 0)),
            hostname=getattr(request, "hostname", None),
            details={
                "reason": text,
                **({"exception": type(exc).__name__} if isinstance(exc, BaseException) else {}),
                **({"max_retries": max_retries} if isinstance(max_retries, int) else {}),
            },
        )
        if report is None:
            return
        self._retry_state(report)
        of = f" of {max_retries}" if isinstance(max_retries, int) else ""
        message = f"retry {report.attempt + 1}{of}: {text}"
        self._call(
            report,
            "retry_message",
            lambda client: client.evaluations.update(
                report.evaluation_id,
                retry_message=_storable(message),
                idempotency_key=report.key("RETRY", "message"),
            ),
        )
        at = self._published_at.pop(report.task_id, None) or _now()
        self._event(report, "task_retried", "RETRY", message, at=at)

    def _on_success(self, sender: Any = None, result: Any = None, **_: Any) -> None:
        if not self._owns_task(sender):
            return
        request = sender.request
        report = self._report_for(
            _call_of_task(sender, request.id, request.args, request.kwargs),
            attempt=_int(getattr(request, "retries", 0)),
            hostname=getattr(request, "hostname", None),
        )
        if report is None:
            return
        self._celery_update(
            report, "SUCCESS", retries=report.attempt, output=_output(result), final=True
        )
        self._event(report, "task_succeeded", "SUCCESS", f"attempt {report.attempt + 1} succeeded")

    def _on_failure(
        self,
        sender: Any = None,
        task_id: Any = None,
        exception: Any = None,
        args: Any = None,
        kwargs: Any = None,
        traceback: Any = None,
        einfo: Any = None,
        **_: Any,
    ) -> None:
        if not self._owns_task(sender):
            return
        # The request is on the task's stack in the child and, for a lost child, in the
        # main process too; a rejected message has none, so only the signal's id counts.
        request = sender.request
        same = getattr(request, "id", None) == task_id
        report = self._report_for(
            _call_of_task(sender, task_id, args, kwargs),
            attempt=_int(getattr(request, "retries", 0)) if same else 0,
            hostname=getattr(request, "hostname", None) if same else None,
            details={"exception": type(exception).__name__} if exception is not None else {},
        )
        if report is None:
            return
        error = _error_text(exception, traceback, einfo)
        result = self._celery_update(
            report, "FAILURE", retries=report.attempt, error=error, final=True
        )
        if result is not None and result.reason is None:
            # Celery runs it no more (a plain failure, or max retries exceeded).
            self._call(
                report,
                "final_failure",
                lambda client: client.evaluations.update(
                    report.evaluation_id,
                    final_failure=True,
                    idempotency_key=report.key("FAILURE", "final"),
                ),
                final=True,
            )
        summary = _storable(f"{type(exception).__name__}: {exception}")[:1000]
        self._event(report, "task_failed", "FAILURE", summary)

    def _on_revoked(
        self,
        sender: Any = None,
        request: Any = None,
        terminated: Any = None,
        signum: Any = None,
        expired: Any = None,
        **_: Any,
    ) -> None:
        if request is None or not self._owns_task(sender):
            return
        report = self._report_for(
            _call_of_task(sender, request.id, request.args, request.kwargs),
            attempt=_int(getattr(request, "retries", 0)),
            hostname=getattr(request, "hostname", None),
            details={
                "terminated": bool(terminated),
                "expired": bool(expired),
                **({"signal": str(signum)} if signum else {}),
            },
        )
        if report is None:
            return
        self._celery_update(report, "REVOKED", final=True)
        why = "expired" if expired else "terminated" if terminated else "revoked"
        self._event(report, "task_revoked", "REVOKED", f"task {why}")

    def _on_process_init(self, **_: Any) -> None:
        self._clients.renew()

    def _on_process_shutdown(self, **_: Any) -> None:
        self._clients.close()

    # -- the reports --------------------------------------------------------------

    def _report_for(
        self,
        call: TaskCall | None,
        *,
        attempt: int,
        hostname: Any = None,
        redelivered: bool = False,
        details: dict[str, Any] | None = None,
    ) -> _Report | None:
        if call is None:
            return None
        evaluation = self._map(call)
        if evaluation is None:
            return None
        return _Report(
            evaluation_id=evaluation,
            task_id=call.id,
            task_name=call.name,
            attempt=attempt,
            hostname=hostname if isinstance(hostname, str) and hostname else None,
            redelivered=redelivered,
            details=details or {},
        )

    def _retry_state(self, report: _Report) -> None:
        # The same call (and key) from before_task_publish and from task_retry.
        self._celery_update(report, "RETRY", retries=report.attempt + 1)

    def _celery_update(
        self,
        report: _Report,
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
            return self._call(report, state, send(fields, "state"), final=final, refused=True)
        except (InvalidRequest, PayloadTooLarge) as refusal:
            if payload is None:
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
                return self._call(report, state, send(fields, "noted"), final=final, refused=True)
            except (InvalidRequest, PayloadTooLarge) as again:
                _log_refusal(report, state, again)
                return None

    def _event(
        self,
        report: _Report,
        kind: str,
        state: str,
        message: str,
        *extra: str,
        at: datetime | None = None,
    ) -> None:
        key = report.key(state, "event", *extra)
        self._call(
            report,
            kind,
            lambda client: client.events.add(
                report.evaluation_id,
                kind,
                message=_storable(message),
                metadata=report.metadata(state=state),
                timestamp=at or _now(),
                event_id=key,
                idempotency_key=key,
            ),
        )

    def _call(
        self,
        report: _Report,
        what: str,
        call: Callable[[StorageClient], Any],
        *,
        final: bool = False,
        refused: bool = False,
    ) -> Any:
        """Send one report; never raises (``refused``: a 400/413/422 is raised to the caller).

        A final report is sent again until the deadline while the service is down
        or failing: its idempotency key makes the repeats safe.
        """
        deadline = time.monotonic() + (self._final_deadline if final else 0.0)
        for attempt in _count():
            try:
                return call(self._clients.get())
            except Accepted:
                return None  # durable in the service's failover journal
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


_installations: list[Installation] = []
_registry_lock = threading.Lock()


def install(
    app: Celery,
    client: ClientSource,
    evaluation_id: EvaluationIdOf | None = None,
    *,
    final_report_deadline: float = 60.0,
) -> Installation:
    """Report the life of ``app``'s tasks to their evaluations.

    ``client`` is a :class:`StorageClient` or, for prefork workers, a zero-argument
    factory (each process then makes its own). ``evaluation_id`` maps a task to its
    evaluation (``None``: not reported); the default is :func:`default_evaluation_id`.
    Final reports are retried for up to ``final_report_deadline`` seconds.
    """
    with _registry_lock:
        if any(existing.app is app for existing in _installations):
            raise ValueError("crucible_storage.celery is already installed on this app")
        installation = Installation(
            app, client, evaluation_id or default_evaluation_id, final_report_deadline
        )
        _installations.append(installation)
    installation._connect()
    return installation


# -- what the signals carry -------------------------------------------------------------


def _guarded(handler: Callable[..., None]) -> Callable[..., None]:
    """A report must never fail the task or the worker: whatever escapes is logged."""

    def receiver(*args: Any, **kwargs: Any) -> None:
        try:
            handler(*args, **kwargs)
        except Exception:
            logger.exception("crucible_storage.celery: %s failed", handler.__name__)

    receiver.__name__ = handler.__name__
    return receiver


def _published(sender: Any, body: Any, headers: Any) -> TaskCall | None:
    """The task of a published message, task protocol 2 (headers + tuple body) or 1."""
    if isinstance(headers, Mapping) and "task" in headers and "id" in headers:
        args, kwargs = ((), {})
        if isinstance(body, tuple | list) and len(body) >= 2:
            args, kwargs = body[0], body[1]
        name, task_id = str(headers["task"]), str(headers["id"])
    elif isinstance(body, Mapping) and "task" in body and "id" in body:
        args, kwargs = body.get("args") or (), body.get("kwargs") or {}
        name, task_id = str(body["task"]), str(body["id"])
    else:
        return None
    name = sender if isinstance(sender, str) else name
    return TaskCall(
        name=name,
        id=task_id,
        args=tuple(args) if isinstance(args, list | tuple) else (),
        kwargs=kwargs if isinstance(kwargs, Mapping) else {},
        task=None,
    )


def _call_of_task(task: Any, task_id: Any, args: Any, kwargs: Any) -> TaskCall | None:
    if not task_id:
        return None
    return TaskCall(
        name=str(getattr(task, "name", "") or ""),
        id=str(task_id),
        args=tuple(args) if isinstance(args, list | tuple) else (),
        kwargs=kwargs if isinstance(kwargs, Mapping) else {},
        task=task,
    )


def _call_of_worker_request(request: Any) -> TaskCall | None:
    task = getattr(request, "task", None)
    return _call_of_task(task, getattr(request, "id", None), request.args, request.kwargs)


def _request_dict(request: Any) -> Mapping[str, Any]:
    value = getattr(request, "request_dict", None)
    return value if isinstance(value, Mapping) else {}


def _redelivered(delivery_info: Any) -> bool:
    return isinstance(delivery_info, Mapping) and bool(delivery_info.get("redelivered"))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _now() -> datetime:
    return datetime.now(UTC)


def _count() -> Iterator[int]:
    attempt = 0
    while True:
        yield attempt
        attempt += 1


def _storable(text: str) -> str:
    """The service refuses NUL characters (PostgreSQL cannot store them)."""
    return text.replace("\x00", "\ufffd")


def _output(result: Any) -> str | None:
    """A task's return value as the evaluation's output: text as is, the rest as JSON."""
    if result is None:
        return None
    if isinstance(result, str):
        return _storable(result)
    try:
        return _storable(msgspec.json.encode(result, enc_hook=repr).decode())
    except (TypeError, ValueError, msgspec.EncodeError):
        return _storable(repr(result))


def _error_text(exception: Any, traceback: Any, einfo: Any) -> str:
    formatted = getattr(einfo, "traceback", None)
    if isinstance(formatted, str) and formatted:
        return _storable(formatted)
    if isinstance(exception, BaseException):
        lines = traceback_module.format_exception(type(exception), exception, traceback)
        return _storable("".join(lines))
    return _storable(repr(exception))


def _log_refusal(report: _Report, state: str, error: StorageError) -> None:
    logger.error(
        "%s of task %s[%s] for evaluation %s refused by the service: %s",
        state,
        report.task_name,
        report.task_id,
        report.evaluation_id,
        error,
    )
