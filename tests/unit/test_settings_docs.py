"""README's configuration table and the settings name the same environment variables."""

import re
from pathlib import Path

from interfaces.settings import environment_names

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_names() -> list[str]:
    """The variables in the first column of the table under ``## Configuration``."""
    section = README.read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([A-Z0-9_]+)`", row.split("|")[1])]


def test_every_variable_read_is_documented_and_every_documented_one_is_read() -> None:
    documented = documented_names()
    read = environment_names()
    assert len(documented) == len(set(documented)), "a variable is documented twice"
    assert sorted(set(read) - set(documented)) == [], "read but not in README's table"
    assert sorted(set(documented) - set(read)) == [], "in README's table but not read"
