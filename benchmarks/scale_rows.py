"""Rows for ``make bench-scale``: evaluations and events as the service would have written them.

Deterministic (seeded) and cheap per row: text, metadata and messages come from small
pools, so generating ten million events costs seconds of Python, not minutes. Column
order follows ``EVALUATION_COLUMNS``/``EVENT_COLUMNS`` (the schema of
``infrastructure/sql/tables.py``). Evaluation ``i`` is created ``i`` steps before ``end``
(the run's start; ``END`` by default) at a constant rate (``PER_YEAR``, a million a year):
a table grows into its past, as history accumulates behind the present, so at every size
the newest records were created just now and the windows that reads look at (the last
24 hours, the explorer's 14 days) hold what they would in production, about 2,700
records a day. A table grown from 100,000 to 1,000,000 rows by appending has the same
rows as one loaded at 1,000,000 at once (36.5 days of history, then a year; 10,000,000
rows are ten years), except for which are live: a data set is one appended segment
``[start, evaluations)``, and the newest 1 % of the table it makes (the lowest
indexes) are still live (queued, provisioning, running), the rest finished; a later,
older segment adds no live records.
"""

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

SEED = 20250101
PER_YEAR = 1_000_000
STEP = timedelta(days=365) / PER_YEAR
END = datetime(2026, 1, 1, tzinfo=UTC)
LIVE_SHARE = 0.01
DELETED_SHARE = 0.005
FILE_SHARE = 0.02
PREVIEW_SIZE = 1000

EVALUATION_COLUMNS = (
    "id",
    "code",
    "language",
    "status",
    "output",
    "error",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "runtime_ms",
    "metadata",
    "output_location",
    "output_size",
    "output_compressed",
    "output_key",
    "error_location",
    "error_size",
    "error_compressed",
    "error_key",
    "celery_task_id",
    "retries",
    "executor_id",
    "container_id",
    "deleted_at",
    "version",
    "log_size",
)
EVENT_COLUMNS = ("evaluation_id", "event_id", "event_type", "timestamp", "message", "metadata")

_LANGUAGES: tuple[str, ...] = ("python",) * 70 + ("javascript",) * 12 + ("rust",) * 6
_LANGUAGES += ("go",) * 6 + ("java",) * 4 + ("cpp",) * 2
_TERMINAL = ("completed",) * 85 + ("failed",) * 11 + ("cancelled",) * 4
_LIVE = ("queued", "provisioning", "running")
_LIFECYCLE = ("submitted", "queued", "provisioning", "container_started", "running")


def _pool(rng: random.Random, size: int, make: Any) -> list[Any]:
    return [make(rng, index) for index in range(size)]


def _code(rng: random.Random, index: int) -> str:
    lines = [f"def task_{index}(n):", "    total = 0", "    for i in range(n):"]
    lines += [f"        total += i * {rng.randint(1, 99)} % {rng.randint(2, 97)}"] * rng.randint(
        1, 12
    )
    lines += ["    return total", f"print(task_{index}({rng.randint(10, 10**6)}))"]
    return "\n".join(lines) + "\n"


def _output(rng: random.Random, _index: int) -> str:
    count = rng.randint(1, 40)
    return "".join(
        f"step {step}/{count} loss={rng.random():.4f} acc={rng.random():.3f}\n"
        for step in range(count)
    )


def _error(rng: random.Random, _index: int) -> str:
    kind = rng.choice(("ValueError", "KeyError", "ZeroDivisionError", "TimeoutError"))
    return (
        "Traceback (most recent call last):\n"
        f'  File "main.py", line {rng.randint(1, 200)}, in <module>\n'
        f"{kind}: case {rng.randint(1, 10**6)}\n"
    )


def _metadata(rng: random.Random, index: int) -> str:
    return json.dumps(
        {
            "user": f"user_{index % 37}",
            "suite": rng.choice(("humaneval", "mbpp", "apps", "custom")),
            "tags": rng.sample(["gpu", "cpu", "nightly", "ci", "retry", "large"], 2),
            "priority": rng.randint(0, 5),
        }
    )


def _event_metadata(rng: random.Random, index: int) -> str:
    return json.dumps({"step": index, "host": f"worker-{rng.randint(1, 64)}"})


