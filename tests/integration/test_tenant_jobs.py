"""The jobs act for every tenant the deployment serves, a round each (ADR 0032): with
evaluations in two tenants, each round acts on its own tenant's alone, and the change
feed's streams and relays never mix the tenants.

The deployment here is given a key of ``acme`` (``Settings.changed``), and each job runs
on a container built from those settings, as the app builds its own.
"""

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import anyio
import nats
import pyarrow.parquet as pq
import pytest
from dishka import AsyncContainer, Provider, make_async_container
from nats.js.errors import NotFoundError

from application.commands import EvaluationChanges, NewEvaluation
from application.ports.change_feed import ChangeQuery
from application.ports.idempotency_store import IdempotencyStore, KeyRecord, StoredResponse
from application.ports.running_registry import RunningRegistry
from application.services.api_keys import ApiKey, digest_of
from application.services.record_cache import RecordCache
from application.use_cases.create_evaluation import CreateEvaluation
from application.use_cases.export_evaluations import ExportEvaluations
from application.use_cases.follow import follow_changes
from application.use_cases.update_evaluation import UpdateEvaluation
from domain.access import AccessScope
from domain.changes import Change
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT, TenantId
from interfaces import acting
from interfaces.http.idempotency import purge_expired_keys
from interfaces.http.retention import run_retention
from interfaces.http.running_rebuild import rebuild_running_registries
from interfaces.http.warehouse import run_export
from interfaces.http.warming import warm_tenants
from interfaces.live import LiveFeed
from interfaces.providers import build_providers
from interfaces.relay import nats_relay
from interfaces.settings import Settings
from tests.integration.test_logging_and_retention import FutureClock
from tests.nats_server import (
    TEST_NATS_URL,
    JetStreamNames,
    consume,
    jetstream_names,
    stream_messages,
)

ACME = TenantId("acme")
ACME_KEY = ApiKey(
    name="acme-ci", scope=AccessScope.WRITE, digest=digest_of("acme-secret"), tenant=ACME
)
IDS = {DEFAULT_TENANT: ["d-1", "d-2"], ACME: ["a-1"]}


def two_tenants(settings: Settings) -> Settings:
    """``settings`` with a key of ``acme``: the deployment serves ``default`` and ``acme``."""
    served = settings.changed(access={"api_keys": (ACME_KEY,)})
    assert served.access.tenants == (DEFAULT_TENANT, ACME)
    return served


@asynccontextmanager
async def container_of(settings: Settings, *extra: Provider) -> AsyncIterator[AsyncContainer]:
    container = make_async_container(
        *build_providers(settings), *extra, context={Settings: settings}
    )
    try:
        yield container
    finally:
        await container.close()


async def create(container: AsyncContainer, tenant: TenantId, evaluation_id: str) -> None:
    async with acting.system_scope(container, tenant) as request:
        use_case = await request.get(CreateEvaluation)
        new = NewEvaluation(
            id=EvaluationId(evaluation_id),
            code=f"print('{tenant}')",
            status=EvaluationStatus.COMPLETED,
            metadata={"team": tenant},
        )
        await use_case.execute(new)


async def seed(container: AsyncContainer) -> None:
    for tenant, ids in IDS.items():
        for evaluation_id in ids:
            await create(container, tenant, evaluation_id)


async def exported_ids(container: AsyncContainer, tenant: TenantId) -> set[str]:
    async with acting.system_scope(container, tenant) as request:
        exported = await (await request.get(ExportEvaluations)).execute(None)
        return {archived.record.id async for archived in exported.records}


@pytest.mark.anyio
async def test_retention_removes_the_old_evaluations_of_each_tenant_in_its_own_round(
    backend_settings: Settings,
) -> None:
    settings = two_tenants(backend_settings)
    async with container_of(settings) as container:
        await seed(container)
    async with container_of(settings, FutureClock()) as container:
        reports = await run_retention(container, settings, 1, anyio.Event())
        left = {tenant: await exported_ids(container, tenant) for tenant in IDS}

    assert {tenant: report.evaluations for tenant, report in reports.items()} == {
        DEFAULT_TENANT: 2,
        ACME: 1,
    }
    assert left == {DEFAULT_TENANT: set(), ACME: set()}


@pytest.mark.anyio
async def test_the_idempotency_purge_deletes_each_tenants_expired_keys_in_its_round(
    backend_settings: Settings,
) -> None:
    settings = two_tenants(backend_settings)
    expired = datetime.now(UTC) - timedelta(days=1)
    async with container_of(settings) as container:
        store = await container.get(IdempotencyStore)
        for key, tenant in (
            ("k-default", DEFAULT_TENANT),
            ("k-other", DEFAULT_TENANT),
            ("k-acme", ACME),
        ):
            await store.complete(
                KeyRecord.answered(
                    "gateway",
                    key,
                    tenant=tenant,
                    fingerprint="a" * 64,
                    response=StoredResponse(status=200, headers=(), body=b"{}"),
                    expires_at=expired,
                )
            )

        purged = await purge_expired_keys(container, settings, anyio.Event())

    assert purged == {DEFAULT_TENANT: 2, ACME: 1}


def _parquet_ids(root: Path) -> set[str]:
    return {
        str(value)
        for path in root.rglob("*.parquet")
        for value in pq.read_table(path, columns=["id"]).column("id").to_pylist()
    }


