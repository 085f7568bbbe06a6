"""Hostile input, on every configuration: oversize, deep nesting, bytes that are not UTF-8,
and each configured limit.

Each request must get the expected 4xx as problem+json naming the field, and must
change nothing: the same records, the same audit trail, the same files under
FILE_STORAGE_PATH and no new file anywhere else in the data set's directory. The harness:
tests/integration/hostile.py.
"""

from typing import Any

import pytest

from tests.integration.conftest import ClientFactory
from tests.integration.hostile import LIMITS, SEED, Harness, assert_problem

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
