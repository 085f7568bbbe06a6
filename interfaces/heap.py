"""The worker's heap after start-up: kept out of the garbage collector's full passes."""

import gc
import logging

logger = logging.getLogger(__name__)

# Apps started and not yet stopped in this process that froze the heap (tests run several).
_freezers = 0


def freeze_startup_objects() -> None:
    """Move everything start-up built into the collector's permanent generation.

    A started worker holds hundreds of thousands of long-lived objects (framework,
    routes, OpenAPI schema, drivers, dependency graph) that no request frees. Every
    full collection walked all of them with the event loop stopped: 150-210 ms each,
    about once every three seconds under load, which was the p99 of every scenario
    (docs/benchmarks.md). Frozen, they are never scanned again; what requests create
    is collected as before.
    """
    global _freezers  # noqa: PLW0603 - the freeze is process-wide, so is its count
    # The young generations only: a full pass here would walk the whole heap once more,
    # 270 ms per start in a process holding two million objects (the test suite).
    gc.collect(1)
    gc.freeze()
    _freezers += 1
    if logger.isEnabledFor(logging.DEBUG):
        # Counting walks every frozen object: only when the line is written.
        logger.debug("froze %d objects built at start-up", gc.get_freeze_count())


def thaw() -> None:
    """Hand the frozen objects back to the collector when the last app that froze stops.

    So an app started and stopped in a longer-lived process (the tests) leaves nothing
    pinned, and does not thaw the heap under another app still serving in it. Start-up
    objects that become cyclic garbage while frozen are only reclaimed then.
    """
    global _freezers  # noqa: PLW0603
    _freezers = max(0, _freezers - 1)
    if _freezers == 0:
        gc.unfreeze()


def apps_frozen() -> int:
    """Apps in this process whose start-up froze the heap and that have not stopped."""
    return _freezers
