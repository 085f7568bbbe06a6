from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Annotated, Any

import msgspec
from dishka.integrations.litestar import FromDishka
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType as MediaType
from litestar.openapi.spec import Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.params import HeaderParameter, Parameter
from litestar.response import Redirect, Stream
from litestar.status_codes import (
    HTTP_204_NO_CONTENT,
    HTTP_206_PARTIAL_CONTENT,
    HTTP_307_TEMPORARY_REDIRECT,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_415_UNSUPPORTED_MEDIA_TYPE,
)

from application.errors import BlobMissingError
from application.services.failover import FailoverWrites
from application.use_cases.celery_update import CeleryUpdate
from application.use_cases.evaluation_content import (
    GetCompleteEvaluation,
    PayloadContent,
    ReadPayload,
)
from application.use_cases.object_storage import GetPayloadUrl, NoDirectUrlError
from domain.evaluation import UNRECOGNIZED_KEY
from domain.payload import PayloadKind
from interfaces.http.errors import ACCEPTED_RESPONSE, problem, problem_responses
from interfaces.http.params import EvalIdPath, etag, evaluation_id
from interfaces.http.schemas import (
    CeleryUpdateBody,
    CeleryUpdateResult,
    CompleteEvaluationBody,
    EvaluationBody,
)
from interfaces.http.unrecognized import header, known_names, unrecognized
from interfaces.settings import Settings

READ_ATTEMPTS = 3
_CELERY_FIELDS = known_names(CeleryUpdateBody)
TEXT = "text/plain"  # Litestar adds "; charset=utf-8"
UPLOAD_TYPES = ("text/plain", "application/octet-stream")

RangeHeader = Annotated[
    str | None,
    HeaderParameter(
        name="Range",
        description="One byte range: `bytes=a-b`, `bytes=a-` or `bytes=-n` (206; 416 if outside)",
    ),
]
AcceptEncoding = Annotated[str | None, HeaderParameter(name="Accept-Encoding")]
IfRange = Annotated[
    str | None,
    HeaderParameter(
        name="If-Range",
        description="Keep the Range only while this ETag is current (else the whole content)",
    ),
]


RedirectParam = Annotated[
    bool,
    Parameter(
        query="redirect",
        description="true: answer 307 to a presigned S3 URL when the content is in S3 "
        "(otherwise the content is served here as usual)",
    ),
]


class PayloadUrlBody(msgspec.Struct, frozen=True):
    """A presigned GET URL of an output in object storage."""

    url: str
    expires_at: datetime
    content_encoding: str | None = None  # "zstd": the URL serves the compressed form


PAYLOAD_RESPONSES = {
    **problem_responses(400, 404, 416, 422, 503),
    HTTP_204_NO_CONTENT: ResponseSpec(None, description="Nothing stored"),
    HTTP_206_PARTIAL_CONTENT: ResponseSpec(
        str, media_type=TEXT, description="The requested byte range", generate_examples=False
    ),
}


@dataclass
class RawTextUpload(Operation):
    """Documents the raw body that upload handlers stream (Litestar sees no ``data``)."""

    def __post_init__(self) -> None:
        schema = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        self.request_body = RequestBody(
            required=True,
            description="The full content, UTF-8 text of any size (up to MAX_UPLOAD_BYTES)",
            content={media: MediaType(schema=schema) for media in UPLOAD_TYPES},
        )


