"""EvaluationKeys contract (crypto-shredding, ADR 0033): memory, SQLite, PostgreSQL on the
asyncpg pool and through SQLAlchemy, and the keyring that decorates any of them, keep the
key table alike.

A key is stored once (of concurrent adds one wins, and every caller gets the winner),
destroyed for good, paged in id order, and replaced only where the old one still is.
"""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa

from application.ports.evaluation_keys import EvaluationKeys, WrappedKey
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.crypto.evaluation_keys import EvaluationKeyring
from infrastructure.memory.evaluation_keys import MemoryEvaluationKeys
from infrastructure.postgres.evaluation_keys import PgEvaluationKeys
from infrastructure.postgres.pool import create_pool
from infrastructure.sql.engine import create_engine, create_session_maker
from infrastructure.sql.evaluation_keys import SqlEvaluationKeys
from interfaces.settings import DatabaseSettings
from tests.contract.conftest import ROW_SECURED
from tests.keys import fresh_keyring
from tests.row_security import emptied

pytestmark = pytest.mark.anyio

_POSTGRES = pytest.mark.postgres
KINDS = [
    "memory",
    "sqlite",
    "keyring-sqlite",
    pytest.param("postgres", marks=_POSTGRES),
    pytest.param("postgres-sqlalchemy", marks=_POSTGRES),
    pytest.param(f"postgres{ROW_SECURED}", marks=_POSTGRES),
    pytest.param(f"postgres-sqlalchemy{ROW_SECURED}", marks=_POSTGRES),
]


def _url(kind: str, request: pytest.FixtureRequest) -> str | None:
    database = kind.removeprefix("keyring-").split("-", maxsplit=1)[0]
    if database == "memory":
        return None
    if kind.endswith(ROW_SECURED):
        _, url = request.getfixturevalue("row_secured_postgres_urls")
        return str(url)
    url = request.getfixturevalue(f"migrated_{database}_url")
    return str(url)


@pytest.fixture(params=KINDS)
def keys_kind(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    kind: str = request.param
    if kind.endswith(ROW_SECURED):  # emptied by its owner: the service's role sees no row
        owner, _ = request.getfixturevalue("row_secured_postgres_urls")
        emptied(owner, "evaluation_keys")
    return kind, _url(kind, request)


@pytest.fixture
async def keys(keys_kind: tuple[str, str | None]) -> AsyncIterator[EvaluationKeys]:
    kind, url = keys_kind
    if url is None:
        yield MemoryEvaluationKeys()
        return
    kind = kind.removesuffix(ROW_SECURED)
    settings = DatabaseSettings(url=url, pool_size=5)
    engine = create_engine(settings)
    pool = await create_pool(settings) if kind == "postgres" else None
    try:
        async with engine.begin() as connection:  # the PostgreSQL database is shared
            await connection.execute(sa.text("DELETE FROM evaluation_keys"))
        table: EvaluationKeys = (
            PgEvaluationKeys(pool) if pool else SqlEvaluationKeys(create_session_maker(engine))
        )
        yield EvaluationKeyring(table, fresh_keyring()) if kind.startswith("keyring-") else table
    finally:
        if pool is not None:
            await pool.close()
        await engine.dispose()


def _key(name: str) -> WrappedKey:
    return WrappedKey(kid=f"k-{name}", wrapped=name.encode() * 4)


async def test_a_key_not_made_is_none(keys: EvaluationKeys) -> None:
    assert await keys.fetch("eval-1") is None
    assert await keys.count() == 0


async def test_an_added_key_is_kept_and_a_second_add_gets_the_first(
    keys: EvaluationKeys,
) -> None:
    assert await keys.add("eval-1", _key("a")) == _key("a")

    assert await keys.add("eval-1", _key("b")) == _key("a")
    assert await keys.fetch("eval-1") == _key("a")
    assert await keys.fetch("eval-2") is None
    assert await keys.count() == 1


async def test_of_concurrent_adds_one_wins_and_every_caller_gets_it(
    keys: EvaluationKeys,
) -> None:
    got: list[WrappedKey] = []

    async def add(number: int) -> None:
        got.append(await keys.add("eval-1", _key(str(number))))

    async with anyio.create_task_group() as group:
        for number in range(8):
            group.start_soon(add, number)

    assert len(got) == 8
    assert len(set(got)) == 1
    assert await keys.fetch("eval-1") == got[0]


async def test_destroyed_keys_are_gone_and_destroying_again_is_no_error(
    keys: EvaluationKeys,
) -> None:
    for name in ("eval-1", "eval-2", "eval-3"):
        await keys.add(name, _key(name))

    assert await keys.destroy(["eval-1", "eval-3", "never-made"]) == 2

    assert await keys.fetch("eval-1") is None
    assert await keys.fetch("eval-3") is None
    assert await keys.fetch("eval-2") == _key("eval-2")
    assert await keys.destroy(["eval-1"]) == 0
    assert await keys.destroy([]) == 0
    assert await keys.count() == 1
    # A key made again for the same id is a new key, not the destroyed one.
    assert await keys.add("eval-1", _key("fresh")) == _key("fresh")


async def test_keys_are_paged_in_id_order(keys: EvaluationKeys) -> None:
    names = [f"eval-{number:02d}" for number in range(7)]
    for name in reversed(names):
        await keys.add(name, _key(name))

    first = await keys.page(None, 3)
    second = await keys.page(first[-1][0], 3)
    third = await keys.page(second[-1][0], 3)

    assert [name for name, _ in first + second + third] == names
    assert [stored for _, stored in first] == [_key(name) for name in names[:3]]
    assert await keys.page(names[-1], 3) == []


async def test_a_key_is_replaced_only_where_the_old_one_still_is(keys: EvaluationKeys) -> None:
    await keys.add("eval-1", _key("a"))

    assert await keys.replace("eval-1", _key("a"), _key("b")) is True
    assert await keys.replace("eval-1", _key("a"), _key("c")) is False  # moved on
    assert await keys.replace("eval-2", _key("a"), _key("c")) is False  # none there

    assert await keys.fetch("eval-1") == _key("b")
    assert await keys.fetch("eval-2") is None


async def test_of_reaches_another_tenants_rows_and_only_them(keys: EvaluationKeys) -> None:
    acme = keys.of(TenantId("acme"))
    evaluation_id = f"eval-{uuid.uuid4().hex}"
    await keys.add(evaluation_id, _key("default"))
    assert await acme.fetch(evaluation_id) is None
    await acme.add(evaluation_id, _key("acme"))

    assert await keys.of(DEFAULT_TENANT).fetch(evaluation_id) == _key("default")
    assert await acme.fetch(evaluation_id) == _key("acme")
    assert await acme.destroy([evaluation_id]) == 1  # acme's evaluation erased
    assert await acme.fetch(evaluation_id) is None
    assert await keys.fetch(evaluation_id) == _key("default")
    await keys.destroy([evaluation_id])


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=_POSTGRES),
        pytest.param(f"postgres{ROW_SECURED}", marks=_POSTGRES),
    ]
)
def database_kind(request: pytest.FixtureRequest) -> tuple[str, str]:
    """A database's kind and URL, resolved here: its fixtures migrate with their own loop."""
    kind: str = request.param
    url = _url(kind, request)
    assert url is not None
    return kind, url


