"""Hostile input on every endpoint that takes an id, a filter or a body, on every configuration.

Traversal, NUL, oversize, deep nesting, injection-shaped filters and unknown
fields. Each request must get the expected 4xx as problem+json naming the field,
and must change nothing: the same records, the same audit trail, the same files
under FILE_STORAGE_PATH and no new file anywhere else in the test's directory.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from interfaces.http.app import create_app
from interfaces.settings import Settings
from tests.integration.conftest import ClientFactory

Client = TestClient[Any]
PROBLEM = "application/problem+json"
SEED = "seed-1"
LIMITS = {
    "request_bytes": 1024 * 1024,
    "metadata_bytes": 1024,
    "metadata_depth": 4,
    "event_message_bytes": 256,
    "log_chunk_bytes": 512,
    "list_limit": 100,
}
THRESHOLDS = {"large_file_threshold": 2048, "compression_threshold": 1024}


class Harness:
    def __init__(self, client: Client, settings: Settings, tmp_path: Path) -> None:
        self.client = client
        self.settings = settings
        self.tmp_path = tmp_path
        self.files = settings.storage.file_storage_path

    def state(self) -> dict[str, Any]:
        """Everything a request could have changed, as the API and the disk show it."""
        listing = self.client.get("/evaluations", params={"include_total": "true", "limit": 100})
        assert listing.status_code == 200, listing.text
        seed = self.client.get(f"/evaluations/{SEED}/complete")
        assert seed.status_code == 200, seed.text
        audit = self.client.get("/audit", params={"limit": 500})
        assert audit.status_code == 200, audit.text
        return {
            "total": listing.json()["total"],
            "records": sorted((e["id"], e["version"]) for e in listing.json()["evaluations"]),
            "seed": seed.json(),
            "audit": len(audit.json()["items"]),
            "files": sorted(
                (str(p.relative_to(self.files)), p.stat().st_size)
                for p in self.files.rglob("*")
                if p.is_file()
            ),
            "elsewhere": sorted(
                str(p.relative_to(self.tmp_path))
                for p in self.tmp_path.rglob("*")
                if not p.is_relative_to(self.files) and not p.name.startswith("storage.db")
            ),
        }


@pytest.fixture
def hostile(make_client: ClientFactory, backend_settings: Settings, tmp_path: Path) -> Harness:
    client = make_client(limits=LIMITS, storage=THRESHOLDS)
    harness = Harness(client, backend_settings, tmp_path)
    created = client.post(
        "/evaluations", json={"id": SEED, "code": "print(1)", "metadata": {"k": "v"}}
    )
    assert created.status_code == 200, created.text
    for request in [
        ("PUT", {"status": "running", "container_id": "c-1"}),
        ("PUT", {"output": "o" * 5000, "error": "e"}),  # the output lives in a file
    ]:
        assert client.put(f"/evaluations/{SEED}", json=request[1]).status_code == 200
    assert client.post(f"/evaluations/{SEED}/logs", json={"content": "step 1\n"}).status_code == 200
    assert client.post(f"/evaluations/{SEED}/events", json={"type": "t"}).status_code == 200
    assert any(harness.files.rglob("output.*")), "the seed's output should be a file"
    return harness


@pytest.fixture
def unchanged(hostile: Harness) -> Iterator[Harness]:
    """Fails the test when anything stored changed between its start and its end."""
    before = hostile.state()
    yield hostile
    assert hostile.state() == before


def assert_problem(response: Any, status: int | tuple[int, ...], field: str | None = None) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["status"] == response.status_code and body["title"]
    if field is not None:
        named = {e["field"] for e in body.get("errors", [])} | {body.get("field")}
        assert field in named, body


# -- every route that takes an evaluation id -----------------------------------------------

JSON_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", ""): {"status": "completed"},
    ("POST", "/logs"): {"content": "x"},
    ("POST", "/events"): {"event_type": "t"},
    ("POST", "/celery-update"): {"task_state": "SUCCESS"},
}
RAW_BODIES = {("PUT", "/output"), ("PUT", "/error")}
ID_ROUTES = [
    ("GET", ""),
    ("PUT", ""),
    ("DELETE", ""),
    ("GET", "/running"),
    ("GET", "/logs"),
    ("POST", "/logs"),
    ("GET", "/events"),
    ("POST", "/events"),
    ("POST", "/celery-update"),
    ("GET", "/complete"),
    ("GET", "/output"),
    ("PUT", "/output"),
    ("GET", "/output-url"),
    ("GET", "/error"),
    ("PUT", "/error"),
]

# One path segment once decoded: must reach the handler and be refused as the id.
SEGMENT_IDS = [
    "%2e%2e",
    "%2e",
    ".hidden",
    "a..b",
    "%00",
    f"{SEED}%00",
    "%2e%2e%5cx",
    "..%5c..%5cx",
    "C:%5cWindows",
    "x" * 256,
    "%E2%80%A4%E2%80%A4",  # one-dot leaders
]
# With a separator once decoded: may not even route (404), never reaches storage.
# (Litestar's TestClient decodes the path twice, so a double encoding lands here too.)
SLASHED_IDS = [
    "../../x",
    "..%2F..%2Fx",
    "%2e%2e%2fx",
    "%2Fetc%2Fpasswd",
    "/etc/passwd",
    "..%2f",
    "%252e%252e%252fx",
]


def test_the_id_routes_are_every_route_with_an_id() -> None:
    """A new route that takes an id must be added here, so it cannot escape these tests."""
    app = create_app(Settings())
    found = {
        (method, route.path.removeprefix("/evaluations/{eval_id:str}"))
        for route in app.routes
        if route.path.startswith("/evaluations/{eval_id:str}")
        for method in getattr(route, "methods", ())
        if method not in {"HEAD", "OPTIONS"}
    }
    assert found == set(ID_ROUTES)


def send(client: Client, method: str, suffix: str, raw_id: str) -> Any:
    url = f"/evaluations/{raw_id}{suffix}"
    if (method, suffix) in RAW_BODIES:
        return client.request(method, url, content=b"text", headers={"content-type": "text/plain"})
    return client.request(method, url, json=JSON_BODIES.get((method, suffix)))


@pytest.mark.parametrize(("method", "suffix"), ID_ROUTES)
def test_ids_that_are_one_segment_are_refused_as_the_id(
    unchanged: Harness, method: str, suffix: str
) -> None:
    for raw_id in SEGMENT_IDS:
        response = send(unchanged.client, method, suffix, raw_id)
        assert response.status_code == 422, (raw_id, response.text[:200])
        assert_problem(response, 422, "id")


@pytest.mark.parametrize(("method", "suffix"), ID_ROUTES)
def test_ids_with_separators_never_reach_storage(
    unchanged: Harness, method: str, suffix: str
) -> None:
    for raw_id in SLASHED_IDS:
        response = send(unchanged.client, method, suffix, raw_id)
        assert_problem(response, (404, 405, 422))
        if response.status_code == 422:
            assert_problem(response, 422, "id")
    assert not (unchanged.tmp_path.parent / "x").exists()


@pytest.mark.parametrize(
    "backend", ["..%2F..%2Fetc", "%2e%2e", "' OR 1=1 --", "file%00", "x" * 300]
)
def test_storage_details_of_a_hostile_backend_name(unchanged: Harness, backend: str) -> None:
    assert_problem(unchanged.client.get(f"/storage/{backend}/details"), 404)


# -- NUL ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        (f"/evaluations/{SEED}", {"include_storage_info": "\x00"}, "include_storage_info"),
        (f"/evaluations/{SEED}/logs", {"offset": "\x00"}, "offset"),
        ("/evaluations", {"status": "\x00"}, "status"),
        ("/evaluations", {"created_after": "2024-01-01\x00"}, "created_after"),
        ("/evaluations", {"cursor": "\x00"}, "cursor"),
        ("/evaluations", {"limit": "1\x00"}, "limit"),
        ("/audit", {"action": "\x00"}, "action"),
        ("/audit", {"since": "\x00"}, "since"),
        ("/audit", {"cursor": "\x00"}, "cursor"),
    ],
)
def test_nul_in_a_typed_query_parameter(
    unchanged: Harness, path: str, params: dict[str, str], field: str
) -> None:
    assert_problem(unchanged.client.get(path, params=params), 422, field)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/evaluations", "language"),
        ("/evaluations", "id_prefix"),
        ("/audit", "evaluation_id"),
        ("/audit", "actor"),
    ],
)
def test_nul_in_a_text_filter_is_refused(unchanged: Harness, path: str, field: str) -> None:
    assert_problem(unchanged.client.get(path, params={field: "a\x00"}), 422, field)


@pytest.mark.parametrize("field", ["language", "id_prefix", "status", "cursor"])
def test_nul_in_an_explorer_filter_is_not_a_server_error(unchanged: Harness, field: str) -> None:
    response = unchanged.client.get("/explorer/evaluations", params={field: "a\x00"})
    assert response.status_code < 500, response.text[:300]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/evaluations", {"code": "x\x00"}, "code"),
        ("POST", "/evaluations", {"code": "x", "language": "py\x00"}, "language"),
        ("POST", "/evaluations", {"code": "x", "metadata": {"tags": ["a\x00"]}}, "metadata"),
        ("POST", "/evaluations", {"code": "x", "metadata": {"k\x00": 1}}, "metadata"),
        # An unknown name is kept in metadata (ADR 0013), where NUL cannot be stored.
        ("POST", "/evaluations", {"code": "x", "\x00": 1}, "metadata"),
        ("PUT", f"/evaluations/{SEED}", {"output": "o\x00"}, "output"),
        ("PUT", f"/evaluations/{SEED}", {"executor_id": "e\x00"}, "executor_id"),
        ("PUT", f"/evaluations/{SEED}", {"metadata": {"a": {"b\x00": 1}}}, "metadata"),
        (
            "POST",
            f"/evaluations/{SEED}/celery-update",
            {"task_state": "RETRY", "error": "\x00"},
            "error",
        ),
        ("POST", f"/evaluations/{SEED}/logs", {"content": "a\x00b"}, "content"),
        ("POST", f"/evaluations/{SEED}/events", {"event_type": "t\x00"}, "event_type"),
        ("POST", f"/evaluations/{SEED}/events", {"type": "t\x00"}, "type"),
        ("POST", f"/evaluations/{SEED}/events", {"event_type": "t", "message": "\x00"}, "message"),
        (
            "POST",
            f"/evaluations/{SEED}/events",
            {"event_type": "t", "event_id": "\x00"},
            "event_id",
        ),
        (
            "POST",
            f"/evaluations/{SEED}/events",
            {"event_type": "t", "metadata": {"\x00": 1}},
            "metadata",
        ),
    ],
)
def test_nul_in_json_strings_and_keys(
    unchanged: Harness, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    response = unchanged.client.request(method, path, json=body)
    assert_problem(response, 422)
    named = {e["field"] for e in response.json().get("errors", [])}
    assert any(name == field or name.startswith(f"{field}.") for name in named), named


@pytest.mark.parametrize("kind", ["output", "error"])
def test_nul_in_an_upload(unchanged: Harness, kind: str) -> None:
    response = unchanged.client.put(
        f"/evaluations/{SEED}/{kind}",
        content=b"a\x00b" * 2000,
        headers={"content-type": "text/plain"},
    )
    assert_problem(response, 422, kind)


# -- oversize and deep nesting -----------------------------------------------------------------

BODY_ROUTES = [
    ("POST", "/evaluations", lambda pad: {"code": pad}),
    ("PUT", f"/evaluations/{SEED}", lambda pad: {"output": pad}),
    (
        "POST",
        f"/evaluations/{SEED}/celery-update",
        lambda pad: {"task_state": "RETRY", "output": pad},
    ),
    ("POST", f"/evaluations/{SEED}/logs", lambda pad: {"content": pad}),
    ("POST", f"/evaluations/{SEED}/events", lambda pad: {"event_type": "t", "message": pad}),
]


@pytest.mark.parametrize(("method", "path", "body"), BODY_ROUTES)
def test_a_body_over_max_request_bytes_is_413(
    unchanged: Harness, method: str, path: str, body: Any
) -> None:
    pad = "x" * (LIMITS["request_bytes"] + 1)
    assert_problem(unchanged.client.request(method, path, json=body(pad)), 413)


@pytest.mark.parametrize(("method", "path", "body"), BODY_ROUTES)
@pytest.mark.parametrize("shape", ["lists", "objects"])
def test_a_very_deep_json_body_is_a_client_error(
    unchanged: Harness, method: str, path: str, body: Any, shape: str
) -> None:
    depth = 100_000
    opening, closing = ("[", "]") if shape == "lists" else ('{"a":', "}")
    deep = opening * depth + "1" + closing * depth
    for content in (deep, '{"metadata":' + deep + "}"):
        response = unchanged.client.request(
            method, path, content=content.encode(), headers={"content-type": "application/json"}
        )
        assert_problem(response, (400, 413, 422))


# -- bytes that are not UTF-8 (RFC 8259: JSON exchanged between systems is UTF-8) ----------

JSON_ROUTES = [
    ("POST", "/evaluations", b'{"code": "%s"}'),
    ("PUT", f"/evaluations/{SEED}", b'{"output": "%s"}'),
    ("POST", f"/evaluations/{SEED}/events", b'{"type": "t", "message": "%s"}'),
    ("POST", f"/evaluations/{SEED}/logs", b'{"content": "%s"}'),
    ("POST", f"/evaluations/{SEED}/celery-update", b'{"task_state": "RETRY", "error": "%s"}'),
]
NOT_UTF8 = {
    "latin-1": "café".encode("latin-1"),
    "lone-continuation": b"\x80",
    "invalid-start": b"\xff\xfe",
    "truncated": b"ok \xe2\x82",
    "overlong": b"\xc0\xaf",
    "surrogate": b"\xed\xa0\x80",
    "above-u10ffff": b"\xf4\x90\x80\x80",
}


@pytest.mark.parametrize(("method", "path", "template"), JSON_ROUTES)
@pytest.mark.parametrize("raw", NOT_UTF8.values(), ids=NOT_UTF8.keys())
def test_a_json_body_that_is_not_utf8_is_400(
    unchanged: Harness, method: str, path: str, template: bytes, raw: bytes
) -> None:
    response = unchanged.client.request(
        method, path, content=template % raw, headers={"content-type": "application/json"}
    )
    assert_problem(response, 400)
    assert "UTF-8" in response.json()["detail"], response.text


@pytest.mark.parametrize(("method", "path", "template"), JSON_ROUTES)
def test_bytes_that_are_not_utf8_in_a_key_or_metadata_are_400(
    unchanged: Harness, method: str, path: str, template: bytes
) -> None:
    valid = template % b"x"
    for body in (
        valid[:-1] + b', "\xff": 1}',
        valid[:-1] + b', "metadata": {"k": "\xe9t\xe9"}}',
        valid[:-1] + b', "metadata": {"\xe9t\xe9": 1}}',
    ):
        response = unchanged.client.request(
            method, path, content=body, headers={"content-type": "application/json"}
        )
        assert_problem(response, 400)
        assert "UTF-8" in response.json()["detail"], response.text


def test_the_same_text_in_utf8_is_accepted(hostile: Harness) -> None:
    """The control: only the encoding made the bodies above bad."""
    for method, path, template in JSON_ROUTES:
        response = hostile.client.request(
            method,
            path,
            content=template % "café ✓".encode(),
            headers={"content-type": "application/json"},
        )
        assert response.is_success, (method, path, response.text)


METADATA_ROUTES = [
    ("POST", "/evaluations", {"code": "x"}),
    ("PUT", f"/evaluations/{SEED}", {}),
    ("POST", f"/evaluations/{SEED}/events", {"event_type": "t"}),
]


@pytest.mark.parametrize(("method", "path", "body"), METADATA_ROUTES)
def test_metadata_over_max_metadata_bytes_is_422(
    unchanged: Harness, method: str, path: str, body: dict[str, Any]
) -> None:
    metadata = {"blob": "m" * LIMITS["metadata_bytes"]}
    response = unchanged.client.request(method, path, json={**body, "metadata": metadata})
    assert_problem(response, 422, "metadata")


@pytest.mark.parametrize(("method", "path", "body"), METADATA_ROUTES)
def test_metadata_deeper_than_max_metadata_depth_is_422(
    unchanged: Harness, method: str, path: str, body: dict[str, Any]
) -> None:
    metadata: Any = 1
    for _ in range(LIMITS["metadata_depth"] + 1):
        metadata = {"a": metadata}
    response = unchanged.client.request(method, path, json={**body, "metadata": metadata})
    assert_problem(response, 422, "metadata")


def test_metadata_at_the_limits_is_accepted(hostile: Harness) -> None:
    metadata: Any = [1]
    for _ in range(LIMITS["metadata_depth"] - 1):
        metadata = {"a": metadata}
    response = hostile.client.post("/evaluations", json={"code": "x", "metadata": metadata})
    assert response.status_code == 200, response.text


def test_a_log_chunk_over_max_log_chunk_bytes_is_422(unchanged: Harness) -> None:
    content = "é" * (LIMITS["log_chunk_bytes"] // 2 + 1)  # counted in UTF-8 bytes
    response = unchanged.client.post(f"/evaluations/{SEED}/logs", json={"content": content})
    assert_problem(response, 422, "content")


def test_an_event_message_over_max_event_message_bytes_is_422(unchanged: Harness) -> None:
    message = "m" * (LIMITS["event_message_bytes"] + 1)
    response = unchanged.client.post(
        f"/evaluations/{SEED}/events", json={"event_type": "t", "message": message}
    )
    assert_problem(response, 422, "message")


@pytest.mark.parametrize(
    ("path", "limit"), [("/evaluations", LIMITS["list_limit"] + 1), ("/audit", 501)]
)
def test_a_list_limit_above_the_maximum_is_422(unchanged: Harness, path: str, limit: int) -> None:
    assert_problem(unchanged.client.get(path, params={"limit": limit}), 422, "limit")
    assert_problem(unchanged.client.get(path, params={"limit": 10**30}), 422, "limit")


def test_the_default_page_fits_a_small_max_list_limit(make_client: ClientFactory) -> None:
    response = make_client(limits={"list_limit": 10}).get("/evaluations")
    assert response.status_code == 200, response.text


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
