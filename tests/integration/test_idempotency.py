"""``Idempotency-Key`` over HTTP, on the embedded and the PostgreSQL + Redis configurations.

A retry with the same key and request gets the first answer and writes nothing; the
same key with another request is a 422 naming the header; a key still in flight is a
409 with ``Retry-After``; keys belong to their caller; answers outlive a restart.
"""

import asyncio
from typing import Any

import pytest
from dishka import Provider, Scope, provide
from litestar.testing import TestClient

from application.failover.idempotency import IdempotencyKeys
from application.ports.idempotency_store import IdempotencyStore, KeyRecord
from domain.access import ANONYMOUS
from domain.tenancy import DEFAULT_TENANT
from infrastructure.memory.idempotency import MemoryIdempotencyStore
from interfaces.http.app import create_app
from interfaces.settings import FallbackBackend, Settings, parse_api_keys
from tests.integration.conftest import ClientFactory

KEY = {"Idempotency-Key": "a1b2c3d4-0000-4000-8000-000000000001"}
NEW = {"code": "print(1)", "language": "python"}


def _with(key: str, **headers: str) -> dict[str, str]:
    return {"Idempotency-Key": key, **headers}


def _count(client: TestClient[Any]) -> int:
    response = client.get("/evaluations", params={"limit": 1})
    assert response.status_code == 200
    total: int = response.json()["total"]
    return total


def test_a_retried_create_answers_the_first_record_and_creates_one(client: TestClient[Any]) -> None:
    first = client.post("/evaluations", json=NEW, headers=KEY)
    retry = client.post("/evaluations", json=NEW, headers=KEY)

    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()  # the generated id included
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert retry.headers["content-type"] == first.headers["content-type"]
    assert retry.headers["x-request-id"] != first.headers["x-request-id"]
    assert _count(client) == 1


def test_without_a_key_each_create_is_its_own(client: TestClient[Any]) -> None:
    client.post("/evaluations", json=NEW)
    client.post("/evaluations", json=NEW)

    assert _count(client) == 2


def test_a_retried_update_moves_the_version_once(client: TestClient[Any]) -> None:
    created = client.post("/evaluations", json=NEW).json()
    path = f"/evaluations/{created['id']}"
    body = {"status": "running", "metadata": {"attempt": 1}}

    first = client.put(path, json=body, headers=KEY)
    retry = client.put(path, json=body, headers=KEY)

    assert first.status_code == retry.status_code == 200
    assert retry.headers["etag"] == first.headers["etag"]
    assert client.get(path).headers["etag"] == first.headers["etag"]


def test_a_retried_log_append_is_appended_once(client: TestClient[Any]) -> None:
    created = client.post("/evaluations", json=NEW).json()
    path = f"/evaluations/{created['id']}/logs"

    answers = [client.post(path, json={"content": "step 1\n"}, headers=KEY) for _ in range(3)]

    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert client.get(path, params={"offset": 0}).json()["content"] == "step 1\n"


def test_a_retried_event_and_celery_update_are_applied_once(client: TestClient[Any]) -> None:
    created = client.post("/evaluations", json={**NEW, "status": "running"}).json()
    base = f"/evaluations/{created['id']}"
    retry_body = {"celery_task_id": "t-1", "task_state": "RETRY"}

    updates = []
    for _ in range(2):
        client.post(f"{base}/events", json={"type": "note", "message": "once"}, headers=KEY)
        updates.append(
            client.post(f"{base}/celery-update", json=retry_body, headers=_with("celery-1"))
        )

    assert [e["message"] for e in client.get(f"{base}/events").json()] == ["once"]
    assert [u.status_code for u in updates] == [200, 200]
    assert updates[1].json() == updates[0].json()
    assert updates[1].headers["idempotent-replayed"] == "true"
    assert client.get(base).json()["retries"] == 1


def test_a_retried_delete_answers_as_the_first_did(client: TestClient[Any]) -> None:
    created = client.post("/evaluations", json=NEW).json()
    path = f"/evaluations/{created['id']}"

    first = client.delete(path, headers=KEY)
    retry = client.delete(path, headers=KEY)
    unkeyed = client.delete(path)

    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    assert unkeyed.status_code == 404


def test_a_retried_upload_answers_the_first_record(client: TestClient[Any]) -> None:
    created = client.post("/evaluations", json=NEW).json()
    path = f"/evaluations/{created['id']}/output"
    body = b"x" * 300_000
    headers = _with("upload-1", **{"Content-Type": "text/plain"})

    first = client.put(path, content=body, headers=headers)
    retry = client.put(path, content=body, headers=headers)
    other = client.put(path, content=body + b"y", headers=headers)

    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    assert other.status_code == 422
    assert client.get(path).content == body


def test_the_same_key_for_another_request_is_a_422_naming_the_header(
    client: TestClient[Any],
) -> None:
    client.post("/evaluations", json=NEW, headers=KEY)

    other_body = client.post("/evaluations", json={**NEW, "code": "print(2)"}, headers=KEY)
    other_path = client.put("/evaluations/eval-x", json={"status": "running"}, headers=KEY)

    for refused in (other_body, other_path):
        assert refused.status_code == 422
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["errors"][0]["field"] == "Idempotency-Key"
    assert _count(client) == 1


