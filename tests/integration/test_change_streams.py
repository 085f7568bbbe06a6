"""Server-sent events over a real server: the feed and a log, live, resumed, let go."""

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from interfaces.http.app import create_app
from interfaces.settings import Settings
from tests.services import serve_in_thread
from tests.sse import KEEPALIVE, Event, events, take

EVAL = "eval_20240101_000000_5e5e01"
TIMEOUT = httpx.Timeout(30.0)


@pytest.fixture
def base(backend_settings: Settings) -> Iterator[str]:
    settings = backend_settings.changed(changes={"keepalive_s": 0.3, "poll_ms": 50})
    with serve_in_thread(create_app(settings)) as url:
        yield url


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code < 300, response.text
    body: dict[str, Any] = response.json()
    return body


def _write(base: str, evaluation_id: str, steps: int) -> None:
    with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
        _ok(client.post("/evaluations", json={"id": evaluation_id, "code": "print(1)"}))
        for step in range(steps):
            _ok(client.post(f"/evaluations/{evaluation_id}/logs", json={"content": f"{step}\n"}))


def _open_streams(base: str) -> int:
    metrics = httpx.get(f"{base}/metrics", timeout=TIMEOUT).text
    found = re.search(r"^crucible_storage_open_streams (\S+)$", metrics, re.MULTILINE)
    assert found, "the open-streams gauge is missing"
    return int(float(found.group(1)))


def test_the_feed_streams_each_write_once_and_resumes_after_last_event_id(base: str) -> None:
    with (
        httpx.Client(base_url=base, timeout=TIMEOUT) as client,
        client.stream("GET", "/changes/stream") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        _write(base, EVAL, steps=4)
        streamed = take(events(response), 5)

    listed = _ok(httpx.get(f"{base}/changes", params={"evaluation_id": EVAL}))["items"]
    assert [json.loads(e.data) for e in streamed] == listed
    assert [e.id for e in streamed] == [item["cursor"] for item in listed]

    resume = {"Last-Event-ID": streamed[1].id or ""}
    with (
        httpx.Client(base_url=base, timeout=TIMEOUT) as client,
        client.stream("GET", "/changes/stream", headers=resume) as response,
    ):
        stream = events(response)
        replayed = take(stream, 3)
        _ok(client.post(f"/evaluations/{EVAL}/logs", json={"content": "late\n"}))
        (late,) = take(stream, 1)

    assert replayed == streamed[2:]
    assert json.loads(late.data)["kind"] == "log_appended"


def test_an_idle_stream_sends_keepalives_and_a_closed_one_is_let_go(base: str) -> None:
    with (
        httpx.Client(base_url=base, timeout=TIMEOUT) as client,
        client.stream("GET", "/changes/stream") as response,
    ):
        stream = events(response)
        assert next(stream) == KEEPALIVE
        assert _open_streams(base) == 1

    deadline = time.monotonic() + 10
    while _open_streams(base) != 0:
        assert time.monotonic() < deadline, "the closed stream is still held"
        time.sleep(0.05)


@contextmanager
def _following_the_log(base: str) -> Iterator[tuple[httpx.Client, Iterator[Event]]]:
    """A client, and the events of ``EVAL``'s log stream opened with it."""
    with (
        httpx.Client(base_url=base, timeout=TIMEOUT) as client,
        client.stream("GET", f"/evaluations/{EVAL}/logs/stream") as response,
    ):
        yield client, events(response)


def test_a_log_streams_until_the_evaluation_ends(base: str) -> None:
    _write(base, EVAL, steps=1)
    with _following_the_log(base) as (client, stream):
        (first,) = take(stream, 1)
        _ok(client.put(f"/evaluations/{EVAL}", json={"status": "running"}))
        _ok(client.post(f"/evaluations/{EVAL}/logs", json={"content": "two\n"}))
        (second,) = take(stream, 1)
        _ok(client.put(f"/evaluations/{EVAL}", json={"status": "completed"}))
        rest = [event for event in stream if event != KEEPALIVE]

    assert json.loads(first.data) == {"offset": 0, "next_offset": 2, "content": "0\n"}
    assert first.id == "2"
    assert json.loads(second.data) == {"offset": 2, "next_offset": 6, "content": "two\n"}
    assert [(e.event, json.loads(e.data)) for e in rest] == [
        ("end", {"status": "completed", "deleted": False})
    ]

    with httpx.stream(
        "GET", f"{base}/evaluations/{EVAL}/logs/stream", headers={"Last-Event-ID": "2"}
    ) as resumed:
        again = [event for event in events(resumed) if event != KEEPALIVE]
    assert [json.loads(e.data) for e in again] == [
        {"offset": 2, "next_offset": 6, "content": "two\n"},
        {"status": "completed", "deleted": False},
    ]


def test_a_log_stream_ends_when_its_evaluation_is_deleted(base: str) -> None:
    _write(base, EVAL, steps=0)
    with _following_the_log(base) as (client, stream):
        _ok(client.delete(f"/evaluations/{EVAL}"))
        rest = [event for event in stream if event != KEEPALIVE]

    assert [(e.event, json.loads(e.data)) for e in rest] == [
        ("end", {"status": None, "deleted": True})
    ]


@pytest.mark.parametrize(
    ("path", "headers", "status", "named"),
    [
        ("/evaluations/eval_20240101_000000_000404/logs/stream", {}, 404, ""),
        (f"/evaluations/{EVAL}/logs/stream", {"Last-Event-ID": "x1"}, 422, "Last-Event-ID"),
        ("/changes/stream", {"Last-Event-ID": "not-a-cursor"}, 422, "Last-Event-ID"),
        ("/changes/stream?after=ffff-ffff", {}, 410, "after"),
    ],
)
def test_a_stream_that_cannot_start_is_a_problem(
    base: str, path: str, headers: dict[str, str], status: int, named: str
) -> None:
    _write(base, EVAL, steps=0)

    response = httpx.get(f"{base}{path}", headers=headers, timeout=TIMEOUT)

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert named in response.text


def test_a_stream_starts_with_its_position_and_keepalives_are_comments_only(base: str) -> None:
    _write(base, EVAL, steps=0)
    latest = None
    deadline = time.monotonic() + 30
    while latest is None:  # on PostgreSQL the feed shows the create once older writes ended
        assert time.monotonic() < deadline, "the create never reached the feed"
        latest = _ok(httpx.get(f"{base}/changes", timeout=TIMEOUT))["next_cursor"]
        time.sleep(0 if latest else 0.05)
    with httpx.stream("GET", f"{base}/changes/stream", timeout=TIMEOUT) as response:
        lines = response.iter_lines()
        head = [next(lines) for _ in range(4)]

    assert head[:2] == [f"id: {latest}", ""]  # an id without data: no event, a resume point
    assert head[2:] == [": keepalive", ""]  # no data line: an EventSource dispatches nothing
