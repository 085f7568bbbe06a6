"""The ``storage-service`` console script, one module per command group.

``server`` (serve, migrate), ``storage`` (fsck, usage), ``cache`` (warm-cache,
rebuild-cache), ``data`` (cleanup, export, import), ``objects`` (tier,
s3-lifecycle), ``failover`` (replay) and ``relay`` (the change feed to NATS). The same
commands are reachable through the Litestar CLI (``litestar storage ...``, see ``plugin``).
"""

import click

from interfaces.cli.cache import rebuild_cache, warm_cache
from interfaces.cli.common import CONTEXT_SETTINGS
from interfaces.cli.data import cleanup, export_command, import_command
from interfaces.cli.failover import replay
from interfaces.cli.objects import s3_lifecycle, tier
from interfaces.cli.relay import relay
from interfaces.cli.server import migrate, serve
from interfaces.cli.storage import fsck, usage

COMMANDS: tuple[click.Command, ...] = (
    serve,
    migrate,
    fsck,
    usage,
    cleanup,
    warm_cache,
    rebuild_cache,
    export_command,
    import_command,
    tier,
    s3_lifecycle,
    replay,
    relay,
)


def command_group(name: str | None = None) -> click.Group:
    """Every command in one group (the console script, or ``litestar storage``)."""
    group = click.Group(
        name,
        context_settings=CONTEXT_SETTINGS,
        help="Crucible Storage Service: store and serve evaluation records, outputs, logs "
        "and events; operate the storage behind them.",
    )
    for command in COMMANDS:
        group.add_command(command)
    return group


main = command_group("storage-service")

__all__ = ["COMMANDS", "command_group", "main"]
