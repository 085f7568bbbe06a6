"""A benchmark deployment keeps the service's log when the service logged an error."""

import json
from pathlib import Path

from benchmarks.deployment import keep_if_errors


def _write(path: Path, *levels: str) -> None:
    lines = [json.dumps({"event": f"line {n}", "level": level}) for n, level in enumerate(levels)]
    path.write_text("\n".join([*lines, "not json", ""]))


def test_a_log_with_errors_is_moved_aside_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "work" / "service.log"
    log.parent.mkdir()
    _write(log, "info", "error", "warning", "critical", "error")
    kept = keep_if_errors(log, tmp_path, "bench_soak")
    assert kept is not None
    path, errors = kept
    assert errors == 3
    assert path.parent == tmp_path and path.name.startswith("crucible-bench_soak-")
    assert not log.exists()
    assert "line 1" in path.read_text()


def test_a_log_without_errors_or_no_log_is_left_to_go(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    _write(log, "info", "warning")
    assert keep_if_errors(log, tmp_path / "kept", "bench_http") is None
    assert log.exists()
    assert keep_if_errors(tmp_path / "missing.log", tmp_path, "bench_http") is None
