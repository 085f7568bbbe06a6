"""The explorer's pages over HTTP, on both configurations (embedded; PostgreSQL + Redis)."""

import re
import time
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.integration.conftest import ClientFactory

HTML = "text/html; charset=utf-8"


def _seed(client: TestClient[Any]) -> None:
    for index, (language, status) in enumerate(
        [("python", "completed"), ("go", "failed"), ("python", "running")]
    ):
        evaluation_id = f"eval_page_{index}"
        client.post(
            "/evaluations",
            json={
                "id": evaluation_id,
                "code": "print(1)",
                "language": language,
                "status": "queued",
            },
        ).raise_for_status()
        client.put(f"/evaluations/{evaluation_id}", json={"status": "running"}).raise_for_status()
        if status != "running":
            client.put(f"/evaluations/{evaluation_id}", json={"status": status}).raise_for_status()
    client.post("/evaluations/eval_page_2/logs", json={"content": "hello <b>log</b>\n"})
    client.post("/evaluations/eval_page_2/events", json={"event_type": "started", "message": "go"})


def _assert_secure_html(response: Any) -> str:
    assert response.headers["content-type"] == HTML
    policy = response.headers["content-security-policy"]
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    text: str = response.text
    assert "<script>" not in text and "style=" not in text  # nothing inline
    return text


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/explorer", "Storage overview"),
        ("/explorer/evaluations", "eval_page_1"),
        ("/explorer/evaluations/eval_page_2", "hello &lt;b&gt;log&lt;/b&gt;"),
        ("/explorer/backends/database", "evaluation_events"),
        ("/explorer/backends/files", "Browse"),
        ("/explorer/backends/cache", "Keys by pattern"),
    ],
)
def test_every_page_renders(client: TestClient[Any], path: str, expected: str) -> None:
    _seed(client)
    response = client.get(path)
    assert response.status_code == 200
    assert expected in _assert_secure_html(response)


def test_list_filters_and_paging(make_client: ClientFactory) -> None:
    client = make_client()
    _seed(client)
    text = client.get("/explorer/evaluations", params={"language": "python"}).text
    assert "eval_page_0" in text and "eval_page_2" in text and "eval_page_1" not in text
    text = client.get("/explorer/evaluations", params={"status": "failed", "language": ""}).text
    assert re.findall(r"eval_page_\d", text) == ["eval_page_1"] * 3  # row, href, link text
    text = client.get("/explorer/evaluations", params={"id_prefix": "eval_page_0"}).text
    assert set(re.findall(r"eval_page_\d", text)) == {"eval_page_0"}
    assert (
        "No evaluation matches"
        in client.get("/explorer/evaluations", params={"created_to": "2000-01-01"}).text
    )


def test_bad_filters_are_reported_not_failed(client: TestClient[Any]) -> None:
    response = client.get(
        "/explorer/evaluations",
        params={"status": "bogus", "created_from": "yesterday", "cursor": "!!"},
    )
    assert response.status_code == 200
    text = response.text
    assert "Unknown status" in text
    assert "Created from must be a date" in text
    assert "page link is not valid" in text


def test_keyset_paging_walks_every_record_once(client: TestClient[Any]) -> None:
    for index in range(30):
        client.post(
            "/evaluations", json={"id": f"eval_p{index:02d}", "code": "x"}
        ).raise_for_status()
    seen: list[str] = []
    url = "/explorer/evaluations"
    while url:
        text = client.get(url).text
        seen += re.findall(r'href="/explorer/evaluations/(eval_p\d\d)"', text)
        older = re.search(r'href="(/explorer/evaluations\?[^"]*cursor=[^"]*)" rel="next"', text)
        url = older.group(1).replace("&amp;", "&") if older else ""
    assert sorted(seen) == [f"eval_p{index:02d}" for index in range(30)]
    assert len(seen) == 30


def test_missing_evaluation_and_escaping_paths_are_html_errors(client: TestClient[Any]) -> None:
    missing = client.get("/explorer/evaluations/eval_nope")
    assert missing.status_code == 404
    _assert_secure_html(missing)
    for path in ("../etc", "evaluations/../../etc", "/etc/passwd/..", "a\\b"):
        response = client.get("/explorer/backends/files", params={"path": path})
        assert response.status_code == 400, path
        _assert_secure_html(response)


