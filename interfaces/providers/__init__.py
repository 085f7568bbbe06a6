"""The composition root: the only package that knows every adapter.

Settings pick the adapters: SQL (SQLite or PostgreSQL) or memory for records,
files, S3 or memory for blobs, Redis or in-process for the cache and the running
registry. APP scope holds engines and clients; REQUEST scope holds the session
and the use cases that share it. Each module wires one concern.
"""

from dishka import Provider

from interfaces.providers.failover import FailoverProvider
from interfaces.providers.selection import selected
from interfaces.settings import Settings


def build_providers(settings: Settings) -> list[Provider]:
    """Every provider of a deployment configured by ``settings``."""
    return [*selected(settings), FailoverProvider()]
