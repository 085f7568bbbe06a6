"""The blocking client: runs the shared plans (``_calls``) over an ``httpx.Client``."""

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from types import TracebackType
from typing import Any, Generic, Never, ParamSpec, Self, TypeVar, overload

import httpx

from crucible_storage import _calls as calls
from crucible_storage.models import (
    Evaluation,
    EvaluationFields,
    EvaluationFieldsPage,
    EvaluationPage,
    Timestamp,
)
from crucible_storage.retry import RETRY_ERRORS, Backoff

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")


class _Runner:
    """What a resource needs of its client: a way to run a plan."""

    _client: "StorageClient"


class _Method(Generic[P, R]):
    """A client method that runs the plan ``build`` makes and returns its result."""

    def __init__(self, build: Callable[P, calls.Plan[Never, R]]) -> None:
        self._build = build

    @overload
    def __get__(self, owner: None, kind: type[Any]) -> Self: ...
    @overload
    def __get__(self, owner: _Runner, kind: type[Any]) -> Callable[P, R]: ...
    def __get__(self, owner: _Runner | None, kind: type[Any]) -> Self | Callable[P, R]:
        if owner is None:
            return self
        client, build = owner._client, self._build

        @functools.wraps(build)
        def method(*args: P.args, **kwargs: P.kwargs) -> R:
            return client._run(build(*args, **kwargs))

        return method


