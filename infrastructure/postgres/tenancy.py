"""The tenant setting that row-level security reads, set in the round trips already made.

The policies (ADR 0032, decision 5) compare ``tenant_id`` with
``current_setting('crucible.tenant', true)``, set with ``set_config(…, true)``: local to
a transaction, so a pooled connection keeps nothing once it ends and the next user
starts with no tenant (fail closed). A transaction begins with the setting in the same
message as its ``BEGIN``; a statement run on its own sets it itself, in its first step:

- a read through ``scoped``: the setting is a one-row subquery that the read is laterally
  joined to, so it is evaluated before any row of the read is;
- an ``INSERT`` through ``SCOPE``: a common table expression its values are taken from.

An ``UPDATE`` or ``DELETE`` cannot (the planner scans its target before anything else,
and under the policy finds nothing): it runs in a transaction (``begin``).
"""

import contextlib
from typing import Any

import asyncpg

from domain.tenancy import TenantId, parse_tenant
from infrastructure.sql.tenancy import SETTING

# The setting of a statement's tenant, always its first parameter ($1).
SCOPE = f"scope AS (SELECT set_config('{SETTING}', $1, true) AS tenant)"
# The tenant, as the value of a column of an INSERT that ``SCOPE`` precedes.
SCOPE_TENANT = "(SELECT tenant FROM scope)"


def tenant_literal(tenant: TenantId) -> str:
    """``tenant`` as a SQL string literal; anything but a valid tenant name is refused.

    The one place a tenant is written into a statement's text: ``BEGIN`` goes by the simple
    protocol, which binds no parameters. A tenant name holds no quote, and ``parse_tenant``
    is what says so.
    """
    return f"'{parse_tenant(tenant)}'"


def begin(tenant: TenantId) -> str:
    """A transaction's first message: ``BEGIN`` and ``tenant``'s setting, one round trip."""
    return f"BEGIN; SELECT set_config('{SETTING}', {tenant_literal(tenant)}, true)"


def scoped(sql: str, *, order: str = "") -> str:
    """``sql``, a ``SELECT`` filtering on ``tenant_id = scope.tenant``, that sets the
    tenant (``$1``) itself: one statement, one round trip.

    ``OFFSET 0`` keeps the planner from pulling the read up beside the setting, where it
    could be evaluated first (``sql`` has no ``OFFSET`` of its own at its top level).
    ``order`` (``q``'s columns) orders the rows again outside: a join does not promise to
    keep the order of the read.
    """
    ordered = f" ORDER BY {order}" if order else ""
    return (
        f"SELECT q.* FROM (SELECT set_config('{SETTING}', $1, true)) AS scope(tenant) "  # noqa: S608
        f"CROSS JOIN LATERAL ({sql} OFFSET 0) AS q{ordered}"
    )


async def in_transaction(
    pool: "asyncpg.Pool[asyncpg.Record]", tenant: TenantId, sql: str, *arguments: Any
) -> str:
    """``sql`` (an ``UPDATE`` or ``DELETE``: it cannot set the tenant itself) in a
    transaction of its own, whose ``BEGIN`` sets it: three round trips. Its command tag."""
    async with pool.acquire() as connection:
        await connection.execute(begin(tenant))
        try:
            status: str = await connection.execute(sql, *arguments)
        except BaseException:
            with contextlib.suppress(Exception):  # a dead connection is not reused anyway
                await connection.execute("ROLLBACK")
            raise
        await connection.execute("COMMIT")
    return status
