"""The HTTP suite's neighbour tenant is really there (tests/integration/neighbour.py): a
write of the default tenant's client leaves a copy in the neighbour's tenant, under the
same id, which the default tenant never sees; a delete is the default tenant's alone."""

from typing import Any

import pytest
from litestar.testing import TestClient

from tests.integration.neighbour import NEIGHBOUR_SECRET, Mirror, NeighbouredClient

NEIGHBOUR = {"X-API-Key": NEIGHBOUR_SECRET}


def mirror_of(client: TestClient[Any]) -> Mirror:
    assert isinstance(client, NeighbouredClient)
    assert client.mirror is not None
    return client.mirror


def test_a_write_reaches_the_neighbour_first_under_the_same_id(client: TestClient[Any]) -> None:
    body = {"id": "side-1", "code": "print('default')", "metadata": {"k": "v"}}
    assert client.post("/evaluations", json=body).status_code == 200
    assert client.put("/evaluations/side-1", json={"status": "completed"}).status_code == 200
    mirror = mirror_of(client)
    neighbour = mirror.client
    assert neighbour.get("/evaluations/side-1", headers=NEIGHBOUR).json()["status"] == "completed"
    assert client.get("/evaluations").json()["total"] == 1
    assert neighbour.get("/evaluations", headers=NEIGHBOUR).json()["total"] == 1
    assert mirror.answers[200] == 2


def test_a_delete_is_the_default_tenants_alone(client: TestClient[Any]) -> None:
    assert client.post("/evaluations", json={"id": "side-2", "code": "x"}).status_code == 200
    assert client.delete("/evaluations/side-2").status_code in (200, 204)
    assert client.get("/evaluations/side-2").status_code == 404
    neighbour = mirror_of(client).client
    assert neighbour.get("/evaluations/side-2", headers=NEIGHBOUR).status_code == 200


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_reads_and_deletes_are_not_repeated(client: TestClient[Any], method: str) -> None:
    client.request(method, "/evaluations/none")
    assert sum(mirror_of(client).answers.values()) == 0
