"""Two tenants side by side (ADR 0032): one deployment serves a key of ``default`` and a
key of ``acme``, both tenants hold the same evaluation ids, and on every surface each
caller sees its own tenant's alone: the other tenant's id is 404, never 403, and its rows
are never counted. Embedded, the file backend, PostgreSQL + Redis, and S3 for the blobs.
"""

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from litestar.testing import TestClient

from interfaces.http.app import create_app
from interfaces.settings import Settings, load_settings, parse_api_keys
from tests.integration.conftest import CONFIGURATIONS, configured
from tests.integration.hostile import THRESHOLDS
from tests.services import serve_in_thread
from tests.sse import KEEPALIVE, Event, events, take

SECRETS = {"default": "default-secret-0123456789", "acme": "acme-secret-01234567890"}
KEYS = parse_api_keys(
    f"gw:{SECRETS['default']}:admin,acme-ci:{SECRETS['acme']}:admin:acme",
)
ACTORS = {"default": "gw", "acme": "acme-ci"}
SHARED = ("s-1", "s-2")  # ids both tenants hold
OWN = {"default": "only-default", "acme": "only-acme"}
BIG = "y" * (THRESHOLDS["large_file_threshold"] * 2)  # an output kept in the blob store
TIMEOUT = httpx.Timeout(30.0)
TEXT = {"Content-Type": "text/plain"}


@pytest.fixture(params=[*CONFIGURATIONS, pytest.param("s3", marks=pytest.mark.s3)])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """One data set of the parametrized configuration, served to both tenants' keys."""
    served: dict[str, Any] = {"access": {"api_keys": KEYS}, "storage": THRESHOLDS}
    if request.param == "s3":
        env = request.getfixturevalue("s3_env")
        settings = load_settings({**env, "BLOB_BACKEND": "s3"})
        yield settings.changed(**served)
        return
    for settings in configured(request.param, tmp_path):
        yield settings.changed(**served)


class Caller:
    """Requests with one tenant's key, on a client both tenants share."""

    def __init__(self, client: httpx.Client, tenant: str) -> None:
        self.client = client
        self.tenant = tenant
        self.headers = {"X-API-Key": SECRETS[tenant]}
        self.own = OWN[tenant]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        assert response.is_success, response.text
        return response.json()

    def ids(self, **params: Any) -> list[str]:
        page = self.ok("GET", "/evaluations", params=params)
        return sorted(item["id"] for item in page["evaluations"])


def seed(caller: Caller) -> None:
    """The caller's tenant's evaluations: the shared ids and one of its own, each text
    naming the tenant."""
    name = caller.tenant
    for evaluation_id in (*SHARED, caller.own):
        body = {
            "id": evaluation_id,
            "code": f"print('{name} {evaluation_id}')",
            "metadata": {"subject": "alice"},
        }
        caller.ok("POST", "/evaluations", json=body)
    caller.ok("PUT", "/evaluations/s-1", json={"status": "running", "output": f"{name} {BIG}"})
    caller.ok("POST", "/evaluations/s-1/logs", json={"content": f"{name} log\n"})
    caller.ok("POST", "/evaluations/s-1/events", json={"type": "note", "message": f"{name} ev"})
    caller.ok("PUT", f"/evaluations/{caller.own}", json={"status": "running"})


def pair(client: httpx.Client) -> tuple[Caller, Caller]:
    """The default tenant's caller and acme's, each tenant seeded, the default one first."""
    callers = Caller(client, "default"), Caller(client, "acme")
    for caller in callers:
        seed(caller)
    return callers


@pytest.fixture
def tenants(deployment: Settings) -> Iterator[tuple[Caller, Caller]]:
    with TestClient(create_app(deployment)) as client:
        yield pair(client)


def both(tenants: tuple[Caller, Caller]) -> list[tuple[Caller, Caller]]:
    """Each caller with the other one."""
    default, acme = tenants
    return [(default, acme), (acme, default)]


