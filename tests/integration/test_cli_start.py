"""``migrate`` and ``serve`` with the database out of reach: one line naming it, exit 1."""

import pytest
from click.testing import CliRunner

from interfaces.cli import main
from tests.services import free_port


@pytest.mark.parametrize(
    ("command", "hint"), [(["migrate"], ""), (["serve", "--port", "1"], "--no-migrate")]
)
def test_an_unreachable_database_is_one_line_and_exit_1(command: list[str], hint: str) -> None:
    url = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/crucible"  # nothing listens
    result = CliRunner().invoke(main, command, env={"DATABASE_URL": url})
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: cannot reach the database at postgresql+asyncpg://postgres:***@")
    assert "ConnectionRefusedError" in line and hint in line
    assert "secret" not in line
