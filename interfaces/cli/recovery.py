"""Recovery from the file tree: ``rebuild-database``, and the file backend's index (built at
``serve`` when it is missing or torn, checked and repaired by ``fsck``)."""

import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio.to_thread
import click
import msgspec
from dishka import AsyncContainer

from application.ports.evaluation_queries import EvaluationQueries
from application.services.payloads import PayloadStore
from application.use_cases import rebuild_database as rebuilding
from application.use_cases.import_evaluations import ImportEvaluation
from application.use_cases.rebuild_database import CopyToMirror, RebuildReport
from domain.blob_paths import EVALUATIONS, TENANTS
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId, qualified_id
from infrastructure.files.durable import locked_directory
from infrastructure.files.mirror import RECORD_NAME, FileRecordMirror
from infrastructure.sql.index_file import (
    MISSING,
    carry_keys,
    hold_serving,
    index_is_empty,
    index_problem,
    install_index,
    remove_index,
    set_aside,
    unserved,
)
from infrastructure.sql.migrate import upgrade
from interfaces.acting import acting_for
from interfaces.cli import CONTEXT_SETTINGS
from interfaces.cli.common import (
    echo_json,
    fail,
    human_bytes,
    json_option,
    load,
    progress_bar,
    run,
    summary,
)
from interfaces.providers.sealing import BlobSeal
from interfaces.settings import Settings, StorageBackend, file_index_path

logger = logging.getLogger("storage_service.recovery")


def restore_from_tree(settings: Settings, source: Path, *, show_progress: bool) -> RebuildReport:
    """Restore every evaluation of ``source`` the (migrated) database does not hold."""
    own_tree = source.resolve() == settings.storage.file_storage_path.resolve()

    async def rebuild(container: AsyncContainer) -> RebuildReport:
        # The target database's key table opens what is sealed under evaluation keys.
        mirror = FileRecordMirror(source, (await container.get(BlobSeal)).lines())

        @asynccontextmanager
        async def scope(
            tenant: TenantId,
        ) -> AsyncIterator[tuple[ImportEvaluation, PayloadStore]]:
            with acting_for(tenant):
                async with container() as request:
                    yield await request.get(ImportEvaluation), await request.get(PayloadStore)

        with progress_bar(show_progress) as progress:
            task = progress.add_task("restoring", total=await mirror.count())
            return await rebuilding.rebuild_database(
                mirror,
                scope,
                on_progress=lambda read: progress.advance(task, read),
                copy=not own_tree,
            )

    return run(settings, rebuild)


def build_file_index(
    settings: Settings, *, show_progress: bool, old: Path | None = None
) -> RebuildReport:
    """A new index of the whole tree, built beside the old one and moved into place only
    once whole (a crash mid-build leaves the old index, or none, never half of one).
    ``old``: the index it replaces, whose evaluation keys it keeps (ADR 0033)."""
    root = settings.storage.file_storage_path
    path = file_index_path(root)
    building = path.with_name(path.name + ".building")
    remove_index(building)
    aside = settings.changed(database={"url": f"sqlite+aiosqlite:///{building}"})
    upgrade(aside.database.url)
    if old is not None and carry_keys(old, building) is None:
        logger.warning("the evaluation keys of %s could not be read", old)
    report = restore_from_tree(aside, root, show_progress=show_progress)
    install_index(building, path)
    return report


def echo_rebuild(report: RebuildReport) -> None:
    for unreadable in report.unreadable:
        click.echo(f"unreadable: {unreadable.path}: {unreadable.reason}", err=True)
    for problem in report.problems:
        click.echo(f"incomplete: {problem}", err=True)
    summary(
        f"restored {report.restored} evaluation(s) ({report.events} event(s), "
        f"{human_bytes(report.log_bytes)} of logs), skipped {report.skipped} already "
        f"present, {len(report.unreadable)} unreadable"
    )


