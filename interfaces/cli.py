"""The ``storage-service`` console script: serve, migrate and fsck."""

import asyncio
import logging
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

import click

from interfaces.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from application.use_cases.check_storage import StorageCheck


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Crucible Storage Service: store and serve evaluation records, outputs, logs and events."""


@main.command()
def migrate() -> None:
    """Upgrade DATABASE_URL to the newest schema (Alembic ``upgrade head``).

    \b
    Example:
      DATABASE_URL=postgresql://postgres@127.0.0.1/crucible storage-service migrate
    """
    from infrastructure.sql.migrate import upgrade

    settings = _settings()
    _configure_logging(settings)
    upgrade(settings.database_url)
    click.echo(f"database at head: {_redacted(settings.database_url)}")


@main.command()
@click.option("--host", default=None, help="Interface to bind (default: HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: PORT or 8082).")
@click.option("--no-migrate", is_flag=True, help="Do not upgrade the database first.")
def serve(host: str | None, port: int | None, no_migrate: bool) -> None:
    """Serve the HTTP API (upgrading the database schema first).

    \b
    Example:
      HOST=0.0.0.0 PORT=8082 storage-service serve
    """
    import uvicorn

    from infrastructure.sql.migrate import upgrade
    from interfaces.http.app import create_app

    settings = _settings()
    _configure_logging(settings)
    if not no_migrate and settings.storage_backend.value == "database":
        upgrade(settings.database_url)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        access_log=False,  # the app logs one line per request, with its request id
    )


@main.command()
@click.option("--fix", is_flag=True, help="Delete the orphan blobs found.")
@click.option(
    "--grace-minutes",
    type=click.IntRange(min=0),
    default=60,
    show_default=True,
    help="Blobs younger than this may belong to a write in progress: never orphans.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def fsck(fix: bool, grace_minutes: int, as_json: bool) -> None:
    """Find blobs no record points at (orphans) and records whose blob is missing.

    Exits 0 when storage is consistent (after --fix removed the orphans), 1 otherwise.

    \b
    Examples:
      storage-service fsck
      storage-service fsck --fix --grace-minutes 120
      storage-service fsck --json | jq .missing
    """
    import msgspec

    settings = _settings()
    _configure_logging(settings)
    result = asyncio.run(_check_storage(settings, fix=fix, grace=timedelta(minutes=grace_minutes)))
    if as_json:
        payload = msgspec.structs.asdict(result) | {"clean": result.clean}
        click.echo(msgspec.json.encode(payload).decode())
    else:
        click.echo(
            f"{result.blobs} blob(s), {result.referenced} referenced by records; "
            f"{len(result.orphans)} orphan(s) ({result.orphan_bytes} bytes), "
            f"{len(result.missing)} missing, {len(result.young)} too young to judge"
        )
        for key in result.orphans:
            click.echo(f"orphan  {key}{' (removed)' if key in result.removed else ''}")
        for key in result.missing:
            click.echo(f"missing {key}")
    sys.exit(0 if result.clean else 1)


async def _check_storage(settings: Settings, *, fix: bool, grace: timedelta) -> "StorageCheck":
    from dishka import make_async_container

    from application.use_cases.check_storage import CheckStorage
    from interfaces.providers import build_providers

    container = make_async_container(*build_providers(settings), context={Settings: settings})
    try:
        async with container() as request:
            check = await request.get(CheckStorage)
            return await check.execute(fix=fix, grace=grace)
    finally:
        await container.close()


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


if __name__ == "__main__":
    main()
