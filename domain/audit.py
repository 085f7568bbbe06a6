"""The audit trail: one entry for every modification, written with the change itself."""

from datetime import datetime
from enum import StrEnum

import msgspec

from domain.status import EvaluationStatus
from domain.tenancy import TenantId


class AuditContext(msgspec.Struct, frozen=True):
    """Who the current request or command acts as, its tenant and its request id.

    ``journal_entry`` is set while a failover replay applies that journal entry. ``tenant``
    is ``None`` for work that no caller started (background jobs, start-up repairs): such
    work names its tenant itself, and asking it for one is an error (ADR 0032).
    """

    actor: str
    request_id: str | None = None
    journal_entry: str | None = None
    tenant: TenantId | None = None


class AuditAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UPLOAD_OUTPUT = "upload_output"
    UPLOAD_ERROR = "upload_error"
    APPEND_LOG = "append_log"
    RECORD_EVENT = "record_event"
    CELERY_UPDATE = "celery_update"
    ADMIN_OVERRIDE = "admin_override"
    REPLAY = "replay"
    PURGE = "purge"
    IMPORT = "import"
    RESTORE = "restore"
    MAINTENANCE = "maintenance"
    # One data subject's evaluations erased (each also has its ``purge`` entry).
    ERASE = "erase"


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """Who did what to which evaluation, when, in which request.

    ``fields`` names what changed and ``sizes`` counts bytes; neither ever holds
    a value, so the trail cannot leak code, outputs or metadata.
    """

    at: datetime
    actor: str
    action: AuditAction
    evaluation_id: str | None = None
    fields: tuple[str, ...] = ()
    sizes: dict[str, int] = msgspec.field(default_factory=dict)
    request_id: str | None = None
    # The record's status and version after the change, where the write knew them: what
    # the change feed tells of a status move without reading the record again.
    status: EvaluationStatus | None = None
    version: int | None = None
    id: int | None = None


_BOOKKEEPING = frozenset({"version", "updated_at"})


def changed_fields(before: msgspec.Struct, after: msgspec.Struct) -> tuple[str, ...]:
    """Names of the fields that differ, without the bookkeeping every write moves."""
    old, new = msgspec.structs.asdict(before), msgspec.structs.asdict(after)
    return tuple(
        sorted(name for name in new if name not in _BOOKKEEPING and old[name] != new[name])
    )
