"""Cache analytics the in-process and Redis adapters share (docs/cache-analytics.md).

Each read path counts its own lookups by key class where it reads: the record
cache's ``get``, the running registry's ``get`` and ``list`` (``None`` from
``list`` is a miss: the database answers), the log tail's ``read``. The counts
are this process's, kept beside the Prometheus series they feed. A detailed
inspection turns what it measured (keys, sampled TTLs and sizes) into the
figures of each class with ``class_figures``.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping

from application.queries import KEY_CLASSES, MetricValue, count_ttl_buckets, key_class
from infrastructure.metrics import class_lookup_series, class_measured, warm_fill, warm_hit

RECORDS, RUNNING, LOG_TAIL = "records", "running", "log_tail"


def hit_rate(hits: int, misses: int) -> float | None:
    lookups = hits + misses
    return round(hits / lookups, 4) if lookups else None


class Lookups:
    """Hits and misses of one key class in this process."""

    __slots__ = ("_hit", "_miss", "hits", "misses")

    def __init__(self, key_class: str) -> None:
        self.hits = 0
        self.misses = 0
        self._hit, self._miss = class_lookup_series(key_class)

    def count(self, hit: bool) -> None:
        if hit:
            self.hits += 1
            self._hit.inc()
        else:
            self.misses += 1
            self._miss.inc()

    @property
    def hit_rate(self) -> float | None:
        return hit_rate(self.hits, self.misses)


class Warming:
    """What warming did for the record cache in this process: entries it wrote, and
    record hits served by an entry a warm-up wrote (the entry carries the mark)."""

    __slots__ = ("fills", "hits")

    def __init__(self) -> None:
        self.fills = 0
        self.hits = 0

    def filled(self) -> None:
        self.fills += 1
        warm_fill()

    def served(self) -> None:
        self.hits += 1
        warm_hit()

    def figures(self, record_hits: int) -> dict[str, MetricValue]:
        return {
            "warm_fills": self.fills,
            "warm_hits": self.hits,
            "warm_hit_share": round(self.hits / record_hits, 4) if record_hits else None,
        }


# (evictions, expirations) of a class; ``None`` where the store does not count them per class.
Removals = tuple[int | None, int | None]


def class_figures(
    keys: Iterable[str],
    ttls: Iterable[tuple[str, float]],
    sizes: Iterable[tuple[str, int]],
    lookups: Mapping[str, Lookups],
    removals: Mapping[str, Removals] | None = None,
) -> dict[str, dict[str, MetricValue]]:
    """The figures of each of ``KEY_CLASSES`` (published as Prometheus gauges too).

    ``keys`` are the keys counted, ``ttls`` the remaining TTLs of a sample of them and
    ``sizes`` the bytes of another sample: a class's ``memory_bytes`` is the mean of its
    sampled sizes times its key count, exact when ``memory_sampled`` equals ``keys``.
    """
    counted: dict[str, int] = defaultdict(int)
    for key in keys:
        counted[key_class(key)] += 1
    ttl_of: dict[str, list[float]] = defaultdict(list)
    for key, ttl in ttls:
        ttl_of[key_class(key)].append(ttl)
    size_of: dict[str, list[int]] = defaultdict(list)
    for key, size in sizes:
        size_of[key_class(key)].append(size)
    figures: dict[str, dict[str, MetricValue]] = {}
    for name in KEY_CLASSES:
        found, sampled = counted[name], size_of[name]
        memory = (
            round(sum(sampled) * found / len(sampled)) if sampled else (0 if not found else None)
        )
        buckets = count_ttl_buckets(ttl_of[name])
        lookup = lookups.get(name)
        evictions, expirations = (removals or {}).get(name, (None, None))
        figures[name] = {
            "hits": None if lookup is None else lookup.hits,
            "misses": None if lookup is None else lookup.misses,
            "hit_rate": None if lookup is None else lookup.hit_rate,
            "keys": found,
            "memory_bytes": memory,
            "memory_sampled": len(sampled),
            **buckets,
            "ttl_sampled_keys": len(ttl_of[name]),
            "evictions": evictions,
            "expirations": expirations,
        }
        class_measured(name, found, memory, buckets)
    return figures
