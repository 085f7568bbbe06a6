import msgspec
import pytest

from application.commands import EvaluationChanges
from application.errors import EvaluationNotFoundError
from application.services.record_cache import record_key
from domain.identifiers import parse_evaluation_id
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT
from tests.use_cases.conftest import UseCases

pytestmark = pytest.mark.anyio


async def test_miss_reads_the_store_and_fills_the_cache(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)
    assert await app.cache.get(record_key(DEFAULT_TENANT, seeded.id)) is None

    found = await app.get.execute(seeded.id)

    assert found == seeded
    raw = await app.cache.get(record_key(DEFAULT_TENANT, seeded.id))
    assert raw is not None
    assert msgspec.json.decode(raw)["id"] == seeded.id


async def test_hit_is_served_from_the_cache(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED, code="print('stored')")
    await app.get.execute(seeded.id)
    # Change the stored row behind the cache's back: a hit must not see it.
    app.stored(seeded).code = "print('changed behind the cache')"
    hits_before = app.cache.hits

    found = await app.get.execute(seeded.id)

    assert found.code == "print('stored')"
    assert app.cache.hits == hits_before + 1


async def test_unknown_id_is_not_found(app: UseCases) -> None:
    with pytest.raises(EvaluationNotFoundError) as caught:
        await app.get.execute(parse_evaluation_id("nope"))

    assert caught.value.evaluation_id == "nope"


async def test_deleted_is_not_found_even_after_it_was_cached(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)
    await app.get.execute(seeded.id)

    await app.delete.execute(seeded.id)

    with pytest.raises(EvaluationNotFoundError):
        await app.get.execute(seeded.id)


async def test_read_after_update_sees_the_new_version(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)
    await app.get.execute(seeded.id)

    await app.update.execute(seeded.id, EvaluationChanges(status=EvaluationStatus.RUNNING))
    found = await app.get.execute(seeded.id)

    assert found.version == 2
    assert found.status is EvaluationStatus.RUNNING


async def test_stale_fill_cannot_replace_a_newer_entry(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)
    stale = await app.repository.get(seeded.id)
    assert stale is not None
    await app.update.execute(seeded.id, EvaluationChanges(metadata={"k": "new"}))

    await app.record_cache.fill(DEFAULT_TENANT, stale)
    found = await app.get.execute(seeded.id)

    assert found.version == 2
    assert found.metadata["k"] == "new"
