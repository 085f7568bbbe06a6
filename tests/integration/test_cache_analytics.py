"""Cache analytics over HTTP: the cache's details and ``/metrics`` by key class, on the
embedded default (in-process cache) and on PostgreSQL + Redis (docs/cache-analytics.md)."""

import time
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import REGISTRY

from application.queries import KEY_CLASSES, TTL_BUCKET_NAMES
from interfaces.settings import Settings
from tests.integration.scraped import Samples, sample, scrape

Client = Any
READ_CLASSES = ("records", "running", "log_tail")
KEYS = "crucible_storage_cache_keys"
T = TypeVar("T")


def _measured(read: Callable[[], T], done: Callable[[T], bool]) -> T:
    """``read()`` once it shows the keys just written: a Redis scan that took over 20 ms
    is kept and redone in the background, so a report may lag the writes a moment."""
    deadline = time.monotonic() + 15
    found = read()
    while not done(found) and time.monotonic() < deadline:
        time.sleep(0.1)
        found = read()
    return found


def _ok(response: Any) -> Any:
    assert response.is_success, response.text
    return response.json()


def _classes(client: Client) -> dict[str, dict[str, Any]]:
    classes: dict[str, dict[str, Any]] = _ok(client.get("/storage/cache/details"))["info"][
        "classes"
    ]
    return classes


def _lookups(samples: Samples, key_class: str, result: str) -> float:
    name = "crucible_storage_cache_class_lookups_total"
    return sample(samples, name, key_class=key_class, result=result)


def _lookups_now(key_class: str, result: str) -> float:
    labels = {"key_class": key_class, "result": result}
    return REGISTRY.get_sample_value("crucible_storage_cache_class_lookups_total", labels) or 0.0


def _exercise(client: Client) -> None:
    """One hit and one miss of each class a read path looks up."""
    _ok(client.post("/evaluations", json={"id": "ca-1", "code": "x"}))
    _ok(client.put("/evaluations/ca-1", json={"status": "running"}))
    _ok(client.post("/evaluations/ca-1/logs", json={"content": "line one\n"}))
    _ok(client.get("/evaluations/ca-1"))  # the update filled the cache: a hit
    assert client.get("/evaluations/ca-none").status_code == 404  # a miss
    _ok(client.get("/evaluations/ca-1/running"))  # the registry's entry: a hit
    assert client.get("/evaluations/ca-none/running").status_code == 404  # no registry read
    assert _ok(client.get("/evaluations/ca-1/logs"))["output"] == "line one\n"  # from the tail
    _ok(client.get("/evaluations/running"))


def test_details_report_every_key_class(client: Client, backend_settings: Settings) -> None:
    # No report before the reads: a first scan that took over 20 ms would be kept for 30 s.
    _exercise(client)
    after = _measured(
        lambda: _classes(client), lambda c: all(c[n]["keys"] >= 1 for n in READ_CLASSES)
    )

    assert list(after) == list(KEY_CLASSES)
    for name in READ_CLASSES:  # this app's own counts: it looked each class up once or twice
        assert after[name]["hits"] >= 1, (name, after[name])
    assert after["records"]["misses"] >= 1
    for name in READ_CLASSES:
        figures = after[name]
        assert figures["hit_rate"] == round(
            figures["hits"] / (figures["hits"] + figures["misses"]), 4
        )
        assert figures["keys"] >= 1, (name, figures)
        assert figures["memory_bytes"] > 0, (name, figures)
        assert 1 <= figures["memory_sampled"] <= figures["keys"]
        assert sum(figures[bucket] for bucket in TTL_BUCKET_NAMES) == figures["ttl_sampled_keys"]
    # Records expire after CACHE_TTL (an hour): sampled in the bucket that ends at 1 h.
    assert after["records"]["ttl_10m_to_1h"] >= 1
    assert after["other"]["hits"] is None  # nothing looks such keys up
    if backend_settings.redis.url:
        # Redis counts evictions and expirations server-wide only.
        assert after["records"]["evictions"] is None
        stats = _ok(client.get("/storage/cache/details"))["info"]["stats"]
        assert isinstance(stats["server_expired_keys"], int)
    else:
        assert after["records"]["evictions"] == after["records"]["expirations"] == 0
        assert after["running"]["evictions"] == 0


def test_metrics_count_lookups_and_measure_keys_by_key_class(client: Client) -> None:
    # The app runs in this process: the counters before, without a scrape (which measures).
    before = {
        (name, result): _lookups_now(name, result)
        for name in READ_CLASSES
        for result in ("hit", "miss")
    }
    _exercise(client)
    after = _measured(
        lambda: scrape(client),
        lambda s: all(sample(s, KEYS, key_class=n) >= 1 for n in READ_CLASSES),
    )

    for name in READ_CLASSES:
        grew = _lookups(after, name, "hit") - before[name, "hit"]
        assert grew >= 1, (name, grew)
    assert _lookups(after, "records", "miss") > before["records", "miss"]
    for name in READ_CLASSES:
        assert sample(after, KEYS, key_class=name) >= 1, name
        assert sample(after, "crucible_storage_cache_memory_bytes", key_class=name) > 0, name
    ttls = "crucible_storage_cache_ttl_keys"
    assert sample(after, ttls, key_class="records", bucket="ttl_10m_to_1h") >= 1