def test_each_tenant_reads_its_own_evaluation_under_a_shared_id(
    tenants: tuple[Caller, Caller],
) -> None:
    for caller, _ in both(tenants):
        record = caller.ok("GET", "/evaluations/s-1")
        assert record["code"] == f"print('{caller.tenant} s-1')"
        assert record["status"] == "running"
        output = caller.request("GET", "/evaluations/s-1/output")
        assert output.text == f"{caller.tenant} {BIG}"
        assert caller.ok("GET", f"/evaluations/{caller.own}")["status"] == "running"


@pytest.mark.parametrize(
    ("method", "path", "sent"),
    [
        ("GET", "/evaluations/{id}", {}),
        ("PUT", "/evaluations/{id}", {"json": {"status": "failed"}}),
        ("DELETE", "/evaluations/{id}", {}),
        ("GET", "/evaluations/{id}/logs", {}),
        ("POST", "/evaluations/{id}/logs", {"json": {"content": "intruder\n"}}),
        ("GET", "/evaluations/{id}/events", {}),
        ("POST", "/evaluations/{id}/events", {"json": {"type": "intruder"}}),
        ("GET", "/evaluations/{id}/running", {}),
        ("GET", "/evaluations/{id}/output", {}),
        ("PUT", "/evaluations/{id}/output", {"content": b"intruder", "headers": TEXT}),
        ("GET", "/evaluations/{id}/complete", {}),
        ("GET", "/explorer/evaluations/{id}", {}),
        ("GET", "/explorer/parts/evaluations/{id}", {}),
    ],
)
def test_another_tenants_id_is_not_found_and_left_as_it_was(
    tenants: tuple[Caller, Caller], method: str, path: str, sent: dict[str, Any]
) -> None:
    before = {caller.tenant: caller.ok("GET", f"/evaluations/{caller.own}") for caller in tenants}

    for caller, other in both(tenants):
        answer = caller.request(method, path.format(id=other.own), **sent)
        assert answer.status_code == 404, answer.text

    for caller in tenants:
        assert caller.ok("GET", f"/evaluations/{caller.own}") == before[caller.tenant]
        assert caller.ok("GET", f"/evaluations/{caller.own}/events") == []
        own = caller.request(method, path.format(id=caller.own), **sent)
        assert own.is_success, own.text


def test_an_update_and_a_delete_change_the_callers_evaluation_alone(
    tenants: tuple[Caller, Caller],
) -> None:
    default, acme = tenants
    before = default.ok("GET", "/evaluations/s-1")

    acme.ok("PUT", "/evaluations/s-1", json={"status": "completed", "output": "acme done"})
    assert acme.request("DELETE", "/evaluations/s-2").is_success

    assert default.ok("GET", "/evaluations/s-1") == before
    assert default.request("GET", "/evaluations/s-1/output").text == f"default {BIG}"
    assert default.ok("GET", "/evaluations/s-2")["code"] == "print('default s-2')"
    assert acme.request("GET", "/evaluations/s-2").status_code == 404
    assert acme.ok("GET", "/evaluations/s-1")["status"] == "completed"
    assert default.ids() == ["only-default", "s-1", "s-2"]
    assert acme.ids() == ["only-acme", "s-1"]


def test_logs_and_events_are_the_callers_own(tenants: tuple[Caller, Caller]) -> None:
    default, acme = tenants
    acme.ok("POST", "/evaluations/s-1/logs", json={"content": "acme more\n"})

    assert default.ok("GET", "/evaluations/s-1/logs")["content"] == "default log\n"
    assert acme.ok("GET", "/evaluations/s-1/logs")["content"] == "acme log\nacme more\n"
    tail = acme.ok("GET", "/evaluations/s-1/logs", params={"offset": len("acme log\n")})
    assert tail["content"] == "acme more\n"
    for caller, _ in both(tenants):
        listed = caller.ok("GET", "/evaluations/s-1/events")
        assert [event["message"] for event in listed] == [f"{caller.tenant} ev"]


