"""``Idempotency-Key`` across a real PostgreSQL outage: retries never write twice.

A key answered by the database before the outage, a key answered from the failover
journal during it, and both after the journal is replayed: each retry gets the first
answer, and PostgreSQL ends with one record per key.
"""

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import count, service_env, wait_drained
from tests.pg_server import PgServer
from tests.services import serve_subprocess

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
NEW = {"code": "print('once')", "language": "python"}


def _create(http: httpx.Client, key: str) -> httpx.Response:
    response = http.post("/evaluations", json=NEW, headers={"Idempotency-Key": key})
    assert response.status_code == 200, response.text
    return response


def test_retries_across_an_outage_answer_once_and_write_once(tmp_path: Path, pg: PgServer) -> None:
    env = service_env(pg, tmp_path / "files")
    with (
        serve_subprocess(env, tmp_path / "server.log") as (base, _),
        httpx.Client(base_url=base, timeout=20) as http,
    ):
        before = _create(http, "before-outage").json()

        pg.stop("immediate")
        during = _create(http, "during-outage").json()
        retried_during = [_create(http, key) for key in ("during-outage", "before-outage")]

        pg.start()
        wait_drained(base, tmp_path / "server.log")
        retried_after = [_create(http, key) for key in ("during-outage", "before-outage")]

    assert [r.json() for r in retried_during] == [during, before]
    assert [r.json() for r in retried_after] == [during, before]
    assert all(r.headers["idempotent-replayed"] == "true" for r in retried_during + retried_after)
    assert before["id"] != during["id"]
    assert asyncio.run(count(pg.dsn, "SELECT count(*) FROM evaluations")) == 2
