"""Helpers of the large-payload tests, ``tests/integration/test_large_payload_*.py``.

Streaming payload endpoints: ``PUT``/``GET /evaluations/{id}/output`` and ``/error``.

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
uploads use a real uvicorn server (``app_server`` in conftest.py); the 300 MB test
(``slow``) a real server process.

httpx asks for ``gzip, deflate, zstd`` by default, so every read that means the
identity bytes sends ``Accept-Encoding: identity`` explicitly.
"""

import os
import random
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import zstandard
from litestar.testing import TestClient

from interfaces.settings import Settings

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


def chunks_of(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
