from typing import Annotated

from dishka.integrations.litestar import FromDishka
from litestar import Controller, get, post
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK

from application.commands import NewEvent
from application.failover.reads import RecordReads
from application.failover.writes import Writes
from application.use_cases.logs import LogSource
from interfaces.http.errors import ACCEPTED_RESPONSE, problem_responses
from interfaces.http.params import EvalIdPath, evaluation_id
from interfaces.http.schemas import (
    AddEventBody,
    AppendLogBody,
    EventBody,
    LogAppended,
    LogBody,
    LogSourceName,
)
from interfaces.settings import Settings


def _source_name(source: LogSource, *, redis: bool) -> LogSourceName:
    """The platform's name for where the log text came from (``redis_cache``/``database``)."""
    if source is LogSource.JOURNAL:
        return "journal"
    if source is LogSource.STORE:
        return "database"
    if source is LogSource.WORKER or redis:
        return "redis_cache"
    return "memory_cache"


class TimelineController(Controller):
    path = "/evaluations/{eval_id:str}"
    tags = ["Logs and events"]

    @post(
        "/logs",
        status_code=HTTP_200_OK,
        summary="Append a chunk to the log",
        description="The platform worker's body. `append: false` (replace the log) is a 422 "
        "naming `append`: the log is append-only. `last_update` (else `timestamp`, else the "
        "time of the append) becomes the record's `last_update`.",
        responses=problem_responses(400, 404, 413, 422, 503) | ACCEPTED_RESPONSE,
    )
    async def append_log(
        self, eval_id: EvalIdPath, data: JSONBody[AppendLogBody], writes: FromDishka[Writes]
    ) -> LogAppended:
        written_at = data.written_at()
        chunk = await writes.append_log(evaluation_id(eval_id), data.content, written_at)
        return LogAppended(
            eval_id=chunk.evaluation_id,
            offset=chunk.offset,
            size=chunk.size,
            next_offset=chunk.end,
        )

    @get(
        "/logs",
        summary="The log and state of an evaluation, whole or from a byte offset",
        description="`output` is the record's output, else the log text (while the evaluation "
        "runs and its log is empty: the platform worker's latest batch). `source` says where "
        "the log text came from: `redis_cache`, `memory_cache` (the in-process tail), "
        "`database`, or `journal` (written during a database outage).",
        responses=problem_responses(400, 404, 422, 503),
    )
    async def read_log(
        self,
        eval_id: EvalIdPath,
        reads: FromDishka[RecordReads],
        settings: FromDishka[Settings],
        offset: Annotated[int, Parameter(ge=0, le=2**63 - 1, description="bytes already seen")] = 0,
    ) -> LogBody:
        logs = await reads.logs(evaluation_id(eval_id), offset)
        return LogBody.of(logs, _source_name(logs.source, redis=settings.redis.url is not None))

    @post(
        "/events",
        status_code=HTTP_200_OK,
        summary="Add an event to the timeline",
        description="Answers the event as stored; a repeated `event_id` is stored once and "
        "answered with the first copy.",
        responses=problem_responses(400, 404, 413, 422, 503) | ACCEPTED_RESPONSE,
    )
    async def add_event(
        self, eval_id: EvalIdPath, data: JSONBody[AddEventBody], writes: FromDishka[Writes]
    ) -> EventBody:
        new = NewEvent(
            event_type=data.kind(),
            message=data.message,
            metadata=data.metadata,
            timestamp=data.timestamp,
            event_id=data.event_id,
        )
        return EventBody.of(await writes.record_event(evaluation_id(eval_id), new))

    @get(
        "/events",
        summary="The event timeline, oldest first",
        responses=problem_responses(400, 404, 422, 503),
    )
    async def list_events(
        self, eval_id: EvalIdPath, reads: FromDishka[RecordReads]
    ) -> list[EventBody]:
        return [EventBody.of(e) for e in await reads.events(evaluation_id(eval_id))]
