"""With API keys configured, a person signs in once and browses with a session cookie."""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import READER, Seeded, screenshot, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def secured_page(secured: Seeded, browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=secured.base)
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


# Opens an EventSource and answers its state once it has connected or given up.
EVENT_SOURCE = """url => new Promise(done => {
  const source = new EventSource(url);
  source.onopen = () => { source.close(); done("open"); };
  source.onerror = () => done(source.readyState === EventSource.CLOSED ? "refused" : "retrying");
})"""
STREAMS = ("/changes/stream", "/evaluations/eval_secured_demo/logs/stream")


def test_streams_follow_the_session_like_the_pages(secured_page: Any) -> None:
    """An EventSource cannot send a key: the session cookie is what lets it in."""
    page = secured_page
    page.goto("/explorer/login")
    for url in STREAMS:
        assert page.evaluate(EVENT_SOURCE, url) == "refused", url
        assert page.evaluate("url => fetch(url).then(r => r.status)", url) == 401, url

    sign_in(page)
    for url in STREAMS:
        assert page.evaluate(EVENT_SOURCE, url) == "open", url

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/explorer/login")
    for url in STREAMS:
        assert page.evaluate(EVENT_SOURCE, url) == "refused", url
