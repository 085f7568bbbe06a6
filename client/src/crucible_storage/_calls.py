"""Every operation of the API once, as a plan that both clients run.

A plan is a generator: it yields a ``Call`` (one HTTP exchange, retried by the
client that runs it) and receives its parsed result, yields ``Sleep`` to wait
and ``Emit`` to hand an item to the caller's iterator, and returns the result
of the operation. Plans do no network I/O, so the sync and the async client
are each one short loop around the same plans.
"""

import io
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Generic, Never, Protocol, TypeVar
from urllib.parse import quote

import httpx
import msgspec
from msgspec import UNSET, UnsetType

from crucible_storage.errors import Accepted, TransportError, error_for
from crucible_storage.models import (
    TERMINAL_STATUSES,
    AddEventBody,
    AppendLogBody,
    CeleryUpdateBody,
    CeleryUpdateResult,
    CompleteEvaluation,
    CreateEvaluationBody,
    Evaluation,
    EvaluationDeleted,
    EvaluationFields,
    EvaluationFieldsPage,
    EvaluationPage,
    Event,
    Health,
    LogAppend,
    Logs,
    RunningEvaluation,
    RunningList,
    Statistics,
    StorageInfo,
    Timestamp,
    UpdateEvaluationBody,
    WriteAccepted,
)
from crucible_storage.retry import Backoff, delay_after_answer, delay_after_error, may_resend

T = TypeVar("T")
R = TypeVar("R")

CHUNK_SIZE = 256 * 1024
USER_AGENT = "crucible-storage-client/0.1.0"
PayloadKind = str  # "output" or "error"
UploadSource = str | bytes | os.PathLike[str] | IO[bytes] | Iterable[bytes] | AsyncIterable[bytes]


def new_key() -> str:
    """A fresh idempotency key (or request id): one per logical call, kept across retries."""
    return uuid.uuid4().hex


# ------------------------------------------------------------------ the steps


class Sink(Protocol):
    """Where a streamed answer's body goes, told the status and headers before the first byte."""

    def start(self, status: int, headers: httpx.Headers) -> None: ...

    def write(self, chunk: bytes, /) -> object: ...


@dataclass(frozen=True)
class Reply:
    """One answer; ``interrupted`` when a streamed body broke off after ``received`` bytes."""

    status: int
    headers: httpx.Headers
    body: bytes = b""
    received: int = 0
    interrupted: Exception | None = None


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    content: "bytes | Upload | None" = None


@dataclass(frozen=True)
class Call(Generic[T]):
    """One exchange: the request, how to read its answer, which non-2xx answers ``parse``
    handles itself (neither raised nor retried), and a sink to stream a 2xx body into."""

    request: Request
    parse: Callable[[Reply], T]
    ok: frozenset[int] = frozenset()
    sink: Sink | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Emit(Generic[T]):
    value: T


Plan = Generator[Call[Any] | Sleep | Emit[T], Any, R]


def one(call: Call[T]) -> Plan[Never, T]:
    """The plan of a single exchange."""
    result: T = yield call
    return result


# ------------------------------------------------------ what both clients share


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


# ------------------------------------------------------------ building calls


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(part, safe="") for part in parts)


def _request(
    method: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    content: "bytes | Upload | None" = None,
) -> Request:
    return Request(
        method, path, params or {}, {"X-Request-ID": new_key(), **(headers or {})}, content
    )


def _decoder(kind: type[T]) -> Callable[[Reply], T]:
    decoder = msgspec.json.Decoder(kind)

    def parse(reply: Reply) -> T:
        if reply.status == 202:
            accepted = msgspec.json.decode(reply.body, type=WriteAccepted)
            raise Accepted(accepted, request_id=reply.headers.get("x-request-id"))
        return decoder.decode(reply.body)

    return parse


def read(path: str, kind: type[T], params: dict[str, str] | None = None) -> Call[T]:
    return Call(_request("GET", path, params=params), _decoder(kind))


def write(
    method: str,
    path: str,
    kind: type[T],
    *,
    body: msgspec.Struct | None = None,
    key: str | None = None,
    if_match: int | str | None = None,
) -> Call[T]:
    """A write, always with an idempotency key: the one given, else a new one."""
    headers = {"Idempotency-Key": key or new_key()}
    if if_match is not None:
        headers["If-Match"] = f'"{if_match}"' if isinstance(if_match, int) else if_match
    content = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        content = msgspec.json.encode(body)
    return Call(_request(method, path, headers=headers, content=content), _decoder(kind))


def _set(value: T | None) -> T | UnsetType:
    return UNSET if value is None else value


