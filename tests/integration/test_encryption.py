"""``ENCRYPTION=on`` through the API and the CLI, on every configuration: outputs and errors
read back whole, by range and as zstd, while the bytes on disk and in S3 hold none of their
text; clear blobs from before still read; ``new-key`` and ``rotate-keys`` (ADR 0031)."""

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as redis
import sqlalchemy as sa
from click.testing import CliRunner, Result
from dishka import make_async_container
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import create_async_engine

from application.commands import NewEvaluation
from application.intents import CreateIntent, JournalEntry
from application.ports.journal import Journal
from application.services.payloads import is_mirror_file
from domain.identifiers import EvaluationId
from infrastructure.crypto.keyring import EVALUATION_KID
from infrastructure.crypto.lines import PREFIX as SEALED_LINE
from infrastructure.crypto.sealed import HEADER_MAX, MAGIC, parse_header
from infrastructure.sql.tables import not_sealed
from interfaces.cli import main
from interfaces.http.app import create_app
from interfaces.providers import build_providers
from interfaces.settings import Settings, load_settings
from tests.integration.conftest import ClientFactory, client_of, configured
from tests.integration.neighbour import (
    NEIGHBOUR_SECRET,
    NEIGHBOUR_TENANT,
    NeighbouredClient,
    neighboured,
)
from tests.integration.test_api_s3 import _bucket
from tests.integration.test_cli_fsck import environment
from tests.keys import write_keys_file
from tests.services import (
    TEST_REDIS_URL,
    beneath_row_security,
    migrated_postgres_database,
    redis_test_keys,
)

MARKER = "PLAINTEXT-MARKER-c0ffee"
NEIGHBOUR_KEY = {"X-API-Key": NEIGHBOUR_SECRET}
OUTPUT = f"{MARKER} line ✓ of output\n" * 12_000  # > 100 KiB: a blob, zstd
ERROR = f"{MARKER} Traceback line\n" * 6_000


def _cli(env: dict[str, str], *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _new_key(path: Path) -> str:
    result = _cli({}, "new-key", "--out", str(path))
    assert result.exit_code == 0, result.output
    return result.output.strip()


def _blobs(settings: Settings) -> dict[str, bytes]:
    """Every blob file of the tree: the output, the error and, unless the record mirror
    keeps the record (whose copies are not blobs), the ``metadata.json`` snapshot."""
    root = Path(settings.storage.file_storage_path)
    mirrored = settings.storage.file_mirror
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in (root / "evaluations").rglob("*")
        if path.is_file() and not (mirrored and is_mirror_file(path.relative_to(root).as_posix()))
    }


def _per_evaluation(settings: Settings) -> int:
    return 2 if settings.storage.file_mirror else 3


CODE = f"print('{MARKER}')"


def _create(client: TestClient[Any], evaluation_id: str) -> None:
    """An evaluation whose every text holds the marker: code, a metadata value, a large
    output and error (a blob, a preview and a tail), an event's message, a log piece."""
    created = client.post(
        "/evaluations",
        json={"id": evaluation_id, "code": CODE, "metadata": {"secret": MARKER, "team": "t"}},
    )
    assert created.status_code == 200, created.text
    updated = client.put(
        f"/evaluations/{evaluation_id}",
        json={"output": OUTPUT, "error": ERROR},
        headers={"Idempotency-Key": f"put-{evaluation_id}"},  # its answer is kept
    )
    assert updated.status_code == 200, updated.text
    event = {"type": "progress", "message": f"{MARKER} event"}
    assert client.post(f"/evaluations/{evaluation_id}/events", json=event).status_code == 200
    log = {"content": f"{MARKER} log\n"}
    assert client.post(f"/evaluations/{evaluation_id}/logs", json=log).status_code == 200


def _kept_answers(settings: Settings) -> list[bytes]:
    """The bodies of the Idempotency-Key answers kept as files beside the journal."""
    directory = Path(settings.storage.file_storage_path) / "idempotency"
    return [
        base64.b64decode(json.loads(path.read_bytes())["response"]["body"])
        for path in directory.glob("*.json")
    ]


