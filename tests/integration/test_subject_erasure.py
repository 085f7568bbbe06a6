"""``DELETE /subjects/{subject}`` and ``GET /subjects/{subject}/export`` on every configuration.

The central test plants a marker in everything one subject has (code, a large output
in a blob, error, log, events, metadata, a kept Idempotency-Key answer, the running
registry, the log tail, the mirror's copy) and in a second subject's evaluations, erases
the first, and reads the real bytes (files, SQLite or PostgreSQL rows, Redis values):
the first marker is nowhere, the second everywhere it was.
"""

import asyncio
import json
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
import msgspec
import pytest
import redis.asyncio as redis
from dishka import make_async_container
from litestar.testing import TestClient

from application.backends import Backend
from application.errors import BackendUnavailableError
from application.intents import AppendLogIntent, JournalEntry
from application.ports.evaluation_keys import EvaluationKeys
from application.ports.journal import Journal
from application.ports.record_mirror import Unreadable
from application.use_cases.export_evaluations import ArchivedEvaluation
from domain.subjects import subject_digest
from infrastructure.crypto.blob_store import SealedBlobStore
from infrastructure.crypto.evaluation_keys import EvaluationKeyring, Sealing
from infrastructure.crypto.keyring import EVALUATION_KID, UnwrapError, load_keyring
from infrastructure.crypto.lines import LineSeal
from infrastructure.crypto.sealed import HEADER_MAX, SealedDataError, open_all, parse_header
from infrastructure.files.blob_store import FileBlobStore
from infrastructure.files.mirror import read_mirrored
from infrastructure.sql.engine import create_engine, create_session_maker
from infrastructure.sql.evaluation_keys import SqlEvaluationKeys
from interfaces.providers import build_providers
from interfaces.settings import Settings, StorageBackend, load_settings
from tests.erasure_traces import places_holding, s3_objects_holding
from tests.integration.conftest import ClientFactory, client_of
from tests.integration.hostile import assert_problem
from tests.integration.neighbour import neighboured
from tests.integration.test_auth_matrix import API_KEYS, CALLERS
from tests.integration.test_cli_maintenance import cli, cli_json
from tests.keys import write_keys_file

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


@pytest.mark.alone("reads every byte on disk, in Redis and in the database")
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
    for client in client_of(env, alone=True):  # reads every byte on disk and in Redis
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


# --- Crypto-shredding (ADR 0033) -----------------------------------------------------------


class Copies(msgspec.Struct, kw_only=True):
    """What was copied aside of one evaluation, out of the erasure's reach: its directory
    of the tree (a blob, or the mirror's files), the journal segments, its Redis value."""

    evaluation_id: str
    root: Path  # holds ``evaluations/<id>/`` and ``journal/`` as the tree did
    cached: bytes | None = None


def _cached_value(settings: Settings, evaluation_id: str) -> bytes | None:
    """The evaluation's record as Redis holds it (no Redis: ``None``). Taken before the
    journal gets an entry of it: a replay of that entry changes the record and drops it."""
    if settings.redis.url is None:
        return None

    async def read() -> bytes | None:
        client = redis.Redis.from_url(settings.redis.url or "")
        try:
            key = f"{settings.redis.key_prefix}eval:{{{evaluation_id}}}"
            value = await client.hget(key, "d")
            return value.encode() if isinstance(value, str) else value
        finally:
            await client.aclose()

    cached = asyncio.run(read())
    assert cached is not None, "the record was read, so it is cached"
    return cached


def _copy_aside(
    settings: Settings, evaluation_id: str, target: Path, cached: bytes | None
) -> Copies:
    tree = Path(settings.storage.file_storage_path)
    shutil.copytree(tree / "evaluations" / evaluation_id, target / "evaluations" / evaluation_id)
    shutil.copytree(tree / "journal", target / "journal", ignore=shutil.ignore_patterns(".*"))
    return Copies(evaluation_id=evaluation_id, root=target, cached=cached)


