"""Reading py-spy's collapsed stacks (benchmarks/flamegraphs.py)."""

from benchmarks.flamegraphs import EVENT_LOOP, parse_collapsed, parse_frame

PROCESS = 'process 11:"uvicorn --factory app"'
WORKER = 'process 12:"python -c from multiprocessing.spawn import spawn_main; spawn_main(fd=7)"'
LOOP = "Server.run (uvicorn/server.py:86);Runner.run (asyncio/runners.py:118)"
HANDLER = (
    "Litestar.__call__ (litestar/app.py:590);"
    "RequestIdMiddleware.handle (interfaces/http/observability.py:50)"
)
COLLAPSED = f"""\
{PROCESS};{WORKER};{LOOP} 40
{PROCESS};{WORKER};{LOOP};{HANDLER};Pool._acquire (asyncpg/pool.py:870) 30
{PROCESS};{WORKER};{LOOP};{HANDLER};Logger.info (logging/__init__.py:1489) 20
{PROCESS};{WORKER};{LOOP};{HANDLER};uuid4 (uuid.py:724) 10
not a stack line
"""


def test_frames_are_function_and_file_without_the_line() -> None:
    frame = parse_frame("Pool._acquire (asyncpg/pool.py:870)")

    assert frame is not None
    assert (frame.function, frame.file, frame.component) == (
        "Pool._acquire",
        "asyncpg/pool.py",
        "asyncpg",
    )
    assert str(frame) == "Pool._acquire (asyncpg/pool.py)"


def test_process_labels_are_not_frames() -> None:
    assert parse_frame(PROCESS) is None
    assert parse_frame(' spawn_main(fd=7)"') is None


def test_the_event_loop_frame_is_named_for_what_runs_under_it() -> None:
    frame = parse_frame("Runner.run (asyncio/runners.py:118)")

    assert frame is not None and frame.component == EVENT_LOOP


def test_self_and_inclusive_shares() -> None:
    profile = parse_collapsed(COLLAPSED)

    assert profile.samples == 100
    assert profile.self_by_component == {
        EVENT_LOOP: 40,
        "asyncpg": 30,
        "logging": 20,
        "stdlib (other)": 10,
    }
    assert profile.inclusive_by_component["litestar"] == 60
    assert profile.inclusive_by_component["service: interfaces"] == 60
    assert profile.self_by_function.most_common(1) == [("Runner.run (asyncio/runners.py)", 40)]
    inclusive = profile.inclusive_by_function
    assert inclusive["RequestIdMiddleware.handle (interfaces/http/observability.py)"] == 60
    assert "Server.run (uvicorn/server.py)" not in inclusive  # the worker's bootstrap
    assert "Runner.run (asyncio/runners.py)" not in inclusive  # under every sample
