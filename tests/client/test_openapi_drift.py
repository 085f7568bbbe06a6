"""The client's Structs against the service's own OpenAPI document, so neither drifts.

Each Struct names the schema it mirrors. Every field must exist there with a
compatible JSON type; an answer's field is required only where the service
promises it; a request's required fields are exactly the service's.
"""

from typing import Any

import msgspec
import pytest
from crucible_storage import bodies, models
from litestar.testing import TestClient
from msgspec import inspect

from infrastructure.sql.migrate import upgrade
from interfaces.http.app import create_app
from interfaces.http.schemas.changes import LogPieceBody
from interfaces.settings import load_settings

ANSWERS: dict[type[msgspec.Struct], str] = {
    models.PayloadStorage: "StorageInfo",
    models.Evaluation: "EvaluationBody",
    models.EvaluationFields: "EvaluationFieldsBody",
    models.EvaluationPage: "EvaluationFieldsList",
    models.EvaluationFieldsPage: "EvaluationFieldsList",
    models.Match: "MatchBody",
    models.SearchHit: "EvaluationFieldsBody",
    models.SearchPage: "EvaluationFieldsList",
    models.EvaluationDeleted: "EvaluationDeleted",
    models.RunningEvaluation: "RunningBody",
    models.RunningList: "RunningList",
    models.CeleryUpdateResult: "CeleryUpdateResult",
    models.LogAppend: "LogAppended",
    models.Logs: "LogBody",
    models.Event: "EventBody",
    models.TimelineEntry: "TimelineEntry",
    models.CompleteMetadata: "CompleteMetadataBody",
    models.CompleteEvaluation: "CompleteEvaluationBody",
    models.RuntimeStatistics: "RuntimeStatistics",
    models.StatisticsStorage: "StatisticsStorageBody",
    models.Statistics: "StatisticsBody",
    models.Health: "HealthReport",
    models.StorageThresholds: "StorageThresholdsBody",
    models.StorageInfo: "StorageInfoBody",
    models.WriteAccepted: "WriteAccepted",
    models.FieldProblem: "FieldProblem",
    models.Change: "ChangeBody",
    models.ChangePage: "ChangePageBody",
}
# What a stream's messages carry is in no OpenAPI document: checked against the JSON
# schema of the service's own Struct.
STREAMED: dict[type[msgspec.Struct], type[msgspec.Struct]] = {models.LogPiece: LogPieceBody}
REQUESTS: dict[type[msgspec.Struct], str] = {
    bodies.CreateEvaluationBody: "CreateEvaluationBody",
    bodies.UpdateEvaluationBody: "UpdateEvaluationBody",
    bodies.AppendLogBody: "AppendLogBody",
    bodies.AddEventBody: "AddEventBody",
    bodies.CeleryUpdateBody: "CeleryUpdateBody",
}
# Request fields the client leaves out on purpose: `append` must be true anyway and
# `event_type` is the earlier name of `type`.
NOT_SENT = {"AppendLogBody": {"append"}, "AddEventBody": {"event_type", "type"}}
# The one service field the client requires beyond the schema: `type` of an event is
# required in substance (the schema lists neither it nor its older name as required).
REQUIRED_BY_CLIENT = {("AddEventBody", "type")}
# The client's name for each schema an answer refers to.
CLIENT_NAMES: dict[str, set[str]] = {}
for _struct, _schema in ANSWERS.items():
    CLIENT_NAMES.setdefault(_schema, set()).add(_struct.__name__)


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("openapi")
    url = f"sqlite+aiosqlite:///{tmp / 'storage.db'}"
    upgrade(url)
    settings = load_settings({}, database={"url": url}, storage={"file_storage_path": tmp})
    with TestClient(create_app(settings)) as client:
        document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def _json_types(kind: inspect.Type) -> set[str]:
    """The JSON types a msgspec type can take (UNSET and Any add nothing)."""
    match kind:
        case inspect.UnionType():
            return set().union(*(_json_types(member) for member in kind.types))
        case inspect.StrType() | inspect.DateTimeType() | inspect.LiteralType():
            return {"string"}
        case inspect.BoolType():
            return {"boolean"}
        case inspect.IntType():
            return {"integer"}
        case inspect.FloatType():
            return {"number"}
        case inspect.NoneType():
            return {"null"}
        case inspect.DictType():
            return {"object"}
        case inspect.ListType() | inspect.TupleType():
            return {"array"}
        case inspect.StructType():
            return {f"#{kind.cls.__name__}"}
        case _:
            return set()


