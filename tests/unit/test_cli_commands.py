"""The console script loads each command when it is asked for, and lists every one."""

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from interfaces.cli import COMMANDS, main


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_listed_command_loads_under_its_name(name: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert isinstance(command, click.Command)
    assert command.name == name


def test_the_help_lists_every_command_and_an_unknown_one_is_refused() -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["--help"])
    assert listed.exit_code == 0, listed.output
    for name in COMMANDS:
        assert f"  {name} " in listed.output
    unknown = runner.invoke(main, ["no-such-command"])
    assert unknown.exit_code == 2
    assert "No such command 'no-such-command'" in unknown.output


def test_an_export_does_not_load_what_it_does_not_use(tmp_path: Path) -> None:
    """An export on the embedded default never imports S3's client, ADBC or NATS."""
    probe = (
        "import sys; from click.testing import CliRunner; from interfaces.cli import main; "
        "runner = CliRunner(); "
        "done = [runner.invoke(main, args) for args in "
        f"(['migrate'], ['export', '--format', 'parquet', '--to', {str(tmp_path / 'out')!r}])]; "
        "assert all(d.exit_code == 0 for d in done), [d.output for d in done]; "
        "print(sorted(m for m in ('aiobotocore', 'adbc_driver_postgresql', 'nats') "
        "if m in sys.modules))"
    )
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        "FILE_STORAGE_PATH": str(tmp_path / "files"),
    }
    for name in ("REDIS_URL", "S3_BUCKET", "NATS_URL", "STORAGE_BACKEND", "BLOB_BACKEND"):
        environment.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=environment,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
