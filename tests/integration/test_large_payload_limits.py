"""Refused and interrupted uploads, the upload limits, and 300 MB in bounded memory.

The contract and the helpers: tests/integration/large_payloads.py.
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
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from interfaces.settings import Settings
from tests.integration.conftest import ClientFactory
from tests.integration.large_payloads import (
    IDENTITY,
    Client,
    asgi_put,
    assert_stored,
    chunks_of,
    get_identity,
    new,
    put_body,
    split_every,
    storage,
    text_bytes,
    wait_no_stray_files,
)
from tests.services import serve_subprocess

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
        for piece in chunks_of(body, 65_536):
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
        time.sleep(0.3)  # let the server take in what was sent, then vanish mid-body


@pytest.mark.parametrize(
    "previous_size", [5_000, 400_000], ids=["previous-inline", "previous-file"]
)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_interrupted_upload_leaves_the_previous_output(
    app_server: str, backend_settings: Settings, previous_size: int, chunked: bool
) -> None:
    previous = text_bytes(previous_size, 300)
    with httpx.Client(base_url=app_server, timeout=30) as client:
        new(client, "cut-1")
        assert put_body(client, "cut-1", previous).status_code == 200
        before = storage(client, "cut-1")

    _send_partial_upload(
        app_server,
        "/evaluations/cut-1/output",
        5_000_000,
        text_bytes(1_000_000, 301),
        chunked=chunked,
    )

    assert wait_no_stray_files(backend_settings, "cut-1") == []
    with httpx.Client(base_url=app_server, timeout=30) as client:
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
        assert put_body(client, "warm-up", chunks_of(warm, 65_536)).status_code == 200
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
