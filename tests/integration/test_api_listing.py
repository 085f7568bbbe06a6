"""Listing: filters in the query, newest first, offset and keyset paging."""

from datetime import UTC, datetime
from typing import Any

from litestar.testing import TestClient

from tests.integration.conftest import ClientFactory

Client = TestClient[Any]


def seed(client: Client, n: int, **body: Any) -> list[str]:
    ids = []
    for i in range(n):
        response = client.post(
            "/evaluations",
            json={"code": "x", **body, "id": f"{body.get('language', 'py')}-{i:03d}"},
        )
        assert response.status_code == 200, response.text
        ids.append(response.json()["id"])
    return ids


def test_newest_first_and_filters(client: Client) -> None:
    seed(client, 3, language="python")
    seed(client, 2, language="rust", status="running")
    body = client.get("/evaluations").json()
    stamps = [(item["created_at"], item["id"]) for item in body["evaluations"]]
    assert stamps == sorted(stamps, reverse=True)
    assert body["limit"] == 100
    assert body["next_cursor"] is None
    rust = client.get("/evaluations", params={"language": "rust"}).json()["evaluations"]
    assert {item["id"] for item in rust} == {"rust-000", "rust-001"}
    running = client.get("/evaluations", params={"status": "running"}).json()["evaluations"]
    assert {item["id"] for item in running} == {"rust-000", "rust-001"}
    prefix = client.get("/evaluations", params={"id_prefix": "python-00"}).json()["evaluations"]
    assert len(prefix) == 3
    future = datetime(2999, 1, 1, tzinfo=UTC).isoformat()
    assert client.get("/evaluations", params={"created_after": future}).json()["evaluations"] == []
    assert (
        len(client.get("/evaluations", params={"created_before": future}).json()["evaluations"])
        == 5
    )


def test_filter_applies_before_paging(client: Client) -> None:
    seed(client, 4, language="python")
    seed(client, 3, language="go")
    page = client.get("/evaluations", params={"language": "go", "limit": 2}).json()
    assert len(page["evaluations"]) == 2
    rest = client.get(
        "/evaluations", params={"language": "go", "limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert len(rest["evaluations"]) == 1
    assert rest["next_cursor"] is None


def test_cursor_walks_everything_once(client: Client) -> None:
    ids = set(seed(client, 23, language="python"))
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/evaluations", params=params).json()
        seen.extend(item["id"] for item in page["evaluations"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 23
    assert set(seen) == ids


def test_offset_and_total(client: Client) -> None:
    seed(client, 7, language="python")
    page = client.get(
        "/evaluations", params={"limit": 3, "offset": 6, "include_total": "true"}
    ).json()
    assert len(page["evaluations"]) == 1
    assert page["offset"] == 6
    assert page["total"] == 7


def test_bad_list_parameters_are_422(client: Client) -> None:
    for params in (
        {"limit": 0},
        {"limit": 1001},
        {"offset": -1},
        {"status": "done"},
        {"cursor": "garbage!"},
        {"created_after": "yesterday"},
    ):
        response = client.get("/evaluations", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


def test_an_offset_past_max_list_offset_is_a_problem_pointing_to_the_cursor(
    make_client: ClientFactory,
) -> None:
    client = make_client(limits={"list_offset": 5})
    seed(client, 3, language="python")
    assert client.get("/evaluations", params={"offset": 5}).json()["total"] == 3
    response = client.get("/evaluations", params={"offset": 6, "limit": 2})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert [error["field"] for error in problem["errors"]] == ["offset"]
    assert "MAX_LIST_OFFSET" in problem["detail"]
    assert "next_cursor" in problem["detail"]
    # Deeper pages are walked by cursor, however deep.
    first = client.get("/evaluations", params={"limit": 2}).json()
    rest = client.get("/evaluations", params={"limit": 2, "cursor": first["next_cursor"]})
    assert [item["id"] for item in rest.json()["evaluations"]] == ["python-000"]


def test_an_empty_page_keeps_the_total(client: Client) -> None:
    seed(client, 3, language="python")
    page = client.get("/evaluations", params={"offset": 3, "language": "python"}).json()
    assert (page["evaluations"], page["total"], page["has_more"]) == ([], 3, False)
    page = client.get("/evaluations", params={"id_prefix": "python-00", "offset": 3}).json()
    assert (page["evaluations"], page["total"]) == ([], 3)
