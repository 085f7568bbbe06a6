"""With API keys, the explorer asks for one and keeps only a read-only session cookie."""

from typing import Any

from litestar.testing import TestClient

from tests.integration.conftest import ClientFactory
from tests.integration.test_auth_matrix import API_KEYS, SECRETS


def _secured(make_client: ClientFactory) -> TestClient[Any]:
    client = make_client(access={"api_keys": API_KEYS})
    client.follow_redirects = False
    return client


def test_pages_send_a_stranger_to_sign_in_and_back(make_client: ClientFactory) -> None:
    client = _secured(make_client)

    page = client.get("/explorer/evaluations", params={"status": "running"})
    assert page.status_code in (302, 303)
    assert (
        page.headers["location"]
        == "/explorer/login?next=%2Fexplorer%2Fevaluations%3Fstatus%3Drunning"
    )
    assert client.get("/explorer/static/explorer.css").status_code == 200
    form = client.get("/explorer/login", params={"next": "/explorer/evaluations"})
    assert form.status_code == 200
    assert 'type="password"' in form.text and 'value="/explorer/evaluations"' in form.text

    signed_in = client.post(
        "/explorer/login", data={"key": SECRETS["admin"], "next": "/explorer/evaluations"}
    )

    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/explorer/evaluations"
    cookie = signed_in.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert SECRETS["admin"] not in signed_in.headers["set-cookie"]
    assert client.get("/explorer/evaluations").status_code == 200
    assert client.get("/evaluations").status_code == 200


def test_the_cookie_only_ever_reads(make_client: ClientFactory) -> None:
    client = _secured(make_client)
    client.post("/explorer/login", data={"key": SECRETS["admin"]})

    assert client.post("/evaluations", json={"code": "x"}).status_code == 403
    assert client.get("/audit").status_code == 403


def test_a_wrong_key_is_refused_and_next_stays_inside(make_client: ClientFactory) -> None:
    client = _secured(make_client)

    wrong = client.post("/explorer/login", data={"key": "not-a-key-0000000000"})
    assert wrong.status_code == 401
    assert "not known" in wrong.text
    assert client.get("/explorer").status_code in (302, 303)
    for target in ("https://evil.example/", "//evil.example", "/explorer/\\evil", "/docs"):
        answer = client.post("/explorer/login", data={"key": SECRETS["reader"], "next": target})
        assert answer.headers["location"] == "/explorer", target


def test_signing_out_ends_the_session(make_client: ClientFactory) -> None:
    client = _secured(make_client)
    client.post("/explorer/login", data={"key": SECRETS["reader"]})
    assert client.get("/explorer").status_code == 200

    assert client.post("/explorer/logout").status_code == 303
    assert client.get("/explorer").status_code in (302, 303)


def test_without_keys_there_is_nothing_to_sign_in_to(client: TestClient[Any]) -> None:
    client.follow_redirects = False
    assert client.get("/explorer").status_code == 200
    assert client.get("/explorer/login").headers["location"] == "/explorer"


def test_the_streams_let_in_a_session_and_refuse_a_stranger(make_client: ClientFactory) -> None:
    """EventSource sends no header, only the same-origin cookie: it must be enough."""
    client = _secured(make_client)
    writer = {"X-API-Key": SECRETS["writer"]}
    client.post("/evaluations", json={"id": "eval_streamed", "code": "x"}, headers=writer)
    client.put("/evaluations/eval_streamed", json={"status": "running"}, headers=writer)
    client.post("/evaluations/eval_streamed/logs", json={"content": "hi\n"}, headers=writer)
    client.put("/evaluations/eval_streamed", json={"status": "completed"}, headers=writer)
    log_stream = "/evaluations/eval_streamed/logs/stream"

    for path in ("/changes/stream", log_stream):
        assert client.get(path).status_code == 401, path
    assert client.get("/explorer/parts/running").status_code in (302, 303)

    client.post("/explorer/login", data={"key": SECRETS["reader"]})
    finished = client.get(log_stream)  # a final record's stream ends by itself
    assert finished.status_code == 200
    assert finished.headers["content-type"].startswith("text/event-stream")
    assert '"content":"hi\\n"' in finished.text and "event: end" in finished.text
    assert client.get("/explorer/parts/running").status_code == 200

    client.post("/explorer/logout")
    assert client.get(log_stream).status_code == 401
