"""One log format for the whole process: structlog renders its own events and every
stdlib record (uvicorn, ``storage_service.*``) through ``ProcessorFormatter``.

``LOG_FORMAT=json`` gives one JSON object per line; ``console`` readable lines.
Values under names that may hold code, payloads or secrets are replaced before
rendering: outputs, code and keys are never logged.
"""

import logging
import sys
import time
from typing import IO, Any

import msgspec
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from interfaces.settings import LogFormat

REDACTED = "[redacted]"
SENSITIVE_FIELDS = frozenset(
    {"code", "output", "content", "api_key", "authorization", "password", "secret", "token"}
)


ACCESS_LOGGER = "storage_service.access"
# ConsoleRenderer's layout: the level padded to its longest name, the event to 30 columns.
_LEVEL_WIDTH = len("exception")
_EVENT_WIDTH = 30
# What every record has; anything else on a record came in as ``extra``.
_RECORD_KEYS = frozenset(logging.makeLogRecord({}).__dict__) | {"message"}
_json = msgspec.json.Encoder()


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler this module installs (found again by its class to be replaced)."""


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """structlog's formatter, except for the access line, which is rendered directly.

    Every request writes one; through the processor chain it cost more than the
    cached read it describes (docs/decisions/0020-hot-read-path.md). The direct
    rendering gives the same line (tests/unit/test_access_line.py holds the two
    equal); any record it does not cover (another logger, an exception, bound
    context, a sensitive field) takes the chain.
    """

    def __init__(self, *, as_json: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._as_json = as_json
        self._second = -1  # the second ``_date`` spells (the handler's lock guards both)
        self._date = ""

    def _timestamp(self, created: float) -> str:
        """The record's time as the chain's ``TimeStamper`` spells it (UTC, ISO 8601,
        microseconds): the date and second formatted once a second, not per line."""
        second = int(created)
        if second != self._second:
            self._date = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._date}.{int((created - second) * 1_000_000):06d}Z"

    def format(self, record: logging.LogRecord) -> str:
        if record.name != ACCESS_LOGGER or record.exc_info or record.stack_info:
            return super().format(record)
        extra = {k: v for k, v in record.__dict__.items() if k not in _RECORD_KEYS}
        if SENSITIVE_FIELDS & extra.keys() or structlog.contextvars.get_contextvars():
            return super().format(record)
        timestamp = self._timestamp(record.created)
        level = record.levelname.lower()
        event = record.getMessage()
        if self._as_json:
            line = {"event": event, "level": level, "logger": record.name, "timestamp": timestamp}
            return _json.encode({**line, **extra}).decode()
        return f"{timestamp} [{level:<{_LEVEL_WIDTH}}] {event:<{_EVENT_WIDTH}} [{record.name}]"


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    for name in SENSITIVE_FIELDS & event_dict.keys():
        event_dict[name] = REDACTED
    return event_dict


def configure_logging(level: str, log_format: LogFormat, stream: IO[str] | None = None) -> None:
    """Install the one handler on the root logger (replacing the one installed before)."""
    as_json = log_format is LogFormat.JSON
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Fields passed as ``extra`` (the access log's method, route, ...) become JSON keys;
    # the console line already says them in its message.
    foreign: list[Processor] = [*shared, structlog.stdlib.ExtraAdder()] if as_json else shared
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        # Plain tracebacks: rich's (the default when rich is installed) print every
        # frame's locals, which may hold code, outputs or keys, and take tens of
        # milliseconds each on the event loop.
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact]
    if as_json:
        final.append(structlog.processors.format_exc_info)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(
        _Formatter(as_json=as_json, foreign_pre_chain=foreign, processors=[*final, renderer])
    )
    # No format here names a process, thread, multiprocessing name or the caller's source
    # line: skip collecting them for every record (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logProcesses = False
    logging.logThreads = False
    logging.logMultiprocessing = False
    reset_logging()
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own handlers would print a second format: everything goes to the root,
        # except uvicorn's access line. The app writes one per request with its request id
        # (interfaces.http.observability); a worker of ``serve --workers N`` configures
        # logging after uvicorn did, and propagating would turn uvicorn's back on (its
        # protocol logs when the logger has handlers, its own or inherited).
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = name != "uvicorn.access"
    # Alembic announces each of its plugins at INFO on every start; its migrations still log.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def reset_logging() -> None:
    """Remove the installed handler (tests)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(handler)
