"""The storage explorer's pages: thin handlers that call use cases and render templates.

The explorer's router maps their failures to pages (``explorer.errors``); an address
under ``/explorer`` that names no page is one of them, a 404 page.
"""

from typing import Annotated, Any, cast

import anyio
from dishka.integrations.litestar import FromDishka
from litestar import Controller, get
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath, Parameter
from litestar.response import Template

from application.backends import Backend
from application.errors import InvalidRequestError
from application.queries import (
    TTL_BUCKET_NAMES,
    BackendReport,
    EvaluationPage,
    EvaluationQuery,
)
from application.search import SearchField, TextMatch
from application.use_cases.activity import GetActivity
from application.use_cases.browse_blobs import BrowseBlobs
from application.use_cases.events import ListEvents
from application.use_cases.get_evaluation import GetEvaluation
from application.use_cases.list_evaluations import ListEvaluations
from application.use_cases.logs import ReadLog
from application.use_cases.running_evaluations import ListRunningEvaluations
from application.use_cases.search_evaluations import SearchEvaluations, SearchPage
from application.use_cases.statistics import GetStatistics
from application.use_cases.storage_report import (
    GetBackendDetails,
    GetStorageOverview,
    StorageOverview,
)
from domain.identifiers import parse_evaluation_id
from domain.status import EvaluationStatus
from interfaces.http.explorer import charts, views
from interfaces.http.explorer.live import LIST_KINDS, RECORD_KINDS, changes_url, record_parts
from interfaces.http.params import decode_cursor, encode_cursor
from interfaces.live import LiveFeed

PAGE_SIZE = 25
ACTIVITY_DAYS = 14
# The page shows at most this much of a log; the rest is a download away.
LOG_CHARACTERS = 200_000
Text = Annotated[str, Parameter(max_length=1024)]


def _backend_page(name: str, report: BackendReport, **context: Any) -> Template:
    """A backend's own page: its template, the menu entry it lights and its report."""
    return Template(
        template_name=f"{name}.html", context={"page": name, "report": report, **context}
    )


