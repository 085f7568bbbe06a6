"""The ``Range`` header read into a ``RequestedRange``, and ``Content-Range`` written back."""

import re
from typing import Annotated, NamedTuple

from litestar.params import HeaderParameter

from domain.payload import ByteRange, RequestedRange
from interfaces.http.conditional import parse_if_range

RangeHeader = Annotated[
    str | None,
    HeaderParameter(
        name="Range",
        description="One byte range: `bytes=a-b`, `bytes=a-` or `bytes=-n` (206; 416 if outside)",
    ),
]
IfRangeHeader = Annotated[
    str | None,
    HeaderParameter(
        name="If-Range",
        description="Keep the Range only while this ETag is current (else the whole content)",
    ),
]

# At most 18 ASCII digits: always an int, never past int()'s digit limit.
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d{0,18})-(\d{0,18})\s*", re.ASCII | re.IGNORECASE)


def parse_range(header: str | None) -> RequestedRange | None:
    """The single byte range a ``Range`` header asks for.

    ``None`` means "send everything" (no header, another unit, several ranges or
    a malformed one: RFC 9110 lets a server ignore those).
    """
    match = None if header is None else _RANGE.fullmatch(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first:  # suffix: the last N bytes
        return RequestedRange(suffix=int(last)) if last else None
    start = int(first)
    if not last:
        return RequestedRange(start=start)
    if int(last) < start:
        return None
    return RequestedRange(start=start, end=int(last) + 1)


class RangeRequest(NamedTuple):
    """A ``Range`` with its ``If-Range``: keep ``byte_range`` only at ``if_version``."""

    byte_range: RequestedRange | None
    if_version: int | None


def range_request(range_header: str | None, if_range: str | None) -> RangeRequest:
    """The range to read and the version it holds for; an ``If-Range`` that can name
    no version (a date, a weak tag) drops the range, since it never matches."""
    byte_range = parse_range(range_header)
    if if_range is None:
        return RangeRequest(byte_range, None)
    version = parse_if_range(if_range)
    return RangeRequest(None if version is None else byte_range, version)


def content_range(byte_range: ByteRange) -> str:
    """``bytes first-last/size`` (``last`` inclusive) of a partial answer."""
    return f"bytes {byte_range.start}-{byte_range.end - 1}/{byte_range.size}"
