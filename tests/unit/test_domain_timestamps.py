from datetime import UTC, datetime, timedelta, timezone

from domain.timestamps import as_utc


def test_a_timestamp_without_offset_is_taken_as_utc() -> None:
    assert as_utc(datetime(2024, 7, 1, 12, 0)) == datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


def test_an_offset_is_converted_to_utc() -> None:
    paris = timezone(timedelta(hours=2))
    converted = as_utc(datetime(2024, 7, 1, 14, 0, tzinfo=paris))
    assert converted == datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
    assert converted.tzinfo is UTC
