"""The change feed: every committed write, in the order readers may rely on.

A change is read from the audit trail, which every write appends to in its own
transaction (the outbox): a change cannot be lost by a crash between the write and
its announcement, and it never announces a write that rolled back.
"""

from datetime import datetime
from enum import StrEnum
from typing import Self

import msgspec

from domain.audit import AuditAction, AuditEntry
from domain.errors import InvalidTextError
from domain.status import EvaluationStatus


class ChangeKind(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    STATUS_CHANGED = "status_changed"
    DELETED = "deleted"
    PURGED = "purged"
    LOG_APPENDED = "log_appended"
    EVENT_RECORDED = "event_recorded"


_KIND_OF_ACTION = {
    AuditAction.CREATE: ChangeKind.CREATED,
    AuditAction.IMPORT: ChangeKind.CREATED,
    AuditAction.DELETE: ChangeKind.DELETED,
    AuditAction.PURGE: ChangeKind.PURGED,
    AuditAction.APPEND_LOG: ChangeKind.LOG_APPENDED,
    AuditAction.RECORD_EVENT: ChangeKind.EVENT_RECORDED,
}
# What moves a record without creating or removing it: a status move when ``status`` changed.
_UPDATES = frozenset(
    {
        AuditAction.UPDATE,
        AuditAction.UPLOAD_OUTPUT,
        AuditAction.UPLOAD_ERROR,
        AuditAction.CELERY_UPDATE,
        AuditAction.ADMIN_OVERRIDE,
        AuditAction.MAINTENANCE,
    }
)


def kind_of(action: AuditAction, fields: tuple[str, ...]) -> ChangeKind | None:
    """The feed's kind for an audited action; ``None`` for what changes no evaluation."""
    if action in _UPDATES:
        return ChangeKind.STATUS_CHANGED if "status" in fields else ChangeKind.UPDATED
    return _KIND_OF_ACTION.get(action)


def actions_of(kinds: frozenset[ChangeKind]) -> frozenset[AuditAction]:
    """The audited actions that can yield one of ``kinds`` (a superset for the updates)."""
    found = {action for action, kind in _KIND_OF_ACTION.items() if kind in kinds}
    if kinds & {ChangeKind.UPDATED, ChangeKind.STATUS_CHANGED}:
        found |= _UPDATES
    return frozenset(found)


class ChangeCursor(msgspec.Struct, frozen=True, order=True):
    """A position in the feed: ``(transaction, sequence)``, compared in that order.

    ``transaction`` is the writing transaction's id where the database gives one
    (PostgreSQL), else 0; ``sequence`` is the audit entry's id. The token clients see
    is opaque: ``<transaction>-<sequence>`` in hexadecimal.
    """

    transaction: int
    sequence: int

    def token(self) -> str:
        return f"{self.transaction:x}-{self.sequence:x}"

    @classmethod
    def parse(cls, token: str, field: str = "after") -> Self:
        """The cursor of ``token``; ``InvalidTextError`` naming ``field`` if it is not one."""
        transaction, dash, sequence = token.partition("-")
        try:
            if not dash or len(token) > 40:
                raise ValueError(token)
            cursor = cls(int(transaction, 16), int(sequence, 16))
        except ValueError:
            raise InvalidTextError(field, "is not a cursor this feed gave out") from None
        if cursor.transaction < 0 or cursor.sequence < 0:
            raise InvalidTextError(field, "is not a cursor this feed gave out")
        return cursor


# Before every change: the cursor of a reader that wants the whole feed.
START = ChangeCursor(0, 0)


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One committed write of one evaluation.

    ``status`` is the record's status after the write and ``version`` its version, where
    the write knew them (creates and updates); ``fields`` names what an update changed.
    Within one evaluation, ``version`` orders the writes that changed the record.
    """

    cursor: ChangeCursor
    kind: ChangeKind
    evaluation_id: str
    at: datetime
    status: EvaluationStatus | None = None
    version: int | None = None
    fields: tuple[str, ...] = ()
    sizes: dict[str, int] = msgspec.field(default_factory=dict)


def change_of(entry: AuditEntry, cursor: ChangeCursor) -> Change | None:
    """The change an audit entry records; ``None`` for one that names no evaluation."""
    kind = kind_of(entry.action, entry.fields)
    if kind is None or entry.evaluation_id is None:
        return None
    return Change(
        cursor=cursor,
        kind=kind,
        evaluation_id=entry.evaluation_id,
        at=entry.at,
        status=entry.status,
        version=entry.version,
        fields=entry.fields,
        sizes=entry.sizes,
    )
