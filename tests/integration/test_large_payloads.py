"""Streaming payload endpoints: ``PUT``/``GET /evaluations/{id}/output`` and ``/error``.

The contract under test:

- ``PUT`` takes the raw body (``text/plain`` or ``application/octet-stream``), UTF-8,
  streamed to the blob store; answers 200 with the record (``_storage_info`` included)
  and an ``ETag``; invalid UTF-8 or NUL is 422; up to ``LARGE_FILE_THRESHOLD`` bytes the
  text stays inline, above it goes to ``evaluations/{id}/{kind}.<token>.txt.zst``; an upload
  that stops mid-body leaves the previous content (and no temp file) behind; bodies
  over ``MAX_UPLOAD_BYTES`` are refused.
- ``GET`` streams the content with ``Content-Length``, ``ETag``, ``Last-Modified``,
  ``Accept-Ranges: bytes``; single byte ranges give 206 and exactly those bytes, an
  unsatisfiable one 416 with ``Content-Range: bytes */<size>``; with
  ``Accept-Encoding: zstd`` and no ``Range`` a zstd-stored blob is sent as stored.

Most tests run on both configurations (embedded, PostgreSQL + Redis) through the
Litestar test client. Chunk boundaries are exercised by driving the ASGI app directly
(the test client hands the app the body in one piece); interrupted and concurrent
uploads use a real uvicorn server; the 300 MB test (``slow``) a real server process.

httpx asks for ``gzip, deflate, zstd`` by default, so every read that means the
identity bytes sends ``Accept-Encoding: identity`` explicitly.
"""

import codecs
import hashlib
import os
import random
import re
import socket
import statistics
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import zstandard
from litestar.testing import TestClient

from interfaces.http.app import create_app
from interfaces.settings import Settings
from tests.integration.conftest import ClientFactory
from tests.services import serve_in_thread, serve_subprocess

Client = TestClient[Any]

THRESHOLD = 102_400
IDENTITY = {"Accept-Encoding": "identity"}
KINDS = ("output", "error")
TEMP_WAIT_S = 5.0


# -- helpers ------------------------------------------------------------------------------


def new(client: httpx.Client, eval_id: str) -> None:
    response = client.post("/evaluations", json={"id": eval_id, "code": "print(1)"})
    assert response.status_code == 200, response.text


