from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from dishka.integrations.litestar import FromDishka
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import OpenAPIMediaType as MediaType
from litestar.openapi.spec import Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.params import JSONBody, QueryParameter
from litestar.response import Redirect
from litestar.status_codes import (
    HTTP_307_TEMPORARY_REDIRECT,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_415_UNSUPPORTED_MEDIA_TYPE,
)

from application.commands import CeleryUpdate
from application.errors import NoDirectUrlError
from application.failover.writes import Writes
from application.use_cases.evaluation_content import GetCompleteEvaluation, ReadPayload
from application.use_cases.object_storage import GetPayloadUrl
from domain.evaluation import UNRECOGNIZED_KEY
from domain.payload import PayloadKind
from interfaces.http.conditional import etag
from interfaces.http.encodings import AcceptEncodingHeader, accepts_zstd
from interfaces.http.errors import ACCEPTED_RESPONSE, problem, problem_responses
from interfaces.http.params import EvalIdPath, evaluation_id
from interfaces.http.payload_responses import PAYLOAD_RESPONSES, TEXT, payload_response
from interfaces.http.ranges import IfRangeHeader, RangeHeader, range_request
from interfaces.http.schemas import (
    CeleryUpdateBody,
    CeleryUpdateResult,
    CompleteEvaluationBody,
    EvaluationBody,
    PayloadUrlBody,
)
from interfaces.http.unrecognized import header, known_names, unrecognized
from interfaces.settings import Settings

_CELERY_FIELDS = known_names(CeleryUpdateBody)
UPLOAD_TYPES = ("text/plain", "application/octet-stream")

RedirectParam = Annotated[
    bool,
    QueryParameter(
        name="redirect",
        description="true: answer 307 to a presigned S3 URL when the content is in S3 "
        "(otherwise the content is served here as usual)",
    ),
]


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


def _upload_handler(kind: PayloadKind) -> HTTPRouteHandler:
    """``PUT /{kind}``: the output or the error replaced by the streamed raw body."""

    async def upload(
        _self: Controller,
        eval_id: EvalIdPath,
        request: Request[Any, Any, State],
        writes: FromDishka[Writes],
        settings: FromDishka[Settings],
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
        limit = settings.limits.upload_bytes
        announced = request.headers.get("content-length")
        if announced is not None and announced.isdigit() and int(announced) > limit:
            raise _too_large(limit)
        evaluation = await writes.upload(identifier, kind, _limited(request.stream(), limit))
        return Response(
            EvaluationBody.of(evaluation, storage_info=True),
            headers={"ETag": etag(evaluation.version)},
        )

    upload.__name__ = upload.__qualname__ = f"upload_{kind}"  # Litestar names the operation by it
    return put(
        f"/{kind}",
        summary=f"Replace the {kind} with a streamed raw body",
        request_max_body_size=None,
        operation_class=RawTextUpload,
        responses=problem_responses(404, 409, 413, 415, 422, 503) | ACCEPTED_RESPONSE,
    )(upload)


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
        if_range: IfRangeHeader = None,
        accept_encoding: AcceptEncodingHeader = None,
        redirect: RedirectParam = False,
    ) -> Response[bytes]:
        if redirect:
            try:
                signed = await links.execute(evaluation_id(eval_id), "output")
            except NoDirectUrlError:
                pass  # not in S3: served from here below
            else:
                return Redirect(signed.url, status_code=HTTP_307_TEMPORARY_REDIRECT)
        return await _read(use_case, eval_id, "output", range_header, if_range, accept_encoding)

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
        return PayloadUrlBody.of(await use_case.execute(evaluation_id(eval_id), "output"))

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
        if_range: IfRangeHeader = None,
        accept_encoding: AcceptEncodingHeader = None,
    ) -> Response[bytes]:
        return await _read(use_case, eval_id, "error", range_header, if_range, accept_encoding)

    upload_output = _upload_handler("output")
    upload_error = _upload_handler("error")

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
        data: JSONBody[CeleryUpdateBody],
        writes: FromDishka[Writes],
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


async def _read(
    use_case: ReadPayload,
    eval_id: str,
    kind: PayloadKind,
    range_header: str | None,
    if_range: str | None,
    accept_encoding: str | None,
) -> Response[bytes]:
    """One read of an output or error, its request headers parsed here at the edge."""
    asked = range_request(range_header, if_range)
    content = await use_case.execute(
        evaluation_id(eval_id),
        kind,
        byte_range=asked.byte_range,
        if_version=asked.if_version,
        accept_zstd=accepts_zstd(accept_encoding),
    )
    return payload_response(content)


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
