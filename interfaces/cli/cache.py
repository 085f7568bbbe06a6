"""``warm-cache`` and ``rebuild-cache``."""

import click
from dishka import AsyncContainer

from application.use_cases.rebuild_cache import CacheRebuild, RebuildCache
from application.use_cases.warm_cache import WarmCache
from domain.tenancy import TenantId
from interfaces.cli import CONTEXT_SETTINGS
from interfaces.cli.common import (
    count_option,
    echo_json,
    json_option,
    load,
    progress_bar,
    run,
    summary,
    tenant_option,
)
from interfaces.settings import Settings

IN_PROCESS_NOTE = (
    "note: no REDIS_URL, so the cache lives inside each server process; "
    "this command only touched its own copy"
)


def _note_in_process(settings: Settings) -> None:
    if not settings.redis.url:
        summary(IN_PROCESS_NOTE)


@click.command("warm-cache", context_settings=CONTEXT_SETTINGS)
@count_option(
    "--top", default=1000, help="How many of the most recently changed evaluations to load."
)
@tenant_option
@json_option
def warm_cache(top: int, tenant: TenantId, as_json: bool) -> None:
    """Load one tenant's most recently active evaluations into the record cache.

    Entries are versioned like any read's fill: warming never replaces a newer
    entry. Useful after a Redis restart or flush.

    \b
    Examples:
      storage-service warm-cache
      storage-service warm-cache --top 5000 --json
      storage-service warm-cache --tenant acme
    """
    settings = load(quiet=as_json)

    async def warm(container: AsyncContainer) -> int:
        with progress_bar(not as_json) as progress:
            task = progress.add_task("warming", total=None)
            async with container() as request:
                use_case = await request.get(WarmCache)
                return await use_case.execute(top, lambda: progress.advance(task))

    loaded = run(settings, warm, tenant)
    if as_json:
        echo_json({"loaded": loaded, "cache": "redis" if settings.redis.url else "memory"})
    else:
        summary(f"{loaded} evaluation(s) loaded into the cache")
        _note_in_process(settings)


@click.command("rebuild-cache", context_settings=CONTEXT_SETTINGS)
@tenant_option
@json_option
def rebuild_cache(tenant: TenantId, as_json: bool) -> None:
    """Drop every cached record and rebuild one tenant's running registry from the database.

    Reads refill the cache from the database as they come; the tenant's running list
    is rebuilt from its evaluations in provisioning/running. The cached records
    dropped are every tenant's.

    \b
    Examples:
      storage-service rebuild-cache
      storage-service rebuild-cache --json | jq .running
      storage-service rebuild-cache --tenant acme
    """
    settings = load(quiet=as_json)

    async def rebuild(container: AsyncContainer) -> CacheRebuild:
        async with container() as request:
            use_case = await request.get(RebuildCache)
            return await use_case.execute()

    result = run(settings, rebuild, tenant)
    if as_json:
        echo_json(result)
    else:
        summary(
            f"{result.dropped} cache entr{'y' if result.dropped == 1 else 'ies'} dropped; "
            f"running registry rebuilt with {result.running} evaluation(s)"
        )
        _note_in_process(settings)
