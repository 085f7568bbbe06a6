"""A second tenant beside every test of the HTTP suite (ADR 0032).

The suite's clients are the default tenant's. Each of them has a neighbour: a second
instance of the service on the same database, files and Redis (as a second worker of one
deployment would be), called with a key of the tenant ``neighbour``. Every write a test
sends (``POST``, ``PUT``, ``PATCH``) goes to the neighbour first, same path, headers and
body, so the neighbour holds the same evaluation ids, events, logs, blobs and idempotency
keys before the test's own request arrives. A leak then fails the test's own assertions:
a create that answers 409 because the id exists, a list, count or statistic with the
neighbour's rows in it, a read of a deleted evaluation that finds the neighbour's copy.

Deletes are not repeated: the neighbour keeps its copies, so a delete or an erasure that
reached past its tenant would show. What the neighbour answers is not the test's business;
``Mirror.answers`` counts it, and ``tests/integration/test_neighbour.py`` checks that the
copies are really there.

A test marked ``alone(reason)`` runs without one: it reads what the whole deployment or
process holds (bytes on disk, the deployment's physical figures, every log line, a command
over every tenant), where the neighbour's share is the deployment's, not a leak.
"""

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
from litestar.testing import TestClient

from interfaces.http.app import create_app
from interfaces.settings import Settings, parse_api_keys

NEIGHBOUR_TENANT = "neighbour"
NEIGHBOUR_SECRET = "neighbour-secret-0123456789abcdef"
NEIGHBOUR_KEYS = parse_api_keys(f"neighbour-ci:{NEIGHBOUR_SECRET}:admin:{NEIGHBOUR_TENANT}")
MIRRORED = frozenset({"POST", "PUT", "PATCH"})
_KEY_HEADERS = frozenset({b"x-api-key", b"authorization", b"cookie"})


class Mirror:
    """The neighbour's service, and what it answered to the writes repeated to it."""

    def __init__(self, settings: Settings) -> None:
        keys = (*settings.access.api_keys, *NEIGHBOUR_KEYS)
        app = create_app(settings.changed(access={"api_keys": keys}))
        self.client = TestClient(app, raise_server_exceptions=False)
        self.answers: Counter[int] = Counter()

    def repeat(self, request: httpx.Request) -> None:
        """Send the neighbour's copy of ``request``; a failure of its own is only counted."""
        headers = [(k, v) for k, v in request.headers.raw if k.lower() not in _KEY_HEADERS]
        copy = httpx.Request(
            request.method,
            request.url,
            headers=[*headers, (b"x-api-key", NEIGHBOUR_SECRET.encode())],
            content=request.read(),
        )
        try:
            status = self.client.send(copy).status_code
        except Exception:
            status = 0
        self.answers[status] += 1


class NeighbouredClient(TestClient[Any]):
    """The default tenant's client, whose writes reach the neighbour first (none: alone)."""

    def __init__(self, app: Any, mirror: Mirror | None = None, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.mirror = mirror

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if self.mirror is not None and request.method in MIRRORED:
            self.mirror.repeat(request)
        return super().send(request, **kwargs)


@contextmanager
def neighboured(
    settings: Settings, *, alone: bool = False, **client: Any
) -> Iterator[TestClient[Any]]:
    """The service on ``settings``, started, with its neighbour unless ``alone``."""
    with ExitStack() as started:
        mirror = None
        if not alone:
            mirror = Mirror(settings)
            started.enter_context(mirror.client)
        yield started.enter_context(NeighbouredClient(create_app(settings), mirror, **client))
