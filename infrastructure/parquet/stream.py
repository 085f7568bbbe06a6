"""One Parquet file produced as it is written: each row group's bytes as soon as they exist.

A Parquet file ends with its footer, but its row groups come first and in order, so a
file can be sent while it is written: memory holds one row group, not the file.
"""

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from application.ports.warehouse import RowBatch, Table
from infrastructure.parquet.schema import conformed, schema


class _Chunks:
    """The writable end pyarrow writes to: keeps what was written until it is taken."""

    closed = False

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        return None

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data, self._chunks = b"".join(self._chunks), []
        return data


class ParquetStream:
    """``write`` a page of rows, get the bytes to send; ``close`` gives the footer."""

    def __init__(self, kind: Table, promoted: Sequence[str] = ()) -> None:
        self._kind = kind
        self._promoted = list(promoted)
        self._out = _Chunks()
        self._writer = pq.ParquetWriter(
            pa.PythonFile(self._out, mode="w"), schema(kind, self._promoted), compression="zstd"
        )

    def write(self, rows: RowBatch) -> bytes:
        table = conformed(self._kind, rows, self._promoted)
        if table.num_rows:
            self._writer.write_table(table)
        return self._out.take()

    def close(self) -> bytes:
        self._writer.close()
        return self._out.take()
