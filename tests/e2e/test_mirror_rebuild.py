"""Recovery from the record mirror: the database is dropped under a running service
(``FILE_MIRROR=true``) and ``storage-service rebuild-database --from`` brings back every
acknowledged write.

The service runs on a PostgreSQL of its own (``tests.pg_server``), in a database
``crucible`` of that cluster. Client threads drive evaluations through their whole
life (the failover tests' :func:`lifecycle`: updates, Celery reports, logs, events with
and without ids, a redelivery, inline and file-stored outputs, deletes) and record what
was acknowledged in a :class:`Ledger`. Then ``DROP DATABASE … WITH (FORCE)`` under the
running service, an empty database of the same name, the rebuild, and the checks: in
PostgreSQL row by row against the ledger, and through the same running service.
"""

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import (
    HTTP_TIMEOUT_S,
    Client,
    Ledger,
    assert_outputs_served,
    assert_primary_holds,
    assert_searchable,
    cli_json,
    connect,
    count,
    service_env,
)
from tests.e2e.test_failover import lifecycle_load
from tests.pg_server import PgServer, wait_until
from tests.services import serve_subprocess

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

DATABASE = "crucible"
LOAD_THREADS = 4
LOAD_S = 2.0
NO_TABLES = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
# A rebuilt log is one piece per MiB, not one per append: its bytes are compared instead.
RECORDS_AND_EVENTS = (
    "SELECT (SELECT count(*) FROM evaluations) + (SELECT count(*) FROM evaluation_events)"
)


async def _admin(pg: PgServer, *statements: str) -> None:
    connection = await connect(pg.dsn)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def rebuild(env: dict[str, str], files: Path) -> tuple[int, dict[str, Any]]:
    """``rebuild-database --from files --json``: its exit code and its report."""
    code, report = cli_json(env, "rebuild-database", "--from", str(files), "--json")
    return code, report


def test_a_database_dropped_under_the_service_is_rebuilt_from_the_mirror(
    tmp_path: Path, pg: PgServer
) -> None:
    files = tmp_path / "files"
    log = tmp_path / "server.log"
    database = dataclasses.replace(pg, database=DATABASE)
    asyncio.run(_admin(pg, f"CREATE DATABASE {DATABASE}"))
    env = service_env(database, files) | {"FILE_MIRROR": "true", "FALLBACK_BACKEND": "none"}
    ledger = Ledger()
    with serve_subprocess(env, log) as (base, _):
        with lifecycle_load(lambda: Client(base, ledger), ledger, LOAD_THREADS):
            time.sleep(LOAD_S)
        ledger.assert_no_failures(log)
        assert len(ledger.records) >= LOAD_THREADS, ledger.answers
        rows = asyncio.run(count(database.dsn, RECORDS_AND_EVENTS))

        asyncio.run(
            _admin(pg, f"DROP DATABASE {DATABASE} WITH (FORCE)", f"CREATE DATABASE {DATABASE}")
        )
        assert asyncio.run(count(database.dsn, NO_TABLES)) == 0  # nothing left at all
        with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as http:
            code, report = rebuild(env, files)
            assert code == 0, json.dumps(report, indent=1)[:3000]
            assert report["restored"] == len(ledger.records), report
            assert report["unreadable"] == [] and report["problems"] == [], report
            assert asyncio.run(count(database.dsn, RECORDS_AND_EVENTS)) == rows
            assert_primary_holds(database, ledger)

            # The running service reconnects and serves the rebuilt records.
            assert wait_until(
                lambda: http.get(f"/evaluations/{next(iter(ledger.records))}").status_code == 200,
                20,
            )
            assert_outputs_served(base, ledger)
            assert_searchable(base, ledger)

        code, again = rebuild(env, files)
        assert code == 0, again
        assert (again["restored"], again["skipped"]) == (0, len(ledger.records)), again
        assert asyncio.run(count(database.dsn, RECORDS_AND_EVENTS)) == rows
