"""The reads ``make bench-scale`` times over HTTP, with the targets of issue 19.

A probe's name is the same at every size (the growth table's row); the values behind
its placeholders (an id prefix, a date, a cursor) are chosen from the loaded table and
returned beside the probes.
"""

import asyncio
import random
from datetime import timedelta
from urllib.parse import quote

import asyncpg

from benchmarks.scale_http import Expect, Probe, cursor_after, get_json
from benchmarks.scale_plans import PAGE, deep_page
from benchmarks.scale_rows import ScaleData

FIRST_PAGE_MS = 3.0
FILTERED_MS = 5.0
TOTAL_MS = 20.0
PREFIX_MS = 10.0
STATISTICS_MS = 10.0
STORAGE_MS = 50.0
EXPLORER_MS = 100.0
DEEP_OFFSET = 500_000
RECENT_DAYS = 30
PREFIX_LENGTH = 14
# The storage details routes with a path of their own (interfaces/http/controllers/
# storage.py); the backends of /storage/overview are added through the generic route.
DETAILS = ("database", "file", "redis", "cache")
EXPLORER = ("/explorer", "/explorer/evaluations")
EXPLORER_BACKENDS = ("database", "files", "cache")
NEWEST_SKIPPED = 2000  # the newest records may be in the cache the service warms at start


def list_probes() -> list[Probe]:
    """The list's first page and filtered first pages (also timed without statistics)."""
    first = f"/evaluations?limit={PAGE}"
    failed = f"/evaluations?status=failed&limit={PAGE}"
    rust = f"/evaluations?status=completed&language=rust&limit={PAGE}"
    return [
        Probe(f"`{first}`", (first,), FIRST_PAGE_MS, Expect.LIST),
        Probe(f"`{failed}`", (failed,), FILTERED_MS, Expect.LIST),
        Probe(f"`{rust}`", (rust,), FILTERED_MS, Expect.LIST),
    ]


async def _live_ids(dsn: str, data: ScaleData, count: int) -> list[str]:
    """``count`` ids of live records, in random order, none of the newest."""
    rng = random.Random(19)  # noqa: S311 - sampling
    # The newest records are the lowest indexes (the table grows into its past).
    skipped = min(NEWEST_SKIPPED, max(0, data.evaluations - count * 2))
    pool = range(skipped, data.evaluations)
    indexes = rng.sample(pool, min(len(pool), count * 2))
    candidates = [data.evaluation_id(index) for index in indexes]
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT id FROM evaluations WHERE id = ANY($1::text[]) AND deleted_at IS NULL",
            candidates,
        )
    finally:
        await connection.close()
    live = {row["id"] for row in rows}
    ids = [candidate for candidate in candidates if candidate in live][:count]
    if len(ids) < count:
        raise RuntimeError(f"only {len(ids)} live records found of {count} wanted")
    return ids


async def probes(
    dsn: str, base_url: str, data: ScaleData, repeat: int
) -> tuple[list[Probe], dict[str, str]]:
    """Every read of the HTTP table, and the values chosen for its placeholders."""
    evaluations = data.evaluations
    cold = 2 + repeat
    ids = await _live_ids(dsn, data, cold + 1)
    page_id, cold_ids = ids[0], ids[1:]
    prefix = data.evaluation_id(evaluations // 2)[:PREFIX_LENGTH]
    since = data.created_at(0) - timedelta(days=RECENT_DAYS)  # index 0 is the newest
    after = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    depth = deep_page(evaluations)
    cursor = await asyncio.to_thread(cursor_after, base_url, depth, PAGE)
    offset = min(DEEP_OFFSET, evaluations // 2)
    overview = await asyncio.to_thread(get_json, base_url, "/storage/overview")
    backends = [*DETAILS]
    for name in overview.get("backends", {}):
        # ``memory`` names the in-process cache in the overview and has no details route.
        if name not in backends and name != "memory":
            backends.append(name)

    def path(template: str, target: float | None, expect: Expect = Expect.JSON) -> Probe:
        return Probe(f"`{template}`", (template,), target, expect)

    found = [
        *list_probes(),
        path(f"/evaluations?status=failed&include_total=true&limit={PAGE}", TOTAL_MS, Expect.LIST),
        Probe(
            f"`/evaluations?created_after=<newest - {RECENT_DAYS} d>&include_total=true"
            f"&limit={PAGE}`",
            (f"/evaluations?created_after={quote(after)}&include_total=true&limit={PAGE}",),
            TOTAL_MS,
            Expect.LIST,
        ),
        Probe(
            f"`/evaluations?id_prefix=<{PREFIX_LENGTH} characters>&limit={PAGE}`",
            (f"/evaluations?id_prefix={quote(prefix)}&limit={PAGE}",),
            PREFIX_MS,
            Expect.LIST,
        ),
        Probe(
            f"`/evaluations?limit={PAGE}&cursor=<after ~1,000 pages>`",
            (f"/evaluations?limit={PAGE}&cursor={quote(cursor)}",),
            FILTERED_MS,
            Expect.LIST,
        ),
        Probe(
            f"`/evaluations?offset=<half the table, at most {DEEP_OFFSET:,}>&limit={PAGE}`",
            (f"/evaluations?offset={offset}&limit={PAGE}",),
            FIRST_PAGE_MS,
            Expect.DEEP_OFFSET,
        ),
        path("/statistics", STATISTICS_MS),
        path("/storage/overview", STORAGE_MS),
        *(path(f"/storage/{name}/details", STORAGE_MS) for name in backends),
        *(path(page, EXPLORER_MS, Expect.HTML) for page in EXPLORER),
        Probe(
            "`/explorer/evaluations/{id}`",
            (f"/explorer/evaluations/{page_id}",),
            EXPLORER_MS,
            Expect.HTML,
        ),
        *(
            path(f"/explorer/backends/{name}", EXPLORER_MS, Expect.HTML)
            for name in EXPLORER_BACKENDS
        ),
        Probe(
            "`/evaluations/{id}`, a record not read before",
            tuple(f"/evaluations/{identifier}" for identifier in cold_ids),
            None,
        ),
    ]
    values = {
        "id_prefix": prefix,
        "created_after": after,
        "cursor": f"after page {depth:,}",
        "offset": f"{offset:,}",
        "explorer record": page_id,
    }
    return found, values
