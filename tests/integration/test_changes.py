"""GET /changes: every write through the API, in order, paged, filtered; bad cursors."""

import time
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.integration.conftest import ClientFactory

EVAL = "eval_20240101_000000_c4a1ee"
OTHER = "eval_20240101_000000_c4a1ef"


def _write_everything(client: TestClient[Any]) -> None:
    def call(method: str, path: str, **kwargs: Any) -> None:
        response = client.request(method, path, **kwargs)
        assert response.status_code < 300, (path, response.text)

    call("POST", "/evaluations", json={"id": EVAL, "code": "print(1)"})
    call("PUT", f"/evaluations/{EVAL}", json={"status": "running"})
    call("POST", f"/evaluations/{EVAL}/logs", json={"content": "line\n"})
    call("POST", f"/evaluations/{EVAL}/events", json={"type": "note", "message": "m"})
    call("POST", "/evaluations", json={"id": OTHER, "code": "print(2)"})
    call("PUT", f"/evaluations/{EVAL}", json={"output": "hi"})
    call("PUT", f"/evaluations/{EVAL}", json={"status": "completed"})
    call("DELETE", f"/evaluations/{OTHER}")


EXPECTED = [
    (EVAL, "created", "queued"),
    (EVAL, "status_changed", "running"),
    (EVAL, "log_appended", None),
    (EVAL, "event_recorded", None),
    (OTHER, "created", "queued"),
    (EVAL, "updated", "running"),
    (EVAL, "status_changed", "completed"),
    (OTHER, "deleted", "queued"),
]


def _changes(client: TestClient[Any], **params: Any) -> dict[str, Any]:
    response = client.get("/changes", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _all(client: TestClient[Any], **params: Any) -> list[dict[str, Any]]:
    """Every change, page by page, waiting for the writes above to become readable."""
    deadline = time.monotonic() + 30
    while True:
        items: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = _changes(client, **params, **({"after": after} if after else {}))
            items += page["items"]
            after = page["next_cursor"]
            if not page["more"]:
                break
        if len(items) >= len([e for e in EXPECTED if _wanted(e, params)]):
            return items
        assert time.monotonic() < deadline, items
        time.sleep(0.05)


def _wanted(expected: tuple[str, str, str | None], params: dict[str, Any]) -> bool:
    kinds = params.get("kind")
    return (params.get("evaluation_id") in (None, expected[0])) and (
        kinds is None or expected[1] in kinds
    )


def test_every_write_is_a_change_in_commit_order(client: TestClient[Any]) -> None:
    _write_everything(client)

    items = _all(client, limit=3)

    assert [(i["evaluation_id"], i["kind"], i["status"]) for i in items] == EXPECTED
    versions = [i["version"] for i in items if i["evaluation_id"] == EVAL and i["version"]]
    assert versions == sorted(versions)
    assert items[5]["fields"] == ["output"]
    assert items[2]["sizes"] == {"content": 5}
    assert len({i["cursor"] for i in items}) == len(items)


@pytest.mark.parametrize(
    "params",
    [
        {"evaluation_id": OTHER},
        {"kind": ["status_changed"]},
        {"kind": ["created", "deleted"], "evaluation_id": OTHER},
    ],
)
def test_filters(client: TestClient[Any], params: dict[str, Any]) -> None:
    _write_everything(client)

    items = _all(client, **params)

    expected = [e for e in EXPECTED if _wanted(e, params)]
    assert [(i["evaluation_id"], i["kind"], i["status"]) for i in items] == expected


def test_a_cursor_resumes_exactly_after_its_change(client: TestClient[Any]) -> None:
    _write_everything(client)
    items = _all(client)

    rest = _changes(client, after=items[3]["cursor"])

    assert rest["items"] == items[4:]
    assert rest["next_cursor"] == items[-1]["cursor"]
    at_end = _changes(client, after=items[-1]["cursor"])
    assert (at_end["items"], at_end["next_cursor"], at_end["more"]) == (
        [],
        items[-1]["cursor"],
        False,
    )


@pytest.mark.parametrize("cursor", ["nope", "1-", "-1", "zz-1", "1-2-3", "1" * 41])
def test_a_malformed_cursor_is_refused_naming_after(client: TestClient[Any], cursor: str) -> None:
    response = client.get("/changes", params={"after": cursor})

    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "after" in response.text


def test_an_unknown_kind_is_refused(client: TestClient[Any]) -> None:
    response = client.get("/changes", params={"kind": "exploded"})

    assert response.status_code in (400, 422), response.text
    assert "kind" in response.text


def test_a_cursor_older_than_the_retention_is_gone(make_client: ClientFactory) -> None:
    # Written and read back under the default retention: with one second, a feed read
    # without a cursor would already miss the first writes whenever they took longer.
    writer = make_client()
    _write_everything(writer)
    items = _all(writer)
    time.sleep(1.2)
    client = make_client(changes={"retention_s": 1})  # the same data set

    response = client.get("/changes", params={"after": items[0]["cursor"]})
    unknown = client.get("/changes", params={"after": "ffff-ffffff"})

    assert response.status_code == 410, response.text
    problem = response.json()
    assert problem["field"] == "after"
    assert problem["retention_s"] == 1
    assert problem["latest"] == items[-1]["cursor"]
    assert unknown.status_code == 410
    # Without a cursor the feed starts at the retention: nothing this old is listed.
    assert _changes(client)["items"] == []
