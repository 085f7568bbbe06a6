"""``DELETE /subjects/{subject}`` and ``GET /subjects/{subject}/export`` on every configuration.

The central test plants a marker in everything one subject has (code, a large output
in a blob, error, log, events, metadata, a kept Idempotency-Key answer, the running
registry, the log tail, the mirror's copy) and in a second subject's evaluations, erases
the first, and reads the real bytes (files, SQLite or PostgreSQL rows, Redis values):
the first marker is nowhere, the second everywhere it was.
"""

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio as redis
from litestar.testing import TestClient

from application.use_cases.export_evaluations import ArchivedEvaluation
from domain.subjects import subject_digest
from interfaces.settings import Settings, StorageBackend, load_settings
from tests.erasure_traces import places_holding, s3_objects_holding
from tests.integration.conftest import ClientFactory, client_of
from tests.integration.hostile import assert_problem
from tests.integration.test_auth_matrix import API_KEYS, CALLERS
from tests.integration.test_cli_maintenance import cli, cli_json

Client = TestClient[Any]
# Outputs over 2 KiB go to the blob store, compressed over 1 KiB.
STORAGE = {"large_file_threshold": 2048, "compression_threshold": 1024}


def _client(make_client: ClientFactory, settings: Settings, **overrides: Any) -> Client:
    storage = dict(STORAGE)
    if settings.storage.backend is not StorageBackend.FILE:
        storage["file_mirror"] = True  # the file backend mirrors by itself
    return make_client(storage=storage, **overrides)


def _plant(client: Client, subject: str, marker: str, count: int = 2) -> list[str]:
    """``count`` evaluations of ``subject``, each holding ``marker`` in every part; the
    first stays running (registry, log tail), the last is soft-deleted."""
    ids = []
    for number in range(count):
        created = client.post(
            "/evaluations",
            json={
                "code": f"print('{marker}')",
                "metadata": {"subject": subject, "note": marker},
            },
            headers={"Idempotency-Key": f"{marker}-{number}"},
        )
        assert created.status_code == 200, created.text
        evaluation_id = created.json()["id"]
        ids.append(evaluation_id)
        running = client.put(f"/evaluations/{evaluation_id}", json={"status": "running"})
        assert running.status_code == 200, running.text
        log = client.post(f"/evaluations/{evaluation_id}/logs", json={"content": f"{marker}\n"})
        assert log.status_code == 200, log.text
        event = client.post(
            f"/evaluations/{evaluation_id}/events", json={"type": "note", "message": marker}
        )
        assert event.status_code == 200, event.text
        if number == 0:
            continue
        finished = client.put(
            f"/evaluations/{evaluation_id}",
            json={"status": "completed", "output": (marker + " ") * 400, "error": marker},
        )
        assert finished.status_code == 200, finished.text
        assert finished.json()["output_truncated"] is True, finished.json()
    deleted = client.delete(f"/evaluations/{ids[-1]}")
    assert deleted.status_code == 200, deleted.text
    return ids


def _platform_worker_batch(settings: Settings, evaluation_id: str, text: str) -> None:
    """What the platform's storage worker leaves in Redis: ``logs:<id>:latest``."""
    if settings.redis.url is None:
        return

    async def put() -> None:
        client = redis.Redis.from_url(settings.redis.url or "")
        try:
            await client.setex(f"{settings.redis.key_prefix}logs:{evaluation_id}:latest", 300, text)
        finally:
            await client.aclose()

    asyncio.run(put())


def _where(places: list[str]) -> list[str]:
    """Places, a SQLite file and its write-ahead log as one (a checkpoint moves rows)."""
    return sorted({place.removesuffix("-wal") for place in places})


def _raw_copies(root: Path, marker: str) -> list[str]:
    """Every file under ``root`` whose raw bytes hold ``marker``: SQLite files too, free
    pages and write-ahead log included."""
    return [
        str(path)
        for path in root.rglob("*")
        if path.is_file() and marker.encode() in path.read_bytes()
    ]