def text_bytes(size: int, seed: int = 0) -> bytes:
    """Exactly ``size`` bytes of valid UTF-8 mixing 1-, 2-, 3- and 4-byte characters."""
    rng = random.Random(seed)
    words = ("ok", "✓", "🚀", "café", "step", "Ω", "loss=0.25", "█▌", "\t", "naïve")
    parts: list[bytes] = []
    length = 0
    while length < size:
        line = (" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + "\n").encode()
        parts.append(line)
        length += len(line)
    data = b"".join(parts)[:size]
    while data and not _is_utf8(data):  # the cut split a character: pad with ASCII
        data = data[:-1]
    return data + b"x" * (size - len(data))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def cuts_characters(chunks: list[bytes]) -> bool:
    """True when at least one chunk boundary falls inside a multi-byte character."""
    return any(chunk and not _is_utf8(chunk) for chunk in chunks)


def storage(client: httpx.Client, eval_id: str) -> dict[str, Any]:
    response = client.get(f"/evaluations/{eval_id}", params={"include_storage_info": "true"})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def blob_dir(settings: Settings, eval_id: str) -> Path:
    return Path(settings.storage.file_storage_path) / "evaluations" / eval_id


def stray_files(settings: Settings, eval_id: str) -> list[str]:
    """Entries of the evaluation's directory other than metadata.json and one blob per kind.

    Every write names its blob ``<kind>.<token>.txt[.zst]``; a second blob of a kind
    is one a failed or replaced write left behind, and a temp file is a torn write.
    """
    directory = blob_dir(settings, eval_id)
    if not directory.exists():
        return []
    names = sorted(os.listdir(directory))
    stray = [name for name in names if name != "metadata.json" and not _is_blob(name)]
    for kind in KINDS:
        blobs = [name for name in names if _is_blob(name) and name.startswith(f"{kind}.")]
        stray += blobs[1:] if len(blobs) > 1 else []
    return sorted(stray)


def _is_blob(name: str) -> bool:
    return re.fullmatch(r"(output|error)\.[0-9a-f]{12}\.txt(\.zst)?", name) is not None


def wait_no_stray_files(settings: Settings, eval_id: str) -> list[str]:
    deadline = time.monotonic() + TEMP_WAIT_S
    while (left := stray_files(settings, eval_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def put_body(
    client: httpx.Client,
    eval_id: str,
    body: bytes | Iterable[bytes],
    kind: str = "output",
    content_type: str = "text/plain; charset=utf-8",
) -> httpx.Response:
    return client.put(
        f"/evaluations/{eval_id}/{kind}", content=body, headers={"Content-Type": content_type}
    )


def get_identity(client: httpx.Client, eval_id: str, kind: str = "output") -> bytes:
    response = client.get(f"/evaluations/{eval_id}/{kind}", headers=IDENTITY)
    assert response.status_code == 200, response.text
    assert "content-encoding" not in response.headers
    return response.content


def assert_stored(
    client: httpx.Client,
    settings: Settings,
    eval_id: str,
    body: bytes,
    kind: str = "output",
) -> None:
    """The record, the blob on disk and ``GET`` all hold exactly ``body``."""
    record = storage(client, eval_id)
    info = record["_storage_info"]
    text = body.decode()
    on_file = len(body) > THRESHOLD
    assert info[f"{kind}_size"] == len(body)
    assert info[f"{kind}_location"] == ("file" if on_file else "inline")
    if kind == "output":  # the record has no ``error_compressed``
        assert info["output_compressed"] is on_file
    assert info[f"{kind}_truncated"] is on_file
    assert record[f"{kind}_truncated"] is on_file
    assert record[kind] == (text[: settings.storage.preview_size] if on_file else text)
    blobs = sorted(blob_dir(settings, eval_id).glob(f"{kind}.*.txt*"))
    if on_file:
        [blob] = blobs  # the replaced one is gone once the record points at this one
        assert re.fullmatch(rf"{kind}\.[0-9a-f]{{12}}\.txt\.zst", blob.name), blob.name
        assert zstandard.ZstdDecompressor().stream_reader(blob.read_bytes()).read() == body
    else:
        assert blobs == []
    assert get_identity(client, eval_id, kind) == body


# -- driving the ASGI app with chosen chunk boundaries ------------------------------------


class AsgiResult:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()


async def _drive(
    app: Any,
    method: str,
    path: str,
    chunks: list[bytes],
    headers: dict[str, str],
    disconnect_after: int | None,
) -> AsgiResult:
    """One request whose body reaches the app as exactly ``chunks`` (one message each).

    With ``disconnect_after`` the client "goes away" after that many chunks: the next
    ``receive`` answers ``http.disconnect``, as a server does when the socket closes.
    """
    result = AsgiResult()
    done = anyio.Event()
    pending = list(chunks)
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if disconnect_after is not None and sent >= disconnect_after:
            return {"type": "http.disconnect"}
        if pending:
            sent += 1
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            result.body += message.get("body", b"")
            if not message.get("more_body", False):
                done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "extensions": {},
        "state": {},
    }
    try:
        await app(scope, receive, send)
    except Exception:  # the app may let a disconnect escape: only the stored state matters
        if disconnect_after is None:
            raise
    return result


def asgi_put(
    client: Client,
    eval_id: str,
    chunks: list[bytes],
    *,
    kind: str = "output",
    content_length: bool = True,
    disconnect_after: int | None = None,
    declared_length: int | None = None,
) -> AsgiResult:
    headers = {"content-type": "application/octet-stream"}
    if content_length:
        total = sum(len(chunk) for chunk in chunks)
        headers["content-length"] = str(declared_length if declared_length is not None else total)
    # Annotated: with ``client.app`` typed Any, mypy cannot pick one of ``call``'s overloads.
    result: AsgiResult = client.blocking_portal.call(
        _drive, client.app, "PUT", f"/evaluations/{eval_id}/{kind}", chunks, headers,
        disconnect_after,
    )  # fmt: skip
    return result


# -- round trips ----------------------------------------------------------------------------

SIZES = [0, 1, THRESHOLD - 1, THRESHOLD, THRESHOLD + 1, 5_000_000]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES, ids=[f"{s}B" for s in SIZES])
def test_round_trip_is_byte_exact(
    client: Client, backend_settings: Settings, size: int, kind: str
) -> None:
    eval_id = f"rt-{kind}-{size}"
    new(client, eval_id)
    body = text_bytes(size, seed=size)
    content_type = "text/plain; charset=utf-8" if kind == "output" else "application/octet-stream"

    response = put_body(client, eval_id, body, kind, content_type)

    assert response.status_code == 200, response.text
    record = response.json()
    assert record["id"] == eval_id
    info = record["_storage_info"]
    assert info[f"{kind}_size"] == size
    assert info[f"{kind}_location"] == ("file" if size > THRESHOLD else "inline")
    if kind == "output":
        assert info["output_compressed"] is (size > THRESHOLD)
    assert response.headers["etag"] == client.get(f"/evaluations/{eval_id}").headers["etag"]
    assert_stored(client, backend_settings, eval_id, body, kind)

    got = client.get(f"/evaluations/{eval_id}/{kind}", headers=IDENTITY)
    assert got.status_code == 200
    assert got.headers["content-length"] == str(size)
    assert got.headers["accept-ranges"] == "bytes"
    assert got.headers["content-type"].startswith("text/plain")
    assert got.headers["etag"]
    parsedate_to_datetime(got.headers["last-modified"])  # a valid HTTP date
    other = "error" if kind == "output" else "output"
    assert client.get(f"/evaluations/{eval_id}/{other}").status_code == 204  # never written
    complete = client.get(f"/evaluations/{eval_id}/complete").json()
    assert complete["evaluation"][kind] == body.decode()


def test_a_new_upload_replaces_the_content_and_its_validators(
    client: Client, backend_settings: Settings
) -> None:
    new(client, "replace-1")
    big, small, big2 = text_bytes(300_000, 1), text_bytes(500, 2), text_bytes(200_000, 3)
    etags = []
    for body in (big, small, big2, small):
        assert put_body(client, "replace-1", body).status_code == 200
        assert_stored(client, backend_settings, "replace-1", body)
        etags.append(client.get("/evaluations/replace-1/output", headers=IDENTITY).headers["etag"])
    assert len(set(etags[:3])) == 3, f"the ETag must change with the content: {etags}"
    assert not list(blob_dir(backend_settings, "replace-1").glob("output.*"))
    assert stray_files(backend_settings, "replace-1") == []


def test_small_thresholds_route_a_stream_like_a_json_update(make_client: ClientFactory) -> None:
    client = make_client(
        storage={"large_file_threshold": 50, "compression_threshold": 20, "preview_size": 4}
    )
    new(client, "tiny-stream")
    body = "✓é🚀".encode() * 10  # 90 bytes, 30 characters
    response = asgi_put(client, "tiny-stream", split_every(body, 5))
    assert response.status == 200, bytes(response.body)
    record = storage(client, "tiny-stream")
    assert record["_storage_info"]["output_location"] == "file"
    assert record["_storage_info"]["output_size"] == 90
    assert record["output"] == "✓é🚀✓"
    assert get_identity(client, "tiny-stream") == body
    exact = "✓é🚀".encode() * 5 + b"12345"  # 50 bytes: still inline
    assert asgi_put(client, "tiny-stream", split_every(exact, 7)).status == 200
    assert storage(client, "tiny-stream")["_storage_info"]["output_location"] == "inline"
    assert get_identity(client, "tiny-stream") == exact


def test_unknown_evaluation_is_404(client: Client) -> None:
    assert put_body(client, "no-such-eval", b"x").status_code == 404
    assert client.get("/evaluations/no-such-eval/output").status_code == 404
    assert (
        client.get("/evaluations/no-such-eval/error", headers={"Range": "bytes=0-1"}).status_code
        == 404
    )


# -- chunk boundaries inside characters --------------------------------------------------

SPLITS = [
    # (body size, chunk size): odd chunk sizes cut 2-, 3- and 4-byte characters
    (10_000, 1),
    (10_000, 7),
    (THRESHOLD + 3, 4093),
    (350_000, 65_537),
    (2_000_000, 131_071),
]


@pytest.mark.parametrize(("size", "chunk"), SPLITS, ids=[f"{s}B-by-{c}" for s, c in SPLITS])
def test_characters_split_across_chunks_survive(
    client: Client, backend_settings: Settings, size: int, chunk: int
) -> None:
    eval_id = f"split-{size}-{chunk}"
    new(client, eval_id)
    body = text_bytes(size, seed=chunk)
    chunks = split_every(body, chunk)
    assert chunk == 1 or cuts_characters(chunks)

    result = asgi_put(client, eval_id, chunks)

    assert result.status == 200, bytes(result.body)[:500]
    assert_stored(client, backend_settings, eval_id, body)


def test_a_character_straddling_the_threshold_is_kept_whole(
    client: Client, backend_settings: Settings
) -> None:
    """The first chunk is exactly LARGE_FILE_THRESHOLD bytes and ends inside a '🚀'."""
    new(client, "straddle")
    rocket = "🚀".encode()
    cases = [
        [b"a" * (THRESHOLD - 2) + rocket[:2], rocket[2:] + b"tail"],  # file, THRESHOLD + 6
        [b"a" * (THRESHOLD - 1) + rocket[:1], rocket[1:]],  # file, THRESHOLD + 3
        [b"a" * (THRESHOLD - 4) + rocket[:3], rocket[3:]],  # inline, exactly THRESHOLD
        [b"a" * (THRESHOLD - 3) + rocket[:3], rocket[3:]],  # file, THRESHOLD + 1
    ]
    for chunks in cases:
        body = b"".join(chunks)
        result = asgi_put(client, "straddle", chunks)
        assert result.status == 200, (len(body), bytes(result.body)[:300])
        assert_stored(client, backend_settings, "straddle", body)


def test_the_preview_is_whole_characters_when_chunks_cut_them(
    make_client: ClientFactory, backend_settings: Settings
) -> None:
    client = make_client(storage={"preview_size": 1000})
    new(client, "preview")
    body = ("🚀" * 2000).encode() + b"x" * THRESHOLD
    assert asgi_put(client, "preview", split_every(body, 3)).status == 200
    record = storage(client, "preview")
    assert record["output"] == "🚀" * 1000
    assert get_identity(client, "preview") == body


# -- refused bodies -------------------------------------------------------------------------

PREVIOUS = 150_000

BAD_BODIES = {
    "invalid-start-byte": b"\xff",
    "nul": b"ok\x00ok",
    "truncated-at-end": b"abc" + "✓".encode()[:2],
    "overlong": b"\xc0\xaf",
    "surrogate": b"\xed\xa0\x80",
    "nul-after-threshold": text_bytes(300_000, 9) + b"\x00" + b"more",
    "invalid-after-threshold": text_bytes(300_000, 9) + b"\xfe" + b"more",
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_invalid_text_is_422_and_changes_nothing(
    client: Client, backend_settings: Settings, name: str
) -> None:
    new(client, "bad-1")
    previous = text_bytes(PREVIOUS, 5)
    assert put_body(client, "bad-1", previous).status_code == 200
    before = storage(client, "bad-1")

    response = put_body(client, "bad-1", BAD_BODIES[name], content_type="application/octet-stream")

    assert response.status_code == 422, response.text
    assert storage(client, "bad-1")["_storage_info"] == before["_storage_info"]
    assert_stored(client, backend_settings, "bad-1", previous)
    assert wait_no_stray_files(backend_settings, "bad-1") == []


def test_an_invalid_sequence_split_across_chunks_is_422(
    client: Client, backend_settings: Settings
) -> None:
    new(client, "bad-split")
    assert put_body(client, "bad-split", b"keep me").status_code == 200
    # '✓' starts in one chunk and the next chunk does not continue it
    chunks = [b"a" * 200_000 + "✓".encode()[:1], b"Abc" + b"b" * 10]
    assert asgi_put(client, "bad-split", chunks).status == 422
    assert get_identity(client, "bad-split") == b"keep me"
    assert wait_no_stray_files(backend_settings, "bad-split") == []


def test_uploads_over_max_upload_bytes_are_413(
    make_client: ClientFactory, backend_settings: Settings
) -> None:
    client = make_client(limits={"upload_bytes": 300_000})
    new(client, "limit")
    previous = text_bytes(PREVIOUS, 6)
    assert put_body(client, "limit", previous).status_code == 200
    exact = text_bytes(300_000, 7)
    assert put_body(client, "limit", exact).status_code == 200
    assert_stored(client, backend_settings, "limit", exact)

    over = text_bytes(300_001, 8)
    assert put_body(client, "limit", over).status_code == 413
    # without Content-Length the limit is found while streaming
    result = asgi_put(client, "limit", split_every(over, 65_536), content_length=False)
    assert result.status == 413, bytes(result.body)[:300]
    assert_stored(client, backend_settings, "limit", exact)
    assert wait_no_stray_files(backend_settings, "limit") == []


def test_uploads_are_not_capped_by_max_request_bytes(
    make_client: ClientFactory, backend_settings: Settings
) -> None:
    """MAX_REQUEST_BYTES bounds JSON bodies; payload uploads answer to MAX_UPLOAD_BYTES."""
    client = make_client(limits={"request_bytes": 100_000})
    new(client, "req-limit")
    body = text_bytes(1_000_000, 10)
    response = asgi_put(client, "req-limit", split_every(body, 65_536))
    assert response.status == 200, bytes(response.body)[:300]
    assert_stored(client, backend_settings, "req-limit", body)


# -- ranges ----------------------------------------------------------------------------------


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


# -- real server: concurrency and interrupted uploads --------------------------------------


@pytest.fixture
def server(backend_settings: Settings) -> Iterator[str]:
    with serve_in_thread(create_app(backend_settings)) as base:
        yield base


def _chunks_of(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_concurrent_uploads_to_different_evaluations(
    server: str, backend_settings: Settings
) -> None:
    sizes = [1_500_000, 900_000, 2_500_000, 50_000, THRESHOLD + 1, 1_200_000]
    bodies = {f"conc-{i}": text_bytes(size, 100 + i) for i, size in enumerate(sizes)}
    with httpx.Client(base_url=server, timeout=60) as client:
        for eval_id in bodies:
            new(client, eval_id)
    barrier = threading.Barrier(len(bodies))

    def upload(eval_id: str) -> int:
        with httpx.Client(base_url=server, timeout=60) as own:
            barrier.wait()
            # an iterator body goes out chunked; 8191-byte chunks cut characters
            response = put_body(own, eval_id, _chunks_of(bodies[eval_id], 8191))
            return response.status_code

    with ThreadPoolExecutor(len(bodies)) as pool:
        statuses = dict(zip(bodies, pool.map(upload, bodies), strict=True))
    assert statuses == dict.fromkeys(bodies, 200)
    with httpx.Client(base_url=server, timeout=60) as client:
        for eval_id, body in bodies.items():
            assert_stored(client, backend_settings, eval_id, body)
            assert stray_files(backend_settings, eval_id) == []


def test_concurrent_uploads_to_one_evaluation_leave_one_whole_payload(
    server: str, backend_settings: Settings
) -> None:
    candidates = [text_bytes(1_200_000, 200), text_bytes(700_000, 201), text_bytes(90_000, 202)]
    with httpx.Client(base_url=server, timeout=60) as client:
        new(client, "same-1")
    for round_ in range(8):
        barrier = threading.Barrier(len(candidates))

        def upload(body: bytes, barrier: threading.Barrier = barrier) -> int:
            with httpx.Client(base_url=server, timeout=60) as own:
                barrier.wait()
                return put_body(own, "same-1", _chunks_of(body, 65_536)).status_code

        with ThreadPoolExecutor(len(candidates)) as pool:
            statuses = list(pool.map(upload, candidates))
        assert all(status == 200 for status in statuses), statuses
        with httpx.Client(base_url=server, timeout=60) as client:
            got = get_identity(client, "same-1")
            assert got in candidates, f"round {round_}: a mix of uploads ({len(got)} bytes)"
            assert_stored(client, backend_settings, "same-1", got)
        assert wait_no_stray_files(backend_settings, "same-1") == []


def test_readers_during_replacements_get_one_whole_payload(
    server: str, backend_settings: Settings
) -> None:
    """While one writer keeps replacing the output, every read is one upload, whole."""
    a, b = text_bytes(1_200_000, 210), text_bytes(700_000, 211)
    with httpx.Client(base_url=server, timeout=60) as client:
        new(client, "readers-1")
        assert put_body(client, "readers-1", a).status_code == 200
    done = threading.Event()
    seen: list[str] = []

    def write() -> None:
        try:
            with httpx.Client(base_url=server, timeout=60) as own:
                for i in range(40):
                    assert put_body(own, "readers-1", b if i % 2 == 0 else a).status_code == 200
        finally:
            done.set()

    def read(encoding: str) -> None:
        with httpx.Client(base_url=server, timeout=60) as own:
            while not done.is_set():
                try:
                    got = own.get(
                        "/evaluations/readers-1/output", headers={"Accept-Encoding": encoding}
                    ).content
                    seen.append("whole" if got in (a, b) else f"{encoding}: mix of {len(got)} B")
                except httpx.HTTPError as exc:
                    seen.append(f"{encoding}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=write)] + [
        threading.Thread(target=read, args=(encoding,)) for encoding in ("identity", "zstd")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bad = [outcome for outcome in seen if outcome != "whole"]
    assert seen and not bad, f"{len(bad)} of {len(seen)} reads were not one whole upload: {bad[:5]}"


def _port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def _send_partial_upload(
    base: str, path: str, declared: int, body: bytes, *, chunked: bool
) -> None:
    """Headers promising ``declared`` bytes (or a chunked body), then ``body`` and close."""
    with socket.create_connection(("127.0.0.1", _port_of(base)), timeout=10) as sock:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {declared}"
        sock.sendall(
            (
                f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/octet-stream\r\n{framing}\r\n\r\n"
            ).encode()
        )
        for piece in _chunks_of(body, 65_536):
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
        time.sleep(0.3)  # let the server take in what was sent, then vanish mid-body


@pytest.mark.parametrize(
    "previous_size", [5_000, 400_000], ids=["previous-inline", "previous-file"]
)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_interrupted_upload_leaves_the_previous_output(
    server: str, backend_settings: Settings, previous_size: int, chunked: bool
) -> None:
    previous = text_bytes(previous_size, 300)
    with httpx.Client(base_url=server, timeout=30) as client:
        new(client, "cut-1")
        assert put_body(client, "cut-1", previous).status_code == 200
        before = storage(client, "cut-1")

    _send_partial_upload(
        server, "/evaluations/cut-1/output", 5_000_000, text_bytes(1_000_000, 301), chunked=chunked
    )

    assert wait_no_stray_files(backend_settings, "cut-1") == []
    with httpx.Client(base_url=server, timeout=30) as client:
        assert storage(client, "cut-1")["_storage_info"] == before["_storage_info"]
        assert_stored(client, backend_settings, "cut-1", previous)
        after = text_bytes(250_000, 302)  # the evaluation still takes uploads
        assert put_body(client, "cut-1", after).status_code == 200
        assert_stored(client, backend_settings, "cut-1", after)


@pytest.mark.parametrize("sent", [1, 3, 40], ids=["in-buffer", "past-threshold", "deep"])
def test_a_disconnect_mid_body_changes_nothing(
    client: Client, backend_settings: Settings, sent: int
) -> None:
    """The same through the ASGI app: ``http.disconnect`` after ``sent`` 64 KiB chunks."""
    new(client, "gone-1")
    previous = text_bytes(400_000, 400)
    assert put_body(client, "gone-1", previous).status_code == 200
    body = text_bytes(4_000_000, 401)
    result = asgi_put(client, "gone-1", split_every(body, 65_536), disconnect_after=sent)
    assert result.status != 200
    assert wait_no_stray_files(backend_settings, "gone-1") == []
    assert_stored(client, backend_settings, "gone-1", previous)


# -- 300 MB through a real server process ---------------------------------------------------

BIG_SIZE = 300 * 1024 * 1024
RSS_LIMIT = 64 * 1024 * 1024
_ALPHABET = bytes(
    (b"abcdefghijklmnopqrstuvwxyz0123456789 .:=-_/[](){}\n" * 6)[:256]
)  # 256 entries: maps any byte to a printable one


def _piece(index: int) -> bytes:
    raw = random.Random(index).randbytes(1 << 20).translate(_ALPHABET)
    return raw.replace(b"{", "✓".encode()).replace(b"}", "🚀".encode())


def big_payload(size: int = BIG_SIZE, chunk_size: int = (1 << 20) + 7) -> Iterator[bytes]:
    """``size`` bytes of UTF-8 text in ``chunk_size`` chunks, fast and deterministic.

    Seeded random bytes mapped to printable ASCII with '✓' and '🚀' spliced in, re-cut
    at a fixed byte count, so characters straddle the chunks; the end is a whole one.
    """
    buffer = bytearray()
    produced = 0
    index = 0
    while produced < size:
        piece = _piece(index)
        index += 1
        need = size - produced
        if len(piece) >= need:
            decoder = codecs.getincrementaldecoder("utf-8")()
            decoder.decode(piece[:need], final=False)
            valid = need - len(decoder.getstate()[0])  # drop a character cut at the end
            piece = piece[:valid] + b"\n" * (need - valid)
        buffer += piece
        produced += len(piece)
        while len(buffer) >= chunk_size:
            yield bytes(buffer[:chunk_size])
            del buffer[:chunk_size]
    if buffer:
        yield bytes(buffer)


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = _rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss(self.pid))

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, _rss(self.pid))


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    files = tmp_path / "files"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'storage.db'}",
        "FILE_STORAGE_PATH": str(files),
        "LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)
    with serve_subprocess(env, tmp_path / "server.log") as (base, pid):
        yield base, pid, files


@pytest.mark.slow
@pytest.mark.e2e
def test_300_mb_round_trip_in_bounded_memory(server_process: tuple[str, int, Path]) -> None:
    base, pid, files = server_process
    expected = hashlib.sha256()
    size = 0
    for chunk in big_payload():
        expected.update(chunk)
        size += len(chunk)
    assert size == BIG_SIZE

    with httpx.Client(base_url=base, timeout=httpx.Timeout(600, connect=10)) as client:
        new(client, "huge-1")
        new(client, "warm-up")
        warm = text_bytes(1_000_000, 500)  # first-use imports and pools are not payload memory
        assert put_body(client, "warm-up", _chunks_of(warm, 65_536)).status_code == 200
        assert get_identity(client, "warm-up") == warm
        samples = []
        for _ in range(10):
            samples.append(_rss(pid))
            time.sleep(0.05)
        baseline = int(statistics.median(samples))

        with PeakRss(pid) as upload_rss:
            response = put_body(
                client, "huge-1", big_payload(), content_type="application/octet-stream"
            )
        assert response.status_code == 200, response.text[:500]
        info = response.json()["_storage_info"]
        assert info["output_size"] == BIG_SIZE
        assert info["output_location"] == "file"
        assert list((files / "evaluations" / "huge-1").glob("output.*.txt.zst"))

        got = hashlib.sha256()
        received = 0
        with (
            PeakRss(pid) as download_rss,
            client.stream("GET", "/evaluations/huge-1/output", headers=IDENTITY) as stream,
        ):
            assert stream.status_code == 200
            assert stream.headers["content-length"] == str(BIG_SIZE)
            for part in stream.iter_raw(1 << 20):
                got.update(part)
                received += len(part)
        assert received == BIG_SIZE
        assert got.hexdigest() == expected.hexdigest()

        tail = client.get("/evaluations/huge-1/output", headers={"Range": "bytes=-100", **IDENTITY})
        assert tail.status_code == 206
        assert tail.headers["content-range"] == f"bytes {BIG_SIZE - 100}-{BIG_SIZE - 1}/{BIG_SIZE}"

    upload_growth = upload_rss.peak - baseline
    download_growth = download_rss.peak - baseline
    print(
        f"server RSS: baseline {baseline / 2**20:.0f} MiB, upload +{upload_growth / 2**20:.1f} MiB,"
        f" download +{download_growth / 2**20:.1f} MiB"
    )
    assert upload_growth < RSS_LIMIT, (
        f"upload grew the server's RSS by {upload_growth / 2**20:.0f} MiB"
    )
    assert download_growth < RSS_LIMIT, (
        f"download grew the server's RSS by {download_growth / 2**20:.0f} MiB"
    )
    names = sorted(p.name for p in (files / "evaluations" / "huge-1").iterdir())
    assert len(names) == 2 and names[0] == "metadata.json", names
    assert re.fullmatch(r"output\.[0-9a-f]{12}\.txt\.zst", names[1]), names