def _query(**values: object) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            params[name] = value.isoformat()
        elif isinstance(value, (list, tuple)):
            params[name] = ",".join(value)
        else:
            params[name] = str(value)
    return params


# ------------------------------------------------------------ evaluations


def create_evaluation(
    code: str,
    *,
    id: str | None = None,
    language: str = "python",
    status: str | None = None,
    metadata: dict[str, Any] | None = None,
    celery_task_id: str | None = None,
    executor_id: str | None = None,
    container_id: str | None = None,
    idempotency_key: str | None = None,
) -> Plan[Never, Evaluation]:
    """Create an evaluation; ``id`` is generated by the service when not given."""
    body = CreateEvaluationBody(
        code=code,
        id=_set(id),
        language=language,
        status=_set(status),
        metadata=_set(metadata),
        celery_task_id=_set(celery_task_id),
        executor_id=_set(executor_id),
        container_id=_set(container_id),
    )
    call = write("POST", "/evaluations", Evaluation, body=body, key=idempotency_key)
    return (yield from one(call))


def get_evaluation(id: str) -> Plan[Never, Evaluation]:
    return (yield from one(read(_path("evaluations", id), Evaluation)))


def get_evaluation_fields(id: str, fields: Iterable[str]) -> Plan[Never, EvaluationFields]:
    return (
        yield from one(
            read(_path("evaluations", id), EvaluationFields, _query(fields=list(fields)))
        )
    )


def update_evaluation(
    id: str,
    *,
    status: str | UnsetType = UNSET,
    output: str | None | UnsetType = UNSET,
    error: str | None | UnsetType = UNSET,
    runtime_ms: int | None | UnsetType = UNSET,
    metadata: dict[str, Any] | UnsetType = UNSET,
    started_at: Timestamp | None | UnsetType = UNSET,
    completed_at: Timestamp | None | UnsetType = UNSET,
    executor_id: str | None | UnsetType = UNSET,
    container_id: str | None | UnsetType = UNSET,
    celery_task_id: str | None | UnsetType = UNSET,
    retries: int | UnsetType = UNSET,
    exit_code: int | None | UnsetType = UNSET,
    timeout: int | None | UnsetType = UNSET,
    last_update: Timestamp | None | UnsetType = UNSET,
    retry_message: str | None | UnsetType = UNSET,
    final_failure: bool | UnsetType = UNSET,
    if_match: int | str | None = None,
    idempotency_key: str | None = None,
) -> Plan[Never, Evaluation]:
    """A partial update: UNSET leaves a field alone, ``None`` clears it; metadata is merged.

    ``if_match`` (a version, or its ETag) makes a stale update a ``PreconditionFailed``.
    """
    body = UpdateEvaluationBody(
        status=status,
        output=output,
        error=error,
        runtime_ms=runtime_ms,
        metadata=metadata,
        started_at=started_at,
        completed_at=completed_at,
        executor_id=executor_id,
        container_id=container_id,
        celery_task_id=celery_task_id,
        retries=retries,
        exit_code=exit_code,
        timeout=timeout,
        last_update=last_update,
        retry_message=retry_message,
        final_failure=final_failure,
    )
    path = _path("evaluations", id)
    return (
        yield from one(
            write("PUT", path, Evaluation, body=body, key=idempotency_key, if_match=if_match)
        )
    )


def delete_evaluation(
    id: str,
    *,
    if_match: int | str | None = None,
    idempotency_key: str | None = None,
) -> Plan[Never, None]:
    """Soft-delete: gone from reads, lists and statistics."""
    path = _path("evaluations", id)
    yield write("DELETE", path, EvaluationDeleted, key=idempotency_key, if_match=if_match)


def _list_params(
    status: str | None,
    language: str | None,
    created_after: Timestamp | None,
    created_before: Timestamp | None,
    id_prefix: str | None,
    limit: int | None,
    cursor: str | None,
    offset: int | None,
    fields: Iterable[str] | None = None,
) -> dict[str, str]:
    return _query(
        status=status,
        language=language,
        created_after=created_after,
        created_before=created_before,
        id_prefix=id_prefix,
        limit=limit,
        cursor=cursor,
        offset=offset,
        fields=None if fields is None else list(fields),
    )


def list_evaluations(
    *,
    status: str | None = None,
    language: str | None = None,
    created_after: Timestamp | None = None,
    created_before: Timestamp | None = None,
    id_prefix: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    offset: int | None = None,
) -> Plan[Never, EvaluationPage]:
    """One page, newest first; ``next_cursor`` of a page asks for the next one."""
    params = _list_params(
        status, language, created_after, created_before, id_prefix, limit, cursor, offset
    )
    return (yield from one(read("/evaluations", EvaluationPage, params)))


