"""The change feed: a page after a cursor, and server-sent events of changes and of a log."""

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from dishka.integrations.litestar import FromDishka
from litestar import Controller, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import HeaderParameter, Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from application.errors import EvaluationNotFoundError
from application.ports.change_feed import ChangeQuery
from application.use_cases.changes import ReadChanges
from application.use_cases.follow import follow_changes, follow_log
from domain.changes import START, ChangeCursor, ChangeKind
from domain.errors import InvalidTextError
from domain.timeline import LogSlice
from interfaces.http.errors import problem_responses
from interfaces.http.params import EvalIdPath, evaluation_id
from interfaces.http.schemas.changes import ChangeBody, ChangePageBody, LogEndBody, LogPieceBody
from interfaces.live import TenantFeed

MAX_CHANGE_PAGE = 1000
CursorParameter = Annotated[
    str | None,
    Parameter(max_length=40, description="`next_cursor` of a page, or a change's `cursor`"),
]
LastEventId = Annotated[
    str | None,
    HeaderParameter(
        name="Last-Event-ID",
        max_length=40,
        description="Sent by an EventSource that reconnects: resumes after that event",
    ),
]
EvaluationFilter = Annotated[str | None, Parameter(max_length=255)]
KindFilter = Annotated[list[ChangeKind] | None, Parameter(description="Only these kinds")]
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_ENCODER = msgspec.json.Encoder()


def _cursor(token: str | None, field: str) -> ChangeCursor | None:
    return None if token is None else ChangeCursor.parse(token, field)


def _event_stream(path: str, summary: str, description: str, status: int) -> HTTPRouteHandler:
    """A ``GET`` answering server-sent events, or a problem (``status`` among them) before."""
    return get(
        path,
        summary=summary,
        description=description,
        responses=problem_responses(400, status, 422, 503),
        media_type="text/event-stream",
    )


def _keepalive() -> ServerSentEventMessage:
    """A comment line alone: an EventSource dispatches no event for it."""
    return ServerSentEventMessage(comment="keepalive", data=None)


class ChangesController(Controller):
    path = ""
    tags = ["Changes"]

    @get(
        "/changes",
        summary="Committed writes in commit order, after a cursor",
        description="Every create, update, status move, delete, purge, log append and event, "
        "recorded in the transaction of its write. Without `after`, from the oldest change "
        "kept (`CHANGES_RETENTION_S`); an older cursor is a 410 whose `latest` says where to "
        "go on. A page may hold fewer items than `limit`, even none, and still `more`: keep "
        "reading from `next_cursor` while `more` is true.",
        responses=problem_responses(400, 410, 422, 503),
    )
    async def list_changes(
        self,
        use_case: FromDishka[ReadChanges],
        after: CursorParameter = None,
        evaluation_id: EvaluationFilter = None,
        kind: KindFilter = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_CHANGE_PAGE)] = 100,
    ) -> ChangePageBody:
        cursor = _cursor(after, "after")
        page = await use_case.execute(
            ChangeQuery(
                after=cursor,
                evaluation_id=evaluation_id,
                kinds=frozenset(kind or ()),
                limit=limit,
            )
        )
        reached = page.reached or cursor
        return ChangePageBody(
            items=[ChangeBody.of(change) for change in page.changes],
            next_cursor=None if reached is None else reached.token(),
            more=page.full,
        )

    @_event_stream(
        "/changes/stream",
        "The changes as they commit (server-sent events)",
        "One message per change: `id` is its cursor, `data` the change as "
        "`GET /changes` gives it. Starts after `after` (or `Last-Event-ID`, which an "
        "EventSource sends when it reconnects), else with the next change. The first message "
        "is an `id` without data: the position the stream starts from, so a reconnect "
        "before any change resumes there. A comment line every `CHANGES_KEEPALIVE_S` while "
        "nothing happens.",
        410,
    )
    async def stream_changes(
        self,
        live: FromDishka[TenantFeed],
        after: CursorParameter = None,
        last_event_id: LastEventId = None,
        evaluation_id: EvaluationFilter = None,
        kind: KindFilter = None,
    ) -> ServerSentEvent:
        field = "Last-Event-ID" if last_event_id is not None else "after"
        cursor = _cursor(last_event_id or after, field)
        if cursor is None:
            start = await live.latest()
        else:
            start = cursor
            if cursor != START:
                await live.check(cursor, field)
        query = ChangeQuery(after=start, evaluation_id=evaluation_id, kinds=frozenset(kind or ()))

        async def messages() -> AsyncIterator[ServerSentEventMessage]:
            # Where the stream starts, as an id without data: an EventSource that loses the
            # connection before the first change resumes from here, not from a later "now".
            yield ServerSentEventMessage(id=start.token(), data=None)
            with live.hub.stream():
                async for change in follow_changes(live.hub, live.read, query, live.keepalive_s):
                    if change is None:
                        yield _keepalive()
                        continue
                    body = _ENCODER.encode(ChangeBody.of(change)).decode()
                    yield ServerSentEventMessage(data=body, id=change.cursor.token())

        return ServerSentEvent(messages(), headers=_STREAM_HEADERS)

    @_event_stream(
        "/evaluations/{eval_id:str}/logs/stream",
        "An evaluation's log as it grows (server-sent events)",
        "One message per new piece of the log: `data` is "
        "`{offset, next_offset, content}` and `id` the `next_offset` to resume from "
        "(`Last-Event-ID` on reconnect, else `offset`). Once the evaluation has a final "
        "status and its whole log was sent, an `end` event carries the status and the "
        "stream closes (`deleted: true` when the evaluation is deleted meanwhile).",
        404,
    )
    async def stream_log(
        self,
        eval_id: EvalIdPath,
        live: FromDishka[TenantFeed],
        offset: Annotated[int, Parameter(ge=0, le=2**63 - 1, description="bytes already seen")] = 0,
        last_event_id: LastEventId = None,
    ) -> ServerSentEvent:
        identifier = evaluation_id(eval_id)
        start = offset if last_event_id is None else _offset(last_event_id)
        await live.logs(identifier, start)  # a 404 (or 422) before the stream starts

        async def messages() -> AsyncIterator[ServerSentEventMessage]:
            with live.hub.stream(), contextlib.suppress(EvaluationNotFoundError):
                pieces = follow_log(live.hub, live.logs, identifier, start, live.keepalive_s)
                async for piece in pieces:
                    if piece is None:
                        yield _keepalive()
                    elif isinstance(piece, LogSlice):
                        body = _ENCODER.encode(LogPieceBody.of(piece)).decode()
                        yield ServerSentEventMessage(data=body, id=piece.next_offset)
                    else:
                        body = _ENCODER.encode(LogEndBody(status=piece)).decode()
                        yield ServerSentEventMessage(data=body, event="end")
                        return
            # Deleted while followed: the stream ends with it.
            body = _ENCODER.encode(LogEndBody(status=None, deleted=True)).decode()
            yield ServerSentEventMessage(data=body, event="end")

        return ServerSentEvent(messages(), headers=_STREAM_HEADERS)


def _offset(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 19:
        raise InvalidTextError("Last-Event-ID", "must be the byte offset of a log message")
    return int(raw)
