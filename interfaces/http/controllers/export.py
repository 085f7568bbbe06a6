"""``GET /export/{evaluations,events,logs}.parquet``: a filter's rows as one Parquet file."""

from collections.abc import AsyncIterator
from typing import Annotated, Literal

import anyio.to_thread
from dishka.integrations.litestar import FromDishka
from litestar import Controller, get
from litestar.params import Parameter
from litestar.response import Stream

from application.ports.warehouse import Table
from application.use_cases.warehouse_export import ExportWarehouse, RowDownload
from infrastructure.parquet.stream import ParquetStream
from interfaces.http.errors import problem_responses
from interfaces.http.params import FILTER_DEPENDENCY, Criteria

PARQUET = "application/vnd.apache.parquet"


def _parquet_route(table: Table, summary: str, description: str) -> get:
    """``GET /export/<table>.parquet``: a filter's rows of ``table``, streamed."""
    return get(
        f"/{table.value}.parquet",
        summary=summary,
        description=description,
        responses=problem_responses(400, 422, 503),
        media_type=PARQUET,
        dependencies=FILTER_DEPENDENCY,
    )


class ExportController(Controller):
    path = "/export"
    tags = ["Export"]

    @_parquet_route(
        Table.EVALUATIONS,
        "The evaluations of a filter as one Parquet file, streamed",
        "The columns of the warehouse export (README, Warehouse export), one row per live "
        "evaluation, newest first: `pandas.read_parquet(url)` reads it. Output and error are "
        "what the record stores (the preview of a large one, with `*_location` saying where "
        "the rest is) unless `include=output` asks for the whole texts.",
    )
    async def export_evaluations(
        self,
        use_case: FromDishka[ExportWarehouse],
        criteria: Criteria,
        include: Annotated[
            Literal["output"] | None,
            Parameter(description="`output`: the whole output and error, not the preview"),
        ] = None,
    ) -> Stream:
        return _streamed(await use_case.download(criteria, whole_payloads=include == "output"))

    @_parquet_route(
        Table.EVENTS,
        "The events of a filter's evaluations as one Parquet file, streamed",
        "The columns of the warehouse export's events table (README, Warehouse export): "
        "every event of each live evaluation the filter picks.",
    )
    async def export_events(
        self, use_case: FromDishka[ExportWarehouse], criteria: Criteria
    ) -> Stream:
        return _streamed(await use_case.download_timeline(Table.EVENTS, criteria))

    @_parquet_route(
        Table.LOGS,
        "The logs of a filter's evaluations as one Parquet file, streamed",
        "The columns of the warehouse export's logs table (README, Warehouse export): every "
        "appended piece of each live evaluation's log, with its byte offset.",
    )
    async def export_logs(
        self, use_case: FromDishka[ExportWarehouse], criteria: Criteria
    ) -> Stream:
        return _streamed(await use_case.download_timeline(Table.LOGS, criteria))


def _streamed(download: RowDownload) -> Stream:
    """The rows as one Parquet file, each row group sent as soon as it is written."""

    async def parquet() -> AsyncIterator[bytes]:
        out = ParquetStream(download.table, download.columns)
        async for rows in download.rows:
            if chunk := await anyio.to_thread.run_sync(out.write, rows):
                yield chunk
        yield await anyio.to_thread.run_sync(out.close)

    filename = f"{download.table.value}.parquet"
    return Stream(
        parquet(),
        media_type=PARQUET,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