def test_files_page_lists_a_stored_blob(make_client: ClientFactory) -> None:
    client = make_client(
        storage={"large_file_threshold": 100, "compression_threshold": 50, "preview_size": 10}
    )
    client.post("/evaluations", json={"id": "eval_big", "code": "x"}).raise_for_status()
    client.put("/evaluations/eval_big", json={"output": "y" * 500}).raise_for_status()
    root = client.get("/explorer/backends/files").text
    assert 'href="/explorer/backends/files?path=evaluations/"' in root
    leaf = client.get("/explorer/backends/files", params={"path": "evaluations/eval_big/"}).text
    assert "metadata.json" in leaf and ".txt.zst" in leaf
    assert 'href="/explorer/evaluations/eval_big"' in leaf
    detail = client.get("/explorer/evaluations/eval_big").text
    assert 'download="eval_big-output.txt"' in detail and "Show full output" in detail


def test_static_assets_are_local_and_carry_the_headers(client: TestClient[Any]) -> None:
    for asset, kind in (("explorer.css", "text/css"), ("explorer.js", "text/javascript")):
        response = client.get(f"/explorer/static/{asset}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(kind)
        assert response.headers["x-content-type-options"] == "nosniff"
    page = client.get("/explorer").text
    assert not re.search(r'(src|href)="https?://', page)  # no CDN


EXPLORER_ID_ROUTES = (
    "/explorer/evaluations/{}",
    "/explorer/parts/evaluations/{}",
    "/explorer/evaluations/{}/more",
)


@pytest.mark.parametrize("route", EXPLORER_ID_ROUTES)
def test_every_explorer_address_of_a_missing_evaluation_is_an_html_404(
    client: TestClient[Any], route: str
) -> None:
    response = client.get(route.format("eval_nowhere"))
    assert response.status_code == 404
    assert "There is nothing stored under this address." in _assert_secure_html(response)


@pytest.mark.parametrize("route", EXPLORER_ID_ROUTES[:2])
@pytest.mark.parametrize("bad_id", ["..hidden", "a%00b", "x" * 256, "a%20b", "%2e%2e"])
def test_a_malformed_id_in_an_explorer_address_is_an_html_400(
    client: TestClient[Any], route: str, bad_id: str
) -> None:
    response = client.get(route.format(bad_id))
    assert response.status_code == 400
    assert "invalid evaluation id" in _assert_secure_html(response)


def test_unknown_explorer_addresses_are_html_404s(client: TestClient[Any]) -> None:
    for path in ("/explorer/nothing", "/explorer/backends/nope", "/explorer/parts/nope"):
        response = client.get(path)
        assert response.status_code == 404, path
        _assert_secure_html(response)


SEEDED_CHANGES = 10  # three creates, five status moves, a log append and an event


def _seeded_feed(client: TestClient[Any]) -> list[dict[str, Any]]:
    """The seed's changes, once the feed shows them all: on PostgreSQL it shows a change
    once every older transaction of the cluster (other tests' too) has ended."""
    deadline = time.monotonic() + 30
    while True:
        items: list[dict[str, Any]] = client.get("/changes", params={"limit": 1000}).json()["items"]
        if len(items) >= SEEDED_CHANGES:
            return items
        assert time.monotonic() < deadline, items
        time.sleep(0.05)


def test_live_pages_name_their_streams_from_before_their_reads(client: TestClient[Any]) -> None:
    _seed(client)
    latest = _seeded_feed(client)[-1]["cursor"]
    running = client.get("/explorer/evaluations/eval_page_2").text
    assert f"evaluation_id=eval_page_2&amp;after={latest}" in running
    assert "kind=log_appended" not in running  # the log has a stream of its own
    assert 'data-stream="/evaluations/eval_page_2/logs/stream?offset=' in running
    assert 'data-parts="/explorer/parts/evaluations/eval_page_2"' in running
    assert "data-stream=" not in client.get("/explorer/evaluations/eval_page_0").text  # final

    listing = client.get("/explorer/evaluations").text
    assert f"kind=status_changed&amp;kind=deleted&amp;kind=purged&amp;after={latest}" in listing
    assert re.search(r'id="running".*eval_page_2', listing, re.DOTALL)
    assert 'id="running"' not in client.get("/explorer/evaluations?status=failed").text


def test_parts_are_the_pages_own_elements(client: TestClient[Any]) -> None:
    _seed(client)
    parts = client.get("/explorer/parts/evaluations/eval_page_2")
    text = _assert_secure_html(parts)
    ids = re.findall(r'<\w+[^>]* id="([\w-]+)"[^>]* data-live-part', text)
    assert ids == ["status-badge", "record", "storage", "timeline", "output", "error"]
    page = client.get("/explorer/evaluations/eval_page_2").text
    for part in ids:
        assert f'id="{part}"' in page
    assert "eval_page_2" in client.get("/explorer/parts/running").text