def _opened(settings: Settings, copies: Copies) -> dict[str, str]:
    """What a holder of ENCRYPTION_KEYS_FILE and of the database makes of each copy, as a
    new process (no key held in memory): the plaintext, or the error it fails with."""
    evaluation_id = copies.evaluation_id
    found: dict[str, str] = {}

    async def run() -> None:
        assert settings.encryption.keys_file is not None
        keyring = load_keyring(settings.encryption.keys_file)
        engine = create_engine(settings.database)
        keys = EvaluationKeyring(SqlEvaluationKeys(create_session_maker(engine)), keyring)
        try:
            directory = copies.root / "evaluations" / evaluation_id
            blobs = [p for p in directory.iterdir() if p.name.startswith(("output", "error"))]
            store = SealedBlobStore(
                FileBlobStore(copies.root, compress=False), keyring, Backend.FILE, keys=keys
            )
            for path in blobs:
                try:
                    plain = await store.get(f"evaluations/{evaluation_id}/{path.name}")
                    found[f"blob {path.name}"] = plain.decode()
                except BackendUnavailableError as error:
                    found[f"blob {path.name}"] = f"error: {error}"
            seal = LineSeal(keyring, keys=keys)
            lines = [
                line
                for segment in (copies.root / "journal").glob("*.jsonl")
                for line in segment.read_bytes().splitlines()
                if line.startswith(b"sealed~" + evaluation_id.encode() + b" ")
            ]
            for number, line in enumerate(lines):
                try:  # the journal's lines are bound to "journal" (infrastructure.files.journal)
                    plain = await anyio.to_thread.run_sync(seal.open, line, b"journal")
                    found[f"journal line {number}"] = plain.decode()
                except SealedDataError as error:
                    found[f"journal line {number}"] = f"error: {error}"
            if settings.storage.file_mirror:
                copy = await anyio.to_thread.run_sync(read_mirrored, directory, seal)
                found["mirror"] = (
                    f"error: {copy.reason}" if isinstance(copy, Unreadable) else copy.record.code
                )
            if copies.cached is not None:
                context = f"cache|eval:{{{evaluation_id}}}".encode()
                try:
                    header = parse_header(copies.cached[:HEADER_MAX])
                    cipher = await Sealing(keyring, keys).of(header, context, evaluation_id)
                    found["redis"] = open_all(cipher, copies.cached).decode()
                except (UnwrapError, SealedDataError) as error:
                    found["redis"] = f"error: {error}"
        finally:
            await engine.dispose()

    asyncio.run(run())
    return found


def _journal_an_append(settings: Settings, evaluation_id: str, text: str) -> None:
    """An entry of the service's own journal (as wired), written by a process that has
    seen the evaluation (its key at hand: the journal never asks the key table)."""

    async def run() -> None:
        container = make_async_container(*build_providers(settings), context={Settings: settings})
        try:
            keys = await container.get(EvaluationKeys)
            assert isinstance(keys, EvaluationKeyring)
            assert await keys.key(evaluation_id) is not None
            journal = await container.get(Journal)
            await journal.append(
                JournalEntry(
                    id=uuid.uuid4().hex,
                    evaluation_id=evaluation_id,
                    at=datetime.now(UTC),
                    intent=AppendLogIntent(content=text),
                    actor="key:gateway",
                )
            )
        finally:
            await container.close()

    asyncio.run(run())


def _erased_once_the_replay_is_done(client: Client, subject: str) -> Any:
    """``DELETE /subjects/{subject}``, asked again as its 503 says while the service's own
    replay of the entries journaled above is running (an erasure waits for it to end)."""
    for _ in range(30):
        answer = client.delete(f"/subjects/{subject}")
        if answer.status_code != 503 or "Retry-After" not in answer.headers:
            return answer
        time.sleep(float(answer.headers["Retry-After"]))
    return answer