@click.command("rebuild-database", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The file tree a FILE_MIRROR=true service kept (its FILE_STORAGE_PATH).",
)
@json_option
def rebuild_database(source: Path, as_json: bool) -> None:
    """Restore the database (DATABASE_URL) from a record mirror's file tree.

    Every evaluation of the tree is stored with its events, its log and its payload
    pointers (the blobs stay where they are: point FILE_STORAGE_PATH at the same
    tree). Migrates the database first. Idempotent: evaluations already present are
    skipped, so an interrupted rebuild is simply run again. What could not be read
    (a torn file, a log gap, a missing blob) is listed; the exit code is then 1.

    \b
    Examples:
      storage-service rebuild-database --from /var/lib/crucible/files
      DATABASE_URL=postgresql://postgres@db/crucible storage-service rebuild-database \\
          --from ./data/files --json
    """
    settings = load(quiet=as_json)
    if settings.storage.backend is StorageBackend.MEMORY:
        fail("rebuild-database restores a database: STORAGE_BACKEND=memory has none", 2)
    if not any((source / name).is_dir() for name in (EVALUATIONS, TENANTS)):
        fail(f"--from: {source} holds no evaluations/ or tenants/ (not a mirrored tree)", 2)
    upgrade(settings.database.owner_url)
    report = restore_from_tree(settings, source, show_progress=not as_json)
    if as_json:
        echo_json(report)
    else:
        echo_rebuild(report)
    sys.exit(0 if report.complete else 1)


# --- the file backend's index -------------------------------------------------------------


class IndexCheck(msgspec.Struct, kw_only=True):
    """The file backend's index against its tree.

    ``problem``: the index was missing or torn (``None``: it opened whole); ``set_aside``:
    where a torn (or, asked to, a whole) index was moved; ``unindexed``: records of the
    tree the index lacks; ``stale``: records the index holds short of the tree (an older
    version, fewer events or log bytes: an index restored from an older backup);
    ``uncopied``: records whose copy is short of the index (a crash between a commit and
    its copy, a copy that failed).
    """

    problem: str | None = None
    set_aside: str | None = None
    unindexed: list[str] = msgspec.field(default_factory=list)
    stale: list[str] = msgspec.field(default_factory=list)
    uncopied: list[str] = msgspec.field(default_factory=list)
    copied: list[str] = msgspec.field(default_factory=list)
    rebuild: RebuildReport | None = None

    @property
    def clean(self) -> bool:
        """Nothing left to fix: what was found was fixed, and a rebuild read everything."""
        if self.rebuild is not None:
            return self.rebuild.complete and set(self.uncopied) <= set(self.copied)
        return (
            self.problem is None
            and not self.unindexed
            and not self.stale
            and set(self.uncopied) <= set(self.copied)
        )


def echo_index(check: IndexCheck) -> None:
    """The index part of ``fsck``'s report, one line per finding."""
    if check.problem is not None:
        click.echo(f"index {check.problem}")
    if check.set_aside is not None:
        click.echo(f"index set aside as {check.set_aside}")
    for key in check.unindexed:
        click.echo(f"unindexed {key}")
    for key in check.stale:
        click.echo(f"stale     {key} (older in the index than in the tree: --rebuild-index)")
    for key in check.uncopied:
        click.echo(f"uncopied  {key}{' (copied)' if key in check.copied else ''}")
    if check.rebuild is not None:
        echo_rebuild(check.rebuild)


_SERVING: list[int] = []  # the descriptor whose lock says this process serves its index


def serving(settings: Settings) -> None:
    """Mark this process as serving its index until it exits (``fsck`` then refuses to
    replace the index under it)."""
    _SERVING.append(hold_serving(file_index_path(settings.storage.file_storage_path).parent))


class IndexInUseError(Exception):
    """A service serves the index a rebuild would replace."""


def prepare_file_index(settings: Settings) -> None:
    """At ``serve``: build the index from the tree when it is missing or torn, or empty
    beside a tree that holds records; else migrate it. One process of the host at a time
    (a lock on the index's directory), so a second ``serve`` waits for the first's build
    and then finds the index whole; a served index is never replaced under its process."""
    root = settings.storage.file_storage_path
    path = file_index_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked_directory(path.parent):
        _prepare(settings, root, path)