def settled_changes(caller: Caller) -> list[dict[str, Any]]:
    """The caller's changes, once each of its audit entries is one. A change is listed
    when every transaction older than its own has ended (PostgreSQL: anywhere on the
    server), so the newest may take a moment to appear."""
    wanted = len(caller.ok("GET", "/audit", params={"limit": 500})["items"])
    deadline = time.monotonic() + 30
    while True:
        items: list[dict[str, Any]] = caller.ok("GET", "/changes")["items"]
        if len(items) >= wanted:
            return items
        assert time.monotonic() < deadline, items
        time.sleep(0.05)


def test_running_audit_and_changes_list_the_callers_evaluations(
    tenants: tuple[Caller, Caller],
) -> None:
    for caller, other in both(tenants):
        running = caller.ok("GET", "/evaluations/running")
        assert sorted(item["eval_id"] for item in running["running_evaluations"]) == sorted(
            [caller.own, "s-1"]
        )
        assert running["count"] == 2

        audit = caller.ok("GET", "/audit")["items"]
        assert {entry["actor"] for entry in audit} == {ACTORS[caller.tenant]}
        assert {entry["evaluation_id"] for entry in audit} == {*SHARED, caller.own}
        assert caller.ok("GET", "/audit", params={"evaluation_id": other.own})["items"] == []

        changes = settled_changes(caller)
        assert {change["evaluation_id"] for change in changes} == {*SHARED, caller.own}
        assert [change["cursor"] for change in changes] == sorted(
            change["cursor"] for change in changes
        )
        assert caller.ok("GET", "/changes", params={"evaluation_id": other.own})["items"] == []


def test_lists_totals_statistics_and_searches_count_the_callers_rows(
    tenants: tuple[Caller, Caller],
) -> None:
    default, acme = tenants
    acme.ok("POST", "/evaluations", json={"id": "only-acme-2", "code": "more()"})

    assert default.ok("GET", "/evaluations", params={"include_total": "true"})["total"] == 3
    assert acme.ok("GET", "/evaluations", params={"include_total": "true"})["total"] == 4
    assert default.ids(status="running") == ["only-default", "s-1"]
    assert acme.ids(status="queued") == ["only-acme-2", "s-2"]
    assert default.ids(id_prefix="only-") == ["only-default"]
    statistics = {caller.tenant: caller.ok("GET", "/statistics") for caller in tenants}
    assert statistics["default"]["total_evaluations"] == 3
    assert statistics["default"]["by_status"] == {"queued": 1, "running": 2}
    assert statistics["acme"]["total_evaluations"] == 4
    assert statistics["acme"]["by_status"] == {"queued": 2, "running": 2}
    for caller, other in both(tenants):
        assert statistics[caller.tenant]["events"] == 1
        assert statistics[caller.tenant]["log_bytes"] == len(f"{caller.tenant} log\n")
        found = caller.ids(q=f"print('{caller.tenant} ")
        assert found == sorted([*SHARED, caller.own])
        assert caller.ids(q=f"print('{other.tenant} ") == []
        assert caller.ids(q=f"{other.tenant} log") == []
        assert caller.ids(q=f"{other.tenant} ev") == []


def _parquet(caller: Caller, table: str) -> list[dict[str, Any]]:
    response = caller.request("GET", f"/export/{table}.parquet")
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = pq.read_table(io.BytesIO(response.content)).to_pylist()
    return rows


def test_parquet_downloads_hold_the_callers_rows(tenants: tuple[Caller, Caller]) -> None:
    for caller, _ in both(tenants):
        evaluations = _parquet(caller, "evaluations")
        assert sorted(row["id"] for row in evaluations) == sorted([*SHARED, caller.own])
        assert {row["code"] for row in evaluations} == {
            f"print('{caller.tenant} {evaluation_id}')" for evaluation_id in (*SHARED, caller.own)
        }
        events = _parquet(caller, "events")
        assert [row["message"] for row in events] == [f"{caller.tenant} ev"]
        logs = _parquet(caller, "logs")
        assert [row["content"] for row in logs] == [f"{caller.tenant} log\n"]


