"""What crypto-shredding adds to the seals (ADR 0033): blobs, cache entries and lines bound to
an evaluation are sealed under its key; a copy of them taken before the key is destroyed
opens, with the keys file, before and never after; what a KEK sealed before still opens.

"Another process" below is a new keyring read from the same keys file over the same key
table: a holder of ``ENCRYPTION_KEYS_FILE`` and of the database, who holds no key in memory.
"""

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import anyio.to_thread
import pytest

from application.backends import Backend
from application.errors import BackendUnavailableError
from application.intents import AppendLogIntent, JournalEntry
from application.ports.blob_store import BlobStore
from application.ports.evaluation_keys import WrappedKey
from application.ports.sealed_blobs import Rewrap
from domain.tenancy import TenantId
from infrastructure.crypto.blob_store import SealedBlobStore
from infrastructure.crypto.cache import SealedCache
from infrastructure.crypto.evaluation_keys import EvaluationKeyring
from infrastructure.crypto.keyring import EVALUATION_KID, Keyring, parse_keyring, unwrap_under
from infrastructure.crypto.lines import EVALUATION_PREFIX, PREFIX, LineSeal, tag_of
from infrastructure.crypto.sealed import HEADER_MAX, SealedDataError, parse_header
from infrastructure.files.blob_store import FileBlobStore
from infrastructure.files.journal import FileJournal
from infrastructure.memory.cache import MemoryCache
from infrastructure.memory.evaluation_keys import MemoryEvaluationKeys
from tests.keys import key_lines

pytestmark = pytest.mark.anyio

