"""The hostile-input harness: a seeded app with small limits, and a check that nothing changed.

Used by tests/integration/test_hostile_*.py (fixtures ``hostile`` and ``unchanged``
in conftest.py). The tests that must change nothing (``unchanged``) share one seeded app
per module and configuration, each comparing the state before and after itself; a test
that writes gets an app and a data set of its own (``hostile``).
"""

from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from interfaces.settings import Settings

Client = TestClient[Any]
PROBLEM = "application/problem+json"
SEED = "seed-1"
LIMITS = {
    "request_bytes": 1024 * 1024,
    "metadata_bytes": 1024,
    "metadata_depth": 4,
    "event_message_bytes": 256,
    "log_chunk_bytes": 512,
    "list_limit": 100,
}
THRESHOLDS = {"large_file_threshold": 2048, "compression_threshold": 1024}


class Harness:
    def __init__(self, client: Client, settings: Settings, tmp_path: Path) -> None:
        self.client = client
        self.settings = settings
        self.tmp_path = tmp_path
        self.files = settings.storage.file_storage_path

    def state(self) -> dict[str, Any]:
        """Everything a request could have changed, as the API and the disk show it."""
        listing = self.client.get("/evaluations", params={"include_total": "true", "limit": 100})
        assert listing.status_code == 200, listing.text
        seed = self.client.get(f"/evaluations/{SEED}/complete")
        assert seed.status_code == 200, seed.text
        audit = self.client.get("/audit", params={"limit": 500})
        assert audit.status_code == 200, audit.text
        return {
            "total": listing.json()["total"],
            "records": sorted((e["id"], e["version"]) for e in listing.json()["evaluations"]),
            "seed": seed.json(),
            "audit": len(audit.json()["items"]),
            "files": sorted(
                (str(p.relative_to(self.files)), p.stat().st_size)
                for p in self.files.rglob("*")
                if p.is_file()
            ),
            "elsewhere": sorted(
                str(p.relative_to(self.tmp_path))
                for p in self.tmp_path.rglob("*")
                if not p.is_relative_to(self.files) and not p.name.startswith("storage.db")
            ),
        }


def assert_problem(response: Any, status: int | tuple[int, ...], field: str | None = None) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["status"] == response.status_code and body["title"]
    if field is not None:
        named = {e["field"] for e in body.get("errors", [])} | {body.get("field")}
        assert field in named, body
