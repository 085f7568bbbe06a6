"""Request ids, access log lines and /metrics, through the app factory."""

import logging
import secrets
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.integration.scraped import sample, scrape

Client = TestClient[Any]


def test_a_sane_request_id_is_echoed_and_a_bad_one_replaced(client: Client) -> None:
    given = client.get("/health", headers={"X-Request-ID": "abc-123.x"})
    assert given.headers["x-request-id"] == "abc-123.x"

    for hostile in ("a b", "x" * 200, "évil", "id\r\nSet-Cookie: x"):
        replaced = client.get("/health", headers={b"X-Request-ID": hostile.encode("utf-8")})
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
    assert response.status_code == 200
    client.get("/evaluations/missing-1")

    lines = [r.getMessage() for r in caplog.records if r.name == "storage_service.access"]
    assert any(
        line.startswith("POST /evaluations 200 ") and "request_id=req-42" in line for line in lines
    ), lines
    assert any(line.startswith("GET /evaluations/{eval_id} 404 ") for line in lines), lines
    assert not any("do not log" in line for line in lines)


def test_a_request_refused_by_the_access_check_is_logged_with_its_status(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from interfaces.settings import parse_api_keys

    client = make_client(
        access={"api_keys": parse_api_keys("reader:reader-secret-0123456789:read")}
    )
    caplog.set_level(logging.INFO, logger="storage_service.access")

    refused = client.get("/evaluations/eval-1")
    forbidden = client.post(
        "/evaluations", json={"code": "x"}, headers={"X-API-Key": "reader-secret-0123456789"}
    )

    lines = [r.getMessage() for r in caplog.records if r.name == "storage_service.access"]
    assert (refused.status_code, forbidden.status_code) == (401, 403)
    assert any(line.startswith("GET /evaluations/{eval_id} 401 ") for line in lines), lines
    assert any(line.startswith("POST /evaluations 403 ") for line in lines), lines
    assert not any(" 500 " in line for line in lines), lines


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


def test_metrics_show_backend_latency_cache_lookups_and_blob_bytes(
    client: Client, backend_settings: Any
) -> None:
    database_commits = ("crucible_storage_backend_operation_seconds_count",)
    before = scrape(client)
    cache_backend = "redis" if backend_settings.redis.url else None

    client.post("/evaluations", json={"id": "met-2", "code": "x"})
    output = secrets.token_hex(100_000)  # hex: about half of it survives compression
    client.put("/evaluations/met-2", json={"output": output})
    client.get("/evaluations/met-2")  # a hit: the update filled the cache
    client.get("/evaluations/met-missing")  # a miss
    assert client.get("/evaluations/met-2/output").text == output

    after = scrape(client)
    grew = {
        "commits": sample(after, *database_commits, backend="database", operation="commit")
        - sample(before, *database_commits, backend="database", operation="commit"),
        "file io": sample(after, *database_commits, backend="file", operation="io")
        - sample(before, *database_commits, backend="file", operation="io"),
        "hits": sample(after, "crucible_storage_cache_lookups_total", result="hit")
        - sample(before, "crucible_storage_cache_lookups_total", result="hit"),
        "misses": sample(after, "crucible_storage_cache_lookups_total", result="miss")
        - sample(before, "crucible_storage_cache_lookups_total", result="miss"),
        "written": sample(after, "crucible_storage_blob_bytes_total", direction="written")
        - sample(before, "crucible_storage_blob_bytes_total", direction="written"),
        "read": sample(after, "crucible_storage_blob_bytes_total", direction="read")
        - sample(before, "crucible_storage_blob_bytes_total", direction="read"),
    }
    assert grew["commits"] >= 2, grew
    assert grew["file io"] >= 2, grew
    assert grew["hits"] >= 1 and grew["misses"] >= 1, grew
    assert grew["written"] >= 80_000 and grew["read"] >= 80_000, grew
    if cache_backend:
        redis_calls = sample(
            after, *database_commits, backend="redis", operation="command"
        ) - sample(before, *database_commits, backend="redis", operation="command")
        assert redis_calls >= 2, grew
