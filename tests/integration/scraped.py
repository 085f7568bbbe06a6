"""``GET /metrics`` read back as numbers, for the tests that count what it shows."""

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: Any) -> Samples:
    """Every sample of one scrape, keyed by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def sample(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the scrape did not show it (a series not yet used)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
