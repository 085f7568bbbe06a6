from datetime import datetime
from typing import Annotated

import msgspec
from dishka.integrations.litestar import FromDishka
from litestar import Controller, get
from litestar.params import FromQuery, Parameter

from application.ports.audit_log import AuditQuery
from application.use_cases.audit import ListAuditLog
from domain.audit import AuditAction, AuditEntry
from domain.timestamps import as_utc
from interfaces.http.errors import problem_responses
from interfaces.http.security import ADMIN

MAX_AUDIT_PAGE = 500


class AuditPage(msgspec.Struct, kw_only=True):
    items: list[AuditEntry]
    next_cursor: int | None = None


class AuditController(Controller):
    path = "/audit"
    tags = ["Audit"]
    opt = ADMIN

    @get(
        summary="The audit trail, newest first (admin)",
        responses=problem_responses(400, 422, 503),
    )
    async def list_audit(
        self,
        use_case: FromDishka[ListAuditLog],
        evaluation_id: Annotated[str | None, Parameter(max_length=255)] = None,
        actor: Annotated[str | None, Parameter(max_length=100)] = None,
        action: FromQuery[AuditAction | None] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        cursor: Annotated[
            int | None,
            Parameter(ge=1, le=2**63 - 1, description="next_cursor of the previous page"),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_AUDIT_PAGE)] = 50,
    ) -> AuditPage:
        """Every modification: who (key name), what, when and the request id."""
        items = await use_case.execute(
            AuditQuery(
                evaluation_id=evaluation_id,
                actor=actor,
                action=action,
                since=None if since is None else as_utc(since),
                until=None if until is None else as_utc(until),
                before_id=cursor,
                limit=limit,
            )
        )
        full = len(items) == limit
        return AuditPage(items=items, next_cursor=items[-1].id if full and items else None)
