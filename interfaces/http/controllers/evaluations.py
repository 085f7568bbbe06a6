from typing import Annotated, Any, cast

import msgspec
from dishka.integrations.litestar import FromDishka
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import FromQuery, HeaderParameter, JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_403_FORBIDDEN

from application.commands import EvaluationChanges, NewEvaluation
from application.failover.reads import RecordReads
from application.failover.writes import Writes
from application.queries import EvaluationQuery
from application.use_cases.list_evaluations import ListEvaluationFields, ListEvaluations
from application.use_cases.search_evaluations import SearchEvaluations
from domain.access import AccessScope, Caller
from domain.evaluation import UNRECOGNIZED_KEY, Evaluation
from domain.identifiers import parse_evaluation_id
from domain.limits import InputLimits
from interfaces.http.conditional import etag, parse_if_match
from interfaces.http.errors import ACCEPTED_RESPONSE, invalid_field, problem, problem_responses
from interfaces.http.params import (
    FIELDS_DESCRIPTION,
    FILTER_DEPENDENCY,
    Criteria,
    EvalIdPath,
    decode_cursor,
    encode_cursor,
    evaluation_id,
    parse_fields,
)
from interfaces.http.schemas import (
    API_FIELDS,
    CreateEvaluationBody,
    EvaluationBody,
    EvaluationDeleted,
    EvaluationFieldsBody,
    EvaluationFieldsList,
    EvaluationList,
    UpdateEvaluationBody,
)
from interfaces.http.schemas.search import MatchBody
from interfaces.http.unrecognized import header, known_names, unrecognized

DEFAULT_PAGE = 100
MAX_OFFSET = 2**63 - 1  # the databases' OFFSET is a signed 64-bit integer
# Where a status report that arrived late (the evaluation had moved past it) is named.
STATUS_IGNORED = "X-Status-Ignored"
_CREATE_FIELDS = known_names(CreateEvaluationBody)
_UPDATE_FIELDS = known_names(UpdateEvaluationBody)
AnyRequest = Request[Any, Any, Any]
Fields = Annotated[str | None, Parameter(max_length=1024, description=FIELDS_DESCRIPTION)]
IfMatch = Annotated[
    str | None,
    HeaderParameter(name="If-Match", description="ETag of the version the change is based on"),
]


