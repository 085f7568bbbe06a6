"""The request-scoped tenant: the caller's, and never a guess for work no caller started."""

import pytest
from dishka import make_async_container

from domain.audit import AuditContext
from domain.tenancy import DEFAULT_TENANT, TenantId
from interfaces import acting
from interfaces.providers import build_providers
from interfaces.settings import Settings
from tests.use_cases.conftest import memory_settings


@pytest.mark.anyio
async def test_a_request_scope_gets_the_tenant_its_caller_acts_for() -> None:
    settings = memory_settings()
    container = make_async_container(*build_providers(settings), context={Settings: settings})
    try:
        for tenant in (TenantId("acme"), DEFAULT_TENANT):
            with acting.acting_as(AuditContext(actor="ci", tenant=tenant)):
                async with container() as request:
                    assert await request.get(TenantId) == tenant
    finally:
        await container.close()


@pytest.mark.anyio
async def test_work_no_caller_started_has_no_tenant_to_fall_back_on() -> None:
    settings = memory_settings()
    container = make_async_container(*build_providers(settings), context={Settings: settings})
    try:
        assert acting.current().tenant is None  # background work: "system", no tenant
        async with container() as request:
            with pytest.raises(acting.MissingTenantError, match="'system' acts for no tenant"):
                await request.get(TenantId)
    finally:
        await container.close()
