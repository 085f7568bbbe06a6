"""Disk failures translated at the file adapters' boundary.

A use case sees ``BackendUnavailableError`` (which failover and the 503 answer key
on) or ``BlobMissingError``, never an ``OSError`` or a zstd error.
"""

import errno
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import zstandard

from application.backends import Backend
from application.errors import BackendUnavailableError, BlobMissingError

BACKEND = Backend.FILE

# The name operators filter the store's warnings by, from before this module existed.
logger = logging.getLogger("infrastructure.files.blob_store")

# What opening a key that has no file raises.
_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


def reason(exc: OSError) -> str:
    """``ENOSPC: No space left on device``: the errno's name and its text."""
    code = errno.errorcode.get(exc.errno or 0, "OSError")
    return f"{code}: {exc.strerror or exc}"


@contextmanager
def translate_errors(
    key: str, *, missing: bool = False, decoding: bool = False, writing: bool = False
) -> Iterator[None]:
    """``OSError`` as ``BackendUnavailableError``; with ``missing``, a key without a file
    as ``BlobMissingError``; with ``decoding``, a zstd error as a corrupt blob;
    with ``writing``, the failure logged as a write of ``key`` that did not happen."""
    try:
        yield
    except zstandard.ZstdError as exc:
        if not decoding:
            raise
        raise BackendUnavailableError(BACKEND, f"blob '{key}' is corrupt: {exc}") from exc
    except OSError as exc:
        if missing and isinstance(exc, _MISSING):
            raise BlobMissingError(key) from None
        if writing:
            logger.warning("file store: cannot write %s: %s", key, reason(exc))
        raise BackendUnavailableError(BACKEND, reason(exc)) from exc
