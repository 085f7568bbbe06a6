"""``GET /evaluations/{id}`` of a cached record, answered before routing (ADR 0035): the
handler's answer to the byte, the same access line and metrics, each tenant's own record,
and every request it cannot answer from the cache passed on to the app. Embedded, the
file backend, PostgreSQL + Redis, and PostgreSQL + Redis with ENCRYPTION=on."""

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from litestar.enums import ScopeType
from litestar.testing import TestClient
from litestar.types import ASGIApp, Receive, Scope, Send

from application.intents import DeleteIntent, JournalEntry
from application.ports.journal import Journal
from interfaces.http.app import create_app
from interfaces.http.cached_answers import CachedRecordAnswers
from interfaces.log_config import ACCESS_LOGGER
from interfaces.settings import Settings, parse_api_keys
from tests.integration.conftest import CONFIGURATIONS, configured

READER = "reader-secret-0123456789"
ACME = "acme-secret-01234567890"
KEYS = parse_api_keys(f"gw:writer-secret-0123456789:write,ro:{READER}:read,acme:{ACME}:admin:acme")
WRITER = {"X-API-Key": "writer-secret-0123456789"}
RECORD = {
    "id": "hot-1",
    "code": "print('héllo ✓ 🚀')\n" * 3,
    "language": "python",
    "status": "completed",
    "metadata": {"suite": "ünïcode", "nested": {"list": [1, 2.5, None, True]}},
}
# Not part of an answer's identity: each request has its own id.
_PER_REQUEST = {"x-request-id", "date"}