def _subject_export(caller: Caller) -> list[dict[str, Any]]:
    response = caller.request("GET", "/subjects/alice/export")
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def test_a_subject_is_exported_and_erased_in_the_callers_tenant_alone(
    tenants: tuple[Caller, Caller],
) -> None:
    default, acme = tenants
    for caller, _ in both(tenants):
        exported = _subject_export(caller)
        assert sorted(line["record"]["id"] for line in exported) == sorted([*SHARED, caller.own])
        assert all(caller.tenant in line["record"]["code"] for line in exported)

    erased = acme.ok("DELETE", "/subjects/alice")

    assert erased["evaluations"] == 3
    assert _subject_export(acme) == []
    assert acme.ids() == []
    assert acme.request("GET", "/evaluations/s-1").status_code == 404
    assert len(_subject_export(default)) == 3
    assert default.request("GET", "/evaluations/s-1/output").text == f"default {BIG}"
    assert default.ok("GET", "/evaluations/s-1/logs")["content"] == "default log\n"


def test_the_same_idempotency_key_answers_each_tenant_its_own_write(
    tenants: tuple[Caller, Caller],
) -> None:
    key = {"Idempotency-Key": "create-once"}
    first = {
        caller.tenant: caller.ok(
            "POST", "/evaluations", json={"code": f"{caller.tenant} once"}, headers=key
        )
        for caller in tenants
    }

    for caller, other in both(tenants):
        assert first[caller.tenant]["code"] == f"{caller.tenant} once"
        again = caller.request(
            "POST", "/evaluations", json={"code": f"{caller.tenant} once"}, headers=key
        )
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first[caller.tenant]
        created = first[other.tenant]["id"]
        if created != first[caller.tenant]["id"]:
            assert caller.request("GET", f"/evaluations/{created}").status_code == 404
    assert len(tenants[0].ids()) == len(tenants[1].ids()) == 4


def test_explorer_pages_show_the_callers_evaluations(tenants: tuple[Caller, Caller]) -> None:
    for caller, other in both(tenants):
        listed = caller.request("GET", "/explorer/evaluations")
        assert listed.status_code == 200
        assert caller.own in listed.text and other.own not in listed.text
        page = caller.request("GET", "/explorer/evaluations/s-1")
        assert f"{caller.tenant} s-1" in page.text and f"{other.tenant} s-1" not in page.text
        assert f"{caller.tenant} log" in page.text and f"{other.tenant} log" not in page.text


def test_an_explorer_session_of_an_acme_key_reads_acme(deployment: Settings) -> None:
    with TestClient(create_app(deployment)) as client:
        _, acme = pair(client)
        signed_in = client.post("/explorer/login", data={"key": SECRETS["acme"]})
        assert signed_in.status_code in (200, 303)

        listed = client.get("/explorer/evaluations")
        page = client.get("/explorer/evaluations/only-default")

    assert listed.status_code == 200
    assert acme.own in listed.text and OWN["default"] not in listed.text
    assert page.status_code == 404


def _until(stream: Iterator[Event], cursor: str) -> list[Event]:
    """The stream's changes up to the one at ``cursor``."""
    taken: list[Event] = []
    for event in stream:
        if event != KEEPALIVE:
            taken.append(event)
        if event.id == cursor:
            return taken
    raise AssertionError(f"the stream ended after {taken}")


