"""Every route of the app crossed with {no key, unknown key, read, write, admin}.

The routes come from the app's own route table, so a new route is in the matrix
the moment it exists; a path parameter without a sample here fails the test.
"""

import re
from typing import Any

import pytest
from litestar.testing import TestClient

from interfaces.http.security import required_access
from interfaces.settings import parse_api_keys
from tests.integration.conftest import ClientFactory

SECRETS = {
    "reader": "reader-secret-0123456789",
    "writer": "writer-secret-0123456789",
    "admin": "admin-secret-01234567890",
}
API_KEYS = parse_api_keys(
    ",".join(
        f"{name}:{secret}:{scope}"
        for (name, secret), scope in zip(SECRETS.items(), ("read", "write", "admin"), strict=True)
    )
)
CALLERS: dict[str, dict[str, str]] = {
    "no key": {},
    "unknown key": {"X-API-Key": "not-a-configured-key-000"},
    "read": {"X-API-Key": SECRETS["reader"]},
    "write": {"Authorization": f"Bearer {SECRETS['writer']}"},
    "admin": {"X-API-Key": SECRETS["admin"]},
}
RANK = {"read": 0, "write": 1, "admin": 2}
EVALUATION_ID = "eval_20240101_000000_abcdef"
PATH_SAMPLES = {
    "eval_id": EVALUATION_ID,
    "backend": "database",
    "file_path": "swagger-ui.css",
    "path": "swagger",
    "address": "nothing-here",
    "subject": "nobody-here",
}
PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
# An event stream stays open: a caller it lets in gets a 4xx for these instead, after the
# access check, so the matrix sees the check without waiting on an endless stream.
NOT_A_STREAM = {"after": "not-a-cursor", "offset": "-1"}


def _routes(client: TestClient[Any]) -> list[tuple[str, str, Any]]:
    """(method, concrete path, handler) for every HTTP route handler of the app."""
    found = []
    for route in client.app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(handler.http_methods):
                names = PARAM.findall(route.path_format if hasattr(route, "path_format") else "")
                missing = [name for name in names if name not in PATH_SAMPLES]
                assert not missing, f"{route.path}: add a sample for {missing} to the matrix"
                path = PARAM.sub(lambda m: PATH_SAMPLES[m.group(1)], route.path)
                found.append((method, path, handler))
    return found


def _sent_to_sign_in(response: Any) -> bool:
    return response.status_code in (302, 303) and response.headers.get("location", "").startswith(
        "/explorer/login?next="
    )


def _expected(access: str, caller: str, *, docs_public: bool) -> str:
    if access == "public" or (access == "docs" and docs_public):
        return "allowed"
    needed = "read" if access == "docs" else access
    if caller in ("no key", "unknown key"):
        return "401"
    return "allowed" if RANK[caller] >= RANK[needed] else "403"


@pytest.mark.parametrize("docs_public", [True, False])
def test_every_route_checks_its_scope(make_client: ClientFactory, docs_public: bool) -> None:
    client = make_client(access={"api_keys": API_KEYS, "docs_public": docs_public})
    client.follow_redirects = False
    created = client.post(
        "/evaluations", json={"id": EVALUATION_ID, "code": "x"}, headers=CALLERS["admin"]
    )
    assert created.status_code == 200
    routes = _routes(client)
    assert len({path for _, path, _ in routes}) >= 15, "the route table looks incomplete"
    failures = []
    # Deletes last, so the other routes still find the evaluation.
    for method, path, handler in sorted(routes, key=lambda r: r[0] == "DELETE"):
        access = required_access(handler, method, path)
        for caller, headers in CALLERS.items():
            params = NOT_A_STREAM if path.endswith("/stream") else None
            response = client.request(method, path, headers=headers, params=params)
            expected = _expected(access, caller, docs_public=docs_public)
            status = response.status_code
            if _sent_to_sign_in(response):
                status = 401  # the explorer's pages answer a missing key with its sign-in page
            ok = (
                status not in (401, 403) and status < 500
                if expected == "allowed"
                else status == int(expected)
            )
            if not ok:
                failures.append(f"{method} {path} as {caller}: {status}, expected {expected}")
            if not ok or expected == "allowed":
                continue
            if _sent_to_sign_in(response):
                continue
            assert response.headers["content-type"].startswith("application/problem+json")
            assert (
                SECRETS["reader"] not in response.text and "not-a-configured" not in response.text
            )
    assert not failures, "\n".join(failures)


def test_health_stays_open_and_unauthorised_answers_say_how(make_client: ClientFactory) -> None:
    client = make_client(access={"api_keys": API_KEYS})
    assert client.get("/health").status_code == 200
    refused = client.get("/evaluations")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert "X-API-Key" in refused.json()["detail"]
    forbidden = client.post("/evaluations", json={"code": "x"}, headers=CALLERS["read"])
    assert forbidden.status_code == 403
    assert "'reader' has scope read" in forbidden.json()["detail"]


def test_without_keys_everything_is_open(client: TestClient[Any]) -> None:
    assert client.post("/evaluations", json={"code": "x"}).status_code == 200
    assert client.get("/audit").status_code == 200


def test_a_key_in_the_query_string_is_not_accepted(make_client: ClientFactory) -> None:
    client = make_client(access={"api_keys": API_KEYS})
    for name in ("api_key", "key", "X-API-Key"):
        response = client.get("/evaluations", params={name: SECRETS["admin"]})
        assert response.status_code == 401


def test_cors_is_off_unless_origins_are_configured(make_client: ClientFactory) -> None:
    preflight = {
        "Origin": "https://dash.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key",
    }
    closed = make_client()
    assert (
        "access-control-allow-origin"
        not in closed.options("/evaluations", headers=preflight).headers
    )
    assert "access-control-allow-origin" not in closed.get("/health", headers=preflight).headers

    opened = make_client(access={"cors_origins": ("https://dash.example",), "api_keys": API_KEYS})
    answer = opened.options("/evaluations", headers=preflight)
    assert answer.status_code in (200, 204)
    assert answer.headers["access-control-allow-origin"] == "https://dash.example"
    other = opened.options("/evaluations", headers={**preflight, "Origin": "https://evil.example"})
    assert other.headers.get("access-control-allow-origin") != "https://evil.example"


def test_an_open_service_says_so_once_at_start(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="storage_service"):
        make_client()
        make_client(access={"api_keys": API_KEYS})
    warnings = [r.getMessage() for r in caplog.records if "no API keys" in r.getMessage()]
    assert len(warnings) == 1
    assert "127.0.0.1:8082" in warnings[0]
