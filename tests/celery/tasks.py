"""The tasks the Celery tests run, on an app built per queue so test runs never meet."""

import os
import time
from typing import Any

from celery import Celery  # type: ignore[import-untyped]

BROKER_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def make_app(queue: str, *, eager: bool = False) -> Celery:
    """An app whose tasks go to ``queue`` (and an exchange of the same name)."""
    app = Celery("crucible_celery_tests", broker=BROKER_URL, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        task_always_eager=eager,
        worker_prefetch_multiplier=1,
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        task_reject_on_worker_lost=True,
    )
    app.task(name="crucible_test.succeed")(succeed)
    app.task(name="crucible_test.fail")(fail)
    app.task(bind=True, name="crucible_test.flaky", max_retries=3)(flaky)
    app.task(
        bind=True,
        name="crucible_test.doomed",
        autoretry_for=(ConnectionError,),
        max_retries=2,
        default_retry_delay=0,
    )(doomed)
    app.task(name="crucible_test.nap")(nap)
    app.task(bind=True, name="crucible_test.redeliverable", acks_late=True)(redeliverable)
    app.task(name="crucible_test.unmapped")(unmapped)
    return app


def succeed(eval_id: str, value: str) -> dict[str, Any]:
    return {"value": value}


def fail(eval_id: str, message: str) -> None:
    raise ValueError(message)


def flaky(self: Any, eval_id: str, failures: int) -> str:
    if self.request.retries < failures:
        raise self.retry(exc=RuntimeError(f"transient {self.request.retries}"), countdown=0)
    return f"ok after {failures} retries"


def doomed(self: Any, *, evaluation_id: str) -> None:
    raise ConnectionError(f"still down at attempt {self.request.retries}")


def nap(eval_id: str, seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def redeliverable(self: Any, eval_id: str, seconds: float) -> str:
    if self.request.delivery_info.get("redelivered"):
        return "second delivery"
    time.sleep(seconds)
    return "first delivery"


def unmapped(value: str) -> str:
    return value
