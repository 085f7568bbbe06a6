"""The image is built from what the project really has (no Docker engine is needed to check)."""

import json
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def copied_sources() -> list[str]:
    sources: list[str] = []
    for line in DOCKERFILE.splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and not any(part.startswith("--from") for part in parts):
            sources.extend(parts[1:-1])
    return sources


def test_every_copied_path_exists() -> None:
    sources = copied_sources()
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source


def test_every_packaged_module_is_copied() -> None:
    packages = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert set(packages) <= set(copied_sources())


def test_the_entrypoint_is_the_console_script() -> None:
    match = re.search(r"^ENTRYPOINT (\[.*\])$", DOCKERFILE, re.MULTILINE)
    assert match is not None
    [script] = json.loads(match.group(1))
    assert script in PYPROJECT["project"]["scripts"]


def test_the_uv_image_matches_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text()
    [pinned] = re.findall(r"^UV_VERSION := (\S+)$", makefile, re.MULTILINE)
    assert f"ghcr.io/astral-sh/uv:{pinned} " in DOCKERFILE


def test_compose_runs_the_service_on_postgres_and_redis() -> None:
    import yaml

    from interfaces.settings import load_settings

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    storage = services["storage"]
    settings = load_settings(storage["environment"])
    assert settings.database.is_postgres
    assert settings.redis.url == "redis://redis:6379/0"
    for dependency, condition in storage["depends_on"].items():
        assert condition == {"condition": "service_healthy"}
        assert "healthcheck" in services[dependency]
    for volume in storage["volumes"] + services["postgres"]["volumes"]:
        assert volume.split(":")[0] in compose["volumes"]
