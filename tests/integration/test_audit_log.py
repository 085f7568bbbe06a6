"""The audit trail: every modification, by whom, in the change's own transaction."""

import asyncio
import getpass
import time
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import create_async_engine

from interfaces.settings import Settings
from tests.integration.conftest import ClientFactory
from tests.integration.test_auth_matrix import API_KEYS, CALLERS
from tests.integration.test_cli_maintenance import cli_json
from tests.services import beneath_row_security

EVAL = "eval_20240101_000000_a0d170"
WRITER = CALLERS["write"]
ADMIN = CALLERS["admin"]


@pytest.fixture
def secured(make_client: ClientFactory) -> TestClient[Any]:
    return make_client(access={"api_keys": API_KEYS}, storage={"large_file_threshold": 1024})


def _audit(client: TestClient[Any], **params: Any) -> dict[str, Any]:
    response = client.get("/audit", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _write_everything(client: TestClient[Any]) -> None:
    def call(method: str, path: str, request_id: str, **kwargs: Any) -> None:
        headers = {**WRITER, "X-Request-ID": request_id, **kwargs.pop("headers", {})}
        response = client.request(method, path, headers=headers, **kwargs)
        assert response.status_code < 300, (path, response.text)

    call("POST", "/evaluations", "r-create", json={"id": EVAL, "code": "print(1)"})
    call("PUT", f"/evaluations/{EVAL}", "r-update", json={"status": "running", "output": "hi"})
    call(
        "PUT",
        f"/evaluations/{EVAL}/output",
        "r-upload",
        content=b"o" * 5000,
        headers={"Content-Type": "text/plain"},
    )
    call("POST", f"/evaluations/{EVAL}/logs", "r-log", json={"content": "line\n"})
    call("POST", f"/evaluations/{EVAL}/events", "r-event", json={"event_type": "started"})
    call("POST", f"/evaluations/{EVAL}/celery-update", "r-celery", json={"task_state": "SUCCESS"})
    call("DELETE", f"/evaluations/{EVAL}", "r-delete")


def test_every_modification_is_recorded_with_actor_and_request_id(
    secured: TestClient[Any],
) -> None:
    _write_everything(secured)

    items = _audit(secured, evaluation_id=EVAL)["items"]

    assert [(item["action"], item["request_id"]) for item in reversed(items)] == [
        ("create", "r-create"),
        ("update", "r-update"),
        ("upload_output", "r-upload"),
        ("append_log", "r-log"),
        ("record_event", "r-event"),
        ("celery_update", "r-celery"),
        ("delete", "r-delete"),
    ]
    assert {item["actor"] for item in items} == {"writer"}
    by_action = {item["action"]: item for item in items}
    assert by_action["create"]["fields"] == ["code", "id"]
    assert by_action["create"]["sizes"] == {"code": 8}
    assert by_action["update"]["fields"] == ["output", "started_at", "status"]
    assert by_action["update"]["sizes"] == {"output": 2}
    assert by_action["upload_output"]["sizes"] == {"output": 5000}
    assert by_action["append_log"]["sizes"] == {"content": 5}
    assert by_action["delete"]["fields"] == ["deleted_at"]
    # Values never enter the trail: only names and sizes.
    assert "print(1)" not in str(items) and "hi" not in str(by_action["update"])


def test_a_late_or_empty_change_leaves_no_entry(secured: TestClient[Any]) -> None:
    secured.post(
        "/evaluations", json={"id": EVAL, "code": "x", "status": "completed"}, headers=WRITER
    )
    before = _audit(secured, evaluation_id=EVAL)["items"]

    late = secured.put(f"/evaluations/{EVAL}", json={"status": "running"}, headers=WRITER)
    unchanged = secured.put(f"/evaluations/{EVAL}", json={"status": "completed"}, headers=WRITER)

    assert late.status_code == 200 and "x-status-ignored" in late.headers
    assert unchanged.status_code == 200
    assert _audit(secured, evaluation_id=EVAL)["items"] == before


def test_filters_and_keyset_pages(secured: TestClient[Any]) -> None:
    for index in range(5):
        secured.post("/evaluations", json={"id": f"{EVAL}{index}", "code": "x"}, headers=WRITER)
    secured.post("/evaluations", json={"id": f"{EVAL}9", "code": "x"}, headers=ADMIN)

    first = _audit(secured, actor="writer", action="create", limit=2)
    second = _audit(secured, actor="writer", action="create", limit=2, cursor=first["next_cursor"])
    third = _audit(secured, actor="writer", action="create", limit=2, cursor=second["next_cursor"])

    pages = [first, second, third]
    ids = [item["evaluation_id"] for page in pages for item in page["items"]]
    assert ids == [f"{EVAL}{index}" for index in (4, 3, 2, 1, 0)]
    assert third["next_cursor"] is None
    assert [i["actor"] for i in _audit(secured, actor="admin")["items"]] == ["admin"]
    newest = first["items"][0]["at"]
    assert _audit(secured, since=newest, actor="writer")["items"][0]["at"] == newest
    assert _audit(secured, until=newest, actor="writer", limit=10)["items"][0]["evaluation_id"] == (
        f"{EVAL}3"
    )


def test_only_admins_read_the_trail(secured: TestClient[Any]) -> None:
    assert secured.get("/audit", headers=CALLERS["read"]).status_code == 403
    assert secured.get("/audit", headers=WRITER).status_code == 403
    assert secured.get("/audit", params={"action": "nonsense"}, headers=ADMIN).status_code == 422


def test_without_keys_the_actor_is_anonymous(client: TestClient[Any]) -> None:
    client.post("/evaluations", json={"id": EVAL, "code": "x"})
    assert [item["actor"] for item in _audit(client)["items"]] == ["anonymous"]


def test_the_table_refuses_updates_and_deletes(
    secured: TestClient[Any], backend_settings: Settings
) -> None:
    secured.post("/evaluations", json={"id": EVAL, "code": "x"}, headers=WRITER)

    async def tamper(statement: str) -> None:
        engine = create_async_engine(beneath_row_security(backend_settings.database.url))
        try:
            async with engine.begin() as connection:
                await connection.execute(sa.text(statement))
        finally:
            await engine.dispose()

    for statement in ("UPDATE audit_log SET actor = 'someone-else'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            asyncio.run(tamper(statement))
    assert [item["actor"] for item in _audit(secured)["items"]] == ["writer"]


def test_maintenance_commands_are_audited_as_the_operator(
    client: TestClient[Any], backend_settings: Settings
) -> None:
    client.post("/evaluations", json={"id": EVAL, "code": "x", "status": "completed"})
    client.put(f"/evaluations/{EVAL}", json={"output": "o" * 150_000})
    time.sleep(1.1)

    assert cli_json(backend_settings, "cleanup", "--older-than", "1s")["evaluations"] == 1

    purge = _audit(client, action="purge")["items"]
    assert [(e["actor"], e["evaluation_id"]) for e in purge] == [(f"cli:{getpass.getuser()}", EVAL)]
    assert purge[0]["sizes"]["blobs"] >= 1
