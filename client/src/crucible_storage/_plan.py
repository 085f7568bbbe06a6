"""The steps of a plan: each operation of the API is written once, as a plan both clients run.

A plan is a generator: it yields a ``Call`` (one HTTP exchange, retried by the
client that runs it) and receives its parsed result, yields ``Sleep`` to wait
and ``Emit`` to hand an item to the caller's iterator, and returns the result
of the operation. A plan that follows a stream yields ``Open``, then ``Receive``
for each chunk of the body, and ``Reconnect`` to wait as the client's backoff
says before opening it again. Plans do no network I/O, so the sync and the
async client are each one short loop around the same plans.
"""

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Never, Protocol, TypeVar

import httpx

from crucible_storage._upload import Upload

T = TypeVar("T")
R = TypeVar("R")
Params = Mapping[str, str | Sequence[str]]
"""A query string; a sequence repeats its name (``kind=a&kind=b``)."""


class Sink(Protocol):
    """Where a streamed answer's body goes, told the status and headers before the first byte."""

    def start(self, status: int, headers: httpx.Headers) -> None: ...

    def write(self, chunk: bytes, /) -> object: ...


@dataclass(frozen=True)
class Reply:
    """One answer; ``interrupted`` when a streamed body broke off after ``received`` bytes."""

    status: int
    headers: httpx.Headers
    body: bytes = b""
    received: int = 0
    interrupted: Exception | None = None


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: Params = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | Upload | None = None


@dataclass(frozen=True)
class Call(Generic[T]):
    """One exchange: the request, how to read its answer, which non-2xx answers ``parse``
    handles itself (neither raised nor retried), and a sink to stream a 2xx body into."""

    request: Request
    parse: Callable[[Reply], T]
    ok: frozenset[int] = frozenset()
    sink: Sink | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Emit(Generic[T]):
    value: T


@dataclass(frozen=True)
class Open:
    """Send ``request`` and keep its answer's body open for ``Receive``.

    The runner answers with a ``Reply`` (holding the whole body when it is not a 2xx),
    or with the ``httpx.TransportError`` that kept the answer from arriving.
    """

    request: Request


@dataclass(frozen=True)
class Receive:
    """The next chunk of the body ``Open`` left open: bytes, ``b""`` once the body has
    ended, or the ``httpx.TransportError`` that broke it off."""


RECEIVE = Receive()


@dataclass(frozen=True)
class Reconnect:
    """Wait before opening a stream again: ``Retry-After`` when the service sent one, else
    the client's backoff for ``attempt`` failures in a row."""

    attempt: int
    retry_after: str | None = None


Step = Call[Any] | Sleep | Open | Receive | Reconnect
Plan = Generator[Step | Emit[T], Any, R]


def one(call: Call[T]) -> Plan[Never, T]:
    """The plan of a single exchange."""
    result: T = yield call
    return result
