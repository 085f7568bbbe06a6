import pytest

from application.commands import EvaluationChanges, NewEvaluation, NewEvent
from application.ports.audit_log import AuditQuery
from domain.audit import AuditAction
from domain.status import EvaluationStatus
from tests.use_cases.conftest import UseCases

pytestmark = pytest.mark.anyio


async def test_writes_are_audited_as_the_context_caller(app: UseCases) -> None:
    created = await app.create.execute(NewEvaluation(code="abc", language="rust"))
    await app.update.execute(created.id, EvaluationChanges(status=EvaluationStatus.RUNNING))
    await app.append_log.execute(created.id, "héllo")
    await app.record_event.execute(created.id, NewEvent(event_type="x", message="m"))

    entries = await app.audit_log.list(AuditQuery())

    assert [e.action for e in entries] == [
        AuditAction.RECORD_EVENT,
        AuditAction.APPEND_LOG,
        AuditAction.UPDATE,
        AuditAction.CREATE,
    ]
    assert {(e.actor, e.request_id, e.evaluation_id) for e in entries} == {
        ("tester", "req-1", created.id)
    }
    assert entries[3].fields == ("code", "language")
    assert entries[2].fields == ("started_at", "status")
    assert entries[1].sizes == {"content": 6}
    assert entries[0].fields == ("event_type", "message")


async def test_no_entry_for_a_refused_or_empty_change(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.COMPLETED)

    await app.update.execute(seeded.id, EvaluationChanges(status=EvaluationStatus.RUNNING))
    await app.update.execute(seeded.id, EvaluationChanges(status=EvaluationStatus.COMPLETED))

    assert await app.audit_log.list(AuditQuery()) == []


async def test_listing_filters_and_pages(app: UseCases) -> None:
    for _ in range(3):
        await app.create.execute(NewEvaluation(code="x"))
    newest = await app.audit_log.list(AuditQuery(limit=2))
    rest = await app.audit_log.list(AuditQuery(limit=2, before_id=newest[-1].id))

    assert [e.id for e in newest + rest] == [3, 2, 1]
    assert await app.audit_log.list(AuditQuery(actor="someone-else")) == []
    assert await app.audit_log.list(AuditQuery(action=AuditAction.DELETE)) == []
