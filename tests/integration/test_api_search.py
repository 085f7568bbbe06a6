"""``GET /evaluations?q=|q_regex=&in=``: hits with where they matched, every filter and
paging beside the search, and bad or hostile input answered with a problem, never a 5xx;
embedded and PostgreSQL + Redis."""

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import asyncpg
import pandas as pd
import pytest
from litestar.testing import TestClient

from infrastructure.postgres.pool import driver_dsn
from interfaces.http.app import create_app
from interfaces.settings import load_settings
from tests.integration.large_payloads import put_body

Client = TestClient[Any]
OOM = "out of memory"


def _seed(client: Client) -> None:
    """A hit in each field for ``OOM`` (in various cases) and two records without one."""
    bodies: list[dict[str, Any]] = [
        {"id": "q-code", "code": "raise MemoryError('Out Of Memory')"},
        {"id": "q-output", "code": "train()", "language": "python"},
        {"id": "q-error", "code": "fail()"},
        {"id": "q-log", "code": "loop()"},
        {"id": "q-event", "code": "watch()"},
        {"id": "q-none", "code": "print('out of mem')"},
    ]
    for body in bodies:
        assert client.post("/evaluations", json=body).status_code == 200
    output = {"status": "failed", "output": f"step 9\nCUDA {OOM.upper()}. Tried to allocate"}
    assert client.put("/evaluations/q-output", json=output).is_success
    error = {"status": "failed", "error": "Traceback (most recent call last):\nValueError: boom"}
    assert client.put("/evaluations/q-error", json=error).is_success
    for line in ("ünïcode first\n", f"then: {OOM} here\n"):
        assert client.post("/evaluations/q-log/logs", json={"content": line}).is_success
    event = {"type": "oom", "event_id": "oom-1", "message": f"worker saw {OOM}"}
    assert client.post("/evaluations/q-event/events", json=event).is_success


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["evaluations"]]


def test_a_text_is_found_in_every_field_with_where_it_matched(client: Client) -> None:
    _seed(client)

    response = client.get("/evaluations", params={"q": OOM})

    assert _ids(response) == ["q-event", "q-log", "q-output", "q-code"]
    page = response.json()
    assert page["total"] == 4 and page["has_more"] is False
    matches = {item["id"]: item["_matches"] for item in page["evaluations"]}
    log = matches["q-log"][0]
    assert (log["field"], log["offset"]) == ("logs", len("ünïcode first\nthen: ".encode()))
    start, end = log["highlight"]
    assert log["excerpt"][start:end] == OOM
    tail = client.get("/evaluations/q-log/logs", params={"offset": log["offset"]}).json()
    assert tail["content"].startswith(OOM)  # the offset reads on from the match
    event = matches["q-event"][0]
    assert (event["field"], event["event_id"], event["offset"]) == ("events", "oom-1", 11)
    output = matches["q-output"][0]
    assert output["excerpt"][output["highlight"][0] : output["highlight"][1]] == OOM.upper()
    plain = client.get("/evaluations").json()["evaluations"]
    assert all("_matches" not in item for item in plain)


def test_in_fields_filters_and_a_cursor_combine_with_a_search(client: Client) -> None:
    _seed(client)

    events = client.get("/evaluations", params={"q": OOM, "in": "events,logs"})
    failed = client.get("/evaluations", params={"q_regex": "(?i)memory|boom", "status": "failed"})
    projected = client.get("/evaluations", params={"q": "ValueError", "fields": "status"})
    first = client.get("/evaluations", params={"q": OOM, "limit": 3}).json()
    rest = client.get("/evaluations", params={"q": OOM, "limit": 3, "cursor": first["next_cursor"]})

    assert _ids(events) == ["q-event", "q-log"]
    assert _ids(failed) == ["q-error", "q-output"]
    assert projected.json()["evaluations"] == [
        {
            "id": "q-error",
            "status": "failed",
            "_matches": [
                {
                    "field": "error",
                    "offset": len("Traceback (most recent call last):\n"),
                    "excerpt": "Traceback (most recent call last):\nValueError: boom",
                    "highlight": [35, 45],
                    "event_id": None,
                }
            ],
        }
    ]
    assert [item["id"] for item in first["evaluations"]] + _ids(rest) == [
        "q-event",
        "q-log",
        "q-output",
        "q-code",
    ]


