"""Two tenants across a real PostgreSQL outage (ADR 0032): the writes each tenant's key
makes while the primary is down are journaled with their tenant and replayed into it.

Both tenants write the same evaluation id during the outage; afterwards each reads its
own, and PostgreSQL holds one row per tenant, each with what that tenant wrote.
"""

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import connect, service_env, wait_drained
from tests.pg_server import PgServer
from tests.services import serve_subprocess

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
SECRETS = {"default": "default-secret-0123456789", "acme": "acme-secret-01234567890"}
API_KEYS = f"gw:{SECRETS['default']}:write,acme-ci:{SECRETS['acme']}:write:acme"
EVAL = "outage-1"


def _ok(response: httpx.Response) -> Any:
    assert response.is_success, response.text
    return response.json()


async def _rows(dsn: str) -> dict[str, tuple[str, str, str]]:
    """Each tenant's row of ``EVAL`` in the primary: code, status and log."""
    connection = await connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT e.tenant_id, e.code, e.status,"
            " (SELECT string_agg(content, '' ORDER BY start_offset) FROM log_chunks l"
            "  WHERE l.tenant_id = e.tenant_id AND l.evaluation_id = e.id) AS log"
            " FROM evaluations e WHERE e.id = $1",
            EVAL,
        )
    finally:
        await connection.close()
    return {row["tenant_id"]: (row["code"], row["status"], row["log"]) for row in rows}


def test_writes_journaled_in_an_outage_replay_into_their_tenant(
    tmp_path: Path, pg: PgServer
) -> None:
    env = {**service_env(pg, tmp_path / "files"), "API_KEYS": API_KEYS}
    log = tmp_path / "server.log"
    with serve_subprocess(env, log) as (base, _):
        clients = {
            tenant: httpx.Client(base_url=base, timeout=20, headers={"X-API-Key": secret})
            for tenant, secret in SECRETS.items()
        }
        try:
            pg.stop("immediate")
            for tenant in ("acme", "default"):  # acme first: the replay's order is not the key
                http = clients[tenant]
                _ok(http.post("/evaluations", json={"id": EVAL, "code": f"{tenant} code"}))
            _ok(clients["acme"].put(f"/evaluations/{EVAL}", json={"status": "running"}))
            _ok(clients["acme"].post(f"/evaluations/{EVAL}/logs", json={"content": "acme\n"}))
            during = {
                tenant: _ok(http.get(f"/evaluations/{EVAL}")) for tenant, http in clients.items()
            }

            pg.start()
            wait_drained(base, log)
            after = {
                tenant: _ok(http.get(f"/evaluations/{EVAL}")) for tenant, http in clients.items()
            }
            logs = {
                tenant: _ok(http.get(f"/evaluations/{EVAL}/logs"))["content"]
                for tenant, http in clients.items()
            }
        finally:
            for http in clients.values():
                http.close()

    assert {tenant: record["code"] for tenant, record in during.items()} == {
        "acme": "acme code",
        "default": "default code",
    }
    assert (after["acme"]["status"], after["default"]["status"]) == ("running", "queued")
    assert logs == {"acme": "acme\n", "default": ""}
    assert asyncio.run(_rows(pg.dsn)) == {
        "acme": ("acme code", "running", "acme\n"),
        "default": ("default code", "queued", None),
    }