def test_erasing_a_subject_leaves_no_byte_of_it_and_every_byte_of_another(
    make_client: ClientFactory, backend_settings: Settings, tmp_path: Path
) -> None:
    client = _client(make_client, backend_settings)
    erased, kept = f"ERASE-{uuid.uuid4().hex}", f"KEEP-{uuid.uuid4().hex}"
    doomed = _plant(client, "alice@example.com", erased)
    others = _plant(client, "bob@example.com", kept)
    _platform_worker_batch(backend_settings, doomed[0], erased)
    _platform_worker_batch(backend_settings, others[0], kept)
    for evaluation_id in doomed[:1] + others[:1]:  # cached, read once
        assert client.get(f"/evaluations/{evaluation_id}").status_code == 200
    planted = _where(places_holding(backend_settings, erased))
    kept_before = _where(places_holding(backend_settings, kept))
    kinds = {place.split(":", 1)[0] for place in planted}
    assert "file" in kinds and any("idempotency" in place for place in planted), planted
    if backend_settings.redis.url is not None:
        assert {"redis", "postgres"} <= kinds, planted
    assert len(planted) == len(kept_before), (planted, kept_before)

    answer = client.delete("/subjects/alice@example.com")

    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["complete"] is True
    assert report["evaluations"] == 2
    assert report["events"] == 2 and report["log_chunks"] == 2
    assert report["blobs"] == 1  # the output of the finished one
    assert report["idempotency_answers"] >= 2
    assert report["subject_sha256"] == subject_digest("alice@example.com")
    assert places_holding(backend_settings, erased) == []
    assert _where(places_holding(backend_settings, kept)) == kept_before
    for evaluation_id in doomed:
        assert client.get(f"/evaluations/{evaluation_id}").status_code == 404
    exported = client.get("/subjects/bob@example.com/export")
    assert exported.status_code == 200
    assert [line["output"] for line in map(json.loads, exported.text.splitlines())] == [
        None,
        (kept + " ") * 400,
    ]
    assert _raw_copies(tmp_path, erased) == []
    # A retried create with an erased key runs again: its kept answer is gone.
    retried = client.post(
        "/evaluations",
        json={"code": "print(1)", "metadata": {"subject": "alice@example.com"}},
        headers={"Idempotency-Key": f"{erased}-0"},
    )
    assert retried.status_code in (200, 422), retried.text
    assert erased not in retried.text


def test_the_audit_trail_records_the_erasure_without_the_subject(client: Client) -> None:
    subject = "carol@example.com"
    created = client.post("/evaluations", json={"code": "x", "metadata": {"subject": subject}})
    assert created.status_code == 200, created.text

    assert client.delete(f"/subjects/{subject}").status_code == 200

    trail = client.get("/audit", params={"limit": 500}).json()["items"]
    erasures = [entry for entry in trail if entry["action"] == "erase"]
    assert len(erasures) == 1
    assert erasures[0]["fields"] == [f"subject_sha256:{subject_digest(subject)}"]
    assert erasures[0]["sizes"]["evaluations"] == 1
    purges = [entry for entry in trail if entry["action"] == "purge"]
    assert [entry["evaluation_id"] for entry in purges] == [created.json()["id"]]
    assert subject not in str(trail)


def test_erasure_is_idempotent_and_goes_by_the_limit(client: Client) -> None:
    for _ in range(5):
        made = client.post("/evaluations", json={"code": "x", "metadata": {"subject": "dan"}})
        assert made.status_code == 200, made.text
    other = client.post("/evaluations", json={"code": "x", "metadata": {"subject": "dana"}})
    number = client.post("/evaluations", json={"code": "x", "metadata": {"subject": 7}})
    listed = client.post("/evaluations", json={"code": "x", "metadata": {"subject": ["dan"]}})

    first = client.delete("/subjects/dan", params={"limit": 3}).json()
    second = client.delete("/subjects/dan", params={"limit": 3}).json()
    third = client.delete("/subjects/dan").json()

    assert (first["evaluations"], first["complete"]) == (3, False)
    assert (second["evaluations"], second["complete"]) == (2, True)
    assert (third["evaluations"], third["complete"]) == (0, True)
    for made in (other, number, listed):
        assert client.get(f"/evaluations/{made.json()['id']}").status_code == 200
    assert client.delete("/subjects/7").json()["evaluations"] == 0  # a number is no subject


def test_an_unknown_subject_is_erased_already(client: Client) -> None:
    answer = client.delete("/subjects/nobody")
    assert answer.status_code == 200
    assert answer.json()["evaluations"] == 0 and answer.json()["complete"] is True


