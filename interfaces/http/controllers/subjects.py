"""``/subjects/{subject}``: a data subject's evaluations erased, or exported whole (admin)."""

import codecs
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from dishka.integrations.litestar import FromDishka
from litestar import Controller, delete, get
from litestar.params import Parameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK

from application.use_cases.erase_subject import (
    EraseSubject,
    ErasureReport,
    ExportSubject,
    HeldEvaluation,
)
from application.use_cases.export_evaluations import ARCHIVE_FORMAT
from interfaces.http.errors import problem_responses
from interfaces.http.security import ADMIN

# Evaluations one request erases at most: a request stays well inside a proxy's timeout;
# ``complete: false`` asks the caller to send it again (ADR 0029).
MAX_ERASE_LIMIT = 10_000
NDJSON = "application/x-ndjson"
_encoder = msgspec.json.Encoder()

SUBJECT = Parameter(
    description="The value of the metadata key `SUBJECT_METADATA_KEY` (default `subject`) "
    "that names the data subject: 1 to 1024 characters, no NUL, no `/`."
)


class SubjectController(Controller):
    path = "/subjects"
    tags = ["Subjects"]
    opt = ADMIN

    @delete(
        "/{subject:str}",
        status_code=HTTP_200_OK,
        summary="Erase every evaluation of a data subject, everywhere (admin)",
        description="Records (soft-deleted ones too), events, logs, blobs in every blob "
        "store, the record mirror's copies, Redis keys, failover-journal entries and kept "
        "Idempotency-Key answers of every evaluation whose metadata names the subject. At "
        "most `limit` evaluations per request: `complete: false` means more are left, send "
        "the request again. An unknown subject is erased already: 200 with zero counts. "
        "The audit trail gets one `erase` entry with the subject's SHA-256 and the counts.",
        responses=problem_responses(400, 422, 503),
    )
    async def erase_subject(
        self,
        use_case: FromDishka[EraseSubject],
        subject: Annotated[str, SUBJECT],
        limit: Annotated[int, Parameter(ge=1, le=MAX_ERASE_LIMIT)] = 1000,
    ) -> ErasureReport:
        return await use_case.execute(subject, limit=limit)

    @get(
        "/{subject:str}/export",
        summary="Everything held about a data subject, as JSON lines (admin)",
        description="One line per evaluation of the subject (soft-deleted ones too), "
        'oldest change first, as `storage-service export` writes them: `{"format", '
        '"record", "output", "error", "log", "events"}` with the whole output and error.',
        media_type=NDJSON,
        responses=problem_responses(400, 422, 503),
    )
    async def export_subject(
        self, use_case: FromDishka[ExportSubject], subject: Annotated[str, SUBJECT]
    ) -> Stream:
        tag = use_case.tag(subject)

        async def lines() -> AsyncIterator[bytes]:
            async for held in use_case.execute(tag):
                async for piece in _json_line(held):
                    yield piece

        return Stream(lines(), media_type=NDJSON)


async def _json_line(held: HeldEvaluation) -> AsyncIterator[bytes]:
    """``held`` as one line of the backup export (``ArchivedEvaluation``, which ``import``
    reads), its output and error encoded as JSON strings piece by piece as they stream."""
    yield b'{"format":%d,"record":' % ARCHIVE_FORMAT + _encoder.encode(held.record)
    for name, stream in (("output", held.output), ("error", held.error)):
        yield b',"%s":' % name.encode()
        if stream is None:
            yield b"null"
            continue
        decoder = codecs.getincrementaldecoder("utf-8")()
        yield b'"'
        async for chunk in stream:
            yield _encoder.encode(decoder.decode(chunk))[1:-1]
        yield _encoder.encode(decoder.decode(b"", final=True))[1:-1] + b'"'
    yield b',"log":' + _encoder.encode(held.log)
    yield b',"events":' + _encoder.encode(held.events) + b"}\n"