def list_evaluation_fields(
    fields: Iterable[str],
    *,
    status: str | None = None,
    language: str | None = None,
    created_after: Timestamp | None = None,
    created_before: Timestamp | None = None,
    id_prefix: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    offset: int | None = None,
) -> Plan[Never, EvaluationFieldsPage]:
    params = _list_params(
        status, language, created_after, created_before, id_prefix, limit, cursor, offset, fields
    )
    return (yield from one(read("/evaluations", EvaluationFieldsPage, params)))


def iterate_evaluations(
    *,
    status: str | None = None,
    language: str | None = None,
    created_after: Timestamp | None = None,
    created_before: Timestamp | None = None,
    id_prefix: str | None = None,
    page_size: int = 100,
) -> Plan[Evaluation, None]:
    """Every matching evaluation, newest first, page by page along ``next_cursor``."""
    cursor: str | None = None
    while True:
        params = _list_params(
            status, language, created_after, created_before, id_prefix, page_size, cursor, None
        )
        page: EvaluationPage = yield read("/evaluations", EvaluationPage, params)
        for evaluation in page.evaluations:
            yield Emit(evaluation)
        if not page.has_more or not page.next_cursor:
            return
        cursor = page.next_cursor


def running_evaluations() -> Plan[Never, list[RunningEvaluation]]:
    """Evaluations in ``provisioning`` or ``running``."""
    answer: RunningList = yield read("/evaluations/running", RunningList)
    return answer.running_evaluations


def celery_update(
    id: str,
    *,
    task_state: str,
    celery_task_id: str | None = None,
    retries: int | UnsetType = UNSET,
    output: str | None | UnsetType = UNSET,
    error: str | None | UnsetType = UNSET,
    idempotency_key: str | None = None,
) -> Plan[Never, CeleryUpdateResult]:
    """Apply a Celery task state; a late or repeated one answers ``applied=False``."""
    body = CeleryUpdateBody(
        task_state=task_state,
        celery_task_id=_set(celery_task_id),
        retries=retries,
        output=output,
        error=error,
    )
    path = _path("evaluations", id, "celery-update")
    return (yield from one(write("POST", path, CeleryUpdateResult, body=body, key=idempotency_key)))


def complete_evaluation(id: str) -> Plan[Never, CompleteEvaluation]:
    """Every artifact at once: whole output and error, events, timeline, log."""
    return (yield from one(read(_path("evaluations", id, "complete"), CompleteEvaluation)))


# ------------------------------------------------------------------- logs


def append_log(
    id: str,
    content: str,
    *,
    timestamp: Timestamp | None = None,
    last_update: Timestamp | None = None,
    idempotency_key: str | None = None,
) -> Plan[Never, LogAppend]:
    body = AppendLogBody(content=content, timestamp=_set(timestamp), last_update=_set(last_update))
    path = _path("evaluations", id, "logs")
    return (yield from one(write("POST", path, LogAppend, body=body, key=idempotency_key)))


def _logs_call(id: str, offset: int | None) -> Call[Logs]:
    return read(_path("evaluations", id, "logs"), Logs, _query(offset=offset))


def get_logs(id: str, *, offset: int | None = None) -> Plan[Never, Logs]:
    """The log; ``content`` holds it from byte ``offset`` on (``next_offset`` continues)."""
    return (yield from one(_logs_call(id, offset)))


def follow_logs(
    id: str,
    *,
    offset: int = 0,
    poll_interval: float = 1.0,
    stop_when_finished: bool = True,
) -> Plan[str, None]:
    """The log's new text as it arrives, until the evaluation has finished (if asked)."""
    while True:
        logs: Logs = yield _logs_call(id, offset)
        if logs.content:
            yield Emit(logs.content)
        offset = logs.next_offset
        if stop_when_finished and logs.status in TERMINAL_STATUSES:
            return
        yield Sleep(poll_interval)


# ----------------------------------------------------------------- events


def add_event(
    id: str,
    type: str,
    *,
    message: str | None = None,
    metadata: dict[str, Any] | None = None,
    timestamp: Timestamp | None = None,
    event_id: str | None = None,
    idempotency_key: str | None = None,
) -> Plan[Never, Event]:
    """Add an event to the timeline; a repeated ``event_id`` is stored once."""
    body = AddEventBody(
        type=type,
        message=_set(message),
        metadata=_set(metadata),
        timestamp=_set(timestamp),
        event_id=_set(event_id),
    )
    path = _path("evaluations", id, "events")
    return (yield from one(write("POST", path, Event, body=body, key=idempotency_key)))


