from dishka.integrations.litestar import FromDishka
from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from application.backends import Backend
from application.queries import BackendReport
from application.use_cases.statistics import GetStatistics
from application.use_cases.storage_report import (
    CheckHealth,
    DescribeStorage,
    GetBackendDetails,
    GetDatabaseDetails,
    GetFileDetails,
    GetStorageOverview,
    HealthReport,
)
from interfaces.http.errors import problem_responses
from interfaces.http.schemas import (
    CacheDetailsBody,
    DatabaseDetailsBody,
    FileDetailsBody,
    StatisticsBody,
    StorageInfoBody,
    StorageOverviewBody,
)
from interfaces.http.security import PUBLIC

# Who sees which figures (application/services/storage_audience.py, ADR 0032).
_AUDIENCE = (
    " A key of the default tenant sees the deployment's figures; a key of another tenant "
    "sees each backend's name, type and state and its own evaluations' counts "
    "(`evaluations`, `events`, `log_bytes`), every other figure left out (null or 0)."
)


class StorageController(Controller):
    tags = ["Storage and monitoring"]

    @get("/storage-info", summary="How this instance stores data", responses=problem_responses())
    async def storage_info(self, use_case: FromDishka[DescribeStorage]) -> StorageInfoBody:
        return StorageInfoBody.of(await use_case.execute())

    @get(
        "/storage/overview",
        summary="Measured metrics of every backend",
        description="Nothing is counted row by row. The database's `evaluations`, `events` "
        "(of live records) and `deleted` are exact, from counters kept in each write's "
        "transaction and an index of soft-deleted records; `log_chunks` is exact below "
        "10,000 rows, else PostgreSQL's running estimate. The file store's figures and the "
        "cache's key count come from a walk or scan that is redone on every request while "
        "it takes under 20 ms, and otherwise kept and redone in the background every 30 s "
        "or more (`measured_at` says when)." + _AUDIENCE,
        responses=problem_responses(),
    )
    async def overview(self, use_case: FromDishka[GetStorageOverview]) -> StorageOverviewBody:
        return StorageOverviewBody.of(await use_case.execute())

    @get(
        "/storage/database/details",
        summary="The records backend in detail: tables, records by status, the newest",
        description="`details.<table>_rows` is exact for `evaluations` (live and "
        "soft-deleted) and for any table under 10,000 rows; above, PostgreSQL's running "
        "estimate, and `details.estimated_row_counts` names those tables." + _AUDIENCE,
        responses=problem_responses(503),
    )
    async def database_details(
        self, use_case: FromDishka[GetDatabaseDetails]
    ) -> DatabaseDetailsBody:
        return DatabaseDetailsBody.of(await use_case.execute())

    @get(
        "/storage/file/details",
        summary="The blob store in detail: its largest files",
        description=_AUDIENCE.strip(),
        responses=problem_responses(503),
    )
    async def file_details(self, use_case: FromDishka[GetFileDetails]) -> FileDetailsBody:
        return FileDetailsBody.of(await use_case.execute())

    # Two handlers rather than one with two paths: Litestar keeps a handler's paths in a
    # set, so their order (and the OpenAPI document's) would change from run to run.
    @get(
        "/storage/redis/details",
        summary="The cache in detail (Redis or in this process): keys, memory, hit rate",
        description="`redis` is the platform's name for the cache, answered whether the "
        "cache is Redis or in this process (`backend` says which)." + _AUDIENCE,
        responses=problem_responses(),
    )
    async def redis_details(self, use_case: FromDishka[GetBackendDetails]) -> CacheDetailsBody:
        return CacheDetailsBody.of(await use_case.execute(Backend.CACHE))

    @get(
        "/storage/cache/details",
        summary="The cache in detail: this service's name for `/storage/redis/details`",
        description=_AUDIENCE.strip(),
        responses=problem_responses(),
    )
    async def cache_details(self, use_case: FromDishka[GetBackendDetails]) -> CacheDetailsBody:
        return CacheDetailsBody.of(await use_case.execute(Backend.CACHE))

    @get(
        "/storage/{backend:str}/details",
        summary="Detailed figures of another backend (`fallback`)",
        description=_AUDIENCE.strip(),
        responses=problem_responses(400, 404),
    )
    async def details(
        self, backend: FromPath[str], use_case: FromDishka[GetBackendDetails]
    ) -> BackendReport:
        return await use_case.execute(backend)

    @get(
        "/statistics",
        summary="Aggregated platform statistics",
        description="Counts, sums, bytes and events are exact: counters the database keeps in "
        "each write's transaction. `runtime.p50_ms`, `p95_ms`, `p99_ms` and `max_ms` come "
        "from a histogram of runtimes that is exact below 1,024 ms and above counts runtimes "
        "in buckets less than 0.8 % wide (128 per power of two): each is the lower bound of "
        "the bucket holding the exact nearest-rank value (`reported <= exact < reported + "
        "width`); the in-memory store reports the exact value. `last_24h_count` and "
        "`peak_hour` are counted from the records created in the last 24 hours.",
        responses=problem_responses(503),
    )
    async def statistics(self, use_case: FromDishka[GetStatistics]) -> StatisticsBody:
        return StatisticsBody.of(await use_case.execute())

    @get(
        "/health",
        summary="Per-backend health; 503 when the service cannot serve",
        responses={503: ResponseSpec(data_container=HealthReport, description="cannot serve")},
        opt=PUBLIC,
    )
    async def health(self, use_case: FromDishka[CheckHealth]) -> Response[HealthReport]:
        report = await use_case.execute()
        status = HTTP_503_SERVICE_UNAVAILABLE if report.status == "unavailable" else HTTP_200_OK
        return Response(report, status_code=status)