MARKER = b"SHRED-MARKER-plaintext "
KEY = "evaluations/eval_1/output.txt"


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def raw(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """The store under the seal, read directly: what a copy of the disk or bucket holds."""
    if request.param == "s3":
        s3: BlobStore = request.getfixturevalue("s3_raw_store")
        return s3
    return FileBlobStore(tmp_path / "blobs", compress=False)


class World:
    """One keys file and one key table; ``process()`` is a new reader of both."""

    def __init__(self, lines: Sequence[str] | None = None) -> None:
        self.lines = list(lines or key_lines())
        self.table = MemoryEvaluationKeys()

    def keyring(self) -> Keyring:
        return parse_keyring("".join(self.lines))

    def process(self) -> EvaluationKeyring:
        return EvaluationKeyring(self.table, self.keyring())

    def store(self, raw: BlobStore, *, shred: bool = True) -> SealedBlobStore:
        keys = self.process()
        return SealedBlobStore(raw, keys._keyring, Backend.FILE, keys=keys, shred=shred)


async def test_a_copy_opens_until_its_evaluation_key_is_destroyed(raw: BlobStore) -> None:
    world = World()
    writer = world.store(raw)
    await writer.put(KEY, MARKER * 5000)
    copy = await raw.get(KEY)  # a backup, a noncurrent version: out of the service's reach
    assert parse_header(copy[:HEADER_MAX]).kid == EVALUATION_KID
    assert MARKER not in copy
    assert await world.store(raw).get(KEY) == MARKER * 5000

    assert await writer._sealing.keys.destroy(["eval_1"]) == 1  # type: ignore[union-attr]
    assert unwrap_under.cache_info().currsize == 0  # the key's bytes are not kept either

    for reader in (writer, world.store(raw)):  # the writer forgot it too
        await raw.put(KEY, copy)  # the copy brought back
        with pytest.raises(
            BackendUnavailableError, match="evaluation key of 'eval_1' is destroyed"
        ):
            await reader.get(KEY)
        with pytest.raises(BackendUnavailableError, match="destroyed"):
            [chunk async for chunk in reader.stream(KEY, start=70_000)]


async def test_the_key_is_committed_before_the_blob_and_made_once(tmp_path: Path) -> None:
    world = World()
    order: list[str] = []

    class Watched(MemoryEvaluationKeys):
        async def add(self, evaluation_id: str, key: WrappedKey) -> WrappedKey:
            order.append(f"key {evaluation_id}")
            return await super().add(evaluation_id, key)

    class WatchedStore(FileBlobStore):
        async def put(self, key: str, data: bytes) -> int:
            order.append(f"blob {key}")
            return await super().put(key, data)

    world.table = Watched()
    store = world.store(WatchedStore(tmp_path / "blobs", compress=False))
    await store.put(KEY, MARKER)
    await store.put("evaluations/eval_1/error.txt", MARKER)

    assert order == [
        "key eval_1",
        f"blob {KEY}",
        "blob evaluations/eval_1/error.txt",
    ]


async def test_what_a_kek_sealed_before_still_opens(raw: BlobStore) -> None:
    world = World()
    await world.store(raw, shred=False).put(KEY, MARKER)
    assert parse_header((await raw.get(KEY))[:HEADER_MAX]).kid != EVALUATION_KID

    shredding = world.store(raw)
    assert await shredding.get(KEY) == MARKER
    assert await shredding._sealing.keys.destroy(["eval_1"]) == 0  # type: ignore[union-attr]
    assert await world.store(raw).get(KEY) == MARKER  # no key of its own to destroy


async def test_a_blob_bound_to_no_evaluation_stays_under_the_kek(raw: BlobStore) -> None:
    world = World()
    await world.store(raw).put("elsewhere/blob.txt", MARKER)

    assert parse_header((await raw.get("elsewhere/blob.txt"))[:HEADER_MAX]).kid != EVALUATION_KID
    assert await world.table.count() == 0


async def test_rotation_rewraps_the_key_table_and_the_blobs_need_nothing(raw: BlobStore) -> None:
    world = World()
    await world.store(raw).put(KEY, MARKER)
    before = await raw.get(KEY)
    (old,) = [stored for _, stored in await world.table.page(None, 10)]
    world.lines += key_lines()
    process = world.process()

    assert await world.store(raw).rewrap(KEY) is Rewrap.CURRENT
    batches = [batch async for batch in process.rewrap(500)]

    assert sum(batch.rows for batch in batches) == 1
    assert batches[0].outcomes[Rewrap.REWRAPPED] == 1
    (new,) = [stored for _, stored in await world.table.page(None, 10)]
    assert new.kid != old.kid and new.kid == process._keyring.active
    assert await raw.get(KEY) == before  # the blob is as it was
    again = [batch async for batch in world.process().rewrap(500)]
    assert again[0].outcomes[Rewrap.CURRENT] == 1
    world.lines = world.lines[1:]  # the old KEK leaves the file
    assert await world.store(raw).get(KEY) == MARKER


async def test_a_key_table_away_leaves_new_blobs_under_the_kek(raw: BlobStore) -> None:
    """A write on its way to the failover journal is not refused for want of its key."""

    class Away(MemoryEvaluationKeys):
        async def fetch(self, evaluation_id: str) -> WrappedKey | None:
            raise BackendUnavailableError(Backend.DATABASE, "down")

    world = World()
    world.table = Away()
    await world.store(raw).put(KEY, MARKER)

    assert parse_header((await raw.get(KEY))[:HEADER_MAX]).kid != EVALUATION_KID
    assert await World(world.lines).store(raw).get(KEY) == MARKER


async def test_a_key_table_away_leaves_a_fetched_line_under_the_kek() -> None:
    """The mirror's lines ask the table for their key; away, they are sealed, not refused."""

    class Away(MemoryEvaluationKeys):
        async def fetch(self, evaluation_id: str) -> WrappedKey | None:
            raise BackendUnavailableError(Backend.DATABASE, "down")

    world = World()
    world.table = Away()
    seal = LineSeal(world.keyring(), keys=world.process(), shred=True)

    line = await anyio.to_thread.run_sync(
        lambda: seal.seal(MARKER, b"mirror", "eval_1", fetch=True)
    )

    assert line.startswith(PREFIX) and MARKER not in line
    assert LineSeal(world.keyring()).open(line, b"mirror") == MARKER


async def test_a_cache_entry_is_a_miss_once_its_key_is_destroyed() -> None:
    world = World()
    inner = MemoryCache(ttl_seconds=60)
    keys = world.process()
    cache = SealedCache(inner, world.keyring(), keys=keys, shred=True)
    await cache.put_if_newer("eval:{eval_1}", 1, MARKER)
    copy = await inner.get("eval:{eval_1}")  # what a Redis dump holds
    assert copy is not None and MARKER not in copy
    assert parse_header(copy[:HEADER_MAX]).kid == EVALUATION_KID
    reader = SealedCache(inner, world.keyring(), keys=world.process(), shred=True)
    assert await reader.get("eval:{eval_1}") == MARKER

    await keys.destroy(["eval_1"])

    fresh = SealedCache(inner, world.keyring(), keys=world.process(), shred=True)
    assert await fresh.get("eval:{eval_1}") is None
    assert await cache.get("eval:{eval_1}") is None  # the destroying process forgot it too


async def test_another_tenants_cache_entry_is_under_that_tenants_key() -> None:
    """``eval:{acme/eval_1}`` is sealed under acme's key of ``eval_1``, in acme's rows (not
    a key named ``acme/eval_1`` in the default tenant's), and dies with it alone."""
    world = World()
    acme = TenantId("acme")
    keys = world.process()
    cache = SealedCache(MemoryCache(ttl_seconds=60), world.keyring(), keys=keys, shred=True)
    await cache.put_if_newer("eval:{eval_1}", 1, b"ours")
    await cache.put_if_newer("eval:{acme/eval_1}", 1, b"theirs")
    assert set(world.table.keys) == {"eval_1"}
    assert set(world.table.of(acme).keys) == {"eval_1"}
    assert world.table.keys["eval_1"] != world.table.of(acme).keys["eval_1"]

    await keys.of(acme).destroy(["eval_1"])

    assert await cache.get("eval:{acme/eval_1}") is None
    assert await cache.get("eval:{eval_1}") == b"ours"


async def test_a_line_names_its_evaluation_and_tag_and_dies_with_its_key() -> None:
    world = World()
    keys = world.process()
    seal = LineSeal(world.keyring(), keys=keys, shred=True)

    line = await anyio.to_thread.run_sync(
        lambda: seal.seal(MARKER, b"journal", "eval_1", tag="entry-1", fetch=True)
    )

    assert line.startswith(EVALUATION_PREFIX + b"eval_1 entry-1 ")
    assert MARKER not in line
    assert tag_of(line) == "entry-1"
    reader = LineSeal(world.keyring(), keys=world.process())
    assert await anyio.to_thread.run_sync(lambda: reader.open(line, b"journal")) == MARKER
    with pytest.raises(SealedDataError, match="expected"):
        reader.open(line, b"journal", "eval_2")  # a line of another evaluation
    with pytest.raises(SealedDataError):
        await anyio.to_thread.run_sync(lambda: reader.open(line, b"elsewhere"))

    await keys.destroy(["eval_1"])

    fresh = LineSeal(world.keyring(), keys=world.process())
    with pytest.raises(SealedDataError, match="evaluation key of 'eval_1' is destroyed"):
        await anyio.to_thread.run_sync(lambda: fresh.open(line, b"journal"))
    assert tag_of(line) == "entry-1"  # still removable by its entry's id


async def test_without_the_key_at_hand_a_line_is_sealed_under_the_kek() -> None:
    """The journal never waits for the key table: only a key this process holds serves."""
    world = World()
    keys = world.process()
    seal = LineSeal(world.keyring(), keys=keys, shred=True)

    cold = seal.seal(MARKER, b"journal", "eval_1", tag="entry-1")
    await keys.key("eval_1", create=True)
    warm = seal.seal(MARKER, b"journal", "eval_1", tag="entry-2")

    assert cold.startswith(PREFIX) and tag_of(cold) is None
    assert warm.startswith(EVALUATION_PREFIX)
    reader = LineSeal(world.keyring(), keys=world.process())
    assert reader.open(cold, b"journal") == MARKER


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_a_streamed_blob_is_under_its_evaluation_key_too(raw: BlobStore) -> None:
    world = World()
    store = world.store(raw)
    await store.put_stream(KEY, _chunks(MARKER * 10_000))

    assert parse_header((await raw.get(KEY))[:HEADER_MAX]).kid == EVALUATION_KID
    assert await world.store(raw).get(KEY) == MARKER * 10_000
    assert await world.table.count() == 1


def _entry(evaluation_id: str) -> JournalEntry:
    return JournalEntry(
        id=uuid.uuid4().hex,
        evaluation_id=evaluation_id,
        at=datetime.now(UTC),
        intent=AppendLogIntent(content=f"{MARKER.decode()}\n"),
        actor="key:gateway",
    )


async def test_a_journal_line_whose_key_cannot_be_had_now_is_read_later(tmp_path: Path) -> None:
    """A process reading another's journal while the database is away: the line sealed
    under a key it does not hold, and every line after it, wait for the next read."""
    world = World()
    keys = world.process()
    writer = FileJournal(tmp_path, LineSeal(world.keyring(), keys=keys, shred=True))
    await keys.key("eval_1", create=True)
    entries = [_entry("eval_0"), _entry("eval_1"), _entry("eval_0")]
    for entry in entries:
        await writer.append(entry)
    writer.close()

    class Switched(MemoryEvaluationKeys):
        away = True

        async def fetch(self, evaluation_id: str) -> WrappedKey | None:
            if self.away:
                raise BackendUnavailableError(Backend.DATABASE, "down")
            return world.table.keys.get(evaluation_id)

    table = Switched()
    reader = FileJournal(
        tmp_path, LineSeal(world.keyring(), keys=EvaluationKeyring(table, world.keyring()))
    )

    assert [entry.id for entry in await reader.pending()] == [entries[0].id]
    table.away = False
    assert [entry.id for entry in await reader.pending()] == [entry.id for entry in entries]
    assert [entry.evaluation_id for entry in await reader.pending()] == [
        "eval_0",
        "eval_1",
        "eval_0",
    ]


async def test_a_cache_entry_whose_key_cannot_be_had_now_is_a_miss() -> None:
    """The cache never fails a request: a cold key while the database is away is a miss."""
    world = World()
    inner = MemoryCache(ttl_seconds=60)
    await SealedCache(inner, world.keyring(), keys=world.process(), shred=True).put_if_newer(
        "eval:{eval_1}", 1, MARKER
    )

    class Away(MemoryEvaluationKeys):
        async def fetch(self, evaluation_id: str) -> WrappedKey | None:
            raise BackendUnavailableError(Backend.DATABASE, "down")

    away = EvaluationKeyring(Away(), world.keyring())
    cold = SealedCache(inner, world.keyring(), keys=away, shred=True)

    assert await cold.get("eval:{eval_1}") is None
    await cold.put_if_newer("eval:{eval_1}", 2, MARKER)  # no key at hand: under the KEK
    stored = await inner.get("eval:{eval_1}")
    assert stored is not None and parse_header(stored[:HEADER_MAX]).kid != EVALUATION_KID
    assert await cold.get("eval:{eval_1}") == MARKER