class ContentController(Controller):
    path = "/evaluations/{eval_id:str}"
    tags = ["Evaluations"]

    @get(
        "/complete",
        summary="Every artifact: the record with full output and error, events, log, "
        "where each is stored, and the timeline",
        responses=problem_responses(400, 404, 422, 503),
    )
    async def complete(
        self, eval_id: EvalIdPath, use_case: FromDishka[GetCompleteEvaluation]
    ) -> CompleteEvaluationBody:
        return CompleteEvaluationBody.of(await use_case.execute(evaluation_id(eval_id)))

    @get(
        "/output",
        summary="The output as text, whole or a byte range",
        media_type=TEXT,
        responses=PAYLOAD_RESPONSES,
    )
    async def output(
        self,
        eval_id: EvalIdPath,
        use_case: FromDishka[ReadPayload],
        links: FromDishka[GetPayloadUrl],
        range_header: RangeHeader = None,
        if_range: IfRange = None,
        accept_encoding: AcceptEncoding = None,
        redirect: RedirectParam = False,
    ) -> Response[bytes]:
        if redirect:
            try:
                signed = await links.execute(evaluation_id(eval_id), "output")
            except NoDirectUrlError:
                pass  # not in S3: served from here below
            else:
                return Redirect(signed.url, status_code=HTTP_307_TEMPORARY_REDIRECT)
        return await _payload(use_case, eval_id, "output", range_header, if_range, accept_encoding)

    @get(
        "/output-url",
        summary="A presigned URL of the output in object storage (S3)",
        description="404 when the evaluation or its output does not exist; 409 when the "
        "output is stored inline or in a file (only S3 objects can be linked to).",
        responses=problem_responses(400, 404, 409, 422, 503),
    )
    async def output_url(
        self, eval_id: EvalIdPath, use_case: FromDishka[GetPayloadUrl]
    ) -> PayloadUrlBody:
        try:
            signed = await use_case.execute(evaluation_id(eval_id), "output")
        except NoDirectUrlError as exc:
            if exc.location is None:
                raise problem(HTTP_404_NOT_FOUND, "No output", str(exc), "no-output") from None
            raise problem(
                HTTP_409_CONFLICT,
                "Not in object storage",
                str(exc),
                "not-in-object-storage",
                location=exc.location.value,
            ) from None
        return PayloadUrlBody(
            url=signed.url, expires_at=signed.expires_at, content_encoding=signed.content_encoding
        )

    @get(
        "/error",
        summary="The error as text, whole or a byte range",
        media_type=TEXT,
        responses=PAYLOAD_RESPONSES,
    )
    async def error(
        self,
        eval_id: EvalIdPath,
        use_case: FromDishka[ReadPayload],
        range_header: RangeHeader = None,
        if_range: IfRange = None,
        accept_encoding: AcceptEncoding = None,
    ) -> Response[bytes]:
        return await _payload(use_case, eval_id, "error", range_header, if_range, accept_encoding)

    @put(
        "/output",
        summary="Replace the output with a streamed raw body",
        request_max_body_size=None,
        operation_class=RawTextUpload,
        responses=problem_responses(404, 409, 413, 415, 422, 503) | ACCEPTED_RESPONSE,
    )
    async def upload_output(
        self,
        eval_id: EvalIdPath,
        request: Request[Any, Any, State],
        writes: FromDishka[FailoverWrites],
        settings: FromDishka[Settings],
    ) -> Response[EvaluationBody]:
        return await _upload(request, writes, settings, eval_id, "output")

    @put(
        "/error",
        summary="Replace the error with a streamed raw body",
        request_max_body_size=None,
        operation_class=RawTextUpload,
        responses=problem_responses(404, 409, 413, 415, 422, 503) | ACCEPTED_RESPONSE,
    )
    async def upload_error(
        self,
        eval_id: EvalIdPath,
        request: Request[Any, Any, State],
        writes: FromDishka[FailoverWrites],
        settings: FromDishka[Settings],
    ) -> Response[EvaluationBody]:
        return await _upload(request, writes, settings, eval_id, "error")

    @post(
        "/celery-update",
        status_code=200,
        summary="Apply a Celery task state",
        responses=problem_responses(400, 404, 409, 413, 422, 503) | ACCEPTED_RESPONSE,
    )
    async def celery_update(
        self,
        eval_id: EvalIdPath,
        request: Request[Any, Any, State],
        data: CeleryUpdateBody,
        writes: FromDishka[FailoverWrites],
    ) -> Response[CeleryUpdateResult]:
        extra = unrecognized(await request.body(), _CELERY_FIELDS)
        update = CeleryUpdate(**msgspec.structs.asdict(data))
        if extra:
            update = msgspec.structs.replace(update, metadata={UNRECOGNIZED_KEY: extra})
        outcome = await writes.celery_update(evaluation_id(eval_id), update)
        result = CeleryUpdateResult(
            applied=outcome.applied,
            reason=outcome.reason,
            evaluation=EvaluationBody.of(outcome.evaluation),
        )
        return Response(result, headers=header(extra))


