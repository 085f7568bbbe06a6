"""The answer to a payload read: its status, headers and streamed body."""

from email.utils import format_datetime

from litestar import Response
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Stream
from litestar.status_codes import HTTP_204_NO_CONTENT, HTTP_206_PARTIAL_CONTENT

from application.use_cases.evaluation_content import PayloadContent
from interfaces.http.conditional import etag
from interfaces.http.errors import problem_responses
from interfaces.http.ranges import content_range

TEXT = "text/plain"  # Litestar adds "; charset=utf-8"

PAYLOAD_RESPONSES = {
    **problem_responses(400, 404, 416, 422, 503),
    HTTP_204_NO_CONTENT: ResponseSpec(None, description="Nothing stored"),
    HTTP_206_PARTIAL_CONTENT: ResponseSpec(
        str, media_type=TEXT, description="The requested byte range", generate_examples=False
    ),
}


def payload_response(content: PayloadContent) -> Response[bytes]:
    """204 without a payload; else 200, or 206 for a range, streaming ``content.chunks``."""
    if content.payload is None or content.chunks is None:
        return Response(b"", status_code=HTTP_204_NO_CONTENT, media_type=TEXT)
    return Stream(  # type: ignore[return-value]
        content.chunks,
        status_code=HTTP_206_PARTIAL_CONTENT if content.byte_range else 200,
        media_type=TEXT,
        headers=_headers(content),
    )


def _headers(content: PayloadContent) -> dict[str, str]:
    assert content.payload is not None
    headers = {
        "Content-Length": str(content.length),
        # Each content-coding is its own representation, with its own strong ETag.
        "ETag": etag(content.evaluation.version, content.encoding),
        "Last-Modified": format_datetime(content.evaluation.updated_at, usegmt=True),
        "Accept-Ranges": "bytes",
        "Vary": "Accept-Encoding",
        "X-Storage-Location": content.payload.location.value,
    }
    if content.byte_range is not None:
        headers["Content-Range"] = content_range(content.byte_range)
    if content.encoding is not None:
        headers["Content-Encoding"] = content.encoding
    return headers