class ExplorerController(Controller):
    path = "/"
    include_in_schema = False

    @get("/", name="explorer:overview")
    async def overview(
        self,
        overview: FromDishka[GetStorageOverview],
        statistics: FromDishka[GetStatistics],
        activity: FromDishka[GetActivity],
    ) -> Template:
        # The inspectors use sessions of their own; statistics and activity share the
        # request's, so they run one after the other while the backends are measured.
        reports: list[StorageOverview] = []

        async def measure() -> None:
            reports.append(await overview.execute())

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(measure)
                stats = (await statistics.execute()).totals
                recent = await activity.execute(ACTIVITY_DAYS)
        except ExceptionGroup as failed:  # the first failure, as the app's handlers map it
            raise failed.exceptions[0] from None
        report = reports[0]
        statuses = [name for name, values in recent.counts.items() if any(values)]
        return Template(
            template_name="overview.html",
            context={
                "page": "overview",
                "report": report,
                "stats": stats,
                "hit_rate": views.hit_rate(report.backends),
                "activity_total": recent.total,
                "activity_chart": charts.stacked_columns(
                    [f"{day:%m-%d}" for day in recent.days],
                    recent.counts,
                    title=f"Evaluations created per day over the last {ACTIVITY_DAYS} days, "
                    "by current status",
                    classes=views.STATUS_CLASSES,
                ),
                "activity_legend": charts.legend(statuses, views.STATUS_CLASSES),
                "bytes_chart": charts.bar_chart(
                    sorted(stats.bytes_by_location.items()),
                    title="Stored output and error bytes by location",
                    formatter=charts.human_bytes,
                ),
                "status_chart": charts.bar_chart(
                    [
                        (s.value, stats.by_status[s.value])
                        for s in EvaluationStatus
                        if s.value in stats.by_status
                    ],
                    title="Evaluations by status",
                    classes=views.STATUS_CLASSES,
                ),
            },
        )

    @get("/evaluations", name="explorer:evaluations")
    async def evaluations(
        self,
        use_case: FromDishka[ListEvaluations],
        searching: FromDishka[SearchEvaluations],
        running: FromDishka[ListRunningEvaluations],
        live: FromDishka[LiveFeed],
        status: Text = "",
        language: Text = "",
        created_from: Text = "",
        created_to: Text = "",
        id_prefix: Text = "",
        q: Text = "",
        regex: Text = "",
        where: Text = "",
        cursor: Text = "",
    ) -> Template:
        form = views.ListForm(
            status=status,
            language=language,
            created_from=created_from,
            created_to=created_to,
            id_prefix=id_prefix,
            q=q,
            regex=regex,
            where=where,
        )
        stream = await changes_url(live, LIST_KINDS)  # before the reads: see live.py
        criteria = form.criteria()
        position = None
        if cursor:
            try:
                position = decode_cursor(cursor)
            except HTTPException:
                form.errors.append("That page link is not valid any more; showing the first page.")
        query = EvaluationQuery(
            filter=criteria, limit=PAGE_SIZE, cursor=position, include_total=True
        )
        matches: dict[str, list[TextMatch]] = {}
        if criteria.search is None:
            page = await use_case.execute(query)
        else:
            try:
                found = await searching.execute(query, None)
            except InvalidRequestError as exc:  # the database gave up: too broad
                form.errors.append(f"Search: {exc.message}.")
                found = SearchPage(EvaluationPage(items=[], next_cursor=None, total=0), {})
            page, matches = cast("EvaluationPage", found.page), found.matches
        next_cursor = encode_cursor(page.next_cursor)
        # The running list heads the list's first page; filtered, it would only distract.
        landing = position is None and not form.active
        return Template(
            template_name="evaluations.html",
            context={
                "page": "evaluations",
                "form": form,
                "statuses": [s.value for s in EvaluationStatus],
                "items": page.items,
                "matches": matches,
                "anchors": views.MATCH_ANCHORS,
                "fields": [field.value for field in SearchField],
                "total": page.total,
                "paged": position is not None,
                "next_query": form.query_string(cursor=next_cursor) if next_cursor else None,
                "first_query": form.query_string(),
                "running": await running.execute() if landing else None,
                "changes_url": stream,
            },
        )

    @get("/evaluations/{eval_id:str}", name="explorer:evaluation")
    async def evaluation(
        self,
        eval_id: FromPath[str],
        get_evaluation: FromDishka[GetEvaluation],
        read_log: FromDishka[ReadLog],
        list_events: FromDishka[ListEvents],
        live: FromDishka[LiveFeed],
    ) -> Template:
        identifier = parse_evaluation_id(eval_id)
        stream = await changes_url(live, RECORD_KINDS, identifier)  # before the reads
        parts = await record_parts(identifier, get_evaluation, list_events)
        log = await read_log.execute(identifier)
        return Template(
            template_name="evaluation.html",
            context={
                **parts,
                "page": "evaluations",
                "log": log.content[-LOG_CHARACTERS:],
                "log_clipped": len(log.content) > LOG_CHARACTERS,
                "log_offset": log.next_offset,
                "changes_url": stream,
            },
        )

    @get("/backends/database", name="explorer:database")
    async def database(self, use_case: FromDishka[GetBackendDetails]) -> Template:
        report = await use_case.execute(Backend.DATABASE)
        tables = views.table_sizes(report)
        return _backend_page(
            "database",
            report,
            tables=tables,
            details=views.other_details(report, views.DATABASE_TABULATED),
            rows_chart=charts.bar_chart(
                [(t["name"], float(t["rows"] or 0)) for t in tables],
                title="Rows per table",
            ),
        )

    @get("/backends/files", name="explorer:files")
    async def files(
        self,
        browse: FromDishka[BrowseBlobs],
        details: FromDishka[GetBackendDetails],
        path: Text = "",
        after: Text = "",
    ) -> Template:
        listing = await browse.execute(path, after)
        report = await details.execute(Backend.FILE)
        evaluation_dir = listing.path.split("/")
        return _backend_page(
            "files",
            report,
            listing=listing,
            details=views.other_details(report),
            evaluation_id=evaluation_dir[1]
            if len(evaluation_dir) == 3 and evaluation_dir[0] == "evaluations"
            else None,
        )

    @get("/backends/cache", name="explorer:cache")
    async def cache(self, use_case: FromDishka[GetBackendDetails]) -> Template:
        report = await use_case.execute(Backend.CACHE)
        patterns = views.cache_patterns(report)
        ttls = views.cache_ttls(report)
        rates, memory = views.class_hit_rates(report), views.class_memory(report)
        class_ttls = views.class_ttls(report)
        return _backend_page(
            "cache",
            report,
            memory=views.cache_memory(report),
            details=views.other_details(report, views.CACHE_CHARTED),
            patterns_chart=charts.bar_chart(patterns, title="Cache keys by pattern")
            if patterns
            else None,
            ttl_chart=charts.bar_chart(ttls, title="Cache keys by time to live") if ttls else None,
            classes=views.class_rows(report),
            rates_chart=charts.bar_chart(
                rates, title="Hit rate by key class", formatter=charts.percent
            )
            if rates
            else None,
            class_memory_chart=charts.bar_chart(
                memory, title="Memory by key class", formatter=charts.human_bytes
            )
            if memory
            else None,
            class_ttl_chart=charts.stacked_columns(
                [views.TTL_LABELS[name] for name in TTL_BUCKET_NAMES],
                class_ttls,
                title="Sampled keys by time to live and key class",
            )
            if class_ttls
            else None,
            class_ttl_legend=charts.legend(list(class_ttls)),
            warming=views.warming(report),
        )

    @get(
        [
            "/{address:path}",
            "/evaluations/{eval_id:str}/{address:path}",
            "/parts/{address:path}",
            "/parts/evaluations/{eval_id:str}/{address:path}",
        ],
        name="explorer:unknown",
    )
    async def unknown(self, address: FromPath[str]) -> Template:
        """Any other address under ``/explorer``: a page saying nothing is there.

        Routing that went down a page's path (``evaluations/<id>/more``) does not come back
        to the first catch-all, and would leave the address to the API's problem JSON.
        """
        raise NotFoundException(address)
