import re
import secrets

import pytest

from application.errors import DuplicateEvaluationError
from domain.errors import InvalidTextError
from domain.identifiers import parse_evaluation_id
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT
from tests.factories import NewEvaluationFactory
from tests.use_cases.conftest import UseCases

pytestmark = pytest.mark.anyio

GENERATED_ID = re.compile(r"eval_20240701_120000_[0-9a-f]{6}")


async def test_generated_id_follows_the_rule_and_is_stored(app: UseCases) -> None:
    new = NewEvaluationFactory.build(language="python", code="print(1)")

    created = await app.create.execute(new)

    assert GENERATED_ID.fullmatch(created.id)
    assert parse_evaluation_id(created.id) == created.id
    stored = await app.repository.get(created.id)
    assert stored == created
    assert created.version == 1
    assert created.created_at == created.updated_at == app.clock.now()
    assert created.metadata == new.metadata
    assert created.started_at is None and created.completed_at is None
    assert app.uow.committed


async def test_given_id_is_kept(app: UseCases) -> None:
    new = NewEvaluationFactory.build(id=parse_evaluation_id("test-123"))

    created = await app.create.execute(new)

    assert created.id == "test-123"
    assert (await app.repository.get(created.id)) is not None


async def test_duplicate_id_is_refused_and_keeps_the_first(app: UseCases) -> None:
    first = await app.create.execute(
        NewEvaluationFactory.build(id=parse_evaluation_id("dup-1"), code="print('first')")
    )

    with pytest.raises(DuplicateEvaluationError) as caught:
        await app.create.execute(
            NewEvaluationFactory.build(id=parse_evaluation_id("dup-1"), code="print('second')")
        )

    assert caught.value.evaluation_id == "dup-1"
    assert app.uow.rolled_back
    stored = await app.repository.get(first.id)
    assert stored is not None and stored.code == "print('first')"


async def test_duplicate_of_a_deleted_id_is_still_refused(app: UseCases) -> None:
    created = await app.create.execute(NewEvaluationFactory.build(id=parse_evaluation_id("gone")))
    await app.delete.execute(created.id)

    with pytest.raises(DuplicateEvaluationError):
        await app.create.execute(NewEvaluationFactory.build(id=parse_evaluation_id("gone")))


async def test_generated_id_collision_is_retried(
    app: UseCases, monkeypatch: pytest.MonkeyPatch
) -> None:
    await app.seed(id=parse_evaluation_id("eval_20240701_120000_aaaaaa"))
    suffixes = iter(["aaaaaa", "bbbbbb"])
    monkeypatch.setattr(secrets, "token_hex", lambda _n: next(suffixes))

    created = await app.create.execute(NewEvaluationFactory.build())

    assert created.id == "eval_20240701_120000_bbbbbb"
    assert app.uow.rolled_back


async def test_generated_id_gives_up_after_repeated_collisions(
    app: UseCases, monkeypatch: pytest.MonkeyPatch
) -> None:
    await app.seed(id=parse_evaluation_id("eval_20240701_120000_aaaaaa"))
    monkeypatch.setattr(secrets, "token_hex", lambda _n: "aaaaaa")

    with pytest.raises(DuplicateEvaluationError):
        await app.create.execute(NewEvaluationFactory.build())


async def test_created_running_gets_started_at_and_is_tracked(app: UseCases) -> None:
    new = NewEvaluationFactory.build(
        status=EvaluationStatus.RUNNING, executor_id="executor-1", container_id="c-42"
    )

    created = await app.create.execute(new)

    assert created.started_at == app.clock.now()
    tracked = await app.running.get(DEFAULT_TENANT, created.id)
    assert tracked is not None
    assert (tracked.executor_id, tracked.container_id) == ("executor-1", "c-42")


async def test_created_terminal_gets_completed_at(app: UseCases) -> None:
    created = await app.create.execute(
        NewEvaluationFactory.build(status=EvaluationStatus.COMPLETED)
    )

    assert created.completed_at == app.clock.now()
    assert await app.running.get(DEFAULT_TENANT, created.id) is None


async def test_created_record_is_cached(app: UseCases) -> None:
    created = await app.create.execute(NewEvaluationFactory.build())

    assert await app.record_cache.get(DEFAULT_TENANT, created.id) == created


async def test_code_with_nul_is_refused_before_storing(app: UseCases) -> None:
    with pytest.raises(InvalidTextError) as caught:
        await app.create.execute(NewEvaluationFactory.build(code="print(1)\x00"))

    assert caught.value.field == "code"
    assert app.database.evaluations == {}