def _database_texts(settings: Settings) -> bytes:
    """Every stored value of the records, events and log pieces, as the database holds it."""
    url = settings.database.url
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))

    async def dump() -> bytes:
        dsn = beneath_row_security(url).replace("postgresql+asyncpg", "postgresql")
        connection = await asyncpg.connect(dsn)
        try:
            texts = [
                await connection.fetchval(f"SELECT string_agg(t::text, '|') FROM {table} t")
                for table in ("evaluations", "evaluation_events", "log_chunks")
            ]
            texts.append(
                await connection.fetchval(
                    "SELECT string_agg(encode(body, 'escape'), '|') FROM idempotency_keys"
                )
            )
        finally:
            await connection.close()
        return "|".join(text or "" for text in texts).encode()

    return asyncio.run(dump())


def _reads_back(client: TestClient[Any], evaluation_id: str) -> None:
    output = client.get(f"/evaluations/{evaluation_id}/output")
    assert output.status_code == 200 and output.text == OUTPUT
    assert client.get(f"/evaluations/{evaluation_id}/error").text == ERROR
    ranged = client.get(
        f"/evaluations/{evaluation_id}/output", headers={"Range": "bytes=100000-100099"}
    )
    assert ranged.status_code == 206
    assert ranged.content == OUTPUT.encode()[100_000:100_100]
    complete = client.get(f"/evaluations/{evaluation_id}/complete").json()
    assert complete["evaluation"]["output"] == OUTPUT
    assert complete["evaluation"]["code"] == CODE
    assert complete["evaluation"]["metadata"]["secret"] == MARKER
    assert [event["message"] for event in complete["events"]] == [f"{MARKER} event"]
    assert complete["logs"] == f"{MARKER} log\n"
    record = client.get(f"/evaluations/{evaluation_id}").json()
    assert record["output"] == OUTPUT[: len(record["output"])] and record["output_truncated"]
    listed = client.get("/evaluations", params={"limit": 50}).json()
    (item,) = [item for item in listed["evaluations"] if item["id"] == evaluation_id]
    assert item["code"] == CODE


