"""The storage explorer in headless Chromium against a real server."""

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LARGE_OUTPUT, Seeded, screenshot

pytestmark = pytest.mark.browser

PAGES = [
    ("overview", "/explorer", "Storage overview"),
    ("evaluations", "/explorer/evaluations", "Evaluations"),
    ("evaluation", "/explorer/evaluations/eval_demo_large_output", "eval_demo_large_output"),
    ("database", "/explorer/backends/database", "Database"),
    ("files", "/explorer/backends/files?path=evaluations/eval_demo_large_output/", "Files"),
    ("cache", "/explorer/backends/cache", "Cache"),
]


@pytest.mark.parametrize(("name", "path", "heading"), PAGES, ids=[p[0] for p in PAGES])
def test_every_page_renders_at_desktop_and_phone_width(
    page: Any, name: str, path: str, heading: str
) -> None:
    response = page.goto(path)
    assert response.status == 200
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert page.locator("h1").first.inner_text() == heading
    assert page.locator("nav[aria-label=Explorer] a[aria-current=page]").count() == 1
    screenshot(page, name)

    page.set_viewport_size({"width": 390, "height": 844})
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{name} scrolls sideways by {overflow}px at phone width"
    screenshot(page, f"{name}-phone", docs=name == "evaluations")


def test_overview_draws_the_charts(page: Any) -> None:
    page.goto("/explorer")
    charts = page.locator("svg.chart[role=img]")
    assert charts.count() >= 3
    assert page.locator("#activity-h + p + svg rect.s-completed").count() == 1
    for backend in ("Database", "File", "Cache"):
        assert page.get_by_role("heading", name=backend, exact=True).is_visible()


def test_filters_and_keyset_paging(page: Any) -> None:
    page.goto("/explorer/evaluations")
    assert page.locator("table.list tbody tr").count() == 25
    page.get_by_role("link", name="Older »").click()
    page.wait_for_url(re.compile(r"cursor="))
    assert page.locator("table.list tbody tr").count() == 33 - 25
    page.get_by_role("link", name="« Newest").click()

    page.get_by_label("Status").select_option("failed")
    page.get_by_label("Language").fill("python")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"status=failed"))
    ids = page.locator("table.list tbody tr td:first-child").all_inner_texts()
    assert sorted(ids) == ["eval_batch_012", "eval_demo_failed"]  # failed and python

    page.goto("/explorer/evaluations")
    page.get_by_label("Id starts with").fill("eval_batch_00")
    page.get_by_label("Id starts with").press("Enter")
    page.wait_for_url(re.compile(r"id_prefix=eval_batch_00"))
    ids = page.locator("table.list tbody tr td:first-child").all_inner_texts()
    assert sorted(ids) == [f"eval_batch_{n:03d}" for n in range(10)]

    page.goto("/explorer/evaluations?created_to=2000-01-01")
    assert page.get_by_text("No evaluation matches these filters.").is_visible()
    page.goto("/explorer/evaluations?created_from=not-a-date")
    assert "Created from must be a date" in page.get_by_role("alert").inner_text()


def test_the_search_box_finds_text_and_links_to_the_record_at_the_match(page: Any) -> None:
    page.goto("/explorer/evaluations")
    page.get_by_label("Search text").fill("division by zero")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"q=division"))

    ids = page.locator("table.list tbody tr[data-evaluation] td:first-child").all_inner_texts()
    assert ids == ["eval_demo_failed"]
    match = page.locator("tr[data-matches=eval_demo_failed] li")
    expect(match.locator("mark")).to_have_text("division by zero")
    match.get_by_role("link", name="error").click()
    page.wait_for_url(re.compile(r"/explorer/evaluations/eval_demo_failed#error$"))
    expect(page.locator("#error-text")).to_contain_text("ZeroDivisionError")

    page.goto("/explorer/evaluations")
    page.get_by_label("Search text").fill(r"line \d+\n")
    page.get_by_label("As a pattern (RE2)").check()
    page.get_by_label("Look in").select_option("code")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"regex=1"))
    ids = page.locator("table.list tbody tr[data-evaluation] td:first-child").all_inner_texts()
    assert ids == []  # the code says f'line {n}', never a digit

    page.goto("/explorer/evaluations?q=ab")
    assert "at least 3 characters" in page.get_by_role("alert").inner_text()
    page.goto("/explorer/evaluations?q=(%3F<%3Dx)y&regex=1")
    assert "not a pattern RE2 accepts" in page.get_by_role("alert").inner_text()


def test_keyboard_reaches_every_filter_control(page: Any) -> None:
    page.goto("/explorer/evaluations")
    wanted = {"f-q", "f-where", "f-regex", "f-id", "f-status", "f-language", "f-from", "f-to"}
    reached: set[str] = set()
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id")
        reached.add(focused)
        if wanted <= reached:
            break
    assert wanted <= reached, f"Tab never reached {wanted - reached}"


