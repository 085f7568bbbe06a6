"""The worker's heap after start-up: kept out of the garbage collector's full passes."""

import gc
import logging

logger = logging.getLogger(__name__)


def freeze_startup_objects() -> None:
    """Move everything start-up built into the collector's permanent generation.

    A started worker holds hundreds of thousands of long-lived objects (framework,
    routes, OpenAPI schema, drivers, dependency graph) that no request frees. Every
    full collection walked all of them with the event loop stopped: 150-210 ms each,
    about once every three seconds under load, which was the p99 of every scenario
    (docs/benchmarks.md). Frozen, they are never scanned again; what requests create
    is collected as before.
    """
    gc.collect()
    gc.freeze()
    logger.debug("froze %d objects built at start-up", gc.get_freeze_count())


def thaw() -> None:
    """Hand the frozen objects back to the collector (at shutdown: an app started and
    stopped in a longer-lived process, as in tests, leaves nothing pinned)."""
    gc.unfreeze()
