"""Routing outputs and errors to where they live, and reading them back whole."""

from collections.abc import AsyncIterator

import msgspec

from application.ports.blob_store import BlobStore
from domain.evaluation import Evaluation, ensure_storable_text
from domain.identifiers import EvaluationId
from domain.payload import (
    PayloadKind,
    PayloadLocation,
    StorageThresholds,
    StoredPayload,
    route_payload,
)

_encoder = msgspec.json.Encoder()


def snapshot_key(evaluation_id: EvaluationId) -> str:
    """``evaluations/{id}/metadata.json``: enough to rebuild the record from files alone."""
    return f"evaluations/{evaluation_id}/metadata.json"


class PayloadStore:
    def __init__(self, blobs: BlobStore, thresholds: StorageThresholds) -> None:
        self._blobs = blobs
        self._thresholds = thresholds

    async def store(
        self, evaluation_id: EvaluationId, kind: PayloadKind, text: str
    ) -> StoredPayload:
        """Route ``text``; a large one is written (atomically) before the record commits.

        Writing the blob first means a crash leaves at worst an orphan blob,
        never a record that points at nothing.
        """
        ensure_storable_text(kind, text)
        routed = route_payload(evaluation_id, kind, text, self._thresholds)
        if routed.blob is not None and routed.stored.key is not None:
            await self._blobs.put(routed.stored.key, routed.blob)
        return routed.stored

    async def write_snapshot(self, evaluation: Evaluation) -> None:
        """Keep ``metadata.json`` beside an evaluation's blobs in step with the record."""
        if _has_blob(evaluation):
            await self._blobs.put(snapshot_key(evaluation.id), _encoder.encode(evaluation))

    async def discard_replaced(self, before: Evaluation, after: Evaluation) -> None:
        """Delete blobs the committed record no longer points at."""
        for old, new in ((before.output, after.output), (before.error, after.error)):
            if old is not None and old.key is not None and (new is None or new.key != old.key):
                await self._blobs.delete(old.key)
        if _has_blob(before) and not _has_blob(after):
            await self._blobs.delete(snapshot_key(after.id))

    async def read_text(self, payload: StoredPayload | None) -> str | None:
        """The full text, wherever it lives."""
        if payload is None:
            return None
        if payload.location is PayloadLocation.INLINE or payload.key is None:
            return payload.text
        return (await self._blobs.get(payload.key)).decode("utf-8")

    async def stream(self, payload: StoredPayload) -> AsyncIterator[bytes]:
        """The full content as UTF-8 bytes, in chunks."""
        if payload.location is PayloadLocation.INLINE or payload.key is None:
            yield payload.text.encode("utf-8")
            return
        async for chunk in self._blobs.stream(payload.key):
            yield chunk


def _has_blob(evaluation: Evaluation) -> bool:
    return any(
        payload is not None and payload.key is not None
        for payload in (evaluation.output, evaluation.error)
    )