def test_an_answered_error_is_answered_again(client: TestClient[Any]) -> None:
    """A 4xx is the request's answer too: a retry does not get a different one."""
    body = {**NEW, "id": "eval-dup"}
    client.post("/evaluations", json=body)

    first = client.post("/evaluations", json=body, headers=KEY)
    retry = client.post("/evaluations", json=body, headers=KEY)

    assert first.status_code == retry.status_code == 409
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"


def test_a_key_in_flight_is_a_409_with_retry_after(client: TestClient[Any]) -> None:
    async def claim() -> None:
        container = client.app.state.dishka_container
        keys = await container.get(IdempotencyKeys)
        assert await keys.claim(ANONYMOUS, "in-flight") is None

    with client.portal() as portal:
        portal.call(claim)  # another request holds the key

    response = client.post("/evaluations", json=NEW, headers=_with("in-flight"))

    assert response.status_code == 409
    assert response.headers["retry-after"] == "1"
    assert response.json()["type"].endswith("idempotency-key-in-use")
    assert _count(client) == 0


@pytest.mark.parametrize("key", ["", " ", "k" * 256, "tab\tkey", "é"])
def test_a_malformed_key_is_a_400_naming_the_header(client: TestClient[Any], key: str) -> None:
    response = client.post("/evaluations", json=NEW, headers=[(b"Idempotency-Key", key.encode())])

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert _count(client) == 0


def test_a_quoted_key_is_the_same_key(client: TestClient[Any]) -> None:
    """The draft sends the key as a structured-field string: ``"…"``."""
    first = client.post("/evaluations", json=NEW, headers=_with('"abc-123"'))
    retry = client.post("/evaluations", json=NEW, headers=_with("abc-123"))

    assert retry.json() == first.json()


def test_keys_belong_to_their_caller(make_client: ClientFactory) -> None:
    keys = parse_api_keys(
        "gateway:gateway-secret-0123456789:write,worker:worker-secret-0123456789:write"
    )
    client = make_client(access={"api_keys": keys})

    for secret in ("gateway-secret-0123456789", "worker-secret-0123456789"):
        response = client.post(
            "/evaluations", json=NEW, headers=_with("shared", **{"X-API-Key": secret})
        )
        assert response.status_code == 200
        assert "idempotent-replayed" not in response.headers

    listing = client.get("/evaluations", headers={"X-API-Key": "gateway-secret-0123456789"})
    assert listing.json()["total"] == 2


def test_an_answer_outlives_a_restart(make_client: ClientFactory) -> None:
    first = make_client().post("/evaluations", json=NEW, headers=KEY)

    retry = make_client().post("/evaluations", json=NEW, headers=KEY)

    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"


def test_expired_keys_are_purged(make_client: ClientFactory) -> None:
    client = make_client(idempotency={"ttl_s": 1})
    client.post("/evaluations", json=NEW, headers=KEY)

    async def purged_later() -> int:
        await asyncio.sleep(1.1)
        keys = await client.app.state.dishka_container.get(IdempotencyKeys)
        purged: int = await keys.purge(DEFAULT_TENANT)
        return purged

    with client.portal() as portal:
        # One expired key, kept by the database and by the files beside the journal: purged
        # here, or already by the service's own job, which runs every ``ttl_s`` (here 1 s)
        # and so may come first on a loaded machine.
        assert portal.call(purged_later) in (0, 1, 2)
    retry = client.post("/evaluations", json=NEW, headers=KEY)
    assert "idempotent-replayed" not in retry.headers
    assert _count(client) == 2


def test_a_redelivered_event_under_a_new_key_is_answered(client: TestClient[Any]) -> None:
    """The event is already stored, so the write changes nothing and commits nothing; its
    answer is still kept (the request's open transaction does not hold the key's store)."""
    created = client.post("/evaluations", json=NEW).json()
    path = f"/evaluations/{created['id']}/events"
    event = {"type": "note", "message": "once", "event_id": "ev-1"}

    first = client.post(path, json=event, headers=_with("event-a"))
    redelivered = client.post(path, json=event, headers=_with("event-b"))
    retried = client.post(path, json=event, headers=_with("event-b"))

    assert [r.status_code for r in (first, redelivered, retried)] == [200, 200, 200]
    assert retried.headers["idempotent-replayed"] == "true"
    assert len(client.get(path).json()) == 1


class _UnstorableAnswers(MemoryIdempotencyStore):
    async def complete(self, answer: KeyRecord) -> None:
        raise RuntimeError("the answer cannot be stored")


class _UnstorableAnswersProvider(Provider):
    @provide(scope=Scope.APP, override=True)
    def store(self) -> IdempotencyStore:
        return _UnstorableAnswers()


def test_an_answer_that_cannot_be_stored_still_reaches_the_client(
    backend_settings: Settings,
) -> None:
    """The write happened: its answer leaves; the key stays in flight until its lease."""
    settings = backend_settings.changed(storage={"fallback_backend": FallbackBackend.NONE})
    with TestClient(create_app(settings, _UnstorableAnswersProvider())) as client:
        first = client.post("/evaluations", json=NEW, headers=KEY)
        retry = client.post("/evaluations", json=NEW, headers=KEY)

        assert first.status_code == 200
        assert first.json()["code"] == NEW["code"]
        assert retry.status_code == 409
        assert _count(client) == 1
