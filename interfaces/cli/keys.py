"""``new-key`` and ``rotate-keys``: the key-encryption keys of encryption at rest."""

import sys
from pathlib import Path

import click
from dishka import AsyncContainer

from application.ports.blob_store import BlobStore
from application.ports.evaluation_keys import EvaluationKeys
from application.ports.sealed_blobs import SealedRows
from application.services.payloads import is_mirror_file
from application.use_cases.rotate_keys import RotateKeys, RotationReport
from infrastructure.crypto.blob_store import SealedBlobStore
from infrastructure.crypto.evaluation_keys import EvaluationKeyring
from infrastructure.crypto.keyring import KeyringError, append_new_key
from interfaces.cli import CONTEXT_SETTINGS
from interfaces.cli.common import echo_json, fail, json_option, load, progress_bar, run, summary
from interfaces.providers.blobs import BlobPlacement
from interfaces.settings import StorageBackend


@click.command("new-key", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The keys file (ENCRYPTION_KEYS_FILE): created owner-only, or a key appended to it.",
)
def new_key(out: Path) -> None:
    """Write a new key-encryption key; appended to an existing file, it becomes the active key.

    The key's id is printed, never the key. After appending, restart the service (or its
    replicas) and run ``rotate-keys`` to re-wrap the data keys under it; an older key
    can leave the file once ``rotate-keys`` reports none of its blobs left.

    \b
    Examples:
      storage-service new-key --out /etc/crucible/keys
    """
    try:
        kid = append_new_key(out)
    except KeyringError as exc:
        fail(f"--out: {exc}; nothing was written", 2)
    except OSError as exc:
        fail(f"--out: cannot write {out}: {exc.strerror or exc}", 2)
    click.echo(kid)


@click.command("rotate-keys", context_settings=CONTEXT_SETTINGS)
@json_option
def rotate_keys(as_json: bool) -> None:
    """Re-wrap every sealed blob's data key under the active key (the keys file's last).

    Only each blob's header is rewritten: its content is not decrypted or encrypted
    again. The database's sealed values and the evaluation keys of crypto-shredding
    (the key table) are re-wrapped too. With ENCRYPTION=on, blobs stored in clear
    before are sealed too. Blobs already under the active key (or an evaluation key)
    are skipped, so an interrupted run is resumed by running it again. Exit code 1
    when a blob could not be re-wrapped (listed).

    \b
    Examples:
      ENCRYPTION_KEYS_FILE=/etc/crucible/keys storage-service rotate-keys
    """
    settings = load(quiet=as_json)
    if settings.encryption.keys_file is None:
        fail("rotate-keys: ENCRYPTION_KEYS_FILE is not set", 2)

    async def work(container: AsyncContainer) -> RotationReport:
        blobs = await container.get(BlobStore)
        placement = await container.get(BlobPlacement)
        stores = [
            store
            for store in {id(s): s for s in (blobs, *placement.others.values())}.values()
            if isinstance(store, SealedBlobStore)
        ]
        mirrored = settings.storage.file_mirror  # always on for STORAGE_BACKEND=file
        rows = None
        if settings.storage.backend is not StorageBackend.MEMORY:
            rows = await container.get(SealedRows)
        skip = is_mirror_file if mirrored else lambda _: False
        table = await container.get(EvaluationKeys)
        key_table = table if isinstance(table, EvaluationKeyring) else None
        use_case = RotateKeys(stores, rows, skip, key_table)
        keys = await use_case.keys()
        total_rows = await use_case.row_count()
        with progress_bar(not as_json) as progress:
            blobs = progress.add_task("blobs", total=len(keys))
            records = progress.add_task("database rows", total=total_rows)
            return await use_case.execute(
                keys,
                lambda step: progress.advance(blobs, step),
                lambda step: progress.advance(records, step),
            )

    report = run(settings, work)
    if as_json:
        echo_json(report)
    else:
        outcomes = ", ".join(f"{count} {name}" for name, count in report.outcomes.items())
        values = ", ".join(f"{count} {name}" for name, count in report.values.items())
        summary(f"{report.blobs} blobs: {outcomes}; {len(report.failed)} failed")
        summary(f"{report.rows} database rows, their values: {values}")
        keys = ", ".join(f"{count} {name}" for name, count in report.keys.items())
        summary(f"{report.evaluation_keys} evaluation keys: {keys}")
        for key, why in report.failed.items():
            click.echo(f"failed {key}: {why}")
    sys.exit(1 if report.failed else 0)
