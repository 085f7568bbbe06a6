"""Hostile input, on every configuration: injection-shaped filters, unknown fields,
and timestamps centuries apart.

Each request must get the expected 4xx as problem+json naming the field, and must
change nothing: the same records, the same audit trail, the same files under
FILE_STORAGE_PATH and no new file anywhere else in the data set's directory. The harness:
tests/integration/hostile.py.
"""

from typing import Any

import pytest

from tests.integration.hostile import SEED, Harness, assert_problem

# -- injection-shaped filters ------------------------------------------------------------------


def test_injection_shaped_filters_match_literally(unchanged: Harness) -> None:
    client = unchanged.client
    for params in [
        {"language": "' OR 1=1 --"},
        {"language": "python' OR '1'='1"},
        {"id_prefix": "' OR 1=1 --"},
        {"id_prefix": "%"},
        {"id_prefix": "_"},
        {"id_prefix": "seed%"},
        {"id_prefix": "seed_"},
        {"id_prefix": "\\"},
        {
            "created_after": "2000-01-01T00:00:00Z",
            "language": "python); DROP TABLE evaluations; --",
        },
    ]:
        response = client.get("/evaluations", params={**params, "include_total": "true"})
        assert response.status_code == 200, (params, response.text)
        assert response.json()["evaluations"] == [] and response.json()["total"] == 0, params
    for params in [
        {"evaluation_id": "' OR 1=1 --"},
        {"evaluation_id": "%"},
        {"actor": "%"},
        {"actor": "_nonymous"},
    ]:
        response = client.get("/audit", params=params)
        assert response.status_code == 200, (params, response.text)
        assert response.json()["items"] == [], params


def test_like_wildcards_in_id_prefix_are_literal(hostile: Harness) -> None:
    for evaluation_id in ["ab_c", "abxc", "ab-c"]:
        assert (
            hostile.client.post("/evaluations", json={"id": evaluation_id, "code": "x"}).status_code
            == 200
        )

    def ids(prefix: str) -> list[str]:
        response = hostile.client.get("/evaluations", params={"id_prefix": prefix})
        assert response.status_code == 200, response.text
        return sorted(item["id"] for item in response.json()["evaluations"])

    assert ids("ab_") == ["ab_c"]
    assert ids("ab%") == []
    assert ids("ab") == ["ab-c", "ab_c", "abxc"]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/evaluations", {"status": "'; DROP TABLE evaluations; --"}, "status"),
        ("/evaluations", {"status": "queued' OR '1'='1"}, "status"),
        ("/evaluations", {"limit": "1; DROP TABLE evaluations"}, "limit"),
        ("/evaluations", {"offset": "0 OR 1=1"}, "offset"),
        ("/evaluations", {"cursor": "' OR 1=1 --"}, "cursor"),
        ("/evaluations", {"created_before": "now(); DROP TABLE evaluations"}, "created_before"),
        ("/evaluations", {"language": "x" * 51}, "language"),
        ("/evaluations", {"id_prefix": "x" * 256}, "id_prefix"),
        ("/audit", {"action": "'; DROP TABLE audit_log; --"}, "action"),
        ("/audit", {"cursor": "1 OR 1=1"}, "cursor"),
        ("/audit", {"until": "' OR 1=1"}, "until"),
        ("/audit", {"actor": "x" * 101}, "actor"),
        (f"/evaluations/{SEED}/logs", {"offset": "-1"}, "offset"),
    ],
)
def test_injection_shaped_typed_filters_are_422(
    unchanged: Harness, path: str, params: dict[str, str], field: str
) -> None:
    assert_problem(unchanged.client.get(path, params=params), 422, field)


def test_a_sql_shaped_if_match_is_a_400_naming_the_header(unchanged: Harness) -> None:
    for method in ("PUT", "DELETE"):
        response = unchanged.client.request(
            method,
            f"/evaluations/{SEED}",
            json={"status": "completed"} if method == "PUT" else None,
            headers={"If-Match": "'; DROP TABLE evaluations; --"},
        )
        assert_problem(response, 400, "If-Match")


# -- unknown fields (docs/decisions/0003 and 0013) -------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", f"/evaluations/{SEED}/logs", {"content": "x", "offset": 0}),
        ("POST", f"/evaluations/{SEED}/events", {"type": "t", "mesage": "x"}),
    ],
    ids=["log", "event"],
)
def test_unknown_fields_outside_a_record_body_are_422_naming_them(
    unchanged: Harness, method: str, path: str, body: dict[str, Any]
) -> None:
    unknown = next(key for key in body if key not in {"content", "type"})
    assert_problem(unchanged.client.request(method, path, json=body), 422, unknown)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/evaluations", {"code": "x", "stauts": "queued"}),
        ("PUT", f"/evaluations/{SEED}", {"stauts": "completed"}),
        ("POST", f"/evaluations/{SEED}/celery-update", {"task_state": "STARTED", "reslt": "x"}),
    ],
    ids=["create", "update", "celery-update"],
)
def test_unknown_fields_of_a_record_body_are_kept_and_named(
    client: Any, method: str, path: str, body: dict[str, Any]
) -> None:
    assert client.post("/evaluations", json={"id": SEED, "code": "x"}).status_code in (200, 409)
    response = client.request(method, path, json=body)
    assert response.status_code == 200, response.text
    unknown = next(key for key in body if key not in {"code", "task_state"})
    assert response.headers["x-unrecognized-fields"] == unknown
    record = response.json().get("evaluation", response.json())
    assert record["metadata"]["_unrecognized"] == {unknown: body[unknown]}


def test_timestamps_centuries_apart_do_not_overflow_the_runtime(client: Any) -> None:
    # Found by schemathesis: the derived runtime overflowed PostgreSQL's INTEGER (500).
    assert client.post("/evaluations", json={"id": "far-apart", "code": "x"}).is_success
    assert client.put("/evaluations/far-apart", json={"status": "running"}).is_success
    response = client.put(
        "/evaluations/far-apart",
        json={
            "status": "failed",
            "started_at": "0006-03-02T05:06:05Z",
            "completed_at": "7466-03-29T07:54:37Z",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["runtime_ms"] is None
