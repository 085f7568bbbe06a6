"""Request ids, access log lines and /metrics, through the app factory."""

import logging
from typing import Any

import pytest
from litestar.testing import TestClient

Client = TestClient[Any]


def test_a_sane_request_id_is_echoed_and_a_bad_one_replaced(client: Client) -> None:
    given = client.get("/health", headers={"X-Request-ID": "abc-123.x"})
    assert given.headers["x-request-id"] == "abc-123.x"

    for hostile in ("a b", "x" * 200, "évil", "id\r\nSet-Cookie: x"):
        replaced = client.get("/health", headers={"X-Request-ID": hostile.encode("utf-8")})
        assert replaced.headers["x-request-id"] != hostile
        assert len(replaced.headers["x-request-id"]) == 32

    first, second = client.get("/health"), client.get("/health")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_every_request_logs_one_line_without_bodies(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="storage_service.access")
    secret = "print('do not log this code')"
    response = client.post(
        "/evaluations", json={"id": "obs-1", "code": secret}, headers={"X-Request-ID": "req-42"}
    )
    assert response.status_code == 201
    client.get("/evaluations/missing-1")

    lines = [r.getMessage() for r in caplog.records if r.name == "storage_service.access"]
    assert any(
        line.startswith("POST /evaluations 201 ") and "request_id=req-42" in line for line in lines
    ), lines
    assert any(line.startswith("GET /evaluations/{eval_id} 404 ") for line in lines), lines
    assert not any("do not log" in line for line in lines)


def test_metrics_count_requests_by_route_template(client: Client) -> None:
    client.post("/evaluations", json={"id": "met-1", "code": "x"})
    for _ in range(3):
        client.get("/evaluations/met-1")

    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    text = metrics.text
    assert "crucible_storage_requests_total" in text
    assert "crucible_storage_request_duration_seconds_bucket" in text
    counted = [
        line
        for line in text.splitlines()
        if line.startswith("crucible_storage_requests_total")
        and 'path="/evaluations/{eval_id}"' in line
        and 'method="GET"' in line
    ]
    assert counted, text[:2000]
    assert "met-1" not in text  # grouped by template, not one series per id
