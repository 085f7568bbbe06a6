"""With API keys configured, a person signs in once and browses with a session cookie."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infrastructure.sql.migrate import upgrade
from interfaces.http.app import create_app
from interfaces.settings import load_settings
from tests.browser.conftest import require_chromium, screenshot
from tests.services import serve_in_thread

pytestmark = pytest.mark.browser
READER = "explorer-reader-0123456789"
WRITER = "explorer-writer-0123456789"


@pytest.fixture(scope="module")
def secured_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
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
        created = httpx.post(
            f"{base}/evaluations",
            json={"id": "eval_secured_demo", "code": "print(1)"},
            headers={"X-API-Key": WRITER},
        )
        created.raise_for_status()
        yield base


@pytest.fixture
def secured_page(secured_base: str, browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=secured_base)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def test_sign_in_then_browse_then_sign_out(secured_page: Any) -> None:
    page = secured_page
    page.goto("/explorer/evaluations")
    assert page.url.endswith("/explorer/login?next=%2Fexplorer%2Fevaluations")
    page.get_by_label("API key").fill("wrong-key-000000000000")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "That key is not known here."
    screenshot(page, "login")

    page.get_by_label("API key").fill(READER)
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url("**/explorer/evaluations")
    assert page.get_by_role("link", name="eval_secured_demo").count() == 1
    cookies = page.context.cookies()
    assert [(c["httpOnly"], c["sameSite"]) for c in cookies] == [(True, "Strict")]
    assert all(READER not in c["value"] for c in cookies)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/explorer/login")
    page.goto("/explorer")
    assert "/explorer/login" in page.url
