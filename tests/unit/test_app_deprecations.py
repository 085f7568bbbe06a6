"""Building the app uses only the forms Litestar 3 keeps: no deprecation is ours.

Litestar 2 still takes an unmarked ``data``, a dependency known only by its name and a query
parameter without a marker, and warns that 3.0 will not. Some of those warnings are raised
when a module is imported, so the app is built in a fresh interpreter that records them all.
"""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_PROBE = """
import json, sys, warnings
from pathlib import Path

scratch = Path(sys.argv[1])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from litestar.exceptions import LitestarDeprecationWarning

    from interfaces.http.app import create_app
    from interfaces.settings import load_settings

    settings = load_settings(
        {},
        database={"url": f"sqlite+aiosqlite:///{scratch / 'evaluations.db'}"},
        storage={"file_storage_path": scratch / "files"},
    )
    create_app(settings).openapi_schema
for warning in caught:
    if issubclass(warning.category, DeprecationWarning):
        litestar = issubclass(warning.category, LitestarDeprecationWarning)
        print(json.dumps([litestar, warning.filename, str(warning.message)]))
"""


def _installed(filename: str) -> bool:
    """A file of an installed distribution: a deprecation it raises about itself is not ours.

    Code generated at run time (a dataclass's ``__init__``, named ``<string>``) is not one:
    Litestar's ``Parameter(query=...)`` warns from there about the caller's arguments.
    """
    libraries = {Path(sysconfig.get_path(name)) for name in ("purelib", "platlib")}
    return any(Path(filename).is_relative_to(library) for library in libraries)


def test_building_the_app_and_its_document_warns_of_no_deprecation_of_ours(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    recorded = [json.loads(line) for line in done.stdout.splitlines()]
    ours = sorted(
        {
            message
            for litestar, filename, message in recorded
            if litestar or not _installed(filename)
        }
    )
    assert ours == []