def _events_call(id: str) -> Call[list[Event]]:
    return read(_path("evaluations", id, "events"), list[Event])


def list_events(id: str) -> Plan[Never, list[Event]]:
    """The timeline, oldest first."""
    return (yield from one(_events_call(id)))


def follow_events(
    id: str,
    *,
    poll_interval: float = 1.0,
    stop_when_finished: bool = True,
) -> Plan[Event, None]:
    """Each event once, as it is added, until the evaluation has finished (if asked).

    The status is read before the events, so the last round sees every event
    added before the evaluation finished.
    """
    seen: set[str] = set()
    while True:
        finished = False
        if stop_when_finished:
            record = yield read(
                _path("evaluations", id), EvaluationFields, _query(fields=["status"])
            )
            finished = record.status in TERMINAL_STATUSES
        events: list[Event] = yield _events_call(id)
        for event in events:
            if event.event_id not in seen:
                seen.add(event.event_id)
                yield Emit(event)
        if finished:
            return
        yield Sleep(poll_interval)


# --------------------------------------------------------------- payloads


class Upload:
    """A request body read chunk by chunk from its source, never held whole.

    A path, bytes, text or a seekable file can be sent again (so an upload is
    retried); an iterator is consumed by its one attempt.
    """

    def __init__(self, source: UploadSource) -> None:
        self._source = source.encode() if isinstance(source, str) else source
        self.length: int | None = None
        self.replayable = True
        if isinstance(self._source, bytes):
            self.length = len(self._source)
        elif isinstance(source, os.PathLike):
            self.length = os.stat(source).st_size
        elif isinstance(source, io.IOBase):
            self.replayable = source.seekable()
            self._start = source.tell() if self.replayable else 0
        else:
            self.replayable = False

    def chunks(self) -> Iterator[bytes]:
        source = self._source
        if isinstance(source, bytes):
            yield source
        elif isinstance(source, os.PathLike):
            with open(source, "rb") as file:
                yield from iter(lambda: file.read(CHUNK_SIZE), b"")
        elif isinstance(source, io.IOBase):
            if self.replayable:
                source.seek(self._start)
            yield from iter(lambda: bytes(source.read(CHUNK_SIZE)), b"")
        elif isinstance(source, AsyncIterable):
            raise TypeError("an async iterable can only be uploaded by AsyncStorageClient")
        else:
            yield from source

    async def achunks(self) -> AsyncIterator[bytes]:
        if isinstance(self._source, AsyncIterable):
            async for chunk in self._source:
                yield chunk
            return
        for chunk in self.chunks():
            yield chunk


def _payload_path(id: str, kind: PayloadKind) -> str:
    if kind not in ("output", "error"):
        raise ValueError(f"kind must be 'output' or 'error', not {kind!r}")
    return _path("evaluations", id, kind)


def upload_payload(
    id: str,
    source: UploadSource,
    *,
    kind: PayloadKind = "output",
    idempotency_key: str | None = None,
) -> Plan[Never, Evaluation]:
    """Replace the output (or error) with ``source``, streamed.

    ``source``: the text itself (``str``), its UTF-8 ``bytes``, a file path
    (``os.PathLike``), a binary file object, or an iterable of byte chunks
    (an async iterable with the async client).
    """
    upload = Upload(source)
    headers = {
        "Content-Type": "application/octet-stream",
        "Idempotency-Key": idempotency_key or new_key(),
    }
    if upload.length is not None:
        headers["Content-Length"] = str(upload.length)
    request = _request("PUT", _payload_path(id, kind), headers=headers, content=upload)
    return (yield from one(Call(request, _decoder(Evaluation))))


def _identity(reply: Reply) -> Reply:
    return reply


def read_payload(
    id: str,
    *,
    kind: PayloadKind = "output",
    start: int | None = None,
    end: int | None = None,
) -> Plan[Never, bytes]:
    """Bytes ``[start:end]`` of the output (or error), as a slice would give them.

    A negative ``start`` counts from the end; a range past the end gives ``b""``.
    """
    headers = {"Accept-Encoding": "identity"}
    if start is not None and start < 0:
        if end is not None:
            raise ValueError("a negative start (the last bytes) takes no end")
        headers["Range"] = f"bytes={start}"
    elif start or end is not None:
        first = start or 0
        if end is not None and end <= first:
            return b""
        headers["Range"] = f"bytes={first}-{'' if end is None else end - 1}"
    request = _request("GET", _payload_path(id, kind), headers=headers)
    reply: Reply = yield Call(request, _identity, ok=frozenset({416}))
    return b"" if reply.status == 416 else reply.body


MAX_STALLS = 5


