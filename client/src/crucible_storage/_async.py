"""The asyncio client: runs the shared plans (``_plan``) over an ``httpx.AsyncClient``."""

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import aclosing
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

    _client: "AsyncStorageClient"


class _Method(Generic[P, R]):
    """A client coroutine that runs the plan ``build`` makes and returns its result."""

    def __init__(self, build: Callable[P, Plan[Never, R]]) -> None:
        self._build = build

    @overload
    def __get__(self, owner: None, kind: type[Any]) -> Self: ...
    @overload
    def __get__(self, owner: _Runner, kind: type[Any]) -> Callable[P, Coroutine[Any, Any, R]]: ...
    def __get__(
        self, owner: _Runner | None, kind: type[Any]
    ) -> Self | Callable[P, Coroutine[Any, Any, R]]:
        if owner is None:
            return self
        client, build = owner._client, self._build

        @functools.wraps(build)
        async def method(*args: P.args, **kwargs: P.kwargs) -> R:
            return await client._run(build(*args, **kwargs))

        return method


class _Stream(Generic[P, T]):
    """A client method that returns an async iterator over what the plan ``build`` emits."""

    def __init__(self, build: Callable[P, Plan[T, None]]) -> None:
        self._build = build

    @overload
    def __get__(self, owner: None, kind: type[Any]) -> Self: ...
    @overload
    def __get__(self, owner: _Runner, kind: type[Any]) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(
        self, owner: _Runner | None, kind: type[Any]
    ) -> Self | Callable[P, AsyncIterator[T]]:
        if owner is None:
            return self
        client, build = owner._client, self._build

        @functools.wraps(build)
        def method(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
            return client._stream(build(*args, **kwargs))

        return method


class _Resource(_Runner):
    def __init__(self, client: "AsyncStorageClient") -> None:
        self._client = client


class AsyncEvaluations(_Resource):
    create = _Method(evaluations.create_evaluation)
    update = _Method(evaluations.update_evaluation)
    delete = _Method(evaluations.delete_evaluation)
    iterate = _Stream(evaluations.iterate_evaluations)
    search = _Method(evaluations.search_evaluations)
    running = _Method(evaluations.running_evaluations)
    celery_update = _Method(evaluations.celery_update)
    complete = _Method(evaluations.complete_evaluation)

    @overload
    async def get(self, id: str, *, fields: None = None) -> Evaluation: ...
    @overload
    async def get(self, id: str, *, fields: Iterable[str]) -> EvaluationFields: ...
    async def get(self, id: str, *, fields: Iterable[str] | None = None) -> Any:
        """One evaluation; with ``fields`` only those (and ``id``) are read and sent."""
        if fields is None:
            return await self._client._run(evaluations.get_evaluation(id))
        return await self._client._run(evaluations.get_evaluation_fields(id, fields))

    @overload
    async def list(
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
    async def list(
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
    async def list(self, *, fields: Iterable[str] | None = None, **filters: Any) -> Any:
        """One page, newest first (``iterate`` follows the pages for you)."""
        if fields is None:
            return await self._client._run(evaluations.list_evaluations(**filters))
        return await self._client._run(evaluations.list_evaluation_fields(fields, **filters))


class AsyncLogs(_Resource):
    append = _Method(logs.append_log)
    get = _Method(logs.get_logs)
    follow = _Stream(logs.follow_logs)


class AsyncEvents(_Resource):
    add = _Method(events.add_event)
    list = _Method(events.list_events)
    follow = _Stream(events.follow_events)


class AsyncChanges(_Resource):
    list = _Method(changes.list_changes)
    iterate = _Stream(changes.iterate_changes)
    follow = _Stream(changes.follow_changes)


class AsyncPayloads(_Resource):
    upload = _Method(payloads.upload_payload)
    download = _Method(payloads.download_payload)
    read = _Method(payloads.read_payload)


class AsyncStorageClient(_Runner):
    """The asyncio twin of ``StorageClient``: the same methods, awaited, and ``async for``
    over ``iterate`` and ``follow``."""

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
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._client = self
        self._api_key = api_key
        self._retries = retries
        self._backoff = backoff or Backoff()
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)
        self.evaluations = AsyncEvaluations(self)
        self.logs = AsyncLogs(self)
        self.events = AsyncEvents(self)
        self.payloads = AsyncPayloads(self)
        self.changes = AsyncChanges(self)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------ running plans

    async def _run(self, plan: Plan[Never, R]) -> R:
        answer: Any = None
        async with aclosing(_Body(self._http)) as body:
            try:
                while True:
                    step = plan.send(answer)
                    answer = await self._step(step, body)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def _stream(self, plan: Plan[T, None]) -> AsyncIterator[T]:
        body = _Body(self._http)
        try:
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
                    answer = await self._step(step, body)
        finally:
            plan.close()  # a `break` in the caller's loop ends the plan too
            await body.aclose()  # and lets its stream go

    async def _step(self, step: Step | Emit[Never], body: "_Body") -> Any:
        if isinstance(step, Sleep | Reconnect):
            await asyncio.sleep(pause(step, self._backoff))
            return None
        if isinstance(step, Open):
            return await body.open(step.request, prepare_headers(step.request, self._api_key))
        if isinstance(step, Receive):
            return await body.receive()
        if isinstance(step, Emit):
            raise TypeError("a method's plan emitted an item")
        return await self._execute(step)

    async def _execute(self, call: Call[T]) -> T:
        headers = prepare_headers(call.request, self._api_key)
        resend = resendable(call.request, headers)
        attempt = 0
        while True:
            outcome: Reply | Exception
            try:
                outcome = await self._send(call, headers)
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
            await asyncio.sleep(wait)
            attempt += 1

    async def _send(self, call: Call[Any], headers: dict[str, str]) -> Reply:
        request = call.request
        content = request.content
        body = content.achunks() if isinstance(content, Upload) else content
        built = self._http.build_request(
            request.method, request.path, params=request.params, headers=headers, content=body
        )
        response = await self._http.send(built, stream=True)
        try:
            if call.sink is None or not response.is_success:
                await response.aread()
                return Reply(response.status_code, response.headers, response.content)
            call.sink.start(response.status_code, response.headers)
            received = 0
            try:
                async for chunk in response.aiter_bytes():
                    call.sink.write(chunk)
                    received += len(chunk)
            except RETRY_ERRORS as broken:
                return Reply(
                    response.status_code, response.headers, received=received, interrupted=broken
                )
            return Reply(response.status_code, response.headers, received=received)
        finally:
            await response.aclose()


class _Body:
    """The answer a plan opened (``Open``) and reads a chunk at a time (``Receive``)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._response: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None

    async def open(self, request: Request, headers: dict[str, str]) -> Reply | httpx.TransportError:
        await self.aclose()
        built = build_stream(self._http, request, headers)
        try:
            response = await self._http.send(built, stream=True)
            if not response.is_success:
                async with aclosing(response):
                    return Reply(response.status_code, response.headers, await response.aread())
        except httpx.TransportError as error:
            return error
        self._response, self._chunks = response, response.aiter_bytes()
        return Reply(response.status_code, response.headers)

    async def receive(self) -> bytes | httpx.TransportError:
        try:
            return b"" if self._chunks is None else await anext(self._chunks, b"")
        except httpx.TransportError as error:
            return error

    async def aclose(self) -> None:
        if self._response is not None:
            await self._response.aclose()
            self._response, self._chunks = None, None
