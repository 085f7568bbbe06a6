"""One Redis client per process, behind a small circuit breaker.

Redis is an accelerator here, never the truth, so an outage must cost a
request nothing. Without a breaker every call during an outage would pay a
connect timeout; with it, the first failure opens the circuit for
``cooldown_s`` and calls fail fast with ``RedisUnavailableError`` (which the
adapters turn into a miss or a no-op). After the cool-down one call probes
(half-open): success closes the circuit, failure opens it again. The outage
is logged once when it starts and once when it ends, not per call.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterDownError,
    MasterDownError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from application.backends import Backend
from infrastructure.cache_analytics import LOG_TAIL, RECORDS, RUNNING, Lookups, Warming
from infrastructure.metrics import timed

logger = logging.getLogger(__name__)

T = TypeVar("T")

_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    TimeoutError,
    OSError,
    # Redis Cluster: a master is down or its slots are not served right now.
    ClusterDownError,
    MasterDownError,
    SlotNotCoveredError,
)


class RedisUnavailableError(Exception):
    """Redis could not answer (circuit open, connection lost, or an error reply)."""


class CacheStats:
    """Lookups by key class of this process, shared by the adapters and the inspector.

    ``hits`` and ``misses`` are the record cache's, as they always were.
    """

    def __init__(self) -> None:
        self.records = Lookups(RECORDS)
        self.running = Lookups(RUNNING)
        self.log_tail = Lookups(LOG_TAIL)
        self.warming = Warming()

    @property
    def classes(self) -> dict[str, Lookups]:
        return {RECORDS: self.records, RUNNING: self.running, LOG_TAIL: self.log_tail}

    @property
    def hits(self) -> int:
        return self.records.hits

    @property
    def misses(self) -> int:
        return self.records.misses

    @property
    def hit_rate(self) -> float | None:
        return self.records.hit_rate


class RedisConnection:
    """The client, its breaker and the process's cache counters."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 0.5,
        cooldown_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        cluster: bool = False,
    ) -> None:
        # One immediate retry on a connection error lets a pooled connection that died
        # with a restarted server be replaced transparently; a timeout is not retried
        # (it would double the wait), and longer outages are the breaker's business.
        self.cluster = cluster
        self.client: redis.Redis = (
            _cluster_client(url, timeout_s)
            if cluster
            else redis.Redis.from_url(
                url,
                # The call's deadline is ``execute``'s ``asyncio.timeout``: redis-py's
                # ``socket_timeout`` (5 s unless given) wraps every send in
                # ``asyncio.wait_for``, a new task per command.
                socket_timeout=None,
                socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            )
        )
        self.stats = CacheStats()
        self.timeout_s = timeout_s
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._open_until: float | None = None
        self._probing = False
        self.last_error: str | None = None
        # A cluster client learns the topology once, serially: redis-py's async cluster
        # breaks connections when many first calls initialise it at the same time.
        self._topology_known = not cluster
        self._topology_lock = asyncio.Lock()

    @property
    def is_open(self) -> bool:
        """True while calls are being short-circuited."""
        return self._open_until is not None

    async def execute(self, operation: Callable[[redis.Redis], Awaitable[T]]) -> T:
        """Run ``operation`` on the client, or raise ``RedisUnavailableError`` without trying."""
        probe = self._admit()
        try:
            if not self._topology_known:
                await self._learn_topology()
            with timed(Backend.REDIS, "command"):
                async with asyncio.timeout(self.timeout_s):
                    result = await operation(self.client)
        except _OUTAGE_ERRORS as exc:
            self._trip(exc)
            raise RedisUnavailableError(self.last_error) from exc
        except (RedisError, RedisClusterException) as exc:  # the server is up, this call failed
            logger.warning("redis: command failed: %s", exc)
            raise RedisUnavailableError(str(exc)) from exc
        finally:
            if probe:
                self._probing = False
        if self._open_until is not None:
            logger.warning("redis: reachable again; cache and registry back in use")
            self._open_until = None
            self.last_error = None
        return result

    def _admit(self) -> bool:
        """Whether this call may go to Redis; returns True when it is the half-open probe."""
        if self._open_until is None:
            return False
        if self._probing or self._clock() < self._open_until:
            raise RedisUnavailableError(self.last_error or "circuit open")
        self._probing = True
        return True

    async def _learn_topology(self) -> None:
        async with self._topology_lock:
            if not self._topology_known:
                await cast("RedisCluster", self.client).initialize()
                self._topology_known = True

    def _trip(self, exc: BaseException) -> None:
        self._topology_known = not self.cluster  # a master may have moved: ask again
        first = self._open_until is None
        self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self._open_until = self._clock() + self.cooldown_s
        if first:
            logger.warning(
                "redis: unavailable (%s); bypassing it, retrying every %.1fs",
                self.last_error,
                self.cooldown_s,
            )

    async def close(self) -> None:
        await self.client.aclose()


def _cluster_client(url: str, timeout_s: float) -> redis.Redis:
    """A ``RedisCluster`` seeded by ``url``, behind the same interface the adapters use.

    Every command the adapters send exists on both clients with the same
    signature; each multi-key script or transaction touches the keys of one
    evaluation, which share a hash tag (``{<id>}``) and so one slot. Cluster
    errors (a master down, slots uncovered: ``ClusterDownError``) are
    ``RedisError``s and so a miss or a no-op like any other outage. Retries
    stay small so a dead master costs a request little before the breaker opens.
    """
    client = RedisCluster.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1),
    )
    return cast("redis.Redis", client)