def download_payload(
    id: str,
    dest: "os.PathLike[str] | IO[bytes]",
    *,
    kind: PayloadKind = "output",
    resume: bool = True,
) -> Plan[Never, int]:
    """Write the output (or error) to ``dest``; returns its size in bytes.

    A broken download continues where it stopped (a ``Range`` request with
    ``If-Range``, so a payload replaced meanwhile starts over whole). With
    ``resume`` and a path, a partial file left by an earlier call continues
    too: its ETag is kept beside it in ``<name>.etag`` until it is complete.
    """
    target = _Target(dest, resume)
    try:
        stalls = 0
        while True:
            headers = {"Accept-Encoding": "identity"}
            if target.position and target.etag:
                headers["Range"] = f"bytes={target.position}-"
                headers["If-Range"] = target.etag
            else:
                target.restart()
            request = _request("GET", _payload_path(id, kind), headers=headers)
            reply: Reply = yield Call(request, _identity, ok=frozenset({416}), sink=target)
            if reply.status == 416:
                if _total_of(reply.headers.get("content-range")) == target.position:
                    break  # the partial file was whole already
                target.restart()
                continue
            if reply.interrupted is None:
                break
            stalls = 0 if reply.received else stalls + 1
            if stalls > MAX_STALLS:
                raise TransportError(f"download of {kind} of {id} stalls: {reply.interrupted}")
            if stalls:
                yield Sleep(min(0.25 * 2**stalls, 4.0))
        target.complete()
        return target.position
    finally:
        target.close()


def _total_of(content_range: str | None) -> int | None:
    """The full size from ``Content-Range: bytes a-b/size`` (or ``*/size``)."""
    if not content_range or "/" not in content_range:
        return None
    total = content_range.rsplit("/", 1)[1]
    return int(total) if total.isdigit() else None


def _first_of(content_range: str | None) -> int | None:
    if not content_range or not content_range.startswith("bytes "):
        return None
    first = content_range[6:].split("-", 1)[0]
    return int(first) if first.isdigit() else None


class _Target:
    """The download's destination: a path (with its ETag kept beside it) or a file object."""

    def __init__(self, dest: "os.PathLike[str] | IO[bytes]", resume: bool) -> None:
        self.etag: str | None = None
        self.position = 0
        if isinstance(dest, os.PathLike):
            self._tag_path: str | None = os.fspath(dest) + ".etag"
            exists = os.path.exists(dest)
            if resume and exists and os.path.exists(self._tag_path):
                with open(self._tag_path) as tag:
                    self.etag = tag.read().strip() or None
            self._file: IO[bytes] = open(dest, "r+b" if exists else "w+b")  # noqa: SIM115
            self._owned = True
            self._base = 0
            if self.etag:
                self.position = self._file.seek(0, os.SEEK_END)
        else:
            self._tag_path = None
            self._file = dest
            self._owned = False
            self._base = dest.tell() if dest.seekable() else 0

    def restart(self) -> None:
        self.position = 0
        self.etag = None
        if self._file.seekable():
            self._file.seek(self._base)
            self._file.truncate()

    def start(self, status: int, headers: httpx.Headers) -> None:
        """Called with each answer before its body: a 200 (or 204) is the whole content."""
        if status == 206 and _first_of(headers.get("content-range")) == self.position:
            return
        if self.position:
            if not self._file.seekable():
                raise TransportError("the payload changed mid-download and dest cannot rewind")
            self.restart()
        self.etag = headers.get("etag")
        if self._tag_path is not None:
            if self.etag:
                with open(self._tag_path, "w") as tag:
                    tag.write(self.etag)
            elif os.path.exists(self._tag_path):
                os.remove(self._tag_path)

    def write(self, chunk: bytes) -> int:
        written = self._file.write(chunk)
        self.position += len(chunk)
        return written

    def complete(self) -> None:
        self._file.flush()
        if self._tag_path is not None and os.path.exists(self._tag_path):
            os.remove(self._tag_path)

    def close(self) -> None:
        if self._owned:
            self._file.close()


# ---------------------------------------------------------------- service


def statistics() -> Plan[Never, Statistics]:
    return (yield from one(read("/statistics", Statistics)))


def _health(reply: Reply) -> Health:
    return msgspec.json.decode(reply.body, type=Health)


def health() -> Plan[Never, Health]:
    """The health report; an ``unavailable`` one (a 503) is returned, not raised."""
    return (yield from one(Call(_request("GET", "/health"), _health, ok=frozenset({503}))))


def storage_info() -> Plan[Never, StorageInfo]:
    return (yield from one(read("/storage-info", StorageInfo)))