class EvaluationController(Controller):
    path = "/evaluations"
    tags = ["Evaluations"]

    @post(
        status_code=HTTP_200_OK,
        summary="Create an evaluation record",
        responses=problem_responses(400, 409, 413, 422, 503),
    )
    async def create(
        self, request: AnyRequest, data: JSONBody[CreateEvaluationBody], writes: FromDishka[Writes]
    ) -> Response[EvaluationBody]:
        extra = unrecognized(await request.body(), _CREATE_FIELDS)
        fields = msgspec.structs.asdict(data)
        fields["id"] = parse_evaluation_id(data.id) if data.id is not None else None
        if extra:
            fields["metadata"] = {**data.metadata, UNRECOGNIZED_KEY: extra}
        evaluation = await writes.create(NewEvaluation(**fields))
        return Response(
            EvaluationBody.of(evaluation),
            headers={
                "ETag": etag(evaluation.version),
                "Location": f"/evaluations/{evaluation.id}",
                **header(extra),
            },
        )

    @get(
        summary="List evaluations, newest first",
        responses=problem_responses(400, 422, 503),
        dependencies=FILTER_DEPENDENCY,
    )
    async def list_evaluations(
        self,
        use_case: FromDishka[ListEvaluations],
        projected: FromDishka[ListEvaluationFields],
        searching: FromDishka[SearchEvaluations],
        limits: FromDishka[InputLimits],
        criteria: Criteria,
        limit: Annotated[
            int | None,
            Parameter(ge=1, description="Page size (default 100), at most MAX_LIST_LIMIT (1000)"),
        ] = None,
        offset: Annotated[int | None, Parameter(ge=0, le=MAX_OFFSET)] = None,
        cursor: Annotated[str | None, Parameter(max_length=1024)] = None,
        include_total: Annotated[  # noqa: ARG002 (kept so older clients are not refused)
            bool, Parameter(description="Accepted for older clients: `total` is always given")
        ] = True,
        fields: Fields = None,
    ) -> EvaluationFieldsList:
        # Documented as the projected shape (every field optional but ``id``): a full item
        # fits it too, where ``EvaluationList | EvaluationFieldsList`` would be an ambiguous
        # oneOf that no full page satisfies.
        if cursor is not None and offset:
            raise invalid_field("cursor", "cannot be combined with offset")
        if limit is None:
            limit = min(DEFAULT_PAGE, limits.list_limit)
        query = EvaluationQuery(
            filter=criteria,
            limit=limit,
            offset=offset or 0,
            cursor=decode_cursor(cursor) if cursor is not None else None,
        )
        if criteria.search is not None:
            return await _search_page(searching, query, fields)
        if fields is not None:
            names = parse_fields(fields, API_FIELDS)
            wanted = frozenset(API_FIELDS[name] for name in names)
            projection = await projected.execute(query, wanted)
            return EvaluationFieldsList(
                evaluations=[EvaluationFieldsBody.of(item, names) for item in projection.items],
                total=projection.total or 0,
                limit=limit,
                offset=offset or 0,
                has_more=projection.next_cursor is not None,
                next_cursor=encode_cursor(projection.next_cursor),
            )
        page = await use_case.execute(query)
        return cast(
            "EvaluationFieldsList",
            EvaluationList(
                evaluations=[EvaluationBody.of(item) for item in page.items],
                total=page.total or 0,
                limit=limit,
                offset=offset or 0,
                has_more=page.next_cursor is not None,
                next_cursor=encode_cursor(page.next_cursor),
            ),
        )

    @get(
        "/{eval_id:str}",
        summary="Get one evaluation",
        responses=problem_responses(400, 404, 422, 503),
    )
    async def get_evaluation(
        self,
        eval_id: EvalIdPath,
        reads: FromDishka[RecordReads],
        include_storage_info: FromQuery[bool] = False,
        fields: Fields = None,
    ) -> Response[EvaluationFieldsBody]:
        if fields is not None:
            names = parse_fields(fields, API_FIELDS)
            wanted = frozenset(API_FIELDS[name] for name in names)
            values = await reads.get_fields(evaluation_id(eval_id), wanted)
            return Response(
                EvaluationFieldsBody.of(values, names), headers={"ETag": etag(values["version"])}
            )
        evaluation = await reads.get(evaluation_id(eval_id))
        full = EvaluationBody.of(evaluation, storage_info=include_storage_info)
        return Response(
            cast("EvaluationFieldsBody", full), headers={"ETag": etag(evaluation.version)}
        )

    @put(
        "/{eval_id:str}",
        summary="Update an evaluation (partial)",
        responses=problem_responses(400, 404, 409, 412, 413, 422, 503) | ACCEPTED_RESPONSE,
    )
    async def update(
        self,
        request: AnyRequest,
        eval_id: EvalIdPath,
        data: JSONBody[UpdateEvaluationBody],
        writes: FromDishka[Writes],
        if_match: IfMatch = None,
    ) -> Response[EvaluationBody]:
        extra = unrecognized(await request.body(), _UPDATE_FIELDS)
        fields = msgspec.structs.asdict(data)
        if extra:
            metadata = data.metadata if data.metadata is not msgspec.UNSET else {}
            fields["metadata"] = {**metadata, UNRECOGNIZED_KEY: extra}
        if _is_admin_override(data):
            _require_admin(request)
            fields["override"] = True
        changes = EvaluationChanges(**fields)
        evaluation = await writes.update(
            evaluation_id(eval_id), changes, expected_version=parse_if_match(if_match)
        )
        headers = {"ETag": etag(evaluation.version), **header(extra)}
        if data.status is not msgspec.UNSET and evaluation.status != data.status:
            headers[STATUS_IGNORED] = (
                f"late report: the evaluation is already {evaluation.status.value}"
            )
        return Response(EvaluationBody.of(evaluation), headers=headers)

    @delete(
        "/{eval_id:str}",
        status_code=HTTP_200_OK,
        summary="Soft-delete an evaluation",
        responses=problem_responses(400, 404, 409, 412, 422, 503) | ACCEPTED_RESPONSE,
    )
    async def delete_evaluation(
        self, eval_id: EvalIdPath, writes: FromDishka[Writes], if_match: IfMatch = None
    ) -> EvaluationDeleted:
        identifier = evaluation_id(eval_id)
        await writes.delete(identifier, expected_version=parse_if_match(if_match))
        return EvaluationDeleted(message="Evaluation deleted successfully", id=identifier)


def _is_admin_override(data: UpdateEvaluationBody) -> bool:
    """The platform's gateway marks an admin's status change with ``metadata.admin_update``."""
    return (
        data.status is not msgspec.UNSET
        and data.metadata is not msgspec.UNSET
        and data.metadata.get("admin_update") is True
    )


def _require_admin(request: AnyRequest) -> None:
    caller: Caller | None = getattr(request.state, "caller", None)
    if caller is None or not caller.scope.grants(AccessScope.ADMIN):
        raise problem(
            HTTP_403_FORBIDDEN,
            "Admin override needs an admin key",
            "metadata.admin_update changes a finished evaluation; send a key of scope admin",
            "forbidden",
            field="metadata.admin_update",
        )


async def _search_page(
    searching: SearchEvaluations, query: EvaluationQuery, fields: str | None
) -> EvaluationFieldsList:
    """A page of search hits, each with ``_matches`` (whole records, or ``fields``)."""
    names = None if fields is None else parse_fields(fields, API_FIELDS)
    wanted = None if names is None else frozenset(API_FIELDS[name] for name in names)
    found = await searching.execute(query, wanted)
    page = found.page

    def matches(evaluation_id: str) -> list[MatchBody]:
        matched = found.matches.get(evaluation_id, [])
        return msgspec.convert(matched, list[MatchBody], from_attributes=True)

    items: list[Any]
    if names is None:
        items = [
            msgspec.structs.replace(EvaluationBody.of(item), matches=matches(item.id))
            for item in page.items
            if isinstance(item, Evaluation)
        ]
    else:
        items = [
            msgspec.structs.replace(
                EvaluationFieldsBody.of(item, names), matches=matches(item["id"])
            )
            for item in page.items
            if isinstance(item, dict)
        ]
    return EvaluationFieldsList(
        evaluations=items,
        total=page.total or 0,
        limit=query.limit,
        offset=query.offset,
        has_more=page.next_cursor is not None,
        next_cursor=encode_cursor(page.next_cursor),
    )