async def test_each_tenant_has_its_own_keys(database_kind: tuple[str, str]) -> None:
    kind, url = database_kind
    settings = DatabaseSettings(url=url, pool_size=5)
    engine = create_engine(settings)
    pool = await create_pool(settings) if kind.startswith("postgres") else None
    evaluation_id = f"eval-{uuid.uuid4().hex}"

    def of(tenant: str) -> EvaluationKeys:
        if pool is not None:
            return PgEvaluationKeys(pool, TenantId(tenant))
        return SqlEvaluationKeys(create_session_maker(engine), TenantId(tenant))

    try:
        await of("default").add(evaluation_id, _key("default"))
        await of("acme").add(evaluation_id, _key("acme"))

        assert await of("acme").fetch(evaluation_id) == _key("acme")
        assert await of("default").destroy([evaluation_id]) == 1
        assert await of("default").fetch(evaluation_id) is None
        assert await of("acme").fetch(evaluation_id) == _key("acme")
        async with engine.connect() as connection:
            tenants = await connection.scalars(
                sa.text("SELECT tenant_id FROM evaluation_keys WHERE evaluation_id = :id"),
                {"id": evaluation_id},
            )
            # The service's role with no tenant set sees no row at all.
            assert list(tenants) == ([] if kind.endswith(ROW_SECURED) else ["acme"])
        with pytest.raises(Exception, match=r"(?i)check"):  # the tenant's rule (0013's CHECK)
            await of("Not A Tenant").add(evaluation_id, _key("x"))
    finally:
        await (of("acme")).destroy([evaluation_id])
        if pool is not None:
            await pool.close()
        await engine.dispose()


async def test_sqlite_zeroes_a_destroyed_key(migrated_sqlite_url: str) -> None:
    """``secure_delete``: the wrapped key's bytes leave the database file, not only the row."""
    engine = create_engine(DatabaseSettings(url=migrated_sqlite_url, pool_size=1))
    keys = SqlEvaluationKeys(create_session_maker(engine))
    marker = b"WRAPPED-KEY-MARKER-" + uuid.uuid4().hex.encode()
    path = Path(migrated_sqlite_url.split("///", 1)[1])
    try:
        await keys.add("eval-1", WrappedKey("k", marker))
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        assert marker in await anyio.Path(path).read_bytes()

        await keys.destroy(["eval-1"])
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await engine.dispose()

    assert marker not in await anyio.Path(path).read_bytes()
