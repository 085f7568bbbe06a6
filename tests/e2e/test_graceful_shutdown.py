"""SIGTERM drains in-flight requests: a slow upload started before it still succeeds."""

import http.client
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.services import start_server

pytestmark = pytest.mark.e2e

CHUNK = b"z" * 65_536
CHUNKS = 30  # ~2 MB over ~1.5 s


def test_sigterm_lets_a_slow_upload_finish_then_exits_cleanly(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'storage.db'}",
        "FILE_STORAGE_PATH": str(tmp_path / "files"),
        "LOG_FORMAT": "json",
    }
    env.pop("REDIS_URL", None)
    log = tmp_path / "server.log"
    process, base = start_server(env, log)
    try:
        address = urlsplit(base)
        connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
        connection.request(
            "POST",
            "/evaluations",
            body=json.dumps({"id": "slow-1", "code": "x"}),
            headers={"Content-Type": "application/json"},
        )
        assert connection.getresponse().read() and True
        started = threading.Event()

        def body() -> Iterator[bytes]:
            for index in range(CHUNKS):
                if index == 3:
                    started.set()
                yield CHUNK
                time.sleep(0.05)

        answer: dict[str, object] = {}

        def upload() -> None:
            upload_connection = http.client.HTTPConnection(
                address.hostname or "", address.port, timeout=30
            )
            upload_connection.request(
                "PUT",
                "/evaluations/slow-1/output",
                body=body(),
                headers={"Content-Type": "text/plain"},
                encode_chunked=True,
            )
            response = upload_connection.getresponse()
            answer["status"] = response.status
            answer["body"] = json.loads(response.read())

        thread = threading.Thread(target=upload)
        thread.start()
        assert started.wait(10)
        process.send_signal(signal.SIGTERM)
        thread.join(timeout=30)
        assert answer.get("status") == 200, (answer, log.read_text())
        assert answer["body"]["_storage_info"]["output_size"] == CHUNKS * len(CHUNK)  # type: ignore[index]
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=20)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "storage_service.access"]
    assert any(line["route"] == "/evaluations/{eval_id}/output" for line in access), lines
