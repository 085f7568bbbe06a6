"""The ``storage-service`` console script, one module per command group.

``server`` (serve, migrate), ``storage`` (fsck, usage), ``cache`` (warm-cache,
rebuild-cache), ``data`` (cleanup, erase, export, import), ``objects`` (tier,
s3-lifecycle), ``failover`` (replay) and ``relay`` (the change feed to NATS). The same
commands are reachable through the Litestar CLI (``litestar storage ...``, see ``plugin``).

A command's module is imported when that command runs, not before: each brings its own
dependencies (S3's client alone takes most of a second), and a scheduled ``export`` or
``replay`` should not pay for the others'.
"""

import importlib

import click

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# Each command's name, and where it is defined (``module:attribute``).
COMMANDS: dict[str, str] = {
    "serve": "interfaces.cli.server:serve",
    "migrate": "interfaces.cli.server:migrate",
    "fsck": "interfaces.cli.storage:fsck",
    "usage": "interfaces.cli.storage:usage",
    "cleanup": "interfaces.cli.data:cleanup",
    "warm-cache": "interfaces.cli.cache:warm_cache",
    "rebuild-cache": "interfaces.cli.cache:rebuild_cache",
    "export": "interfaces.cli.data:export_command",
    "import": "interfaces.cli.data:import_command",
    "erase": "interfaces.cli.data:erase",
    "rebuild-database": "interfaces.cli.recovery:rebuild_database",
    "tier": "interfaces.cli.objects:tier",
    "s3-lifecycle": "interfaces.cli.objects:s3_lifecycle",
    "replay": "interfaces.cli.failover:replay",
    "relay": "interfaces.cli.relay:relay",
    "new-key": "interfaces.cli.keys:new_key",
    "rotate-keys": "interfaces.cli.keys:rotate_keys",
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when the command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: ARG002
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command) or command.name != cmd_name:
            raise RuntimeError(f"{target} is not the {cmd_name!r} command")
        return command


def command_group(name: str | None = None) -> click.Group:
    """Every command in one group (the console script, or ``litestar storage``)."""
    return LazyGroup(
        name,
        context_settings=CONTEXT_SETTINGS,
        help="Crucible Storage Service: store and serve evaluation records, outputs, logs "
        "and events; operate the storage behind them.",
    )


main = command_group("storage-service")

__all__ = ["COMMANDS", "CONTEXT_SETTINGS", "command_group", "main"]
