"""What every command shares: settings, logging, one container scope, progress, output."""

import asyncio
import getpass
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

import click
import msgspec
from click.decorators import FC
from dishka import AsyncContainer, make_async_container
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from application.errors import ApplicationError
from domain.audit import AuditContext
from domain.errors import DomainError
from domain.tenancy import DEFAULT_TENANT, TenantId, parse_tenant
from interfaces.acting import acting_as
from interfaces.log_config import configure_logging
from interfaces.settings import Settings, SettingsError, load_settings

T = TypeVar("T")
_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON object (no progress)."
)


def count_option(
    flag: str, *, default: int, help: str, minimum: int = 1, maximum: int | None = None
) -> Callable[[FC], FC]:
    """A whole-number option with a floor, whose default ``--help`` shows."""
    return click.option(
        flag,
        type=click.IntRange(min=minimum, max=maximum),
        default=default,
        show_default=True,
        help=help,
    )


def _tenant(_context: click.Context, _parameter: click.Parameter, value: str) -> TenantId:
    try:
        return parse_tenant(value)
    except ValueError as exc:
        fail(f"--tenant: {exc}", code=2)


tenant_option = click.option(
    "--tenant",
    default=DEFAULT_TENANT,
    show_default=True,
    callback=_tenant,
    help="The tenant whose evaluations the command reads and writes.",
)


def load(*, quiet: bool = False) -> Settings:
    """Settings from the environment, logging configured; a bad value exits 2."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
    configure_logging("WARNING" if quiet else settings.server.log_level, settings.server.log_format)
    return settings


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def run(
    settings: Settings,
    work: Callable[[AsyncContainer], Awaitable[T]],
    tenant: TenantId = DEFAULT_TENANT,
) -> T:
    """Run ``work`` on a fresh container, acting for ``tenant``; failures exit 1 with one line."""

    async def main() -> T:
        container = make_async_container(*_providers(settings), context={Settings: settings})
        try:
            with acting_as(AuditContext(actor=f"cli:{_user()}", tenant=tenant)):
                return await work(container)
        finally:
            await container.close()

    try:
        return asyncio.run(main())
    except (ApplicationError, DomainError) as exc:
        fail(str(exc))


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's arbitrary user)
        return str(os.getuid())


def _providers(settings: Settings) -> list[Any]:
    from interfaces.providers import build_providers

    return build_providers(settings)


def parse_age(raw: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``1d12h``: a positive age."""
    text = raw.strip().lower()
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        raise click.BadParameter(f"{raw!r} is not an age like 30d, 12h, 90m or 1d12h")
    age = sum((timedelta(**{_UNITS[unit]: int(amount)}) for amount, unit in parts), timedelta())
    if age <= timedelta(0):
        raise click.BadParameter("must be longer than zero")
    return age


def parse_since(raw: str) -> datetime:
    """An ISO 8601 date or time (UTC when it has no offset), or an age like ``7d`` before now."""
    try:
        return datetime.now(UTC) - parse_age(raw)
    except click.BadParameter:
        pass
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise click.BadParameter(
            f"{raw!r} is neither an ISO 8601 time nor an age like 7d"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def echo_json(value: Any) -> None:
    click.echo(msgspec.json.encode(value).decode())


class RateColumn(ProgressColumn):
    """Items per second, from rich's own speed estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.1f}/s", style="progress.data.speed")


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Progress]:
    """A progress bar on stderr with counts and rate; silent unless ``enabled`` and a TTY."""
    console = Console(stderr=True)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled or not console.is_terminal,
        transient=False,
    ) as progress:
        yield progress


@contextmanager
def running_count(label: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """``progress_bar`` for work whose total is unknown: shows how many are done so far,
    set through the function it yields."""
    with progress_bar(enabled) as progress:
        task = progress.add_task(label, total=None)
        yield lambda done: progress.update(task, completed=done)


def summary(message: str) -> None:
    """The closing line of a long command, on stderr (stdout may carry data)."""
    click.echo(message, err=True)


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{size} B"
