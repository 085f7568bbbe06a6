"""A request body streamed from the caller's source."""

import io
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import IO

CHUNK_SIZE = 256 * 1024
UploadSource = str | bytes | os.PathLike[str] | IO[bytes] | Iterable[bytes] | AsyncIterable[bytes]


class Upload:
    """A request body read chunk by chunk from its source, never held whole.

    A path, bytes, text or a seekable file can be sent again (so an upload is
    retried); an iterator is consumed by its one attempt.
    """

    def __init__(self, source: UploadSource) -> None:
        self._source = source.encode() if isinstance(source, str) else source
        self.length: int | None = None
        self.replayable = True
        if isinstance(self._source, bytes):
            self.length = len(self._source)
        elif isinstance(source, os.PathLike):
            self.length = os.stat(source).st_size
        elif isinstance(source, io.IOBase):
            self.replayable = source.seekable()
            self._start = source.tell() if self.replayable else 0
        else:
            self.replayable = False

    def chunks(self) -> Iterator[bytes]:
        source = self._source
        if isinstance(source, bytes):
            yield source
        elif isinstance(source, os.PathLike):
            with open(source, "rb") as file:
                yield from iter(lambda: file.read(CHUNK_SIZE), b"")
        elif isinstance(source, io.IOBase):
            if self.replayable:
                source.seek(self._start)
            yield from iter(lambda: bytes(source.read(CHUNK_SIZE)), b"")
        elif isinstance(source, AsyncIterable):
            raise TypeError("an async iterable can only be uploaded by AsyncStorageClient")
        else:
            yield from source

    async def achunks(self) -> AsyncIterator[bytes]:
        if isinstance(self._source, AsyncIterable):
            async for chunk in self._source:
                yield chunk
            return
        for chunk in self.chunks():
            yield chunk
