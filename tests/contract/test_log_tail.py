"""The LogTail contract, held against the in-process and the Redis adapter."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from application.ports.log_tail import LogTail
from domain.errors import InvalidTextError
from domain.identifiers import EvaluationId
from domain.tenancy import DEFAULT_TENANT, TenantId
from domain.timeline import LogChunk, LogSlice
from infrastructure.memory.log_tail import MemoryLogTail, NoLogTail
from infrastructure.redis.connection import RedisConnection
from infrastructure.redis.log_tail import RedisLogTail, tail_key
from tests.redis_cluster import ADAPTER_PARAMS, drop_keys, redis_target

pytestmark = pytest.mark.anyio

EVAL = EvaluationId("eval_1")
MAX_BYTES = 16
ACME = TenantId("acme")
NOW = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=ADAPTER_PARAMS)
async def tail(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[LogTail]:
    if request.param == "memory":
        yield MemoryLogTail(max_bytes=MAX_BYTES)
        return
    url, cluster, prefix = redis_target(request)
    connection = RedisConnection(url, timeout_s=2.0, cluster=cluster)
    try:
        yield RedisLogTail(connection, max_bytes=MAX_BYTES, ttl_seconds=60, prefix=prefix)
    finally:
        await drop_keys(prefix, url, cluster)
        await connection.close()


def chunk(offset: int, content: str, evaluation_id: EvaluationId = EVAL) -> LogChunk:
    return LogChunk(evaluation_id=evaluation_id, offset=offset, content=content, created_at=NOW)


async def test_an_unknown_tail_cannot_answer(tail: LogTail) -> None:
    assert await tail.read(DEFAULT_TENANT, EVAL, 0) is None


async def test_contiguous_chunks_are_served_from_any_offset(tail: LogTail) -> None:
    await tail.append(DEFAULT_TENANT, chunk(0, "abc\n"))
    await tail.append(DEFAULT_TENANT, chunk(4, "dé\n"))  # é is two bytes: the log is 8 bytes long

    assert await tail.read(DEFAULT_TENANT, EVAL, 0) == LogSlice("abc\ndé\n", 0, 8)
    assert await tail.read(DEFAULT_TENANT, EVAL, 4) == LogSlice("dé\n", 4, 8)
    assert await tail.read(DEFAULT_TENANT, EVAL, 8) == LogSlice("", 8, 8)
    # Past its end the tail may be behind the log: only the log store can answer.
    assert await tail.read(DEFAULT_TENANT, EVAL, 9) is None
    with pytest.raises(InvalidTextError):
        await tail.read(DEFAULT_TENANT, EVAL, 6)  # inside é
    assert await tail.read(DEFAULT_TENANT, EvaluationId("eval_2"), 0) is None


async def test_only_the_last_bytes_are_kept_cut_on_a_character(tail: LogTail) -> None:
    await tail.append(DEFAULT_TENANT, chunk(0, "0123456789"))
    await tail.append(
        DEFAULT_TENANT, chunk(10, "ab€cdefghij")
    )  # € is three bytes at 12..14; log ends at 23

    # 23 bytes, 16 kept: the tail starts at byte 7 ("7", a character start).
    assert await tail.read(DEFAULT_TENANT, EVAL, 6) is None  # trimmed away: ask the log store
    assert await tail.read(DEFAULT_TENANT, EVAL, 7) == LogSlice("789ab€cdefghij", 7, 23)
    assert await tail.read(DEFAULT_TENANT, EVAL, 12) == LogSlice("€cdefghij", 12, 23)


async def test_a_cut_inside_a_character_moves_to_the_next_one(tail: LogTail) -> None:
    await tail.append(
        DEFAULT_TENANT, chunk(0, "€" * 6)
    )  # 18 bytes; keeping 16 would start inside a €

    assert await tail.read(DEFAULT_TENANT, EVAL, 2) is None
    assert await tail.read(DEFAULT_TENANT, EVAL, 3) == LogSlice("€" * 5, 3, 18)


async def test_a_late_older_chunk_is_ignored(tail: LogTail) -> None:
    await tail.append(DEFAULT_TENANT, chunk(0, "aa"))
    await tail.append(DEFAULT_TENANT, chunk(2, "bb"))
    await tail.append(DEFAULT_TENANT, chunk(0, "aa"))  # redelivered after the newer one

    assert await tail.read(DEFAULT_TENANT, EVAL, 0) == LogSlice("aabb", 0, 4)


async def test_a_gap_restarts_the_tail_at_the_newer_chunk(tail: LogTail) -> None:
    await tail.append(DEFAULT_TENANT, chunk(0, "aa"))
    await tail.append(DEFAULT_TENANT, chunk(4, "cc"))  # the chunk at 2 has not arrived (yet)
    await tail.append(DEFAULT_TENANT, chunk(2, "bb"))  # ... and is then older than the tail

    assert await tail.read(DEFAULT_TENANT, EVAL, 0) is None
    assert await tail.read(DEFAULT_TENANT, EVAL, 2) is None
    assert await tail.read(DEFAULT_TENANT, EVAL, 4) == LogSlice("cc", 4, 6)


async def test_drop_forgets_one_evaluation(tail: LogTail) -> None:
    other = EvaluationId("eval_2")
    await tail.append(DEFAULT_TENANT, chunk(0, "mine"))
    await tail.append(DEFAULT_TENANT, chunk(0, "other", other))

    await tail.drop(DEFAULT_TENANT, EVAL)
    await tail.drop(DEFAULT_TENANT, EVAL)  # idempotent

    assert await tail.read(DEFAULT_TENANT, EVAL, 0) is None
    assert await tail.read(DEFAULT_TENANT, other, 0) == LogSlice("other", 0, 5)


async def test_redis_keeps_the_tail_under_the_hash_tagged_key() -> None:
    assert tail_key(DEFAULT_TENANT, "eval_1") == "logs:{eval_1}:latest"


async def test_the_disabled_tail_never_answers(anyio_backend: str) -> None:
    tail = NoLogTail()
    await tail.append(DEFAULT_TENANT, chunk(0, "abc"))
    assert await tail.read(DEFAULT_TENANT, EVAL, 0) is None


async def test_the_memory_tail_keeps_a_bounded_number_of_evaluations(anyio_backend: str) -> None:
    tail = MemoryLogTail(max_bytes=MAX_BYTES, max_tails=2)
    for name in ("eval_a", "eval_b", "eval_c"):
        await tail.append(DEFAULT_TENANT, chunk(0, name, EvaluationId(name)))

    assert len(tail) == 2
    assert await tail.read(DEFAULT_TENANT, EvaluationId("eval_a"), 0) is None
    assert await tail.read(DEFAULT_TENANT, EvaluationId("eval_c"), 0) == LogSlice("eval_c", 0, 6)


async def test_the_same_id_in_two_tenants_has_two_tails(tail: LogTail) -> None:
    """ADR 0032: a tail is named by the qualified id, so one tenant never reads another's."""
    await tail.append(DEFAULT_TENANT, chunk(0, "default\n"))
    await tail.append(ACME, chunk(0, "acme\n"))

    assert await tail.read(DEFAULT_TENANT, EVAL, 0) == LogSlice("default\n", 0, 8)
    assert await tail.read(ACME, EVAL, 0) == LogSlice("acme\n", 0, 5)
    assert await tail.read(TenantId("other"), EVAL, 0) is None

    await tail.drop(ACME, EVAL)
    assert await tail.read(ACME, EVAL, 0) is None
    assert await tail.read(DEFAULT_TENANT, EVAL, 0) == LogSlice("default\n", 0, 8)


async def test_a_tails_key_holds_the_qualified_id() -> None:
    assert tail_key(ACME, "eval_1") == "logs:{acme/eval_1}:latest"
