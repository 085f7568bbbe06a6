"""The blocking client: runs the shared plans (``_plan``) over an ``httpx.Client``."""

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from types import TracebackType
from typing import Any, Generic, Never, ParamSpec, Self, TypeVar, overload

import httpx

from crucible_storage import _changes as changes
from crucible_storage import _evaluations as evaluations
from crucible_storage import _events as events
from crucible_storage import _logs as logs
from crucible_storage import _payloads as payloads
from crucible_storage import _service as service
from crucible_storage._exchange import (
    build_stream,
    finish,
    pause,
    prepare_headers,
    resendable,
    wait_before_retry,
)
from crucible_storage._plan import (
    Call,
    Emit,
    Open,
    Plan,
    Receive,
    Reconnect,
    Reply,
    Request,
    Sleep,
    Step,
)
from crucible_storage._upload import Upload
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

    def __init__(self, build: Callable[P, Plan[Never, R]]) -> None:
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

    def __init__(self, build: Callable[P, Plan[T, None]]) -> None:
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
    create = _Method(evaluations.create_evaluation)
    update = _Method(evaluations.update_evaluation)
    delete = _Method(evaluations.delete_evaluation)
    iterate = _Stream(evaluations.iterate_evaluations)
    search = _Method(evaluations.search_evaluations)
    running = _Method(evaluations.running_evaluations)
    celery_update = _Method(evaluations.celery_update)
    complete = _Method(evaluations.complete_evaluation)

    @overload
    def get(self, id: str, *, fields: None = None) -> Evaluation: ...
    @overload
    def get(self, id: str, *, fields: Iterable[str]) -> EvaluationFields: ...
    def get(self, id: str, *, fields: Iterable[str] | None = None) -> Any:
        """One evaluation; with ``fields`` only those (and ``id``) are read and sent."""
        if fields is None:
            return self._client._run(evaluations.get_evaluation(id))
        return self._client._run(evaluations.get_evaluation_fields(id, fields))

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
            return self._client._run(evaluations.list_evaluations(**filters))
        return self._client._run(evaluations.list_evaluation_fields(fields, **filters))


class Logs(_Resource):
    append = _Method(logs.append_log)
    get = _Method(logs.get_logs)
    follow = _Stream(logs.follow_logs)


class Events(_Resource):
    add = _Method(events.add_event)
    list = _Method(events.list_events)
    follow = _Stream(events.follow_events)


class Changes(_Resource):
    list = _Method(changes.list_changes)
    iterate = _Stream(changes.iterate_changes)
    follow = _Stream(changes.follow_changes)


class Payloads(_Resource):
    upload = _Method(payloads.upload_payload)
    download = _Method(payloads.download_payload)
    read = _Method(payloads.read_payload)


class StorageClient(_Runner):
    """A blocking client of the Crucible Storage Service.

    Reads are retried on connection failures, timeouts, 408, 429 and 5xx
    (honouring ``Retry-After``), at most ``retries`` times; writes too, because
    each carries an idempotency key the service uses to apply it once.
    ``transport`` replaces the network (e.g. ``httpx.WSGITransport`` or a mock).
    """

    statistics = _Method(service.statistics)
    health = _Method(service.health)
    storage_info = _Method(service.storage_info)

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
        self.changes = Changes(self)

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

    def _run(self, plan: Plan[Never, R]) -> R:
        answer: Any = None
        with closing(_Body(self._http)) as body:
            try:
                while True:
                    step = plan.send(answer)
                    answer = self._step(step, body)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def _stream(self, plan: Plan[T, None]) -> Iterator[T]:
        # A `break` in the caller's loop ends the plan and lets its stream go.
        with closing(plan), closing(_Body(self._http)) as body:
            answer: Any = None
            while True:
                try:
                    step = plan.send(answer)
                except StopIteration:
                    return
                if isinstance(step, Emit):
                    answer = None
                    yield step.value
                else:
                    answer = self._step(step, body)

    def _step(self, step: Step | Emit[Never], body: "_Body") -> Any:
        if isinstance(step, Sleep | Reconnect):
            time.sleep(pause(step, self._backoff))
            return None
        if isinstance(step, Open):
            return body.open(step.request, prepare_headers(step.request, self._api_key))
        if isinstance(step, Receive):
            return body.receive()
        if isinstance(step, Emit):
            raise TypeError("a method's plan emitted an item")
        return self._execute(step)

    def _execute(self, call: Call[T]) -> T:
        headers = prepare_headers(call.request, self._api_key)
        resend = resendable(call.request, headers)
        attempt = 0
        while True:
            outcome: Reply | Exception
            try:
                outcome = self._send(call, headers)
            except httpx.TransportError as error:
                outcome = error
            wait = wait_before_retry(
                call,
                outcome,
                attempt=attempt,
                retries=self._retries,
                resend=resend,
                backoff=self._backoff,
            )
            if wait is None:
                return finish(call, outcome)
            time.sleep(wait)
            attempt += 1

    def _send(self, call: Call[Any], headers: dict[str, str]) -> Reply:
        request = call.request
        content = request.content
        body = content.chunks() if isinstance(content, Upload) else content
        built = self._http.build_request(
            request.method, request.path, params=request.params, headers=headers, content=body
        )
        response = self._http.send(built, stream=True)
        try:
            if call.sink is None or not response.is_success:
                response.read()
                return Reply(response.status_code, response.headers, response.content)
            call.sink.start(response.status_code, response.headers)
            received = 0
            try:
                for chunk in response.iter_bytes():
                    call.sink.write(chunk)
                    received += len(chunk)
            except RETRY_ERRORS as broken:
                return Reply(
                    response.status_code, response.headers, received=received, interrupted=broken
                )
            return Reply(response.status_code, response.headers, received=received)
        finally:
            response.close()


class _Body:
    """The answer a plan opened (``Open``) and reads a chunk at a time (``Receive``)."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http
        self._response: httpx.Response | None = None
        self._chunks: Iterator[bytes] = iter(())

    def open(self, request: Request, headers: dict[str, str]) -> Reply | httpx.TransportError:
        self.close()
        built = build_stream(self._http, request, headers)
        try:
            response = self._http.send(built, stream=True)
            if not response.is_success:
                with closing(response):
                    return Reply(response.status_code, response.headers, response.read())
        except httpx.TransportError as error:
            return error
        self._response, self._chunks = response, response.iter_bytes()
        return Reply(response.status_code, response.headers)

    def receive(self) -> bytes | httpx.TransportError:
        try:
            return next(self._chunks, b"")
        except httpx.TransportError as error:
            return error

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
