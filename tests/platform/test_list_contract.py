"""The gateway's evaluation history: ``GET /evaluations?limit=100&offset=0[&status=…]``."""

from typing import Any

from litestar.testing import TestClient

Client = TestClient[Any]


def seed(client: Client, count: int, status: str) -> None:
    for index in range(count):
        body = {"id": f"{status}-{index:02}", "code": "x" * 150, "status": status}
        assert client.post("/evaluations", json=body).status_code == 200


def test_the_history_page_the_gateway_reads(client: Client) -> None:
    seed(client, 3, "completed")
    seed(client, 2, "failed")
    page = client.get("/evaluations", params={"limit": 100, "offset": 0})
    assert page.status_code == 200
    body = page.json()
    assert (body["total"], body["has_more"], body["limit"], body["offset"]) == (5, False, 100, 0)
    first = body["evaluations"][0]
    for name in ("id", "status", "created_at", "completed_at", "code", "output", "error"):
        assert name in first, name
    failed = client.get("/evaluations", params={"limit": 100, "offset": 0, "status": "failed"})
    assert [e["status"] for e in failed.json()["evaluations"]] == ["failed", "failed"]
    assert failed.json()["total"] == 2


def test_has_more_and_total_across_pages(client: Client) -> None:
    seed(client, 5, "queued")
    first = client.get("/evaluations", params={"limit": 2, "offset": 0}).json()
    last = client.get("/evaluations", params={"limit": 2, "offset": 4}).json()
    assert (first["total"], first["has_more"], len(first["evaluations"])) == (5, True, 2)
    assert (last["total"], last["has_more"], len(last["evaluations"])) == (5, False, 1)
    client.delete("/evaluations/queued-00")
    assert client.get("/evaluations", params={"limit": 2}).json()["total"] == 4


def test_an_offset_past_any_integer_names_offset(client: Client) -> None:
    response = client.get("/evaluations", params={"offset": "99999999999999999999"})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["offset"]


def test_the_documented_limit_maximum_is_the_enforced_one(make_client: Any) -> None:
    client = make_client(limits={"list_limit": 250})
    spec = client.get("/openapi.json").json()
    (limit,) = [
        p for p in spec["paths"]["/evaluations"]["get"]["parameters"] if p["name"] == "limit"
    ]
    assert limit["schema"]["maximum"] == 250
    assert client.get("/evaluations", params={"limit": 250}).status_code == 200
    refused = client.get("/evaluations", params={"limit": 251})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "limit"
