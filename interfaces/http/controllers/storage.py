from dishka.integrations.litestar import FromDishka
from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from application.queries import BackendReport, EvaluationStatistics
from application.use_cases.statistics import GetStatistics
from application.use_cases.storage_report import (
    CheckHealth,
    DescribeStorage,
    GetBackendDetails,
    GetStorageOverview,
    HealthReport,
    StorageConfiguration,
    StorageOverview,
)
from interfaces.http.errors import problem_responses
from interfaces.http.security import PUBLIC


class StorageController(Controller):
    tags = ["Storage and monitoring"]

    @get("/storage-info", summary="How this instance stores data", responses=problem_responses())
    async def storage_info(self, use_case: FromDishka[DescribeStorage]) -> StorageConfiguration:
        return await use_case.execute()

    @get(
        "/storage/overview",
        summary="Measured metrics of every backend",
        responses=problem_responses(),
    )
    async def overview(self, use_case: FromDishka[GetStorageOverview]) -> StorageOverview:
        return await use_case.execute()

    @get(
        "/storage/{backend:str}/details",
        summary="Detailed figures of one backend",
        responses=problem_responses(400, 404),
    )
    async def details(
        self, backend: FromPath[str], use_case: FromDishka[GetBackendDetails]
    ) -> BackendReport:
        return await use_case.execute(backend)

    @get(
        "/statistics",
        summary="Aggregated platform statistics",
        responses=problem_responses(503),
    )
    async def statistics(self, use_case: FromDishka[GetStatistics]) -> EvaluationStatistics:
        return await use_case.execute()

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
