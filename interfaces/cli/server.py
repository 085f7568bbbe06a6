"""``serve`` and ``migrate``."""

import signal
import sys
from types import FrameType

import click

from interfaces.cli import CONTEXT_SETTINGS
from interfaces.cli.common import fail, load
from interfaces.settings import Settings, StorageBackend

# SIGTERM: stop accepting, let in-flight requests finish (at most this long), then
# run the lifespan shutdown, which closes the database pools and the Redis client.
GRACEFUL_SHUTDOWN_S = 30
WORKER_APP = "interfaces.cli.server:worker_app"


@click.command(context_settings=CONTEXT_SETTINGS)
def migrate() -> None:
    """Upgrade the database to the newest schema (Alembic ``upgrade head``).

    Connects as MIGRATION_DATABASE_URL, the role that owns the tables, when it is set;
    else as DATABASE_URL.

    \b
    Examples:
      DATABASE_URL=postgresql://postgres@127.0.0.1/crucible storage-service migrate
      MIGRATION_DATABASE_URL=postgresql://crucible_owner@db/crucible storage-service migrate
    """
    settings = load()
    upgrade_or_exit(settings.database.owner_url)
    click.echo(f"database at head: {redacted(settings.database.owner_url)}")


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--host", default=None, help="Interface to bind (default: HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: PORT or 8082).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: WORKERS or 1).",
)
@click.option("--no-migrate", is_flag=True, help="Do not upgrade the database first.")
def serve(host: str | None, port: int | None, workers: int | None, no_migrate: bool) -> None:
    """Serve the HTTP API (upgrading the database schema first, as MIGRATION_DATABASE_URL).

    Uses uvloop and httptools when installed. SIGTERM drains in-flight requests
    (up to 30 s), then closes the database pools and the Redis connection.

    \b
    Examples:
      HOST=0.0.0.0 PORT=8082 storage-service serve
      WORKERS=4 LOG_FORMAT=json storage-service serve
    """
    import uvicorn

    settings = load()
    if not no_migrate and settings.storage.backend is StorageBackend.DATABASE:
        hint = "; start it, or serve --no-migrate to serve on the schema it has when it is back"
        upgrade_or_exit(settings.database.owner_url, hint)
    elif settings.storage.backend is StorageBackend.FILE:
        from interfaces.cli.recovery import prepare_file_index, serving

        prepare_file_index(settings)
        serving(settings)
    workers = workers or settings.server.workers
    options = {
        "host": host or settings.server.host,
        "port": port or settings.server.port,
        "log_level": settings.server.log_level.lower(),
        "log_config": None,  # our handler (interfaces.log_config) formats uvicorn's records too
        "proxy_headers": True,
        "access_log": False,  # the app logs one line per request, with its request id
        "loop": "auto",  # uvloop when installed
        "http": "auto",  # httptools when installed
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
    }
    if workers > 1:
        # Worker processes import the app themselves: each builds its own from the environment.
        uvicorn.run(WORKER_APP, factory=True, workers=workers, **options)  # type: ignore[arg-type]
    else:
        from interfaces.http.app import create_app

        # uvicorn handles SIGTERM (drain, shut down) and then raises it again once done;
        # this handler turns that final signal into a clean exit 0.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]


def upgrade_or_exit(url: str, hint: str = "") -> None:
    """Upgrade the schema; a database out of reach is one line and exit 1, not a traceback.

    It is the usual failure at start: the database not up yet, or out of connection slots.
    """
    from infrastructure.sql.errors import is_unavailable, short_reason
    from infrastructure.sql.migrate import upgrade

    try:
        upgrade(url)
    except Exception as error:
        if not is_unavailable(error):
            raise
        fail(f"cannot reach the database at {redacted(url)}: {short_reason(error)}{hint}")


def _exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    sys.exit(0)


def worker_app() -> object:
    """The app of one worker process (``serve --workers N``), logging as the parent does."""
    from interfaces.http.app import create_app

    settings: Settings = load()
    return create_app(settings)


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