def _prepare(settings: Settings, root: Path, path: Path) -> None:
    problem = index_problem(path)
    if problem is None:
        upgrade(settings.database.url)
        if index_is_empty(path) and _holds_records(root):
            # Filled in place (a process may be serving this file): its audit trail,
            # keys and feed stay, and restoring skips nothing it holds.
            _log_build(root, restore_from_tree(settings, root, show_progress=False))
        return
    aside = None
    if problem != MISSING:
        aside = set_aside(path)
        logger.warning("the file index is %s; set aside as %s and rebuilt", problem, aside)
    _log_build(root, build_file_index(settings, show_progress=False, old=aside))


@contextmanager
def _replaceable(path: Path) -> Iterator[None]:
    """Held while the index is replaced; refused while a process serves it."""
    with unserved(path.parent) as free:
        if not free:
            raise IndexInUseError(
                f"a storage-service serves {path}: stop it before the index is replaced"
            )
        yield


def _holds_records(root: Path) -> bool:
    """Whether any evaluation's directory of the tree holds a record's copy."""
    mirror = FileRecordMirror(root)
    return any(
        (mirror.directory(tenant, name) / RECORD_NAME).exists()
        for tenant in mirror.tenants()
        for name in mirror.directories(tenant)
    )


async def _compare_tenant(
    container: AsyncContainer,
    mirror: FileRecordMirror,
    tenant: TenantId,
    check: IndexCheck,
    *,
    copy: bool,
) -> None:
    """``check``'s findings of one tenant, by qualified id; ``copy``: what the tree lacks
    is copied out."""
    tree = await mirror.tallies(tenant)
    async with container() as request:
        indexed = await (await request.get(EvaluationQueries)).tallies()
    both = tree.keys() & indexed.keys()
    uncopied = sorted(
        key for key, tally in indexed.items() if key not in tree or tree[key].short_of(tally)
    )
    check.unindexed += [qualified_id(tenant, key) for key in sorted(tree.keys() - indexed.keys())]
    check.stale += [
        qualified_id(tenant, key) for key in sorted(both) if indexed[key].short_of(tree[key])
    ]
    check.uncopied += [qualified_id(tenant, key) for key in uncopied]
    if copy:
        for key in uncopied:
            async with container() as request:
                if await (await request.get(CopyToMirror)).execute(EvaluationId(key)):
                    check.copied.append(qualified_id(tenant, key))


def _log_build(root: Path, report: RebuildReport) -> None:
    logger.info(
        "file index built from %s: %d evaluation(s), %d unreadable",
        root,
        report.restored,
        len(report.unreadable),
    )
    for unreadable in report.unreadable:
        logger.warning("not indexed: %s: %s", unreadable.path, unreadable.reason)


def check_file_index(
    settings: Settings, *, fix: bool, rebuild: bool, show_progress: bool
) -> IndexCheck:
    """Compare the index with the tree. ``fix``: rebuild a missing or torn index, copy out
    what the tree lacks, index what the index lacks; ``rebuild``: after the copies, set
    the index aside and build it anew from the tree (for ``stale`` records)."""
    root = settings.storage.file_storage_path
    path = file_index_path(root)
    check = IndexCheck(problem=index_problem(path))
    if check.problem is not None:
        if fix or rebuild:
            with _replaceable(path):
                aside = None
                if check.problem != MISSING:
                    aside = set_aside(path)
                    check.set_aside = str(aside)
                check.rebuild = build_file_index(settings, show_progress=show_progress, old=aside)
        return check
    upgrade(settings.database.url)

    async def compare(container: AsyncContainer) -> None:
        mirror = FileRecordMirror(root, (await container.get(BlobSeal)).lines())
        tenants = await anyio.to_thread.run_sync(lambda: list(mirror.tenants()))
        for tenant in tenants:
            with acting_for(tenant):
                await _compare_tenant(container, mirror, tenant, check, copy=fix or rebuild)

    run(settings, compare)
    if rebuild:
        with _replaceable(path):
            aside = set_aside(path, "replaced")
            check.set_aside = str(aside)
            check.rebuild = build_file_index(settings, show_progress=show_progress, old=aside)
    elif fix and check.unindexed:
        # Restoring skips the records the index holds, so this adds only the missing.
        check.rebuild = restore_from_tree(settings, root, show_progress=show_progress)
    return check
