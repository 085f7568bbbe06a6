"""The access line rendered directly is the line structlog's processor chain renders."""

import io
import json
import logging
import re
from datetime import UTC, datetime

import pytest
import structlog

from interfaces.log_config import ACCESS_LOGGER, configure_logging, reset_logging
from interfaces.settings import LogFormat

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
LINES = [
    ("GET", "/evaluations/{eval_id:str}", 200, 1.2, "0f3c9a7d2b8e4c61a5d7e9f0b1c2d3e4"),
    ("GET", "/", 200, 0.1, "a"),  # shorter than the console's event column
    ("POST", "/evaluations", 503, 2500.0, "req-1:retry.2"),
]


def _handler(log_format: LogFormat) -> logging.Handler:
    configure_logging("INFO", log_format, stream=io.StringIO())
    return logging.getLogger().handlers[-1]


def _record(
    method: str, route: str, status: int, duration_ms: float, request_id: str
) -> logging.LogRecord:
    fields = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": duration_ms,
        "request_id": request_id,
    }
    return logging.getLogger(ACCESS_LOGGER).makeRecord(
        ACCESS_LOGGER,
        logging.WARNING if status >= 500 else logging.INFO,
        __file__,
        1,
        "%s %s %d %.1fms request_id=%s",
        (method, route, status, duration_ms, request_id),
        None,
        extra=fields,
    )


def _both(log_format: LogFormat, record: logging.LogRecord) -> tuple[str, str]:
    formatter = _handler(log_format).formatter
    assert isinstance(formatter, structlog.stdlib.ProcessorFormatter)
    direct = formatter.format(logging.makeLogRecord(record.__dict__))
    chain = structlog.stdlib.ProcessorFormatter.format(
        formatter, logging.makeLogRecord(record.__dict__)
    )
    reset_logging()
    return direct, chain


@pytest.mark.parametrize("fields", LINES)
def test_the_console_line_is_the_chains(fields: tuple[str, str, int, float, str]) -> None:
    direct, chain = _both(LogFormat.CONSOLE, _record(*fields))
    assert TIMESTAMP.sub("T", direct) == TIMESTAMP.sub("T", chain)
    assert fields[4] in direct


@pytest.mark.parametrize("fields", LINES)
def test_the_json_line_is_the_chains(fields: tuple[str, str, int, float, str]) -> None:
    direct, chain = _both(LogFormat.JSON, _record(*fields))
    ours, theirs = json.loads(direct), json.loads(chain)
    assert TIMESTAMP.fullmatch(ours.pop("timestamp"))
    theirs.pop("timestamp")
    assert list(ours.items()) == list(theirs.items())
    assert ours["status"] == fields[2]


def test_other_records_and_sensitive_fields_take_the_chain() -> None:
    record = _record(*LINES[0])
    record.token = "s3cret"  # a sensitive extra: redacted only by the chain
    direct, _ = _both(LogFormat.JSON, record)
    assert json.loads(direct)["token"] == "[redacted]"


@pytest.mark.parametrize("log_format", list(LogFormat))
def test_uvicorn_writes_no_second_access_line(log_format: LogFormat) -> None:
    """uvicorn's protocol logs a request when ``uvicorn.access`` has handlers, inherited
    ones included: a worker of ``serve --workers N`` configures logging after uvicorn."""
    logging.getLogger("uvicorn.access").propagate = True  # as configured before this module
    configure_logging("INFO", log_format, stream=io.StringIO())
    try:
        assert not logging.getLogger("uvicorn.access").hasHandlers()
        assert logging.getLogger("uvicorn.error").hasHandlers()  # the rest still goes out
    finally:
        reset_logging()


@pytest.mark.parametrize("log_format", list(LogFormat))
def test_the_direct_line_is_stamped_with_the_records_own_time(log_format: LogFormat) -> None:
    """The date and second are formatted once a second: a record of the next second, and
    one of an earlier second after it, still get their own."""
    formatter = _handler(log_format).formatter
    assert formatter is not None
    try:
        for created in (1_765_000_000.25, 1_765_000_000.5, 1_765_000_001.125, 1_700_000_000.0):
            record = _record(*LINES[0])
            record.created = created
            expected = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            line = formatter.format(record)
            stamp = json.loads(line)["timestamp"] if log_format is LogFormat.JSON else line[:27]
            assert stamp == expected
    finally:
        reset_logging()
