"""Instants as the service keeps them: timezone-aware, in UTC."""

from datetime import UTC, datetime


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a timestamp without an offset is taken to be UTC already.

    Workers often send ``datetime.utcnow().isoformat()`` (no offset); reading it as
    UTC keeps such a timestamp comparable with every other one instead of failing.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
