"""The container's keys for values it holds more than one of (the three inspectors)."""

from typing import Protocol

from application.ports.backend_inspector import BackendInspector
from application.ports.health_probe import HealthProbe


class DatabaseInspector(BackendInspector, Protocol):
    """The records backend's inspector (a distinct key for the container): of the
    request's tenant, whose rows alone it may count (ADR 0032)."""


class DatabaseProbe(HealthProbe, Protocol):
    """The records backend's health probe, of the application: it counts nothing."""


class BlobInspector(BackendInspector, Protocol):
    """The blob store's inspector."""


class CacheInspector(BackendInspector, Protocol):
    """The cache's inspector."""
