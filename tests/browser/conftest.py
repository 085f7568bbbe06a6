"""A real server and a real headless Chromium (Debian's package) for the explorer tests.

Without /usr/bin/chromium the tests skip on a laptop and fail in CI (``CI`` set),
like the PostgreSQL and Redis suites.
"""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from infrastructure.sql.migrate import upgrade
from interfaces.http.app import create_app
from interfaces.settings import load_settings
from tests.services import IN_CI, serve_in_thread

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
# Every run leaves its screenshots here (gitignored); UPDATE_SCREENSHOTS=1 also refreshes docs/.
ARTIFACTS = Path(os.environ.get("BROWSER_ARTIFACTS", ROOT / "artifacts" / "browser"))
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
# The secured configuration's keys: a reader signs in to the explorer, a writer feeds it.
READER = "explorer-reader-0123456789"
WRITER = "explorer-writer-0123456789"
LARGE_OUTPUT = "".join(
    f"line {n:05d}: the quick brown fox jumps over the lazy dog\n" for n in range(400)
)


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if IN_CI:
        pytest.fail(f"{message}; CI must not skip the browser tests", pytrace=False)
    pytest.skip(message)


class Seeded:
    """What the seeding put in the store, for the tests to look for."""

    def __init__(self, base: str, key: str | None = None) -> None:
        self.base = base
        headers = {"X-API-Key": key} if key else {}
        self.api = httpx.Client(base_url=base, timeout=10, headers=headers)
        self.large_id = "eval_demo_large_output"
        self.failed_id = "eval_demo_failed"
        self.running_id = "eval_demo_running"

    def create(self, evaluation_id: str, **fields: Any) -> None:
        response = self.api.post("/evaluations", json={"id": evaluation_id, **fields})
        response.raise_for_status()

    def update(self, evaluation_id: str, **fields: Any) -> None:
        self.api.put(f"/evaluations/{evaluation_id}", json=fields).raise_for_status()

    def event(self, evaluation_id: str, event_type: str, at: datetime, message: str) -> None:
        body = {"event_type": event_type, "message": message, "timestamp": at.isoformat()}
        self.api.post(f"/evaluations/{evaluation_id}/events", json=body).raise_for_status()

    def log(self, evaluation_id: str, content: str) -> None:
        body = {"content": content}
        self.api.post(f"/evaluations/{evaluation_id}/logs", json=body).raise_for_status()


def _seed(seeded: Seeded) -> None:
    languages = ["python", "javascript", "go", "rust"]
    for index in range(30):
        status = ["completed", "completed", "failed", "queued", "cancelled"][index % 5]
        evaluation_id = f"eval_batch_{index:03d}"
        seeded.create(
            evaluation_id,
            code=f"print({index})",
            language=languages[index % 4],
            status="queued",
            metadata={"batch": "nightly", "index": index},
        )
        if status != "queued":
            seeded.update(evaluation_id, status="running")
            fields: dict[str, Any] = {"status": status}
            if status == "completed":
                fields["output"] = f"result {index}\n"
            seeded.update(evaluation_id, **fields)

    start = datetime.now(UTC) - timedelta(minutes=5)
    seeded.create(
        seeded.large_id,
        code="for n in range(400):\n    print(f'line {n}')",
        status="queued",
        metadata={"submitted_by": "ada", "tags": ["demo", "large"]},
    )
    seeded.event(seeded.large_id, "queued", start, "accepted by the gateway")
    seeded.update(seeded.large_id, status="running", executor_id="executor-1", container_id="c-42")
    seeded.event(seeded.large_id, "container_started", start + timedelta(seconds=4), "c-42 up")
    seeded.log(seeded.large_id, "installing dependencies\nrunning tests\n")
    seeded.event(seeded.large_id, "log_flushed", start + timedelta(seconds=40), "log flushed")
    seeded.update(seeded.large_id, status="completed", output=LARGE_OUTPUT)
    seeded.event(seeded.large_id, "container_finished", start + timedelta(seconds=95), "exit 0")

    seeded.create(seeded.failed_id, code="1/0", status="queued")
    seeded.update(seeded.failed_id, status="running")
    seeded.update(
        seeded.failed_id,
        status="failed",
        error="Traceback (most recent call last):\nZeroDivisionError: division by zero\n",
    )

    seeded.create(seeded.running_id, code="import time\ntime.sleep(600)", status="queued")
    seeded.update(seeded.running_id, status="running", executor_id="executor-2")
    seeded.log(seeded.running_id, "booting\n")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """The service on SQLite and files, with small thresholds so one output is a file."""
    require_chromium()
    data = tmp_path_factory.mktemp("explorer")
    url = f"sqlite+aiosqlite:///{data / 'storage.db'}"
    upgrade(url)
    settings = load_settings(
        {},
        database={"url": url},
        storage={
            "file_storage_path": data / "files",
            "large_file_threshold": 4096,
            "compression_threshold": 1024,
            "preview_size": 600,
        },
    )
    with serve_in_thread(create_app(settings)) as base:
        seeded = Seeded(base)
        _seed(seeded)
        yield seeded
        seeded.api.close()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """The service with API keys: the explorer needs a sign-in, the API a key."""
    require_chromium()
    data: Path = tmp_path_factory.mktemp("secured")
    url = f"sqlite+aiosqlite:///{data / 'storage.db'}"
    upgrade(url)
    settings = load_settings(
        {"API_KEYS": f"viewer:{READER}:read,gateway:{WRITER}:write"},
        database={"url": url},
        storage={"file_storage_path": data / "files"},
    )
    with serve_in_thread(create_app(settings)) as base:
        seeded = Seeded(base, WRITER)
        seeded.create("eval_secured_demo", code="print(1)")
        yield seeded
        seeded.api.close()


def sign_in(page: Any, key: str = READER) -> None:
    page.goto("/explorer/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/explorer")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@contextmanager
def checked_page(browser: Any, base: str) -> Iterator[Any]:
    """A 1280x800 page whose console errors (a CSP violation among them) fail the test."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=base, accept_downloads=True
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(10_000)
    yield page
    context.close()
    assert errors == [], errors


@pytest.fixture
def page(server: Seeded, browser: Any) -> Iterator[Any]:
    """A checked page on the open server.

    ``server`` comes first: its set-up runs asyncio, which cannot start once Playwright's
    sync API has an event loop running in this thread.
    """
    with checked_page(browser, server.base) as page:
        yield page


def screenshot(page: Any, name: str, *, docs: bool = True) -> Path:
    """Save a screenshot of the viewport as a test artifact (and in docs/ when asked)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    if docs and os.environ.get("UPDATE_SCREENSHOTS"):
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)
    return path