def test_a_search_narrows_the_parquet_download(client: Client) -> None:
    _seed(client)

    response = client.get("/export/evaluations.parquet", params={"q": OOM, "in": "code,output"})

    assert response.status_code == 200, response.text
    frame = pd.read_parquet(io.BytesIO(response.content))
    assert sorted(frame["id"]) == ["q-code", "q-output"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "ab"}, "q"),
        ({"q": "x" * 300}, "q"),
        ({"q": "abc\x00def"}, "q"),
        ({"q_regex": "(?<=a)b"}, "q_regex"),
        ({"q_regex": "(a)\\1"}, "q_regex"),
        ({"q_regex": "a{1000}{1000}"}, "q_regex"),
        ({"q": "abc", "q_regex": "abc"}, "q_regex"),
        ({"q": "abc", "in": "code,stdout"}, "in"),
        ({"in": "code"}, "in"),
    ],
    ids=[
        "short",
        "long",
        "nul",
        "lookbehind",
        "backreference",
        "huge-repeat",
        "both",
        "unknown-field",
        "in-alone",
    ],
)
def test_bad_search_input_is_a_problem_naming_its_parameter(
    client: Client, params: dict[str, str], field: str
) -> None:
    response = client.get("/evaluations", params=params)

    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    named = {error.get("field") for error in problem.get("errors", [])} | {problem.get("field")}
    assert field in named or field in problem.get("detail", ""), problem


def test_a_hostile_pattern_is_answered_at_once(client: Client) -> None:
    """Nested quantifiers over a long near-match: exponential for a backtracking engine."""
    assert client.post("/evaluations", json={"id": "q-evil", "code": "x"}).is_success
    body = {"content": "a" * 30_000 + "!"}
    assert client.post("/evaluations/q-evil/logs", json=body).is_success

    started = time.monotonic()
    response = client.get("/evaluations", params={"q_regex": "(a+)+$"})
    elapsed = time.monotonic() - started

    assert response.status_code in (200, 422), response.text
    assert elapsed < 10, elapsed  # RE2 and PostgreSQL's engine: no catastrophic backtracking


@pytest.mark.postgres
def test_a_search_past_the_statement_timeout_is_refused_not_a_5xx(
    migrated_url: str, tmp_path: Path
) -> None:
    """PostgreSQL gives up at ``DB_STATEMENT_TIMEOUT_MS``; the search says so, as a 422."""

    async def fill() -> None:  # 300,000 log pieces: too many to read within 20 ms
        connection = await asyncpg.connect(driver_dsn(migrated_url))
        try:
            await connection.execute(
                "INSERT INTO evaluations (tenant_id, id, code, status, version) "
                "VALUES ('default', 'q-big', 'x', 'queued', 1)"
            )
            await connection.execute(
                "INSERT INTO log_chunks (tenant_id, evaluation_id, start_offset, content) "
                "SELECT 'default', 'q-big', n * 64, repeat('log line ', 7) || n "
                "FROM generate_series(1, 300000) AS n"
            )
        finally:
            await connection.close()

    asyncio.run(fill())
    settings = load_settings(
        {},
        database={"url": migrated_url, "statement_timeout_ms": 20},
        storage={"file_storage_path": tmp_path},
    )
    with TestClient(create_app(settings)) as strict:
        response = strict.get("/evaluations", params={"q_regex": "l.g", "in": "logs"})

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "q_regex"
    assert "DB_STATEMENT_TIMEOUT_MS" in response.text


@pytest.mark.parametrize("how", ["json", "streamed"])
def test_the_end_of_a_large_payload_is_searched_and_the_offset_reads_from_the_match(
    client: Client, how: str
) -> None:
    """A traceback ends a long error: past the preview, in the file store, yet found."""
    assert client.post("/evaluations", json={"id": "q-long", "code": "x"}).is_success
    text = "ünï log line\n" * 20_000 + "Traceback (most recent call last):\nValueError: boom-tail\n"
    if how == "json":
        body = {"status": "failed", "error": text}
        assert client.put("/evaluations/q-long", json=body).is_success
    else:
        chunks = [text.encode()[n : n + 65_536] for n in range(0, len(text.encode()), 65_536)]
        response = put_body(client, "q-long", iter(chunks), "error")
        assert response.status_code == 200, response.text

    response = client.get("/evaluations", params={"q": "boom-tail", "in": "error"})

    assert _ids(response) == ["q-long"]
    record = client.get("/evaluations/q-long", params={"include_storage_info": "true"}).json()
    assert record["error_truncated"] is True and "boom-tail" not in record["error"]
    match = response.json()["evaluations"][0]["_matches"][0]
    assert match["field"] == "error"
    assert match["offset"] == text.encode().index(b"boom-tail")
    ranged = client.get(
        "/evaluations/q-long/error",
        headers={"Range": f"bytes={match['offset']}-", "Accept-Encoding": "identity"},
    )
    assert ranged.status_code == 206, ranged.text
    assert ranged.text == "boom-tail\n"
