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

The modules: ``_task_call`` (a task as the signals carry it, and its evaluation),
``_clients`` (one client per process), ``_reports`` (states, events and their
idempotency keys, sent without raising), ``_installation`` (the signal handlers and
``install``).
"""

from crucible_storage.celery._installation import Installation, install
from crucible_storage.celery._task_call import TaskCall, default_evaluation_id

__all__ = ["Installation", "TaskCall", "default_evaluation_id", "install"]
