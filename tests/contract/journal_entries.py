"""Journal entries, file-journal paths and the replay-right check shared by the journal tests."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from application.intents import (
    AppendLogIntent,
    Intent,
    JournalEntry,
    journal_tenant,
)
from application.ports.journal import Journal
from domain.tenancy import DEFAULT_TENANT, TenantId

NOW = datetime(2024, 7, 1, 12, 0, 0, 123456, tzinfo=UTC)


def entry(
    number: int,
    evaluation_id: str = "eval_1",
    *,
    at: datetime | None = None,
    intent: Intent | None = None,
    tenant: TenantId = DEFAULT_TENANT,
) -> JournalEntry:
    return JournalEntry(
        id=f"entry_{number}",
        evaluation_id=evaluation_id,
        at=at if at is not None else NOW + timedelta(seconds=number),
        intent=intent if intent is not None else AppendLogIntent(f"line {number}\n"),
        actor="worker",
        request_id=f"req_{number}",
        named_tenant=journal_tenant(tenant),
    )


def ids(entries: list[JournalEntry]) -> list[str]:
    return [item.id for item in entries]


def segments(root: Path) -> list[Path]:
    return sorted((root / "journal").glob("*.jsonl"))


async def assert_replays_alone(holder: Journal, other: Journal) -> None:
    """``holder`` wins the replay right; while it holds it, ``other`` is refused."""
    async with holder.replaying() as first:
        assert first is True
        async with other.replaying() as second:
            assert second is False
