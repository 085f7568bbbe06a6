"""The signal handlers ``install`` connects: each turns what one signal carries into
the reports of one task.
"""

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from celery import Celery, signals  # type: ignore[import-untyped]

from crucible_storage.celery._clients import ClientSource
from crucible_storage.celery._reports import (
    Reporter,
    applied,
    delivered,
    error_text,
    now,
    output_text,
    storable,
)
from crucible_storage.celery._task_call import (
    EvaluationIdOf,
    TaskCall,
    as_int,
    call_of_published,
    call_of_task,
    call_of_worker_request,
    default_evaluation_id,
    redelivered,
    request_dict,
)
from crucible_storage.celery._trace import attach_from, detach, inject_into

logger = logging.getLogger("crucible_storage.celery")

_MAX_PENDING_PUBLISHES = 10_000


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
        self._reports = Reporter(client, evaluation_id, final_report_deadline)
        self._published_at: dict[str, datetime] = {}
        self._connected: list[tuple[Any, str]] = []
        self._trace_tokens: dict[str, Any] = {}

    # -- wiring ---------------------------------------------------------------------

    def _connect(self) -> None:
        handlers: list[tuple[Any, Callable[..., None]]] = [
            (signals.before_task_publish, self._on_before_publish),
            (signals.after_task_publish, self._on_after_publish),
            (signals.task_received, self._on_received),
            (signals.task_prerun, self._on_prerun),
            (signals.task_postrun, self._on_postrun),
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
        self._reports.clients.close()

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
        message = call_of_published(sender, body, headers)
        if message is None or not self._owns_name(message.name):
            return None
        task = self.app.tasks.get(message.name)
        return message if task is None else replace(message, task=task)

    # -- signal handlers --------------------------------------------------------------

    def _on_before_publish(
        self, sender: Any = None, body: Any = None, headers: Any = None, **_: Any
    ) -> None:
        message = self._published(sender, body, headers)
        if message is None:
            return
        inject_into(headers)
        if len(self._published_at) >= _MAX_PENDING_PUBLISHES:
            self._published_at.clear()  # publishes that failed never reach after_task_publish
        self._published_at[message.id] = now()
        retries = as_int(headers.get("retries") if isinstance(headers, Mapping) else 0)
        if retries > 0:
            # A retry's message: the evaluation goes back to the queue before the message
            # exists, so the next attempt's start can never arrive before it.
            report = self._reports.report_for(message, attempt=retries - 1)
            if report is not None:
                self._reports.retry_state(report)

    def _on_after_publish(
        self, sender: Any = None, body: Any = None, headers: Any = None, **_: Any
    ) -> None:
        message = self._published(sender, body, headers)
        if message is None:
            return
        retries = as_int(headers.get("retries") if isinstance(headers, Mapping) else 0)
        if retries > 0:
            return  # the state went before the publish; task_retry records the event
        sent_at = self._published_at.pop(message.id, None) or now()
        report = self._reports.report_for(message, attempt=0)
        if report is None:
            return
        self._reports.celery_update(report, "PENDING")
        self._reports.event(report, "task_sent", "PENDING", f"{report.task_name} sent", at=sent_at)

    def _on_received(self, request: Any = None, **_: Any) -> None:
        if request is None or not self._owns_task(getattr(request, "task", None)):
            return
        report = self._reports.report_for(
            call_of_worker_request(request),
            attempt=as_int(request_dict(request).get("retries")),
            hostname=getattr(request, "hostname", None),
            redelivered=redelivered(getattr(request, "delivery_info", None)),
        )
        if report is None:
            return
        self._reports.celery_update(report, "RECEIVED", *report.worker())
        self._reports.event(
            report, "task_received", "RECEIVED", f"received by {report.hostname}", *report.worker()
        )

    def _on_prerun(
        self, sender: Any = None, task_id: Any = None, task: Any = None, **kwargs: Any
    ) -> None:
        task = task or sender
        if not self._owns_task(task):
            return
        request = task.request
        token = attach_from(request)
        if token is not None and isinstance(task_id, str):
            self._trace_tokens[task_id] = token
        report = self._reports.report_for(
            call_of_task(task, task_id, kwargs.get("args"), kwargs.get("kwargs")),
            attempt=as_int(getattr(request, "retries", 0)),
            hostname=getattr(request, "hostname", None),
            redelivered=redelivered(getattr(request, "delivery_info", None)),
            details={"pid": os.getpid(), **({"eager": True} if request.is_eager else {})},
        )
        if report is None:
            return
        result = self._reports.celery_update(
            report, "STARTED", *report.worker(), retries=report.attempt
        )
        if applied(result) and report.hostname:
            # Only when the state was taken: a late start must not rewrite a finished record.
            self._reports.call(
                report,
                "executor_id",
                lambda client: client.evaluations.update(
                    report.evaluation_id,
                    executor_id=report.hostname,
                    idempotency_key=report.key("STARTED", "executor", *report.worker()),
                ),
            )
        where = f" on {report.hostname}" if report.hostname else ""
        self._reports.event(
            report,
            "task_started",
            "STARTED",
            f"attempt {report.attempt + 1} started{where}",
            *report.worker(),
        )

    def _on_postrun(self, task_id: Any = None, **_: Any) -> None:
        token = self._trace_tokens.pop(task_id, None) if isinstance(task_id, str) else None
        if token is not None:
            detach(token)

    def _on_retry(
        self, sender: Any = None, request: Any = None, reason: Any = None, **_: Any
    ) -> None:
        if request is None or not self._owns_task(sender):
            return
        text = str(reason) if reason is not None else "retry"
        exc = getattr(reason, "exc", None)
        max_retries = getattr(sender, "max_retries", None)
        report = self._reports.report_for(
            call_of_task(sender, request.id, request.args, request.kwargs),
            attempt=as_int(getattr(request, "retries", 0)),
            hostname=getattr(request, "hostname", None),
            details={
                "reason": text,
                **({"exception": type(exc).__name__} if isinstance(exc, BaseException) else {}),
                **({"max_retries": max_retries} if isinstance(max_retries, int) else {}),
            },
        )
        if report is None:
            return
        self._reports.retry_state(report)
        of = f" of {max_retries}" if isinstance(max_retries, int) else ""
        message = f"retry {report.attempt + 1}{of}: {text}"
        self._reports.call(
            report,
            "retry_message",
            lambda client: client.evaluations.update(
                report.evaluation_id,
                retry_message=storable(message),
                idempotency_key=report.key("RETRY", "message"),
            ),
        )
        at = self._published_at.pop(report.task_id, None) or now()
        self._reports.event(report, "task_retried", "RETRY", message, at=at)

    def _on_success(self, sender: Any = None, result: Any = None, **_: Any) -> None:
        if not self._owns_task(sender):
            return
        request = sender.request
        report = self._reports.report_for(
            call_of_task(sender, request.id, request.args, request.kwargs),
            attempt=as_int(getattr(request, "retries", 0)),
            hostname=getattr(request, "hostname", None),
            redelivered=redelivered(getattr(request, "delivery_info", None)),
        )
        if report is None:
            return
        # Keyed by delivery: an acks_late redelivery that finishes again sends another body.
        self._reports.celery_update(
            report,
            "SUCCESS",
            *report.worker(),
            retries=report.attempt,
            output=output_text(result),
            final=True,
        )
        self._reports.event(
            report,
            "task_succeeded",
            "SUCCESS",
            f"attempt {report.attempt + 1} succeeded",
            *report.worker(),
        )

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
        report = self._reports.report_for(
            call_of_task(sender, task_id, args, kwargs),
            attempt=as_int(getattr(request, "retries", 0)) if same else 0,
            hostname=getattr(request, "hostname", None) if same else None,
            redelivered=same and redelivered(getattr(request, "delivery_info", None)),
            details={"exception": type(exception).__name__} if exception is not None else {},
        )
        if report is None:
            return
        error = error_text(exception, traceback, einfo)
        result = self._reports.celery_update(
            report, "FAILURE", *report.worker(), retries=report.attempt, error=error, final=True
        )
        if delivered(result):
            # Celery runs it no more (a plain failure, or max retries exceeded). A journaled
            # FAILURE (202) is delivered too: the flag follows it into the journal.
            self._reports.call(
                report,
                "final_failure",
                lambda client: client.evaluations.update(
                    report.evaluation_id,
                    final_failure=True,
                    idempotency_key=report.key("FAILURE", "final", *report.worker()),
                ),
                final=True,
            )
        summary = storable(f"{type(exception).__name__}: {exception}")[:1000]
        self._reports.event(report, "task_failed", "FAILURE", summary, *report.worker())

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
        report = self._reports.report_for(
            call_of_task(sender, request.id, request.args, request.kwargs),
            attempt=as_int(getattr(request, "retries", 0)),
            hostname=getattr(request, "hostname", None),
            details={
                "terminated": bool(terminated),
                "expired": bool(expired),
                **({"signal": str(signum)} if signum else {}),
            },
        )
        if report is None:
            return
        self._reports.celery_update(report, "REVOKED", final=True)
        why = "expired" if expired else "terminated" if terminated else "revoked"
        self._reports.event(report, "task_revoked", "REVOKED", f"task {why}")

    def _on_process_init(self, **_: Any) -> None:
        self._reports.clients.renew()

    def _on_process_shutdown(self, **_: Any) -> None:
        self._reports.clients.close()


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


def _guarded(handler: Callable[..., None]) -> Callable[..., None]:
    """A report must never fail the task or the worker: whatever escapes is logged."""

    def receiver(*args: Any, **kwargs: Any) -> None:
        try:
            handler(*args, **kwargs)
        except Exception:
            logger.exception("crucible_storage.celery: %s failed", handler.__name__)

    receiver.__name__ = handler.__name__
    return receiver
