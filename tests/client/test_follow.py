"""Following the change feed and a log on their server-sent streams: in commit order, and
across connections cut from the server's side and a restart of the service, with nothing
skipped or repeated (the cursors followed are exactly those ``GET /changes`` lists)."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from crucible_storage import Change, CursorExpired, NotFound, StorageClient
from crucible_storage._sse import EventDecoder, ServerEvent

import tests.services
from interfaces.http.app import create_app
from interfaces.settings import Settings
from tests.client.conftest import open_client, start_on
from tests.client.proxy import Proxy
from tests.client.test_retries import NO_WAIT, scripted

QUICK = {"keepalive_s": 0.3, "poll_ms": 50}


@pytest.fixture
def live_server(backend_settings: Settings) -> Iterator[str]:
    with tests.services.serve_in_thread(create_app(backend_settings.changed(changes=QUICK))) as url:
        yield url


@pytest.fixture
def cutter(live_server: str) -> Iterator[Proxy]:
    proxy = Proxy(live_server)
    yield proxy
    proxy.close()


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def take(followed: Iterator[Any], count: int) -> list[Any]:
    return [next(followed) for _ in range(count)]


def write(client: StorageClient, evaluations: int) -> None:
    """Three changes per evaluation: created, a log append, a status move."""
    for _ in range(evaluations):
        made = client.evaluations.create("x")
        client.logs.append(made.id, "step\n")
        client.evaluations.update(made.id, status="running")


def visible(client: StorageClient, count: int) -> list[Change]:
    """The feed once it shows ``count`` changes: on PostgreSQL a transaction open anywhere in
    the cluster (another test's) holds back the changes committed after it began."""
    deadline = time.monotonic() + 30
    while len(changes := client.changes.list(limit=1000).items) < count:
        assert time.monotonic() < deadline, f"the feed shows {len(changes)} of {count} changes"
        time.sleep(0.05)
    return changes


def start_of_feed(client: StorageClient) -> str:
    """The cursor of a first change, to follow from: no write of the test comes before it."""
    client.evaluations.create("seed")
    (seed,) = visible(client, 1)
    return seed.cursor


def cursors(changes: list[Change]) -> list[str]:
    return [change.cursor for change in changes]


# ------------------------------------------------------------------ the SSE parser


def test_events_are_whole_however_the_body_is_cut() -> None:
    body = (
        b": keepalive\r\ndata: \r\n\r\n"
        b'id: 0-1\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
        b"event: end\rdata: done\r\r"
        b"id: 0-9\n\n"  # an id alone moves where a reconnect resumes
        b"data: no id\n\n"
        b"id: 0-10\ndata: cut off"
    )
    expected = [
        ServerEvent(""),
        ServerEvent('{"a":\n1}', "message", "0-1"),
        ServerEvent("done", "end", "0-1"),
        ServerEvent("no id", "message", "0-9"),
    ]
    for size in (1, 2, 3, 7, len(body)):
        decoder = EventDecoder()
        events = [e for i in range(0, len(body), size) for e in decoder.feed(body[i : i + size])]
        assert (events, decoder.last_id) == (expected, "0-9")


def test_a_stream_is_reopened_after_its_last_event() -> None:
    change = b'{"cursor":"0-%d","kind":"created","evaluation_id":"e","at":"2026-01-01T00:00:00Z"}'
    transport, seen = scripted(
        httpx.Response(200, content=b"id: 0-1\ndata: " + change % 1 + b"\n\nid: 0-2\ndata: {"),
        httpx.ConnectError("refused"),
        httpx.Response(503, headers={"Retry-After": "0"}),
        httpx.Response(200, content=b"id: 0-2\ndata: " + change % 2 + b"\n\n"),
        httpx.Response(404, json={"title": "Not Found", "status": 404}),
    )
    with StorageClient("http://s", transport=transport, backoff=NO_WAIT) as client:
        followed = client.changes.follow("0-0", kind=["created", "deleted"])
        assert cursors(take(followed, 2)) == ["0-1", "0-2"]
        with pytest.raises(NotFound):
            next(followed)
    assert [r.headers.get("last-event-id") for r in seen] == [None, "0-1", "0-1", "0-1", "0-2"]
    assert {str(r.url.params) for r in seen} == {"after=0-0&kind=created&kind=deleted"}
    assert seen[0].headers["accept"] == "text/event-stream"


# ------------------------------------------------------------ against the service


def test_pages_follow_next_cursor_and_filter(live_server: str, kind: str) -> None:
    for client in open_client(kind, live_server):
        write(client, 4)
        every = visible(client, 12)
        assert len(every) == 12 and not client.changes.list(every[-1].cursor).more
        assert cursors(list(client.changes.iterate(page_size=5))) == cursors(every)
        moves = list(client.changes.iterate(kind=["status_changed", "deleted"], page_size=2))
        assert [c.status for c in moves] == ["running"] * 4
        one = every[0].evaluation_id
        assert {c.kind for c in client.changes.iterate(evaluation_id=one)} == {
            "created",
            "log_appended",
            "status_changed",
        }
        after = client.changes.list(every[5].cursor, limit=3)
        assert cursors(after.items) == cursors(every[6:9]) and after.more


def test_follow_gives_each_change_once_across_cut_connections(
    live_server: str, cutter: Proxy, kind: str
) -> None:
    with StorageClient(live_server) as direct:
        start = start_of_feed(direct)
        for client in open_client(kind, cutter.url):
            followed = client.changes.follow(start)
            write(direct, 2)
            received = take(followed, 6)
            for _ in range(2):  # changes committed while the follower is cut off
                cutter.cut()
                write(direct, 2)
                cutter.resume()
                received += take(followed, 6)
            followed.close()
        listed = list(direct.changes.iterate(start))
    assert cursors(received) == cursors(listed)
    assert received == listed
    assert cutter.accepted >= 3


@pytest.mark.e2e
@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_follow_resumes_after_a_restart_of_the_service(
    service_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client_kind: str
) -> None:
    env = {**service_env, "CHANGES_KEEPALIVE_S": "0.3", "CHANGES_POLL_MS": "50"}
    port = tests.services.free_port()
    process, base = start_on(port, env, tmp_path / "first.log", monkeypatch)

    def restart() -> None:
        nonlocal process
        process.kill()
        process.wait(timeout=20)
        time.sleep(0.5)  # the follower finds nobody there and backs off
        process, _ = start_on(port, env, tmp_path / "second.log", monkeypatch)
        with StorageClient(base) as writer:
            write(writer, 2)

    try:
        with StorageClient(base) as direct:
            start = start_of_feed(direct)
            write(direct, 1)
            for client in open_client(client_kind, base):
                followed = client.changes.follow(start)
                received = take(followed, 3)
                restarting = threading.Thread(target=restart)
                restarting.start()
                received += take(followed, 6)
                restarting.join(timeout=60)
                followed.close()
        with StorageClient(base) as direct:
            assert cursors(received) == cursors(list(direct.changes.iterate(start)))
    finally:
        tests.services.stop_process(process, timeout=20)


def _two_fresh_changes(client: StorageClient, within_s: float) -> tuple[Change, Change]:
    """A create and a log append, seen in the feed while still retained: a loaded machine,
    or a transaction held open elsewhere in the cluster, may show them only once they have
    aged past the retention, and then they are never shown; so they are made again."""
    for _ in range(10):
        made = client.evaluations.create("x")
        client.logs.append(made.id, "late\n")
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            newest = client.changes.list(limit=1000).items[-2:]
            if [change.evaluation_id for change in newest] == [made.id, made.id]:
                return newest[0], newest[1]
            time.sleep(0.05)
    raise AssertionError("the feed never showed a create and its append while retained")


def test_a_cursor_past_the_retention_says_where_to_go_on(backend_settings: Settings) -> None:
    settings = backend_settings.changed(changes={**QUICK, "retention_s": 3})
    with tests.services.serve_in_thread(create_app(settings)) as base:
        for client in (c for kind in ("sync", "async") for c in open_client(kind, base)):
            first, last = _two_fresh_changes(client, within_s=3)
            time.sleep(3.5)
            with pytest.raises(CursorExpired) as expired:
                next(client.changes.follow(first.cursor))
            assert (expired.value.status, expired.value.latest) == (410, last.cursor)
            with pytest.raises(CursorExpired):
                client.changes.list(first.cursor)


def test_logs_follow_gives_the_log_once_across_cut_connections(
    live_server: str, cutter: Proxy, kind: str
) -> None:
    pieces = [f"line {n}\n" for n in range(9)]
    with StorageClient(live_server) as direct:
        made = direct.evaluations.create("x", status="running")
        for client in open_client(kind, cutter.url):
            followed = client.logs.follow(made.id)
            text = ""
            for n in range(0, len(pieces), 3):
                cutter.cut()  # appended while the follower is cut off
                for piece in pieces[n : n + 3]:
                    direct.logs.append(made.id, piece)
                cutter.resume()
                while len(text) < len("".join(pieces[: n + 3])):
                    text += next(followed)
            direct.evaluations.update(made.id, status="completed")
            assert list(followed) == []  # the `end` event closes it
            assert text == "".join(pieces)
            assert list(client.logs.follow(made.id, offset=len(text) - 7)) == ["line 8\n"]
    assert cutter.accepted >= 4
