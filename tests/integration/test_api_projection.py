"""``fields=`` on GET /evaluations/{id} and GET /evaluations."""

from typing import Any

from litestar.testing import TestClient

Client = TestClient[Any]


def _seed(client: Client) -> None:
    client.post("/evaluations", json={"id": "f-1", "code": "x" * 500, "language": "python"})
    client.put("/evaluations/f-1", json={"status": "running"})
    client.put("/evaluations/f-1", json={"output": "y" * 200_000})
    client.post("/evaluations", json={"id": "f-2", "code": "z", "language": "rust"})


def test_get_with_fields_answers_only_those(client: Client) -> None:
    _seed(client)

    response = client.get("/evaluations/f-1", params={"fields": "status, created_at,started_at"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"id", "status", "created_at", "started_at"}
    assert body["id"] == "f-1"
    assert body["status"] == "running"
    whole = client.get("/evaluations/f-1").json()
    assert body["created_at"] == whole["created_at"]
    assert body["started_at"] == whole["started_at"]
    assert response.headers["etag"] == f'"{whole["version"]}"'


def test_get_with_output_fields_gives_the_preview_and_truncation(client: Client) -> None:
    _seed(client)

    body = client.get(
        "/evaluations/f-1", params={"fields": "output,output_truncated,error_truncated"}
    ).json()

    whole = client.get("/evaluations/f-1").json()
    assert body == {
        "id": "f-1",
        "output": whole["output"],
        "output_truncated": True,
        "error_truncated": False,
    }


def test_list_with_fields(client: Client) -> None:
    _seed(client)

    response = client.get("/evaluations", params={"fields": "status,language", "limit": 1})

    assert response.status_code == 200, response.text
    page = response.json()
    assert page["evaluations"] == [{"id": "f-2", "status": "queued", "language": "rust"}]
    following = client.get(
        "/evaluations", params={"fields": "status", "cursor": page["next_cursor"]}
    ).json()
    assert following["evaluations"] == [{"id": "f-1", "status": "running"}]
    assert following["next_cursor"] is None


def test_unknown_fields_are_422_naming_fields(client: Client) -> None:
    _seed(client)

    for path in ("/evaluations/f-1", "/evaluations"):
        for value in ("status,passwd", "deleted_at", " , "):
            response = client.get(path, params={"fields": value})
            assert response.status_code == 422, (path, value)
            assert response.json()["errors"][0]["field"] == "fields"


def test_fields_of_a_missing_record_is_404(client: Client) -> None:
    assert client.get("/evaluations/nope", params={"fields": "status"}).status_code == 404