class _Stream(Generic[P, T]):
    """A client method that returns an iterator over what the plan ``build`` emits."""

    def __init__(self, build: Callable[P, calls.Plan[T, None]]) -> None:
        self._build = build

    @overload
    def __get__(self, owner: None, kind: type[Any]) -> Self: ...
    @overload
    def __get__(self, owner: _Runner, kind: type[Any]) -> Callable[P, Iterator[T]]: ...
    def __get__(self, owner: _Runner | None, kind: type[Any]) -> Self | Callable[P, Iterator[T]]:
        if owner is None:
            return self
        client, build = owner._client, self._build

        @functools.wraps(build)
        def method(*args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
            return client._stream(build(*args, **kwargs))

        return method


class _Resource(_Runner):
    def __init__(self, client: "StorageClient") -> None:
        self._client = client


class Evaluations(_Resource):
    create = _Method(calls.create_evaluation)
    update = _Method(calls.update_evaluation)
    delete = _Method(calls.delete_evaluation)
    iterate = _Stream(calls.iterate_evaluations)
    running = _Method(calls.running_evaluations)
    celery_update = _Method(calls.celery_update)
    complete = _Method(calls.complete_evaluation)

    @overload
    def get(self, id: str, *, fields: None = None) -> Evaluation: ...
    @overload
    def get(self, id: str, *, fields: Iterable[str]) -> EvaluationFields: ...
    def get(self, id: str, *, fields: Iterable[str] | None = None) -> Any:
        """One evaluation; with ``fields`` only those (and ``id``) are read and sent."""
        if fields is None:
            return self._client._run(calls.get_evaluation(id))
        return self._client._run(calls.get_evaluation_fields(id, fields))

    @overload
    def list(
        self,
        *,
        status: str | None = ...,
        language: str | None = ...,
        created_after: Timestamp | None = ...,
        created_before: Timestamp | None = ...,
        id_prefix: str | None = ...,
        limit: int | None = ...,
        cursor: str | None = ...,
        offset: int | None = ...,
        fields: None = None,
    ) -> EvaluationPage: ...
    @overload
    def list(
        self,
        *,
        status: str | None = ...,
        language: str | None = ...,
        created_after: Timestamp | None = ...,
        created_before: Timestamp | None = ...,
        id_prefix: str | None = ...,
        limit: int | None = ...,
        cursor: str | None = ...,
        offset: int | None = ...,
        fields: Iterable[str],
    ) -> EvaluationFieldsPage: ...
    def list(self, *, fields: Iterable[str] | None = None, **filters: Any) -> Any:
        """One page, newest first (``iterate`` follows the pages for you)."""
        if fields is None:
            return self._client._run(calls.list_evaluations(**filters))
        return self._client._run(calls.list_evaluation_fields(fields, **filters))


class Logs(_Resource):
    append = _Method(calls.append_log)
    get = _Method(calls.get_logs)
    follow = _Stream(calls.follow_logs)


class Events(_Resource):
    add = _Method(calls.add_event)
    list = _Method(calls.list_events)
    follow = _Stream(calls.follow_events)


class Payloads(_Resource):
    upload = _Method(calls.upload_payload)
    download = _Method(calls.download_payload)
    read = _Method(calls.read_payload)


class StorageClient(_Runner):
    """A blocking client of the Crucible Storage Service.

    Reads are retried on connection failures, timeouts, 408, 429 and 5xx
    (honouring ``Retry-After``), at most ``retries`` times; writes too, because
    each carries an idempotency key the service uses to apply it once.
    ``transport`` replaces the network (e.g. ``httpx.WSGITransport`` or a mock).
    """

    statistics = _Method(calls.statistics)
    health = _Method(calls.health)
    storage_info = _Method(calls.storage_info)

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._client = self
        self._api_key = api_key
        self._retries = retries
        self._backoff = backoff or Backoff()
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self.evaluations = Evaluations(self)
        self.logs = Logs(self)
        self.events = Events(self)
        self.payloads = Payloads(self)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------ running plans

    def _run(self, plan: calls.Plan[Never, R]) -> R:
        answer: Any = None
        try:
            while True:
                step = plan.send(answer)
                answer = self._step(step)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _stream(self, plan: calls.Plan[T, None]) -> Iterator[T]:
        with closing(plan):  # a `break` in the caller's loop ends the plan too
            answer: Any = None
            while True:
                try:
                    step = plan.send(answer)
                except StopIteration:
                    return
                if isinstance(step, calls.Emit):
                    answer = None
                    yield step.value
                else:
                    answer = self._step(step)

    def _step(self, step: calls.Call[Any] | calls.Sleep | calls.Emit[Never]) -> Any:
        if isinstance(step, calls.Sleep):
            time.sleep(step.seconds)
            return None
        if isinstance(step, calls.Emit):
            raise TypeError("a method's plan emitted an item")
        return self._execute(step)

    def _execute(self, call: calls.Call[T]) -> T:
        headers = calls.prepare_headers(call.request, self._api_key)
        resend = calls.resendable(call.request, headers)
        attempt = 0
        while True:
            outcome: calls.Reply | Exception
            try:
                outcome = self._send(call, headers)
            except httpx.TransportError as error:
                outcome = error
            wait = calls.wait_before_retry(
                call,
                outcome,
                attempt=attempt,
                retries=self._retries,
                resend=resend,
                backoff=self._backoff,
            )
            if wait is None:
                return calls.finish(call, outcome)
            time.sleep(wait)
            attempt += 1

    def _send(self, call: calls.Call[Any], headers: dict[str, str]) -> calls.Reply:
        request = call.request
        content = request.content
        body = content.chunks() if isinstance(content, calls.Upload) else content
        built = self._http.build_request(
            request.method, request.path, params=request.params, headers=headers, content=body
        )
        response = self._http.send(built, stream=True)
        try:
            if call.sink is None or not response.is_success:
                response.read()
                return calls.Reply(response.status_code, response.headers, response.content)
            call.sink.start(response.status_code, response.headers)
            received = 0
            try:
                for chunk in response.iter_bytes():
                    call.sink.write(chunk)
                    received += len(chunk)
            except RETRY_ERRORS as broken:
                return calls.Reply(
                    response.status_code, response.headers, received=received, interrupted=broken
                )
            return calls.Reply(response.status_code, response.headers, received=received)
        finally:
            response.close()