def test_detail_page_shows_everything_and_shows_full_output(page: Any) -> None:
    page.goto("/explorer/evaluations/eval_demo_large_output")
    assert page.locator("#output-text").inner_text() == LARGE_OUTPUT[:600]
    assert page.get_by_role("cell", name="file", exact=True).is_visible()
    assert page.locator("ol.timeline li").count() == 4
    assert page.locator("svg.chart .marker").count() == 4
    assert '"submitted_by": "ada"' in page.locator("pre.code.small").inner_text()
    page.get_by_role("link", name="Show full output").click()
    expect(page.locator("#output-text")).to_contain_text("line 00399")
    assert page.locator("#output-text").text_content() == LARGE_OUTPUT


def test_download_follows_to_the_whole_output(page: Any, tmp_path: Any) -> None:
    page.goto("/explorer/evaluations/eval_demo_large_output")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download output").click()
    download = info.value
    assert download.suggested_filename == "eval_demo_large_output-output.txt"
    target = tmp_path / download.suggested_filename
    download.save_as(str(target))
    assert target.read_text() == LARGE_OUTPUT


def test_live_tail_receives_lines_appended_through_the_api(page: Any, server: Seeded) -> None:
    page.goto(f"/explorer/evaluations/{server.running_id}")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    log = page.locator("#log")
    assert log.inner_text().strip() == "booting"
    assert page.get_by_role("status").inner_text().startswith("Following the log")
    server.log(server.running_id, "step 1: compiling\n")
    expect(log).to_contain_text("step 1: compiling")
    server.log(server.running_id, "step 2: testing ✓\n")
    expect(log).to_contain_text("step 2: testing ✓")
    log.scroll_into_view_if_needed()
    screenshot(page, "evaluation-live-tail")
    server.update(server.running_id, status="completed", output="done\n")
    expect(page.locator("#tail-status")).to_contain_text("completed", timeout=15_000)
    expect(page.locator("#status-badge")).to_have_text("completed")
    text = log.text_content()
    assert text.index("booting") < text.index("step 1") < text.index("step 2")
    assert text.count("step 1: compiling") == 1


def test_files_page_browses_the_tree_and_stays_inside_the_root(page: Any) -> None:
    page.goto("/explorer/backends/files")
    page.get_by_role("link", name="evaluations/").click()
    page.get_by_role("link", name="eval_demo_large_output/").click()
    names = page.locator("table.tree tbody td:first-child").all_inner_texts()
    assert "metadata.json" in names
    assert any(name.startswith("output.") and name.endswith(".txt.zst") for name in names)
    page.get_by_role("link", name="Open evaluation eval_demo_large_output").click()
    page.wait_for_url("**/explorer/evaluations/eval_demo_large_output")
    response = page.request.get("/explorer/backends/files?path=../../etc")
    assert response.status == 400
    assert (
        "Content-Security-Policy" in response.headers
        or "content-security-policy" in response.headers
    )


def test_cache_page_draws_the_key_classes(page: Any, server: Seeded) -> None:
    # Its own running evaluation: the tests before may have ended the seeded one.
    probe = "cache_page_probe"
    server.create(probe, code="x", status="queued")
    server.update(probe, status="running")
    server.log(probe, "tailed\n")
    for _ in range(2):  # the second read of each is a hit
        server.api.get(f"/evaluations/{server.failed_id}").raise_for_status()
        server.api.get(f"/evaluations/{probe}/logs").raise_for_status()
        server.api.get(f"/evaluations/{probe}/running").raise_for_status()
    page.goto("/explorer/backends/cache")

    rows = page.locator("#key-classes tbody tr")
    expect(rows).to_have_count(4)
    assert rows.locator("th").all_inner_texts() == [
        "Records",
        "Running registry",
        "Log tails",
        "Other keys",
    ]
    for title in ("Hit rate by key class", "Memory by key class"):
        chart = page.locator("svg.chart", has=page.locator(f"title:text-is('{title}')"))
        expect(chart).to_have_count(1)
        # A bar each for records, the running registry and the log tails.
        assert chart.locator("rect.bar").count() == 3, title
    hit_rates = page.locator(
        "svg.chart", has=page.locator("title:text-is('Hit rate by key class')")
    )
    assert "Records: " in hit_rates.locator("desc").text_content()
    ttl = page.locator(
        "svg.chart", has=page.locator("title:text-is('Sampled keys by time to live and key class')")
    )
    assert ttl.locator("rect.bar").count() >= 2  # records within the hour, registry without TTL
    assert page.locator("#ct-h ~ ul.legend li").all_inner_texts()[:2] == [
        "Records",
        "Running registry",
    ]
    expect(page.get_by_text("Entries warming wrote")).to_be_visible()
    screenshot(page, "cache-classes")
