"""The ``Range``, ``If-Range`` and ETag headers, read and written at the edge."""

import pytest

from domain.errors import UnsatisfiableRangeError
from domain.payload import ByteRange, clamp_range
from interfaces.http.conditional import etag, parse_if_range
from interfaces.http.ranges import RangeRequest, content_range, parse_range, range_request


def resolve_range(header: str, size: int) -> ByteRange | None:
    """What a ``Range`` header selects of ``size`` bytes: parsed here, clamped by the domain."""
    requested = parse_range(header)
    return None if requested is None else clamp_range(requested, size)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, (0, 1)),
        ("bytes=2-5", 10, (2, 6)),
        ("bytes=2-", 10, (2, 10)),
        ("bytes=8-100", 10, (8, 10)),
        ("bytes=-3", 10, (7, 10)),
        ("bytes=-30", 10, (0, 10)),
        (" Bytes = 1-2 ", 10, (1, 3)),
    ],
)
def test_a_single_range_is_resolved(header: str, size: int, expected: tuple[int, int]) -> None:
    resolved = resolve_range(header, size)
    assert resolved is not None
    assert (resolved.start, resolved.end, resolved.size) == (*expected, size)


@pytest.mark.parametrize(
    "header",
    [
        "items=0-1",
        "bytes=0-1,3-4",
        "bytes=5-2",
        "bytes=a-b",
        "bytes=",
        "bytes=-",
        "0-1",
        "bytes=\u00b2-",  # a superscript digit: str.isdigit() says yes, int() says no
        "bytes=-\u0663",  # an Arabic-Indic digit
        "bytes=" + "9" * 5000 + "-",  # past int()'s digit limit
        "bytes=-" + "9" * 5000,
    ],
)
def test_other_ranges_are_ignored(header: str) -> None:
    assert resolve_range(header, 10) is None


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=-5", 0)])
def test_a_range_outside_the_content_is_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(UnsatisfiableRangeError) as refused:
        resolve_range(header, size)
    assert refused.value.size == size


def test_no_header_is_no_range() -> None:
    assert parse_range(None) is None


def test_content_range_names_the_last_byte_inclusive() -> None:
    assert content_range(ByteRange(start=2, end=6, size=10)) == "bytes 2-5/10"


@pytest.mark.parametrize(("encoding", "expected"), [(None, '"3"'), ("zstd", '"3-zstd"')])
def test_each_representation_has_its_own_etag(encoding: str | None, expected: str) -> None:
    assert etag(3, encoding) == expected


@pytest.mark.parametrize(
    ("raw", "version"),
    [
        ('"3"', 3),
        (' "3" ', 3),
        ('"3', 3),  # a tag cut short still names the version it names
        ('"3-zstd"', None),  # another representation of version 3
        ('W/"3"', None),  # weak: never matches for a range
        ("Tue, 15 Nov 1994 08:12:31 GMT", None),  # a date
        ('"03"', None),
        ('"+3"', None),
        ('"\u0663"', None),  # an Arabic-Indic digit: int() reads it, no ETag holds it
        ('"' + "9" * 5000 + '"', None),  # past int()'s digit limit
    ],
)
def test_if_range_names_a_version_only_as_etag_writes_it(raw: str, version: int | None) -> None:
    assert parse_if_range(raw) == version
    if version is not None:
        assert parse_if_range(etag(version)) == version


def test_an_if_range_that_names_no_version_drops_the_range() -> None:
    assert range_request("bytes=0-1", 'W/"3"') == RangeRequest(None, None)
    kept = range_request("bytes=0-1", '"3"')
    assert kept.if_version == 3 and kept.byte_range == parse_range("bytes=0-1")
    assert range_request("bytes=0-1", None).if_version is None