@pytest.fixture(params=[*CONFIGURATIONS, pytest.param("encrypted", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    yield from configured(request.param, tmp_path)


class Passed:
    """Sits behind the layer and notes each request it passed on to the app."""

    def __init__(self, layer: CachedRecordAnswers) -> None:
        self.app: ASGIApp = layer.app
        self.paths: list[str] = []
        layer.app = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            query = scope["query_string"].decode()
            self.paths.append(f"{scope['method']} {scope['path']}{'?' if query else ''}{query}")
        await self.app(scope, receive, send)

    def take(self) -> list[str]:
        taken, self.paths = self.paths, []
        return taken


@contextmanager
def served(settings: Settings) -> Iterator[tuple[TestClient[Any], Passed]]:
    app = create_app(settings)
    layer = app.asgi_handler
    assert isinstance(layer, CachedRecordAnswers)
    passed = Passed(layer)
    with TestClient(app) as client:
        yield client, passed


def _identity(response: Any) -> tuple[int, bytes, dict[str, str]]:
    headers = {name: value for name, value in response.headers.items() if name not in _PER_REQUEST}
    return response.status_code, response.content, headers


@pytest.mark.parametrize("keyed", [False, True], ids=["open", "keys-and-cors"])
def test_a_hit_is_answered_here_as_the_handler_answers_it(settings: Settings, keyed: bool) -> None:
    headers: dict[str, str] = {}
    if keyed:  # the session and CORS middleware are then on the app's path
        access = {"api_keys": KEYS, "cors_origins": ("http://explorer.example",)}
        settings = settings.changed(access=access)
        headers = {"X-API-Key": READER}
    with served(settings) as (client, passed):
        written = client.post("/evaluations", json=RECORD, headers=WRITER if keyed else {})
        assert written.status_code == 200
        client.get("/evaluations/hot-1", headers=headers)  # fills the cache, if the create did not
        passed.take()

        here = client.get("/evaluations/hot-1", headers=headers)
        assert passed.take() == []
        # ``include_storage_info=false`` is the default: the handler's answer, by the app.
        handler = client.get("/evaluations/hot-1?include_storage_info=false", headers=headers)
        assert passed.take() == ["GET /evaluations/hot-1?include_storage_info=false"]

        assert _identity(here) == _identity(handler)
        assert here.json()["metadata"] == RECORD["metadata"]
        assert here.headers["etag"] == '"1"'
        assert re.fullmatch(r"[0-9a-f]{32}", here.headers["x-request-id"])


def test_a_hit_keeps_the_request_id_access_line_and_metrics(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    series = re.compile(
        r'^crucible_storage_requests_total\{app_name="crucible_storage",method="GET",'
        r'path="/evaluations/\{eval_id\}",status_code="200"\} (\S+)$',
        re.MULTILINE,
    )

    def served_so_far(client: TestClient[Any]) -> float:
        found = series.search(client.get("/metrics").text)
        return float(found.group(1)) if found else 0.0

    with served(settings) as (client, passed):
        client.post("/evaluations", json=RECORD)
        client.get("/evaluations/hot-1")
        before = served_so_far(client)
        passed.take()
        with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
            answer = client.get("/evaluations/hot-1", headers={"X-Request-ID": "trace-42"})
            client.get(
                "/evaluations/hot-1?include_storage_info=false",  # by the app
                headers={"X-Request-ID": "trace-43"},
            )
        assert passed.take() == ["GET /evaluations/hot-1?include_storage_info=false"]
        assert answer.headers["x-request-id"] == "trace-42"
        # Both counted in the same series.
        assert served_so_far(client) == before + 2
    lines = {
        record.__dict__["request_id"]: record
        for record in caplog.records
        if record.name == ACCESS_LOGGER
    }
    here, handler = lines["trace-42"], lines["trace-43"]
    assert here.getMessage().startswith("GET /evaluations/{eval_id} 200 ")
    assert here.getMessage().endswith("request_id=trace-42")
    # The same route and status as the app's own line for the same read.
    assert (here.__dict__["route"], here.__dict__["status"]) == (
        handler.__dict__["route"],
        handler.__dict__["status"],
    )


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/evaluations/nobody", {}, 404),  # a miss: the database answers
        ("/evaluations/hot-1?fields=id,status", {}, 200),
        ("/evaluations/hot-1/", {}, 200),  # the app ignores a trailing slash
        ("/evaluations/running", {}, 200),  # a route of its own, not an id
        ("/evaluations/bad..id", {}, 422),
        ("/evaluations/hot-1", {"Origin": "http://elsewhere.example"}, 200),
        ("/evaluations/hot-1", {"Cookie": "crucible_session=x"}, 200),
    ],
)
def test_what_the_cache_cannot_answer_goes_to_the_app(
    settings: Settings, path: str, headers: dict[str, str], status: int
) -> None:
    with served(settings) as (client, passed):
        client.post("/evaluations", json=RECORD)
        client.get("/evaluations/hot-1")
        passed.take()
        answer = client.get(path, headers=headers)
        assert answer.status_code == status, answer.text
        assert passed.take() == [f"GET {path}"]
        assert client.head("/evaluations/hot-1").status_code == 405  # no HEAD route
        assert passed.take() == ["HEAD /evaluations/hot-1"]


def test_keys_are_checked_and_each_tenant_reads_its_own(settings: Settings) -> None:
    with served(settings.changed(access={"api_keys": KEYS})) as (client, passed):
        mine = {**RECORD, "code": "print('default')"}
        theirs = {**RECORD, "code": "print('acme')"}
        assert client.post("/evaluations", json=mine, headers=WRITER).status_code == 200
        assert client.post("/evaluations", json=theirs, headers={"X-API-Key": ACME}).is_success
        for key in (READER, ACME):
            client.get("/evaluations/hot-1", headers={"X-API-Key": key})
        passed.take()

        read = client.get("/evaluations/hot-1", headers={"Authorization": f"Bearer {READER}"})
        acme = client.get("/evaluations/hot-1", headers={"X-API-Key": ACME})
        assert passed.take() == []
        assert (read.json()["code"], acme.json()["code"]) == ("print('default')", "print('acme')")

        for refused in ({}, {"X-API-Key": "not-a-key-0123456789"}):
            answer = client.get("/evaluations/hot-1", headers=refused)
            assert answer.status_code == 401
            assert answer.headers["content-type"] == "application/problem+json"
        assert passed.take() == ["GET /evaluations/hot-1"] * 2


def test_without_a_cache_or_with_tracing_every_request_goes_to_the_app(
    settings: Settings,
) -> None:
    uncached = create_app(settings.changed(cache={"enabled": False}))
    assert not isinstance(uncached.asgi_handler, CachedRecordAnswers)
    traced = create_app(settings.changed(observability={"otlp_endpoint": "http://127.0.0.1:1"}))
    assert not isinstance(traced.asgi_handler, CachedRecordAnswers)


def _lookups(client: TestClient[Any], result: str) -> float:
    found = re.search(
        rf'^crucible_storage_cache_lookups_total\{{result="{result}"\}} (\S+)$',
        client.get("/metrics").text,
        re.MULTILINE,
    )
    return float(found.group(1)) if found else 0.0


def test_a_miss_asks_the_cache_once(settings: Settings) -> None:
    with served(settings) as (client, _):
        client.post("/evaluations", json=RECORD)
        client.get("/evaluations/hot-1")
        misses, hits = _lookups(client, "miss"), _lookups(client, "hit")
        assert client.get("/evaluations/nobody").status_code == 404
        assert client.get("/evaluations/hot-1").status_code == 200
        assert (_lookups(client, "miss"), _lookups(client, "hit")) == (misses + 1, hits + 1)


def test_a_write_waiting_in_the_journal_is_read_by_the_app(settings: Settings) -> None:
    """Read-your-writes during an outage: the cache still holds the record as it was, the
    journal the acknowledged delete; the app's read sees the journal's view (404)."""
    with served(settings) as (client, passed):
        client.post("/evaluations", json=RECORD)
        assert client.get("/evaluations/hot-1").status_code == 200
        passed.take()
        container = cast("Any", client.app).state.dishka_container
        journal = client.blocking_portal.call(container.get, Journal)
        entry = JournalEntry(
            id="entry-hot-1",
            evaluation_id="hot-1",
            at=datetime.now(UTC),
            intent=DeleteIntent(),
            actor="key:test",
        )
        client.blocking_portal.call(journal.append, entry)
        answer = client.get("/evaluations/hot-1")
        assert passed.take() == ["GET /evaluations/hot-1"]
        assert answer.status_code == 404, answer.text


class _Failing:
    async def get(self, *_: object) -> None:
        raise OSError("the journal's directory is gone")


def test_a_failure_here_leaves_the_answer_to_the_app(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with served(settings) as (client, passed):
        client.post("/evaluations", json=RECORD)
        client.get("/evaluations/hot-1")
        passed.take()
        layer = cast("Any", client.app).asgi_handler
        layer._reads = _Failing()
        with caplog.at_level(logging.WARNING):
            answer = client.get("/evaluations/hot-1")
        assert (answer.status_code, answer.json()["id"]) == (200, "hot-1")
        assert passed.take() == ["GET /evaluations/hot-1"]
        assert "a cached answer failed; the app answers instead" in caplog.text