async def _payload(
    use_case: ReadPayload,
    eval_id: str,
    kind: PayloadKind,
    range_header: str | None,
    if_range: str | None,
    accept_encoding: str | None,
) -> Response[bytes]:
    identifier = evaluation_id(eval_id)
    for attempt in range(READ_ATTEMPTS):
        try:
            content = await use_case.execute(
                identifier,
                kind,
                range_header=range_header,
                if_range=if_range,
                accept_zstd=_accepts_zstd(accept_encoding),
            )
            if content.payload is None or content.chunks is None:
                return Response(b"", status_code=HTTP_204_NO_CONTENT, media_type=TEXT)
            # The first chunk opens the blob: a missing or unreadable one becomes a
            # problem response here, not a 200 whose body breaks off after the headers.
            first = await anext(content.chunks, b"")
        except BlobMissingError:
            # A write committed and removed the blob this record pointed at: read again.
            if attempt + 1 == READ_ATTEMPTS:
                raise
            continue
        return Stream(  # type: ignore[return-value]
            _prepend(first, content.chunks),
            status_code=HTTP_206_PARTIAL_CONTENT if content.byte_range else 200,
            media_type=TEXT,
            headers=_payload_headers(content),
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _payload_headers(content: PayloadContent) -> dict[str, str]:
    assert content.payload is not None
    headers = {
        "Content-Length": str(content.length),
        # Each content-coding is its own representation, with its own strong ETag.
        "ETag": etag(content.evaluation.version)
        if content.encoding is None
        else f'"{content.evaluation.version}-{content.encoding}"',
        "Last-Modified": format_datetime(content.evaluation.updated_at, usegmt=True),
        "Accept-Ranges": "bytes",
        "Vary": "Accept-Encoding",
        "X-Storage-Location": content.payload.location.value,
    }
    if content.byte_range is not None:
        byte_range = content.byte_range
        headers["Content-Range"] = (
            f"bytes {byte_range.start}-{byte_range.end - 1}/{byte_range.size}"
        )
    if content.encoding is not None:
        headers["Content-Encoding"] = content.encoding
    return headers


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


def _accepts_zstd(header: str | None) -> bool:
    """Whether ``Accept-Encoding`` lists zstd with a non-zero weight."""
    for item in (header or "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() == "zstd":
            weight = params.strip().removeprefix("q=").strip()
            return not weight or _weight(weight) > 0
    return False


def _weight(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        return 1.0


async def _upload(
    request: Request[Any, Any, State],
    writes: FailoverWrites,
    settings: Settings,
    eval_id: str,
    kind: PayloadKind,
) -> Response[EvaluationBody]:
    identifier = evaluation_id(eval_id)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in UPLOAD_TYPES:
        raise problem(
            HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            f"send the content as {' or '.join(UPLOAD_TYPES)}, not {media_type or 'nothing'}",
            "unsupported-media-type",
            field="Content-Type",
        )
    limit = settings.max_upload_bytes
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise _too_large(limit)
    evaluation = await writes.upload(identifier, kind, _limited(request.stream(), limit))
    return Response(
        EvaluationBody.of(evaluation, storage_info=True),
        headers={"ETag": etag(evaluation.version)},
    )


async def _limited(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """The body's chunks, stopping with 413 past ``limit`` bytes (chunked bodies too)."""
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        if chunk:
            yield chunk


def _too_large(limit: int) -> Exception:
    return problem(
        HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        "Upload too large",
        f"an upload may hold at most {limit} bytes (MAX_UPLOAD_BYTES)",
        "too-large",
    )
