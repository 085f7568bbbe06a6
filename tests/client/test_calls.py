"""Every call of the client against the real service, sync and async, on both configurations."""

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from crucible_storage import (
    UNSET,
    Conflict,
    Evaluation,
    EvaluationFields,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
)


def _id(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_records_from_create_to_delete(either_client: Any) -> None:
    client = either_client
    made = client.evaluations.create(
        "print(1)", id=_id(), status="queued", metadata={"team": "a"}, executor_id="ex-1"
    )
    assert isinstance(made, Evaluation)
    assert (made.status, made.metadata, made.executor_id, made.version) == (
        "queued",
        {"team": "a"},
        "ex-1",
        1,
    )
    generated = client.evaluations.create("print(2)", language="python")
    assert generated.id.startswith("eval_")

    assert client.evaluations.get(made.id) == made
    projected = client.evaluations.get(made.id, fields=["status", "created_at"])
    assert isinstance(projected, EvaluationFields)
    assert (projected.id, projected.status, projected.created_at) == (
        made.id,
        "queued",
        made.created_at,
    )

    running = client.evaluations.update(
        made.id,
        status="running",
        container_id="c-42",
        metadata={"step": 1},
        last_update=datetime.now(UTC),
        if_match=made.version,
    )
    assert (running.status, running.container_id) == ("running", "c-42")
    assert running.metadata == {"team": "a", "step": 1}
    assert running.started_at is not None

    listed = {item.eval_id: item for item in client.evaluations.running()}
    assert listed[made.id].container_id == "c-42"

    result = client.evaluations.celery_update(
        made.id, task_state="SUCCESS", celery_task_id="task-1", output="done"
    )
    assert result.applied
    assert (result.evaluation.status, result.evaluation.output) == ("completed", "done")
    late = client.evaluations.celery_update(made.id, task_state="STARTED")
    assert not late.applied
    assert late.reason

    complete = client.evaluations.complete(made.id)
    assert complete.evaluation.output == "done"
    assert complete.metadata.output_size == 4
    assert complete.timeline[0].event == "created"

    client.evaluations.delete(made.id, if_match=result.evaluation.version)
    with pytest.raises(NotFound) as gone:
        client.evaluations.get(made.id)
    assert gone.value.status == 404
    assert gone.value.request_id


def test_lists_pages_and_iterates_across_them(either_client: Any) -> None:
    client = either_client
    prefix = _id("page")
    made = [client.evaluations.create("x", id=f"{prefix}-{n:02d}") for n in range(7)]
    client.evaluations.update(made[0].id, status="running")

    page = client.evaluations.list(id_prefix=prefix, limit=3)
    assert (page.total, len(page.evaluations), page.has_more) == (7, 3, True)
    second = client.evaluations.list(id_prefix=prefix, limit=3, cursor=page.next_cursor)
    assert not {e.id for e in page.evaluations} & {e.id for e in second.evaluations}
    by_offset = client.evaluations.list(id_prefix=prefix, limit=3, offset=3)
    assert [e.id for e in by_offset.evaluations] == [e.id for e in second.evaluations]

    every = list(client.evaluations.iterate(id_prefix=prefix, page_size=3))
    assert sorted(e.id for e in every) == sorted(e.id for e in made)
    assert len(every) == 7
    assert [e.id for e in client.evaluations.iterate(id_prefix=prefix, status="running")] == [
        made[0].id
    ]

    stopped = client.evaluations.iterate(id_prefix=prefix, page_size=2)
    assert next(iter(stopped)).id.startswith(prefix)  # dropping it early is fine

    narrow = client.evaluations.list(id_prefix=prefix, fields=["status"], limit=10)
    assert {e.status for e in narrow.evaluations} == {"queued", "running"}

    later = client.evaluations.list(id_prefix=prefix, created_after=datetime(2999, 1, 1))
    assert later.total == 0


def test_logs_and_events(either_client: Any) -> None:
    client = either_client
    made = client.evaluations.create("x", id=_id())
    client.evaluations.update(made.id, status="running")
    first = client.logs.append(made.id, "step 1\n")
    second = client.logs.append(made.id, "step 2\n", timestamp=datetime.now(UTC))
    assert (first.offset, first.next_offset, second.offset) == (0, 7, 7)
    logs = client.logs.get(made.id)
    assert logs.content == "step 1\nstep 2\n"
    assert logs.is_running
    assert client.logs.get(made.id, offset=7).content == "step 2\n"

    added = client.events.add(
        made.id, "container_started", message="up", metadata={"node": "n1"}, event_id="e-1"
    )
    again = client.events.add(made.id, "container_started", message="up", event_id="e-1")
    assert again.event_id == added.event_id == "e-1"
    client.events.add(made.id, "step")
    assert [e.type for e in client.events.list(made.id)] == ["container_started", "step"]

    client.evaluations.update(made.id, status="completed")
    assert list(client.logs.follow(made.id)) == ["step 1\nstep 2\n"]
    assert list(client.logs.follow(made.id, offset=7)) == ["step 2\n"]
    followed = list(client.events.follow(made.id, poll_interval=0.01))
    assert [e.type for e in followed] == ["container_started", "step"]


def test_payloads(either_client: Any, tmp_path: Any) -> None:
    client = either_client
    made = client.evaluations.create("x", id=_id())
    text = "".join(f"line {n}\n" for n in range(30_000))  # a file-stored, compressed output
    stored = client.payloads.upload(made.id, text)
    assert stored.output_truncated
    assert stored.storage_info is not None
    assert stored.storage_info.output_size == len(text)
    assert client.payloads.read(made.id) == text.encode()
    assert client.payloads.read(made.id, start=5, end=12) == text.encode()[5:12]
    assert client.payloads.read(made.id, start=-7) == text.encode()[-7:]
    assert client.payloads.read(made.id, end=4) == b"line"
    assert client.payloads.read(made.id, start=len(text) + 10) == b""
    assert client.payloads.download(made.id, tmp_path / "out.txt") == len(text)
    assert (tmp_path / "out.txt").read_text() == text

    client.payloads.upload(made.id, [b"bad ", b"news"], kind="error")
    assert client.payloads.read(made.id, kind="error") == b"bad news"
    assert client.payloads.read(client.evaluations.create("y").id) == b""


def test_service_figures(either_client: Any) -> None:
    client = either_client
    client.evaluations.create("x", id=_id())
    statistics = client.statistics()
    assert statistics.total_evaluations >= 1
    assert client.health().status in {"healthy", "degraded"}
    info = client.storage_info()
    assert info.primary_backend
    assert info.storage_thresholds.inline_threshold == info.large_file_threshold


def test_errors_from_real_answers(either_client: Any) -> None:
    client = either_client
    made = client.evaluations.create("x", id=_id())
    with pytest.raises(NotFound):
        client.evaluations.get(_id("missing"))
    with pytest.raises(NotFound):
        client.logs.append(_id("missing"), "x")
    with pytest.raises(Conflict) as duplicate:
        client.evaluations.create("x", id=made.id)
    assert duplicate.value.status == 409
    assert duplicate.value.problem is not None
    assert duplicate.value.problem.type.endswith("duplicate")

    client.evaluations.update(made.id, status="running")
    with pytest.raises(PreconditionFailed) as stale:
        client.evaluations.update(made.id, exit_code=1, if_match=made.version)
    assert stale.value.status == 412

    with pytest.raises(InvalidRequest) as invalid:
        client.evaluations.update(made.id, status="exploded")
    assert invalid.value.status == 422
    assert invalid.value.field == "status"
    assert invalid.value.errors[0].field == "status"
    with pytest.raises(InvalidRequest) as too_deep:
        client.evaluations.list(offset=10**9)
    assert too_deep.value.field == "offset"
    with pytest.raises(InvalidRequest) as bad_id:
        client.evaluations.get("bad*id")
    assert bad_id.value.field == "id"
    assert bad_id.value.request_id


def test_search_finds_text_and_says_where(either_client: Any) -> None:
    client = either_client
    needle = f"needle-{uuid.uuid4().hex[:8]}"
    hit = client.evaluations.create(f"print('{needle}')", id=_id("search"))
    logged = client.evaluations.create("x", id=_id("search"))
    client.logs.append(logged.id, f"step 1\n{needle.upper()} seen\n")
    client.evaluations.create("print('nothing')", id=_id("search"))

    page = client.evaluations.search(needle)
    in_code = client.evaluations.search(needle, where=["code"], fields=["status"])
    by_pattern = client.evaluations.search(pattern=f"{needle} seen$|'{needle}'")

    assert {e.id for e in page.evaluations} == {hit.id, logged.id}
    assert page.total == 2
    places = {e.id: [(m.field, m.offset) for m in e.matches] for e in page.evaluations}
    assert places == {hit.id: [("code", len("print('"))], logged.id: [("logs", len("step 1\n"))]}
    assert [(e.id, e.status, e.code) for e in in_code.evaluations] == [(hit.id, "queued", UNSET)]
    assert {e.id for e in by_pattern.evaluations} == {hit.id}  # the pattern is case-sensitive
    with pytest.raises(InvalidRequest) as refused:
        client.evaluations.search("ab")
    assert refused.value.field == "q"
