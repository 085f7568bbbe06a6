"""Payload reads: every single byte range, 416s, and zstd sent as stored.

The contract and the helpers: tests/integration/large_payloads.py.
"""

import httpx
import pytest
import zstandard

from interfaces.settings import Settings
from tests.integration.large_payloads import (
    IDENTITY,
    KINDS,
    Client,
    blob_dir,
    new,
    put_body,
    text_bytes,
)


def _range_cases(size: int) -> list[tuple[str, int, int]]:
    """(Range header, first byte, last byte) of satisfiable single ranges."""
    return [
        ("bytes=0-0", 0, 0),
        ("bytes=0-99", 0, 99),
        ("bytes=1-3", 1, 3),  # starts inside a multi-byte character
        (f"bytes={size // 2}-{size // 2 + 4_999}", size // 2, size // 2 + 4_999),
        (f"bytes={size - 1}-{size - 1}", size - 1, size - 1),
        (f"bytes={size - 10}-{size + 1_000}", size - 10, size - 1),  # last clamped
        (f"bytes={size - 777}-", size - 777, size - 1),
        ("bytes=10-", 10, size - 1),
        ("bytes=-1", size - 1, size - 1),
        ("bytes=-4321", size - 4321, size - 1),
        (f"bytes=-{size}", 0, size - 1),
        (f"bytes=-{size + 50}", 0, size - 1),  # longer suffix than the content: all of it
        ("bytes=0-", 0, size - 1),
    ]


@pytest.mark.parametrize("size", [60_000, 700_001], ids=["inline", "file"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_range_form(client: Client, size: int, kind: str) -> None:
    eval_id = f"range-{kind}-{size}"
    new(client, eval_id)
    body = text_bytes(size, 11)
    assert put_body(client, eval_id, body, kind).status_code == 200
    url = f"/evaluations/{eval_id}/{kind}"

    for header, first, last in _range_cases(size):
        for extra in ({}, {"Accept-Encoding": "zstd"}):  # a Range always gets identity bytes
            response = client.get(url, headers={"Range": header, **IDENTITY, **extra})
            where = f"{header} {extra}"
            assert response.status_code == 206, where
            assert response.headers["content-range"] == f"bytes {first}-{last}/{size}", where
            assert response.headers["content-length"] == str(last - first + 1), where
            assert "content-encoding" not in response.headers, where
            assert response.content == body[first : last + 1], where

    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        response = client.get(url, headers={"Range": header, **IDENTITY})
        assert response.status_code == 416, header
        assert response.headers["content-range"] == f"bytes */{size}", header

    # not a single valid byte range: RFC 9110 lets the server ignore the header
    for header in ("bytes=5-2", "items=0-1", "bytes=abc"):
        response = client.get(url, headers={"Range": header, **IDENTITY})
        assert response.status_code in (200, 416), header
        if response.status_code == 200:
            assert response.content == body, header


def test_ranges_of_an_empty_payload_are_416(client: Client) -> None:
    new(client, "range-empty")
    assert put_body(client, "range-empty", b"").status_code == 200
    for header in ("bytes=0-", "bytes=0-0", "bytes=-5"):
        response = client.get("/evaluations/range-empty/output", headers={"Range": header})
        assert response.status_code == 416, header
        assert response.headers["content-range"] == "bytes */0", header


# -- zstd pass-through ------------------------------------------------------------------------


def _raw_get(client: httpx.Client, url: str, encoding: str) -> tuple[httpx.Response, bytes]:
    """The response with its body exactly as sent (no client-side decoding)."""
    with client.stream("GET", url, headers={"Accept-Encoding": encoding}) as response:
        return response, b"".join(response.iter_raw())


@pytest.mark.parametrize("kind", KINDS)
def test_zstd_blob_is_sent_as_stored(client: Client, backend_settings: Settings, kind: str) -> None:
    new(client, "zstd-1")
    body = text_bytes(600_000, 12)
    assert put_body(client, "zstd-1", body, kind).status_code == 200
    [blob] = blob_dir(backend_settings, "zstd-1").glob(f"{kind}.*.txt.zst")
    on_disk = blob.read_bytes()
    url = f"/evaluations/zstd-1/{kind}"

    for accept in ("zstd", "gzip, deflate, zstd", "zstd;q=0.5, identity;q=0.1"):
        response, raw = _raw_get(client, url, accept)
        assert response.status_code == 200, accept
        assert response.headers["content-encoding"] == "zstd", accept
        assert raw == on_disk, accept
        assert response.headers["content-length"] == str(len(on_disk)), accept
        assert zstandard.ZstdDecompressor().stream_reader(raw).read() == body, accept

    for accept in ("identity", "gzip, deflate", "zstd;q=0"):
        response, raw = _raw_get(client, url, accept)
        assert response.status_code == 200, accept
        assert response.headers.get("content-encoding", "identity") == "identity", accept
        assert raw == body, accept
        assert response.headers["content-length"] == str(len(body)), accept


def test_inline_payloads_are_correct_whatever_the_client_accepts(client: Client) -> None:
    new(client, "zstd-inline")
    body = text_bytes(50_000, 13)
    assert put_body(client, "zstd-inline", body).status_code == 200
    for accept in ("zstd", "identity", "gzip, deflate, zstd"):
        response = client.get(
            "/evaluations/zstd-inline/output", headers={"Accept-Encoding": accept}
        )
        assert response.status_code == 200
        assert response.content == body, accept  # httpx decodes whatever coding was used