class ScaleData:
    """Evaluations ``[start, evaluations)`` and ``events`` events spread evenly over them."""

    def __init__(
        self,
        evaluations: int,
        events: int,
        *,
        start: int = 0,
        seed: int = SEED,
        end: datetime = END,
    ) -> None:
        if not 0 <= start <= evaluations:
            raise ValueError(f"segment [{start}, {evaluations}) is empty or reversed")
        self.start = start
        self.end = end
        self.evaluations = evaluations
        self.events = events
        rng = random.Random(seed)  # noqa: S311 - test data
        self._codes = _pool(rng, 64, _code)
        self._outputs = _pool(rng, 256, _output)
        self._errors = _pool(rng, 64, _error)
        self._metadata = _pool(rng, 128, _metadata)
        self._event_metadata = _pool(rng, 128, _event_metadata)
        self._seed = seed

    @property
    def added(self) -> int:
        """How many evaluations this segment adds."""
        return self.evaluations - self.start

    def evaluation_id(self, index: int) -> str:
        return f"eval_{self.created_at(index):%Y%m%d_%H%M%S}_{index:06x}"

    def created_at(self, index: int) -> datetime:
        return self.end - STEP * index

    def events_of(self, index: int) -> int:
        """How many events evaluation ``index`` has: ``events`` over the segment, evenly."""
        base, extra = divmod(self.events, max(self.added, 1))
        return base + (1 if index - self.start < extra else 0)

    def evaluation_rows(self, start: int, stop: int) -> Iterator[tuple[Any, ...]]:
        rng = random.Random(self._seed + start)  # noqa: S311 - test data
        live_below = int(self.evaluations * LIVE_SHARE)
        for index in range(start, stop):
            created = self.created_at(index)
            live = index < live_below
            status = rng.choice(_LIVE) if live else rng.choice(_TERMINAL)
            started = created + timedelta(seconds=rng.randint(1, 30))
            runtime = int(rng.lognormvariate(8, 1.2))
            completed = None if live else started + timedelta(milliseconds=runtime)
            output = error = None
            output_location = error_location = output_key = None
            output_size = error_size = None
            output_compressed = False
            evaluation_id = self.evaluation_id(index)
            if status == "completed":
                if rng.random() < FILE_SHARE:
                    output_location, output_size, output_compressed = "file", 500_000, True
                    output_key = f"evaluations/{evaluation_id}/output.{index:08x}.txt.zst"
                    output = self._outputs[index % 256][:PREVIEW_SIZE]
                else:
                    output = self._outputs[rng.randrange(256)]
                    output_location, output_size = "inline", len(output.encode())
            elif status == "failed":
                error = self._errors[rng.randrange(64)]
                error_location, error_size = "inline", len(error.encode())
            yield (
                evaluation_id,
                self._codes[rng.randrange(64)],
                rng.choice(_LANGUAGES),
                status,
                output,
                error,
                created,
                completed or started,
                None if status == "queued" else started,
                completed,
                None if live else runtime,
                self._metadata[rng.randrange(128)],
                output_location,
                output_size,
                output_compressed,
                output_key,
                error_location,
                error_size,
                False,
                None,
                f"celery-{index:08x}",
                1 if rng.random() < 0.05 else 0,
                f"executor-{rng.randint(1, 16)}",
                f"c-{index:08x}",
                created + timedelta(days=1) if rng.random() < DELETED_SHARE else None,
                4 if completed else 2,
                rng.randint(0, 200_000),
            )

    def event_rows(self, start: int, stop: int) -> Iterator[tuple[Any, ...]]:
        """Events of evaluations ``[start, stop)``: lifecycle, then progress, then the end."""
        rng = random.Random(self._seed * 7 + start)  # noqa: S311 - test data
        for index in range(start, stop):
            evaluation_id = self.evaluation_id(index)
            moment = self.created_at(index)
            for number in range(self.events_of(index)):
                moment += timedelta(milliseconds=rng.randint(10, 5000))
                if number < len(_LIFECYCLE):
                    event_type, message = _LIFECYCLE[number], None
                else:
                    event_type, message = "progress", f"step {number} of the run"
                yield (
                    evaluation_id,
                    f"e{number}",
                    event_type,
                    moment,
                    message,
                    self._event_metadata[number % 128],
                )