@pytest.mark.alone(
    "copies the journal and the cache aside: another instance's replay would change both"
)
def test_with_shredding_a_copy_made_before_an_erasure_opens_before_it_and_never_after(
    make_client: ClientFactory, backend_settings: Settings, tmp_path: Path
) -> None:
    """Blob files, journal lines, the mirror's copy and the Redis value of an erased
    evaluation, copied aside before the erasure: they open with the keys file and the
    database before it, and not after (the evaluation key is destroyed); another subject's
    copies and what was sealed before shredding was on still open."""
    keys = write_keys_file(tmp_path / "encryption-keys")
    storage: dict[str, Any] = dict(STORAGE)
    if backend_settings.storage.backend is not StorageBackend.FILE:
        storage["file_mirror"] = True
    sealed = {"enabled": True, "keys_file": keys}
    shredding = {**sealed, "shredding": True}
    settings = backend_settings.changed(storage=storage, encryption=shredding)
    erased, kept = f"ERASE-{uuid.uuid4().hex}", f"KEEP-{uuid.uuid4().hex}"
    # Before shredding was on, and stopped before it is: a running instance without it
    # would replay the journal entries below and write their mirror copies under the KEK.
    earlier_settings = backend_settings.changed(storage=storage, encryption=sealed)
    with neighboured(earlier_settings, alone=True) as earlier:
        before_on = _finished(earlier, "bob@example.com", kept)
    client = make_client(storage=storage, encryption=shredding)
    mine_id = _finished(client, "alice@example.com", erased)
    theirs_id = _finished(client, "bob@example.com", kept)
    cached = {each: _cached_value(settings, each) for each in (mine_id, theirs_id)}
    for evaluation_id in (mine_id, theirs_id):
        _journal_an_append(settings, evaluation_id, f"{evaluation_id}\n")
    copies = [
        _copy_aside(settings, each, tmp_path / "copies" / each, cached[each])
        for each in (mine_id, theirs_id)
    ]
    mine, theirs = (_opened(settings, each) for each in copies)
    named = {name.split(".")[0] for name in mine}
    assert {"blob output", "blob error", "journal line 0"} <= named, mine
    assert ("redis" in mine) is (settings.redis.url is not None), mine
    assert ("mirror" in mine) is settings.storage.file_mirror, mine
    for name, plain in mine.items():
        assert erased in plain or mine_id in plain, (name, plain)

    answer = _erased_once_the_replay_is_done(client, "alice@example.com")

    assert answer.status_code == 200, answer.text
    assert answer.json()["evaluation_keys"] == 1
    after = _opened(settings, copies[0])
    assert after.keys() == mine.keys()
    for name, error in after.items():
        assert error.startswith("error: "), (name, error)
        assert f"evaluation key of '{mine_id}' is destroyed" in error, (name, error)
    assert _opened(settings, copies[1]) == theirs  # bob's copies open as they did
    assert erased not in str(theirs)
    for evaluation_id in (theirs_id, before_on):  # before shredding: under the KEK alone
        output = client.get(f"/evaluations/{evaluation_id}/output")
        assert output.status_code == 200 and output.text == (kept + " ") * 400
    assert _kek_sealed(settings, before_on) and not _kek_sealed(settings, theirs_id)


def _finished(client: Client, subject: str, marker: str) -> str:
    """An evaluation of ``subject`` holding ``marker`` everywhere, its output and error in
    blobs, read once (so Redis holds it)."""
    created = client.post(
        "/evaluations", json={"code": f"print('{marker}')", "metadata": {"subject": subject}}
    )
    assert created.status_code == 200, created.text
    evaluation_id: str = created.json()["id"]
    log = client.post(f"/evaluations/{evaluation_id}/logs", json={"content": f"{marker}\n"})
    assert log.status_code == 200, log.text
    event = {"type": "note", "message": marker}
    assert client.post(f"/evaluations/{evaluation_id}/events", json=event).status_code == 200
    done = {"status": "completed", "output": (marker + " ") * 400, "error": (marker + " ") * 400}
    finished = client.put(f"/evaluations/{evaluation_id}", json=done)
    assert finished.status_code == 200, finished.text
    assert client.get(f"/evaluations/{evaluation_id}").status_code == 200
    return evaluation_id


def _kek_sealed(settings: Settings, evaluation_id: str) -> bool:
    """Whether the output blob's data key is wrapped by a KEK (not an evaluation key)."""
    directory = Path(settings.storage.file_storage_path) / "evaluations" / evaluation_id
    (blob,) = directory.glob("output*")
    return parse_header(blob.read_bytes()[:HEADER_MAX]).kid != EVALUATION_KID
