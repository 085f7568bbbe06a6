"""Streams: uploads that never hold the payload, downloads that resume, a live log tail.

Memory is measured in this process only, so the service runs as its own process.
"""

import os
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from crucible_storage import StorageClient

from tests.client.conftest import FAST
from tests.services import serve_subprocess

LINE = b"0123456789abcdef" * 4 + b"\n"
SIZE = len(LINE) * (8 * 1024 * 1024 // len(LINE))  # 8 MiB of whole lines


def lines(size: int) -> Iterator[bytes]:
    for _ in range(size // len(LINE)):
        yield LINE


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("service")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'storage.db'}",
        "FILE_STORAGE_PATH": str(tmp / "files"),
        "LOG_LEVEL": "WARNING",
    }
    with serve_subprocess(env, tmp / "service.log") as (base, _):
        yield base


class Recording(httpx.HTTPTransport):
    """The real network, with every request's headers and answer's status kept."""

    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[tuple[httpx.Headers, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.exchanges.append((request.headers, response.status_code))
        return response


@pytest.mark.e2e
@pytest.mark.parametrize("source", ["file", "generator"])
def test_uploads_stream_in_little_memory(service: str, tmp_path: Path, source: str) -> None:
    path = tmp_path / "output.txt"
    with path.open("wb") as file:
        file.writelines(lines(SIZE))
    with StorageClient(service, backoff=FAST) as client:
        made = client.evaluations.create("x")
        tracemalloc.start()
        try:
            stored = client.payloads.upload(made.id, path if source == "file" else lines(SIZE))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert stored.storage_info is not None
        assert stored.storage_info.output_size == SIZE
        assert peak < SIZE / 8, f"peak {peak} bytes for an upload of {SIZE}"
        assert client.payloads.read(made.id, start=-len(LINE)) == LINE


@pytest.mark.e2e
def test_downloads_resume_a_partial_file(service: str, tmp_path: Path) -> None:
    content = b"".join(lines(3 * 1024 * 1024))
    transport = Recording()
    with StorageClient(service, transport=transport, backoff=FAST) as client:
        made = client.evaluations.create("x")
        client.payloads.upload(made.id, content)
        assert client.payloads.read(made.id, start=100, end=200) == content[100:200]

        etag = httpx.get(f"{service}/evaluations/{made.id}/output", headers={"Range": "bytes=0-0"})
        partial = tmp_path / "partial.txt"
        partial.write_bytes(content[:1_000_000])
        Path(f"{partial}.etag").write_text(etag.headers["etag"])
        transport.exchanges.clear()
        assert client.payloads.download(made.id, partial) == len(content)
        assert partial.read_bytes() == content
        assert not Path(f"{partial}.etag").exists()
        (headers, status), *_ = transport.exchanges
        assert (headers["range"], headers["if-range"], status) == (
            "bytes=1000000-",
            etag.headers["etag"],
            206,
        )

        # The output changed since the partial file was written: it starts over, whole.
        partial.write_bytes(content[:1_000_000])
        Path(f"{partial}.etag").write_text(etag.headers["etag"])
        client.payloads.upload(made.id, content[::-1])
        assert client.payloads.download(made.id, partial) == len(content)
        assert partial.read_bytes() == content[::-1]

        # Without resume, an existing file is replaced.
        assert client.payloads.download(made.id, partial, resume=False) == len(content)
        assert partial.read_bytes() == content[::-1]


def test_follow_yields_the_log_as_it_arrives(either_client: Any) -> None:
    client = either_client
    made = client.evaluations.create("x")
    client.evaluations.update(made.id, status="running")
    chunks = [f"step {n}\n" for n in range(4)]
    received: list[str] = []
    seen = threading.Condition()

    def caught_up(count: int) -> bool:
        return len("".join(received)) >= len("".join(chunks[:count]))

    def worker() -> None:
        for n, chunk in enumerate(chunks, start=1):
            client.logs.append(made.id, chunk)
            with seen:  # the next chunk only once the follower has this one
                assert seen.wait_for(lambda n=n: caught_up(n), 30)  # type: ignore[misc]
        client.evaluations.update(made.id, status="completed")

    appender = threading.Thread(target=worker)
    appender.start()
    for text in client.logs.follow(made.id):
        with seen:
            received.append(text)
            seen.notify_all()
    appender.join(timeout=30)
    assert "".join(received) == "".join(chunks)
    assert len(received) == len(chunks)