def test_the_export_of_a_subject_is_whole_and_holds_no_other(client: Client) -> None:
    marker = uuid.uuid4().hex
    mine = client.post(
        "/evaluations", json={"code": "a", "metadata": {"subject": "ünïcødé ✓"}}
    ).json()["id"]
    big = 'y" ✓\n' * 100_000 + marker  # quotes, newlines, multibyte across chunks
    assert client.put(f"/evaluations/{mine}", json={"output": big}).status_code == 200
    assert client.post(f"/evaluations/{mine}/logs", json={"content": "line\n"}).status_code == 200
    assert client.post(f"/evaluations/{mine}/events", json={"type": "t"}).status_code == 200
    for other in ("someone else", "ünï/cødé"):
        made = client.post("/evaluations", json={"code": "b", "metadata": {"subject": other}})
        assert made.status_code == 200, made.text

    exported = client.get("/subjects/ünïcødé ✓/export")

    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    (line,) = exported.text.splitlines()
    archived = json.loads(line)
    msgspec.json.decode(line, type=ArchivedEvaluation)  # what ``import`` reads
    assert archived["record"]["id"] == mine
    assert archived["output"] == big
    assert archived["log"] == "line\n"
    assert [event["event_type"] for event in archived["events"]] == ["t"]
    assert client.get("/subjects/nobody/export").text == ""
    # A subject holding a slash: percent-encoded in the path, it reaches no route.
    assert client.get("/subjects/%C3%BCn%C3%AF%2Fc%C3%B8d%C3%A9/export").status_code == 404


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/subjects/" + "s" * 1025, 422, "subject"),
        ("/subjects/a%00b", 422, "subject"),
        ("/subjects/a?limit=0", 422, "limit"),
        ("/subjects/a?limit=10001", 422, "limit"),
    ],
)
def test_hostile_subjects_get_a_problem_naming_the_field(
    client: Client, path: str, status: int, field: str
) -> None:
    for method in ("DELETE", "GET"):
        if method == "GET" and "limit" in path:
            continue
        target = path if method == "DELETE" else path + "/export"
        assert_problem(client.request(method, target), status, field)


def test_an_empty_subject_reaches_no_route(client: Client) -> None:
    assert client.delete("/subjects/").status_code in (404, 405)


def test_erasure_and_export_need_an_admin_key(make_client: ClientFactory) -> None:
    client = make_client(access={"api_keys": API_KEYS})
    for caller in ("read", "write"):
        assert_problem(client.delete("/subjects/s", headers=CALLERS[caller]), 403)
        assert_problem(client.get("/subjects/s/export", headers=CALLERS[caller]), 403)
    assert client.delete("/subjects/s", headers=CALLERS["admin"]).status_code == 200


def test_the_cli_erases_a_subject_with_progress_and_exit_codes(
    make_client: ClientFactory, backend_settings: Settings
) -> None:
    client = make_client()
    mine = [
        client.post("/evaluations", json={"code": "x", "metadata": {"subject": "eve/ü"}}).json()[
            "id"
        ]
        for _ in range(3)
    ]
    theirs = client.post("/evaluations", json={"code": "x", "metadata": {"subject": "eve"}})

    report = cli_json(backend_settings, "erase", "--subject", "eve/ü", "--batch-size", "2")
    text = cli(backend_settings, "erase", "--subject", "eve/ü")

    assert (report["evaluations"], report["batches"], report["complete"]) == (3, 2, True)
    assert report["subject_sha256"] == subject_digest("eve/ü")
    assert "erased 0 evaluation(s)" in text.stderr and subject_digest("eve/ü") in text.stderr
    assert "eve/ü" not in text.output
    # A process of its own: an in-process cache of another process is out of the CLI's
    # reach (README, Erasure); Redis is not.
    after = client if backend_settings.redis.url is not None else make_client()
    for evaluation_id in mine:
        assert after.get(f"/evaluations/{evaluation_id}").status_code == 404
    assert after.get(f"/evaluations/{theirs.json()['id']}").status_code == 200
    for bad in ("", "a\x00b", "s" * 1025):
        refused = cli(backend_settings, "erase", "--subject", bad, expect=2)
        assert "--subject" in refused.stderr


@pytest.mark.s3
def test_erasure_removes_the_subjects_objects_from_s3(s3_env: dict[str, str]) -> None:
    env = {
        **s3_env,
        "BLOB_BACKEND": "s3",
        "FILE_MIRROR": "true",
        "LARGE_FILE_THRESHOLD": "2048",
        "COMPRESSION_THRESHOLD": "1024",
    }
    erased, kept = f"ERASE-{uuid.uuid4().hex}", f"KEEP-{uuid.uuid4().hex}"
    settings = load_settings(env)
    for client in client_of(env):
        _plant(client, "alice", erased)
        _plant(client, "bob", kept)
        planted = s3_objects_holding(env, erased)
        kept_before = s3_objects_holding(env, kept)
        assert len(planted) == len(kept_before) == 1, (planted, kept_before)

        report = client.delete("/subjects/alice").json()

        assert (report["evaluations"], report["blobs"]) == (2, 1)
        assert s3_objects_holding(env, erased) == []
        assert s3_objects_holding(env, kept) == kept_before
        assert places_holding(settings, erased) == []