@pytest.mark.anyio
async def test_the_warehouse_export_writes_each_tenants_rows_under_its_own_prefix(
    backend_settings: Settings, tmp_path: Path
) -> None:
    warehouse = tmp_path / "warehouse"
    settings = two_tenants(backend_settings).changed(export={"to": str(warehouse)})
    async with container_of(settings) as container:
        await seed(container)
        manifests = await run_export(container, settings, anyio.Event())

    assert {tenant: manifest.rows for tenant, manifest in manifests.items()} == {
        DEFAULT_TENANT: 2,
        ACME: 1,
    }
    # The default tenant's layout is as it always was; acme's the same under tenant=acme/.
    assert all(name.startswith("evaluations/date=") for name in manifests[DEFAULT_TENANT].files)
    assert _parquet_ids(warehouse / "evaluations") == {"d-1", "d-2"}
    assert _parquet_ids(warehouse / "tenant=acme") == {"a-1"}
    assert sorted(p.name for p in warehouse.iterdir()) == [
        "_manifests",
        "evaluations",
        "tenant=acme",
    ]
    assert (warehouse / "tenant=acme" / "_manifests").is_dir()


@pytest.mark.anyio
async def test_a_stream_of_one_tenant_gets_its_tenants_changes_and_no_other(
    backend_settings: Settings,
) -> None:
    settings = two_tenants(backend_settings).changed(changes={"poll_ms": 20})
    async with container_of(settings) as container:
        live = await container.get(LiveFeed)
        stopping = anyio.Event()
        first: dict[TenantId, str] = {}
        async with anyio.create_task_group() as group:
            group.start_soon(live.run, stopping)
            feeds = {tenant: live.of(tenant) for tenant in (DEFAULT_TENANT, ACME)}
            starts = {tenant: await feed.latest() for tenant, feed in feeds.items()}
            with feeds[DEFAULT_TENANT].hub.stream(), feeds[ACME].hub.stream():
                streams = {
                    tenant: follow_changes(
                        feed.hub, feed.read, ChangeQuery(after=starts[tenant]), 60
                    )
                    for tenant, feed in feeds.items()
                }
                await create(container, DEFAULT_TENANT, "d-1")
                await create(container, ACME, "a-1")
                with anyio.fail_after(60):
                    for tenant, stream in streams.items():
                        change = await anext(stream)
                        assert change is not None
                        first[tenant] = change.evaluation_id
                for stream in streams.values():
                    await cast("AsyncGenerator[Change | None]", stream).aclose()
            assert live.streams == 0
            stopping.set()

    assert first == {DEFAULT_TENANT: "d-1", ACME: "a-1"}


def _acme_names(names: JetStreamNames) -> JetStreamNames:
    return JetStreamNames(stream=f"{names.stream}_acme", subject=f"{names.subject}_acme")


async def _delete(names: JetStreamNames) -> None:
    client = await nats.connect(TEST_NATS_URL)
    try:
        await client.jetstream().delete_stream(names.stream)
    except NotFoundError:
        pass
    finally:
        await client.close()


@pytest.mark.nats
def test_the_relay_of_a_second_tenant_publishes_to_a_stream_of_its_own(
    backend_settings: Settings,
) -> None:
    with jetstream_names() as names:
        acme = _acme_names(names)
        settings = two_tenants(backend_settings).changed(nats=names.settings())

        async def relayed() -> dict[str, list[Any]]:
            async with container_of(settings) as container:
                await seed(container)
                async with nats_relay(container, settings):
                    deadline = time.monotonic() + 60
                    while await stream_messages(names) < len(
                        IDS[DEFAULT_TENANT]
                    ) or await stream_messages(acme) < len(IDS[ACME]):
                        assert time.monotonic() < deadline, "the relays never published"
                        await asyncio.sleep(0.05)
            return {"default": await consume(names), "acme": await consume(acme)}

        try:
            received = asyncio.run(relayed())
        finally:
            asyncio.run(_delete(acme))

    assert [(m.subject, m.body["evaluation_id"]) for m in received["default"]] == [
        (f"{names.subject}.created", "d-1"),
        (f"{names.subject}.created", "d-2"),
    ]
    assert [(m.subject, m.body["evaluation_id"]) for m in received["acme"]] == [
        (f"{names.subject}_acme.created", "a-1")
    ]


@pytest.mark.anyio
async def test_the_start_warms_each_tenants_records_and_rebuilds_its_running_registry(
    backend_settings: Settings,
) -> None:
    settings = two_tenants(backend_settings).changed(cache={"warm_count": 10})
    async with container_of(settings) as container:
        await seed(container)
        async with acting.system_scope(container, ACME) as request:
            new = NewEvaluation(id=EvaluationId("a-run"), code="print('running')")
            await (await request.get(CreateEvaluation)).execute(new)
        async with acting.system_scope(container, ACME) as request:
            running = EvaluationChanges(status=EvaluationStatus.RUNNING)
            await (await request.get(UpdateEvaluation)).execute(EvaluationId("a-run"), running)
    async with container_of(settings) as container:  # a fresh process: in-memory stores empty
        warmed = await warm_tenants(container, settings, anyio.Event())
        rebuilt = await rebuild_running_registries(container, settings.access.tenants)
        registry = await container.get(RunningRegistry)
        listed = {tenant: await registry.list(tenant) for tenant in IDS}
        cache = await container.get(RecordCache)
        cached = await cache.get(ACME, EvaluationId("a-1"))

    assert warmed == {DEFAULT_TENANT: 2, ACME: 2}
    assert rebuilt == {DEFAULT_TENANT: 0, ACME: 1}
    assert listed[DEFAULT_TENANT] == []
    assert [info.evaluation_id for info in listed[ACME] or []] == ["a-run"]
    assert cached is not None and cached.code == f"print('{ACME}')"