def test_outputs_are_sealed_on_disk_and_read_back(
    make_client: ClientFactory, backend_settings: Settings, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    _new_key(keys)
    client = make_client(
        encryption={"enabled": True, "keys_file": keys, "metadata_keys": ("secret",)}
    )
    _create(client, "sealed-1")

    _reads_back(client, "sealed-1")
    database = _database_texts(backend_settings)
    assert b"sealed-1" in database  # the dump holds the rows
    assert MARKER.encode() not in database
    kept = _kept_answers(backend_settings)
    assert kept, "the Idempotency-Key answer is kept beside the journal too"
    assert not any(MARKER.encode() in body for body in kept)
    zstd = client.get("/evaluations/sealed-1/output", headers={"Accept-Encoding": "zstd"})
    assert zstd.status_code == 200
    assert zstd.headers["content-encoding"] == "zstd"  # the stored frame, opened, passed on
    assert zstd.text == OUTPUT  # decoded by the client

    blobs = _blobs(backend_settings)
    assert len(blobs) == _per_evaluation(backend_settings), sorted(blobs)
    for name, data in blobs.items():
        assert data.startswith(MAGIC), name
        assert MARKER.encode() not in data, name


@pytest.mark.alone("rotate-keys counts every tenant's keys")
def test_clear_blobs_stay_readable_and_rotate_keys_seals_and_rewraps_them(
    make_client: ClientFactory, backend_settings: Settings, tmp_path: Path
) -> None:
    clear = make_client()
    _create(clear, "clear-1")
    keys = tmp_path / "keys"
    first = _new_key(keys)
    on = {"enabled": True, "keys_file": keys}
    sealed = make_client(encryption=on)
    _create(sealed, "sealed-1")
    _reads_back(sealed, "clear-1")
    each = _per_evaluation(backend_settings)
    assert sum(MARKER.encode() in data for data in _blobs(backend_settings).values()) == each

    env = {
        **environment(backend_settings),
        "ENCRYPTION": "on",
        "ENCRYPTION_KEYS_FILE": str(keys),
    }
    rotated = _cli(env, "rotate-keys", "--json")
    assert rotated.exit_code == 0, rotated.output
    report = json.loads(rotated.output)
    assert report["outcomes"] == {"current": each, "rewrapped": 0, "sealed": each, "clear": 0}
    values = report["values"]
    assert values["sealed"] >= 6 and values["current"] >= 6, values  # each record's texts
    assert values["rewrapped"] == values["clear"] == 0
    assert not any(MARKER.encode() in data for data in _blobs(backend_settings).values())

    second = _new_key(keys)
    assert second != first
    again = json.loads(_cli(env, "rotate-keys", "--json").output)
    assert again["outcomes"]["rewrapped"] == 2 * each
    assert again["values"]["rewrapped"] == values["sealed"] + values["current"]
    assert again["rows"] == report["rows"] > 0
    # Every blob is under the second key now: the first can leave the file.
    keys.write_text(keys.read_text().splitlines()[1] + "\n")
    fresh = make_client(encryption=on)
    _reads_back(fresh, "clear-1")
    _reads_back(fresh, "sealed-1")


@pytest.mark.alone("reads every blob in the store")
def test_rotate_keys_rewraps_the_key_table_of_shredding(
    make_client: ClientFactory, backend_settings: Settings, tmp_path: Path
) -> None:
    """With ``ENCRYPTION_SHREDDING=on`` the blobs are sealed under evaluation keys (no
    marker on disk); ``rotate-keys`` rewraps the key table's rows, not the blobs, and once
    it has, the old key can leave the keys file."""
    keys = tmp_path / "keys"
    _new_key(keys)
    on = {"enabled": True, "keys_file": keys, "shredding": True}
    client = make_client(encryption=on)
    _create(client, "shred-1")
    _create(client, "shred-2")
    blobs = _blobs(backend_settings)
    assert len(blobs) == 2 * _per_evaluation(backend_settings), sorted(blobs)
    for name, data in blobs.items():
        assert parse_header(data[:HEADER_MAX]).kid == EVALUATION_KID, name
        assert MARKER.encode() not in data, name

    _new_key(keys)
    env = {
        **environment(backend_settings),
        "ENCRYPTION": "on",
        "ENCRYPTION_SHREDDING": "on",
        "ENCRYPTION_KEYS_FILE": str(keys),
    }
    rotated = _cli(env, "rotate-keys", "--json")

    assert rotated.exit_code == 0, rotated.output
    report = json.loads(rotated.output)
    assert report["evaluation_keys"] == 2
    assert report["keys"] == {"current": 0, "rewrapped": 2}
    assert report["outcomes"]["current"] == len(blobs)  # their data keys need nothing
    assert _blobs(backend_settings) == blobs
    again = json.loads(_cli(env, "rotate-keys", "--json").output)
    assert again["keys"] == {"current": 2, "rewrapped": 0}
    keys.write_text(keys.read_text().splitlines()[1] + "\n")  # the first key leaves
    fresh = make_client(encryption=on, cache={"enabled": False})
    _reads_back(fresh, "shred-1")
    _reads_back(fresh, "shred-2")


def test_a_keyring_without_the_key_answers_503_not_garbage(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    _new_key(keys)
    _create(make_client(encryption={"enabled": True, "keys_file": keys}), "sealed-1")
    other = tmp_path / "other-keys"
    _new_key(other)
    client = make_client(encryption={"enabled": True, "keys_file": other}, cache={"enabled": False})

    answer = client.get("/evaluations/sealed-1/output")

    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert MARKER not in answer.text


def test_new_key_refuses_to_append_to_a_file_that_is_not_a_keys_file(tmp_path: Path) -> None:
    garbage = tmp_path / "keys"
    garbage.write_text("not a key\n")

    result = _cli({}, "new-key", "--out", str(garbage))

    assert result.exit_code == 2
    assert "line 1" in result.output
    assert garbage.read_text() == "not a key\n"


def test_serve_refuses_encryption_without_a_keys_file(tmp_path: Path) -> None:
    result = _cli(
        {"ENCRYPTION": "on", "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db'}"}, "serve"
    )
    assert result.exit_code == 2
    assert "ENCRYPTION_KEYS_FILE" in result.output


@pytest.mark.s3
@pytest.mark.anyio
async def test_s3_objects_are_sealed_and_not_linked_to(
    s3_env: dict[str, str], tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    _new_key(keys)
    env = {**s3_env, "BLOB_BACKEND": "s3", "ENCRYPTION": "on", "ENCRYPTION_KEYS_FILE": str(keys)}
    for client in client_of(env):
        _create(client, "s3-sealed")
        _reads_back(client, "s3-sealed")
        link = client.get("/evaluations/s3-sealed/output-url")
        assert link.status_code == 409, link.text
        assert link.json()["type"].endswith("encrypted-at-rest")
        served = client.get("/evaluations/s3-sealed/output?redirect=true", follow_redirects=False)
        assert served.status_code == 200 and served.text == OUTPUT

    async with _bucket(env) as connection:
        listed = await connection.client.list_objects_v2(
            Bucket=env["S3_BUCKET"], Prefix=env["S3_PREFIX"]
        )
        names = [item["Key"] for item in listed.get("Contents", [])]
        blobs = [name for name in names if not name.endswith("metadata.json")]
        assert len([name for name in blobs if "/tenants/" not in name]) == 2, names
        for name in names:
            got = await connection.client.get_object(Bucket=env["S3_BUCKET"], Key=name)
            data = await got["Body"].read()
            assert data.startswith(MAGIC), name
            assert MARKER.encode() not in data, name


@pytest.mark.postgres
@pytest.mark.redis
def test_redis_holds_no_plaintext(tmp_path: Path) -> None:
    """Cached records (code, metadata, inline output) are sealed; log text never goes there."""
    keys = tmp_path / "keys"
    _new_key(keys)
    with redis_test_keys() as prefix, migrated_postgres_database() as url:
        settings = load_settings(
            {},
            database={"url": url},
            storage={"file_storage_path": tmp_path / "files"},
            redis={"url": TEST_REDIS_URL, "key_prefix": prefix},
            encryption={"enabled": True, "keys_file": keys},
        )
        with TestClient(create_app(settings)) as client:
            created = client.post(
                "/evaluations",
                json={"id": "cached-1", "code": f"print('{MARKER}')", "metadata": {"m": MARKER}},
            )
            assert created.status_code == 200, created.text
            running = {"status": "running", "output": f"{MARKER} inline"}
            assert client.put("/evaluations/cached-1", json=running).status_code == 200
            logged = client.post("/evaluations/cached-1/logs", json={"content": f"{MARKER}\n"})
            assert logged.status_code == 200
            for _ in range(2):  # a miss fills the cache, the next read is a hit
                record = client.get("/evaluations/cached-1").json()
                assert record["output"] == f"{MARKER} inline"
                assert record["code"] == f"print('{MARKER}')"
            assert MARKER in client.get("/evaluations/cached-1/logs").text
            stats = client.get("/storage/cache/details").json()
            assert stats["info"]["classes"]["records"]["keys"] >= 1

        values = asyncio.run(_redis_values(prefix))
        assert any(name.startswith(f"{prefix}eval:{{cached-1}}") for name in values), values
        for name, value in values.items():
            assert MARKER.encode() not in value, name
            assert b"inline" not in value, name


async def _redis_values(prefix: str) -> dict[str, bytes]:
    """Every value under ``prefix``: strings, hash fields, set members, list items."""
    client = redis.Redis.from_url(TEST_REDIS_URL)
    found: dict[str, bytes] = {}
    try:
        async for raw in client.scan_iter(match=f"{prefix}*"):
            name = _raw(raw).decode()
            kind = _raw(await client.type(name)).decode()
            parts: list[bytes | str]
            if kind == "string":
                parts = [await client.get(name) or b""]
            elif kind == "hash":
                parts = [_raw(k) + b"=" + _raw(v) for k, v in (await client.hgetall(name)).items()]
            elif kind == "set":
                parts = list(await client.smembers(name))
            elif kind == "list":
                parts = list(await client.lrange(name, 0, -1))
            else:
                parts = [_raw(await client.dump(name) or b"")]
            found[name] = b"\n".join(_raw(part) for part in parts)
    finally:
        await client.aclose()
    return found


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


@pytest.mark.anyio
async def test_the_failover_journal_seals_its_lines(
    backend_settings: Settings, tmp_path: Path
) -> None:
    """The service's own journal (as wired) seals an accepted write's entry on disk."""
    keys = tmp_path / "keys"
    _new_key(keys)
    settings = backend_settings.changed(encryption={"enabled": True, "keys_file": keys})
    container = make_async_container(*build_providers(settings), context={Settings: settings})
    try:
        journal = await container.get(Journal)
        await journal.append(
            JournalEntry(
                id=uuid.uuid4().hex,
                evaluation_id="journaled-1",
                at=datetime.now(UTC),
                intent=CreateIntent(
                    NewEvaluation(code=f"print('{MARKER}')", id=EvaluationId("journaled-1"))
                ),
                actor="key:gateway",
            )
        )
        (pending,) = await journal.pending()
        assert isinstance(pending.intent, CreateIntent)
        assert MARKER in pending.intent.new.code
    finally:
        await container.close()
    segments = list((Path(settings.storage.file_storage_path) / "journal").glob("*.jsonl"))
    assert segments
    for segment in segments:
        data = segment.read_bytes()
        assert data.startswith(SEALED_LINE)
        assert MARKER.encode() not in data


@pytest.mark.alone("rebuild-database restores every tenant")
def test_the_record_mirror_is_sealed_and_a_database_rebuilds_from_it(
    make_client: ClientFactory, backend_settings: Settings, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    _new_key(keys)
    client = make_client(
        storage={"file_mirror": True}, encryption={"enabled": True, "keys_file": keys}
    )
    created = client.post(
        "/evaluations",
        json={"id": "mirrored-1", "code": f"print('{MARKER}')", "metadata": {"m": MARKER}},
    )
    assert created.status_code == 200, created.text
    assert client.put("/evaluations/mirrored-1", json={"output": OUTPUT}).status_code == 200
    event = {"type": "progress", "message": MARKER}
    assert client.post("/evaluations/mirrored-1/events", json=event).status_code == 200
    assert client.post("/evaluations/mirrored-1/logs", json={"content": MARKER}).status_code == 200

    tree = Path(backend_settings.storage.file_storage_path)
    copy = tree / "evaluations" / "mirrored-1"
    assert {"metadata.json", "events.jsonl", "log.sealed"} <= {p.name for p in copy.iterdir()}
    for path in tree.rglob("*"):
        if path.is_file() and "index" not in path.relative_to(tree).parts:
            assert MARKER.encode() not in path.read_bytes(), path

    database = f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.db'}"
    env = {
        "DATABASE_URL": database,
        "FILE_STORAGE_PATH": str(tree),
        "ENCRYPTION": "on",
        "ENCRYPTION_KEYS_FILE": str(keys),
        "LOG_LEVEL": "WARNING",
    }
    rebuilt = _cli(env, "rebuild-database", "--from", str(tree), "--json")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert json.loads(rebuilt.output)["restored"] == 1
    for reader in client_of(env):
        complete = reader.get("/evaluations/mirrored-1/complete").json()
        assert complete["evaluation"]["code"] == f"print('{MARKER}')"
        assert complete["evaluation"]["output"] == OUTPUT
        assert [e["message"] for e in complete["events"]] == [MARKER]
        assert complete["logs"] == MARKER


def test_text_search_is_refused_naming_its_parameter(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    _new_key(keys)
    client = make_client(encryption={"enabled": True, "keys_file": keys})
    _create(client, "sealed-1")

    for parameter in ("q", "q_regex"):
        answer = client.get("/evaluations", params={parameter: MARKER})
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert parameter in answer.text and "ENCRYPTION" in answer.text


def test_the_parquet_warehouse_is_refused_with_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    _new_key(keys)
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db'}",
        "ENCRYPTION_KEYS_FILE": str(keys),
    }
    exported = _cli(env, "export", "--format", "parquet", "--to", str(tmp_path / "lake"))
    assert exported.exit_code == 2 and "ENCRYPTION_KEYS_FILE" in exported.output
    assert not (tmp_path / "lake").exists()
    scheduled = _cli({**env, "EXPORT_TO": str(tmp_path / "lake")}, "serve")
    assert scheduled.exit_code == 2 and "EXPORT_TO" in scheduled.output


def test_sealed_texts_are_left_out_of_the_search_indexes(
    make_client: ClientFactory, backend_settings: Settings, tmp_path: Path
) -> None:
    """No search can match ciphertext, and random text costs a trigram index dearly
    (migration 0012): sealed values are not indexed; clear ones still are."""
    keys = tmp_path / "keys"
    _new_key(keys)
    _create(make_client(), "clear-1")
    _create(make_client(encryption={"enabled": True, "keys_file": keys}), "sealed-1")

    indexed = asyncio.run(_indexed_owners(backend_settings))

    assert "clear-1" in indexed
    assert "sealed-1" not in indexed


async def _indexed_owners(settings: Settings) -> set[str]:
    """Whose texts the search indexes hold: SQLite's FTS rows, or on PostgreSQL the rows
    each partial trigram index covers."""
    url = settings.database.url
    if url.startswith("sqlite"):
        engine = create_async_engine(url)
        async with engine.connect() as sqlite:
            rows = await sqlite.execute(sa.text("SELECT evaluation_id FROM search_rows"))
            owners = {row[0] for row in rows}
        await engine.dispose()
        return owners
    dsn = beneath_row_security(url).replace("postgresql+asyncpg", "postgresql")
    connection = await asyncpg.connect(dsn)
    try:
        owners = set()
        for key, table, column in (
            ("id", "evaluations", "code"),
            ("id", "evaluations", "output"),
            ("id", "evaluations", "output_tail"),
            ("evaluation_id", "evaluation_events", "message"),
            ("evaluation_id", "log_chunks", "content"),
        ):
            query = f"SELECT {key} FROM {table} WHERE {column} IS NOT NULL AND {not_sealed(column)}"
            owners |= {row[0] for row in await connection.fetch(query)}
            definitions = await connection.fetch(
                "SELECT indexdef FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE $2",
                table,
                f"%({column} gin_trgm_ops)%",
            )
            assert [row[0] for row in definitions], (table, column)
            assert all("WHERE" in row[0] for row in definitions), definitions  # partial
    finally:
        await connection.close()
    return owners


@pytest.fixture(params=["embedded", pytest.param("postgres+redis", marks=[pytest.mark.postgres])])
def sealed_rows_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A database whose rows are sealed (records in the database, not in files)."""
    encryption = {"enabled": True, "keys_file": write_keys_file(tmp_path / "keys")}
    for settings in configured(request.param, tmp_path):
        yield settings.changed(encryption=encryption)


def test_a_sealed_value_copied_from_another_tenants_row_of_the_same_id_does_not_open(
    sealed_rows_settings: Settings,
) -> None:
    """Values are bound to their tenant's row: one tenant's sealed code, copied beneath the
    service into another tenant's row of the same id, is refused, never read as that
    tenant's (503, as for any value that does not open)."""
    with neighboured(sealed_rows_settings) as client:
        assert isinstance(client, NeighbouredClient) and client.mirror is not None
        neighbour = client.mirror.client
        secret = {"id": "moved-1", "code": f"{MARKER} neighbour's code"}
        created = neighbour.post("/evaluations", json=secret, headers=NEIGHBOUR_KEY)
        assert created.status_code == 200, created.text
        # The neighbour's copy of this create answers 409: its row holds its own code.
        assert client.post("/evaluations", json={"id": "moved-1", "code": CODE}).is_success

    asyncio.run(_copy_neighbours_code(sealed_rows_settings.database.url, "moved-1"))

    uncached = sealed_rows_settings.changed(cache={"enabled": False})
    with neighboured(uncached, alone=True) as client:
        read = client.get("/evaluations/moved-1")
        assert read.status_code == 503, read.text
        assert MARKER not in read.text


async def _copy_neighbours_code(url: str, evaluation_id: str) -> None:
    """Beneath the service (SQLite's file, PostgreSQL's superuser, past row-level
    security): the neighbour's sealed code into the default tenant's row."""
    engine = create_async_engine(beneath_row_security(url))
    try:
        async with engine.begin() as connection:
            moved = await connection.execute(
                sa.text(
                    "UPDATE evaluations SET code = (SELECT n.code FROM evaluations n"
                    " WHERE n.tenant_id = :from_tenant AND n.id = :id)"
                    " WHERE tenant_id = 'default' AND id = :id"
                ),
                {"from_tenant": NEIGHBOUR_TENANT, "id": evaluation_id},
            )
            assert moved.rowcount == 1
    finally:
        await engine.dispose()