def _schema_types(schema: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    if "oneOf" in schema or "anyOf" in schema:
        members = schema.get("oneOf") or schema["anyOf"]
        return set().union(*(_schema_types(member, schemas) for member in members))
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        target = schemas[name]
        if target.get("type") == "string":  # an enumeration
            return {"string"}
        return {f"#{member}" for member in CLIENT_NAMES.get(name, {name})}
    kind = schema.get("type")
    if isinstance(kind, list):
        return set(kind)
    return {kind} if kind else set()


def _check(
    struct: type[msgspec.Struct], name: str, schemas: dict[str, Any], *, answer: bool
) -> None:
    schema = schemas[name]
    properties: dict[str, Any] = schema["properties"]
    required = set(schema.get("required", []))
    info = inspect.type_info(struct)
    assert isinstance(info, inspect.StructType)
    fields = {field.encode_name: field for field in info.fields}
    unknown = set(fields) - set(properties)
    assert not unknown, f"{struct.__name__}: not in {name}: {sorted(unknown)}"
    if answer:
        missing = required - set(fields)
        assert not missing, f"{struct.__name__} lacks {name}'s {sorted(missing)}"
    else:
        missing = set(properties) - set(fields) - NOT_SENT.get(name, set())
        assert not missing, f"{struct.__name__} cannot send {name}'s {sorted(missing)}"
    for field_name, field in fields.items():
        if answer and field.required:
            assert field_name in required, f"{struct.__name__}.{field_name} may be absent"
        if not answer and (name, field_name) not in REQUIRED_BY_CLIENT:
            assert field.required == (field_name in required), f"{struct.__name__}.{field_name}"
        ours = _json_types(field.type)
        theirs = _schema_types(properties[field_name], schemas)
        if answer:  # every value the service may send must decode
            assert theirs <= ours | {"null"} and ("null" not in theirs or "null" in ours), (
                f"{struct.__name__}.{field_name}: {sorted(ours)} cannot hold {sorted(theirs)}"
            )
        else:  # every value the client may send must be accepted
            assert ours <= theirs, (
                f"{struct.__name__}.{field_name}: sends {sorted(ours)}, takes {sorted(theirs)}"
            )


@pytest.mark.parametrize(
    ("struct", "name"), ANSWERS.items(), ids=lambda v: getattr(v, "__name__", v)
)
def test_answer_struct_matches_schema(
    openapi: dict[str, Any], struct: type[msgspec.Struct], name: str
) -> None:
    _check(struct, name, openapi["components"]["schemas"], answer=True)


@pytest.mark.parametrize(("struct", "theirs"), STREAMED.items(), ids=lambda v: v.__name__)
def test_streamed_struct_matches_the_service_struct(
    struct: type[msgspec.Struct], theirs: type[msgspec.Struct]
) -> None:
    (ref,), schemas = msgspec.json.schema_components([theirs])
    _check(struct, ref["$ref"].rsplit("/", 1)[1], schemas, answer=True)


@pytest.mark.parametrize(
    ("struct", "name"), REQUESTS.items(), ids=lambda v: getattr(v, "__name__", v)
)
def test_request_struct_matches_schema(
    openapi: dict[str, Any], struct: type[msgspec.Struct], name: str
) -> None:
    _check(struct, name, openapi["components"]["schemas"], answer=False)


def test_every_struct_is_checked() -> None:
    structs = {
        value
        for module in (models, bodies)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, msgspec.Struct)
    }
    unchecked = (
        structs
        - set(ANSWERS)
        - set(REQUESTS)
        - set(STREAMED)
        - {
            models.Answer,
            bodies.Body,
            models.Problem,  # problem+json: checked against ProblemBody below
        }
    )
    assert not unchecked, sorted(s.__name__ for s in unchecked)


def test_problem_reads_the_service_problem(openapi: dict[str, Any]) -> None:
    properties = openapi["components"]["schemas"]["ProblemBody"]["properties"]
    names = {field.encode_name for field in inspect.type_info(models.Problem).fields}  # type: ignore[attr-defined]
    assert set(properties) <= names


def test_answers_ignore_unknown_fields() -> None:
    event = msgspec.json.decode(
        b'{"type":"t","timestamp":"2026-01-01T00:00:00Z","message":null,"metadata":{},'
        b'"event_id":"e","evaluation_id":"x","added_in_a_later_version":1}',
        type=models.Event,
    )
    assert event.event_id == "e"
