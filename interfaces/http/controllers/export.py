"""``GET /export/evaluations.parquet``: the warehouse rows of a filter, as one Parquet file."""

from collections.abc import AsyncIterator
from typing import Annotated, Literal

import anyio.to_thread
from dishka.integrations.litestar import FromDishka
from litestar import Controller, get
from litestar.params import Parameter
from litestar.response import Stream

from application.queries import EvaluationFilter
from application.use_cases.warehouse_export import ExportWarehouse
from infrastructure.parquet.stream import ParquetStream
from interfaces.http.errors import problem_responses
from interfaces.http.params import FILTER_DEPENDENCY

PARQUET = "application/vnd.apache.parquet"


class ExportController(Controller):
    path = "/export"
    tags = ["Export"]

    @get(
        "/evaluations.parquet",
        summary="The evaluations of a filter as one Parquet file, streamed",
        description="The columns of the warehouse export (README, Warehouse export), one row "
        "per live evaluation, newest first: `pandas.read_parquet(url)` reads it. Output and "
        "error are what the record stores (the preview of a large one, with `*_location` "
        "saying where the rest is) unless `include=output` asks for the whole texts.",
        responses=problem_responses(400, 422, 503),
        media_type=PARQUET,
        dependencies=FILTER_DEPENDENCY,
    )
    async def export_evaluations(
        self,
        use_case: FromDishka[ExportWarehouse],
        criteria: EvaluationFilter,
        include: Annotated[
            Literal["output"] | None,
            Parameter(description="`output`: the whole output and error, not the preview"),
        ] = None,
    ) -> Stream:
        download = await use_case.download(criteria, whole_payloads=include == "output")

        async def parquet() -> AsyncIterator[bytes]:
            out = ParquetStream(download.columns)
            async for rows in download.rows:
                if chunk := await anyio.to_thread.run_sync(out.write, rows):
                    yield chunk
            yield await anyio.to_thread.run_sync(out.close)

        return Stream(
            parquet(),
            media_type=PARQUET,
            headers={"Content-Disposition": 'attachment; filename="evaluations.parquet"'},
        )
