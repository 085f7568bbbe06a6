"""The commands through the Litestar CLI: ``litestar --app <app> storage <command>``."""

from click import Group
from litestar.plugins import CLIPluginProtocol


class StorageCLIPlugin(CLIPluginProtocol):
    """Adds the ``storage`` group (every ``storage-service`` command) to the ``litestar`` CLI."""

    def on_cli_init(self, cli: Group) -> None:
        from interfaces.cli import command_group

        cli.add_command(command_group("storage"))