def test_streams_carry_the_callers_changes_and_log(deployment: Settings) -> None:
    settings = deployment.changed(changes={"keepalive_s": 0.3, "poll_ms": 50})
    with (
        serve_in_thread(create_app(settings)) as base,
        httpx.Client(base_url=base, timeout=TIMEOUT) as client,
    ):
        default, acme = pair(client)
        with client.stream("GET", "/changes/stream", headers=acme.headers) as response:
            stream = events(response)
            early: list[Event] = []  # acme's own, where the stream starts behind (below)
            while (event := next(stream)) != KEEPALIVE:  # sent once it waits for changes
                early.append(event)
            default.ok("POST", "/evaluations/s-1/logs", json={"content": "default more\n"})
            acme.ok("POST", "/evaluations/s-1/logs", json={"content": "acme more\n"})
            listed = settled_changes(acme)
            streamed = early + _until(stream, listed[-1]["cursor"])
        with client.stream("GET", "/evaluations/s-1/logs/stream", headers=acme.headers) as log:
            (piece,) = take(events(log), 1)

    # Where a stream starts may lie a little behind (PostgreSQL: the oldest transaction
    # still running anywhere), so it can repeat a few of acme's changes; never another's.
    assert [json.loads(event.data) for event in streamed] == listed[-len(streamed) :]
    assert (listed[-1]["kind"], listed[-1]["sizes"]) == ("log_appended", {"content": 10})
    assert json.loads(piece.data)["content"] == "acme log\nacme more\n"


def test_the_storage_report_counts_the_callers_evaluations_and_sizes_for_default_alone(
    tenants: tuple[Caller, Caller],
) -> None:
    default, acme = tenants
    acme.ok("POST", "/evaluations", json={"id": "only-acme-2", "code": "more()"})

    whole = default.ok("GET", "/storage/overview")
    own = acme.ok("GET", "/storage/overview")

    assert whole["summary"]["total_evaluations"] == 3  # its own counters; sizes the deployment's
    assert whole["summary"]["total_storage_bytes"] > 0
    assert whole["backends"]["database"]["metrics"]["size_bytes"] > 0
    assert own["summary"] == {**whole["summary"], "total_evaluations": 4, "total_storage_bytes": 0}
    assert own["backends"]["database"]["metrics"] == {
        "evaluations": 4,
        "events": 1,
        "log_bytes": len("acme log\n"),
    }
    for name, report in own["backends"].items():  # absent, null or empty: nothing measured
        assert name == "database" or not any(report["metrics"].values()), report
    database = acme.ok("GET", "/storage/database/details")
    assert database["details"] == {}
    assert database["tables"]["evaluations"]["count"] == 4
    assert database["tables"]["evaluations"]["by_status"] == {"queued": 2, "running": 2}
    assert {item["id"] for item in database["recent_evaluations"]} == {
        *SHARED,
        acme.own,
        "only-acme-2",
    }
    files = acme.ok("GET", "/storage/file/details")
    assert (files["files"], files["total_files"]) == ([], 0)
    assert default.ok("GET", "/storage/file/details")["total_files"] > 0
    cache = acme.ok("GET", "/storage/cache/details")
    assert (cache["info"]["keys"], cache["info"]["memory"]) == ([], {})
    for caller in tenants:
        page = caller.request("GET", "/explorer/backends/database")
        assert page.status_code == 200
        assert ("evaluation_events" in page.text) is (caller is default)


def test_the_blob_browser_keeps_another_tenants_key_in_its_own_tree(
    tenants: tuple[Caller, Caller],
) -> None:
    """Another tenant's key browses ``tenants/<tenant>/`` alone; the default tenant's keys
    browse the deployment's whole store (ADR 0032)."""
    default, acme = tenants
    tree = acme.request("GET", "/explorer/backends/files")
    assert tree.status_code == 200
    assert "tenants/acme/" in tree.text
    for elsewhere in ("evaluations/s-1", "tenants", "tenants/acmex"):
        refused = acme.request("GET", "/explorer/backends/files", params={"path": elsewhere})
        assert refused.status_code == 400, refused.text
    whole = default.request("GET", "/explorer/backends/files", params={"path": "tenants"})
    assert whole.status_code == 200
    assert "acme" in whole.text
