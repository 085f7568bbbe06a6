"""Hostile input, on every configuration: ids (traversal, separators) and NUL anywhere.

Each request must get the expected 4xx as problem+json naming the field, and must
change nothing: the same records, the same audit trail, the same files under
FILE_STORAGE_PATH and no new file anywhere else in the data set's directory. The harness:
tests/integration/hostile.py.
"""

from collections.abc import Iterator
from typing import Any

import pytest

from interfaces.http.app import create_app
from interfaces.settings import Settings
from tests.integration.hostile import SEED, Client, Harness, assert_problem

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
    ("GET", "/logs/stream"),
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


def send_each(
    client: Client, method: str, suffix: str, raw_ids: list[str]
) -> Iterator[tuple[str, Any]]:
    """Each id in the route, with the body the route takes; yields (id, response)."""
    for raw_id in raw_ids:
        url = f"/evaluations/{raw_id}{suffix}"
        if (method, suffix) in RAW_BODIES:
            yield (
                raw_id,
                client.request(
                    method, url, content=b"text", headers={"content-type": "text/plain"}
                ),
            )
        else:
            yield raw_id, client.request(method, url, json=JSON_BODIES.get((method, suffix)))


@pytest.mark.parametrize(("method", "suffix"), ID_ROUTES)
def test_ids_that_are_one_segment_are_refused_as_the_id(
    unchanged: Harness, method: str, suffix: str
) -> None:
    for raw_id, response in send_each(unchanged.client, method, suffix, SEGMENT_IDS):
        assert response.status_code == 422, (raw_id, response.text[:200])
        assert_problem(response, 422, "id")


@pytest.mark.parametrize(("method", "suffix"), ID_ROUTES)
def test_ids_with_separators_never_reach_storage(
    unchanged: Harness, method: str, suffix: str
) -> None:
    for _, response in send_each(unchanged.client, method, suffix, SLASHED_IDS):
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
