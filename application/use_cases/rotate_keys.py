"""``rotate-keys``: every sealed blob's and database value's data key, and every evaluation
key of the key table, re-wrapped under the active key."""

from collections import Counter
from collections.abc import Callable, Sequence

import msgspec

from application.errors import ApplicationError
from application.ports.sealed_blobs import Rewrap, SealedBlobs, SealedRows
from domain.blob_paths import EVALUATIONS, TENANTS, parse_blob_path

# Every tenant's blobs: the default tenant's, then the others' (ADR 0032).
PREFIXES = (f"{EVALUATIONS}/", f"{TENANTS}/")
ROW_BATCH = 500


class RotationReport(msgspec.Struct, kw_only=True):
    """``outcomes``: per blob; ``values``: per sealed value of the database's ``rows``;
    ``keys``: per evaluation key of the key table (``evaluation_keys`` of them, ADR 0033)."""

    blobs: int = 0
    outcomes: dict[str, int] = msgspec.field(default_factory=dict)
    rows: int = 0
    values: dict[str, int] = msgspec.field(default_factory=dict)
    evaluation_keys: int = 0
    keys: dict[str, int] = msgspec.field(default_factory=dict)
    failed: dict[str, str] = msgspec.field(default_factory=dict)  # key -> why


class RotateKeys:
    """Walks each sealed store's blobs, then the database's rows, then the key table, and
    re-wraps what an older key wraps. A blob or line sealed under an evaluation key needs
    nothing: its evaluation key's row is re-wrapped instead.

    What is already under the active key is skipped, so an interrupted run is resumed by
    running it again: nothing is done twice.
    """

    def __init__(
        self,
        stores: Sequence[SealedBlobs],
        rows: SealedRows | None,
        skip: Callable[[str], bool],
        key_table: SealedRows | None = None,
    ) -> None:
        self._stores = stores
        self._rows = rows
        self._key_table = key_table
        self._skip = skip  # not a blob (the record mirror's own files)

    async def keys(self) -> list[tuple[int, str]]:
        """(store index, key) of every blob to look at, for a progress bar's total."""
        return [
            (index, entry.key)
            for index, store in enumerate(self._stores)
            for prefix in PREFIXES
            async for entry in store.entries(prefix)
            if parse_blob_path(entry.key) is not None and not self._skip(entry.key)
        ]

    async def row_count(self) -> int:
        return 0 if self._rows is None else await self._rows.count()

    async def execute(
        self,
        keys: list[tuple[int, str]],
        advance_blobs: Callable[[int], None] = lambda _: None,
        advance_rows: Callable[[int], None] = lambda _: None,
    ) -> RotationReport:
        outcomes: Counter[Rewrap] = Counter()
        report = RotationReport(blobs=len(keys))
        for index, key in keys:
            try:
                outcomes[await self._stores[index].rewrap(key)] += 1
            except ApplicationError as exc:
                report.failed[key] = str(exc)
            advance_blobs(1)
        report.outcomes = {outcome.value: outcomes[outcome] for outcome in Rewrap}
        values: Counter[Rewrap] = Counter()
        if self._rows is not None:
            async for batch in self._rows.rewrap(ROW_BATCH):
                report.rows += batch.rows
                values.update(batch.outcomes)
                advance_rows(batch.rows)
        report.values = {outcome.value: values[outcome] for outcome in Rewrap}
        wrapped: Counter[Rewrap] = Counter()
        if self._key_table is not None:
            async for batch in self._key_table.rewrap(ROW_BATCH):
                report.evaluation_keys += batch.rows
                wrapped.update(batch.outcomes)
        kept = (Rewrap.CURRENT, Rewrap.REWRAPPED)  # a key is never clear, nor sealed anew
        report.keys = {outcome.value: wrapped[outcome] for outcome in kept}
        return report
