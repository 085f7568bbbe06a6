"""The container's keys for values it holds more than one of (the three inspectors)."""

from typing import Protocol

from application.ports.backend_inspector import BackendInspector


class DatabaseInspector(BackendInspector, Protocol):
    """The records backend's inspector (a distinct key for the container)."""


class BlobInspector(BackendInspector, Protocol):
    """The blob store's inspector."""


class CacheInspector(BackendInspector, Protocol):
    """The cache's inspector."""
