"""The explorer's live pages in headless Chromium: changes made through the API appear in
an open page without a reload and without polling, open and signed in alike."""

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Seeded, checked_page, screenshot, sign_in

pytestmark = pytest.mark.browser
# Several times the interval the explorer used to poll at (1 s): a poller would show.
QUIET_MS = 3_500
SETTLE_MS = 1000
_numbers = itertools.count()


class Live:
    """An explorer page on one configuration, and the API that changes what it shows."""

    def __init__(self, page: Any, site: Seeded, name: str) -> None:
        self.page = page
        self.site = site
        self.name = name
        self.requests: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))

    def fresh_id(self, label: str) -> str:
        return f"eval_live_{self.name}_{label}_{next(_numbers)}"

    def open(self, path: str) -> None:
        """Load ``path``, wait until its streams are open and mark the window."""
        self.page.goto(path)
        expect(self.page.locator("#live-state")).to_have_attribute("data-state", "live")
        self.page.evaluate("window.liveMarker = 'not reloaded'")

    def assert_not_reloaded(self, path: str) -> None:
        assert self.page.evaluate("window.liveMarker") == "not reloaded"
        assert self.page.url == f"{self.site.base}{path}"

    def assert_quiet(self) -> None:
        """Nothing is fetched while nothing changes: no timer reads anything.

        The last change's own re-read may still be on its way (the feed is polled every
        ``CHANGES_POLL_MS``): the quiet interval starts once that has settled.
        """
        self.page.wait_for_timeout(SETTLE_MS)
        before = len(self.requests)
        self.page.wait_for_timeout(QUIET_MS)
        assert self.requests[before:] == []
        expect(self.page.locator("#live-state")).to_have_attribute("data-state", "live")

    def fetched(self, fragment: str) -> int:
        return sum(fragment in url for url in self.requests)


@pytest.fixture(params=["open", "signed_in"])
def live(
    request: pytest.FixtureRequest, server: Seeded, secured: Seeded, browser: Any
) -> Iterator[Live]:
    """Both servers start before the browser: their set-up runs asyncio in this thread."""
    site = server if request.param == "open" else secured
    with checked_page(browser, site.base) as page:
        if site is secured:
            sign_in(page)
        yield Live(page, site, request.param)


def test_the_list_follows_statuses_and_the_running_list(live: Live) -> None:
    page, api = live.page, live.site
    known = live.fresh_id("known")
    api.create(known, code="print(1)", status="queued")
    live.open("/explorer/evaluations")
    row = page.locator(f"table.list tr[data-evaluation='{known}']")
    running = page.locator("#running")
    expect(row.locator(".badge")).to_have_text("queued")
    expect(running).not_to_contain_text(known)

    api.update(known, status="running", executor_id="executor-live")
    expect(row.locator(".badge")).to_have_text("running")
    expect(running.get_by_role("link", name=known)).to_be_visible()
    expect(running).to_contain_text("executor-live")

    newcomer = live.fresh_id("new")
    api.create(newcomer, code="print(2)")
    expect(page.locator("#list-news")).to_contain_text("1 evaluation was created")

    api.update(known, status="completed", output="done\n")
    expect(row.locator(".badge")).to_have_text("completed")
    expect(running.get_by_role("link", name=known)).to_have_count(0)
    api.api.delete(f"/evaluations/{newcomer}").raise_for_status()
    screenshot(live.page, f"evaluations-live-{live.name}", docs=False)

    live.assert_not_reloaded("/explorer/evaluations")
    assert live.fetched("/explorer/parts/running") <= 4  # at most one read per change
    live.assert_quiet()


def test_a_record_shows_its_status_timeline_and_log_as_they_change(live: Live) -> None:
    page, api = live.page, live.site
    evaluation = live.fresh_id("record")
    api.create(evaluation, code="print(3)", status="queued")
    path = f"/explorer/evaluations/{evaluation}"
    live.open(path)
    badge, log, timeline = (
        page.locator("#status-badge"),
        page.locator("#log"),
        page.locator("#timeline"),
    )
    expect(badge).to_have_text("queued")
    expect(timeline).to_contain_text("No events recorded.")

    api.update(evaluation, status="running", executor_id="executor-7")
    expect(badge).to_have_text("running")
    expect(page.locator("#record")).to_contain_text("executor-7")

    api.log(evaluation, "collecting 12 tests\n")
    expect(log).to_have_text("collecting 12 tests\n")
    api.event(evaluation, "container_started", datetime.now(UTC), "c-7 up")
    expect(timeline.locator("ol.timeline li")).to_have_count(1)
    expect(timeline).to_contain_text("c-7 up")
    api.log(evaluation, "12 passed ✓\n")
    api.event(evaluation, "tests_finished", datetime.now(UTC), "12 passed")
    expect(timeline.locator("ol.timeline li")).to_have_count(2)
    expect(timeline.locator("svg.chart .marker")).to_have_count(2)
    expect(log).to_have_text("collecting 12 tests\n12 passed ✓\n")
    screenshot(live.page, f"evaluation-live-{live.name}", docs=False)

    api.update(evaluation, status="completed", output="all green\n")
    expect(badge).to_have_text("completed")
    expect(page.locator("#tail-status")).to_have_text("Evaluation completed; the log is complete.")
    expect(page.locator("#output-text")).to_have_text("all green\n")
    live.assert_not_reloaded(path)
    # Four changes re-read the record (two statuses, two events); the log is streamed.
    assert live.fetched(f"/explorer/parts/evaluations/{evaluation}") <= 4
    assert live.fetched(f"/evaluations/{evaluation}/logs?") == 0
    live.assert_quiet()


def test_a_deleted_record_says_so_and_stops_following(live: Live) -> None:
    evaluation = live.fresh_id("deleted")
    live.site.create(evaluation, code="print(4)", status="running")
    live.open(f"/explorer/evaluations/{evaluation}")
    live.site.api.delete(f"/evaluations/{evaluation}").raise_for_status()
    expect(live.page.locator("#status-badge")).to_have_text("deleted")
    expect(live.page.locator("#tail-status")).to_have_text("This evaluation was deleted.")
    expect(live.page.locator("#live-state")).to_have_attribute("data-state", "off")
    live.assert_not_reloaded(f"/explorer/evaluations/{evaluation}")
