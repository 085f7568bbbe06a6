"""The storage client each process reports with."""

import logging
import os
import threading
from collections.abc import Callable

from crucible_storage import StorageClient

ClientSource = StorageClient | Callable[[], StorageClient]

logger = logging.getLogger("crucible_storage.celery")


class PerProcessClient:
    """One client per process: a forked child never writes on its parent's sockets."""

    def __init__(self, source: ClientSource) -> None:
        self._given = source if isinstance(source, StorageClient) else None
        self._factory = None if isinstance(source, StorageClient) else source
        self._client: StorageClient | None = self._given
        self._pid = os.getpid()
        self._inherited: list[StorageClient] = []
        self._lock = threading.Lock()

    def get(self) -> StorageClient:
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._replace()
            assert self._client is not None
            return self._client

    def renew(self) -> None:
        """In a new pool child: make this process's own client now, before any task."""
        with self._lock:
            if self._pid != os.getpid():
                self._replace()

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                if self._factory is not None:
                    self._client.close()
                self._client = None

    def _replace(self) -> None:
        if self._client is not None and self._pid != os.getpid():
            # Kept, not closed: closing could shut connections the parent still uses.
            self._inherited.append(self._client)
        if self._factory is not None:
            self._client = self._factory()
        else:
            logger.warning(
                "crucible_storage.celery: a StorageClient instance crossed a fork; "
                "pass a factory (client=lambda: StorageClient(...)) so each process "
                "has its own connections"
            )
            self._client = self._given
        self._pid = os.getpid()
