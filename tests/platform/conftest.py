"""The platform suite: each call built as the Crucible platform's client builds it.

Runs on every configuration of the HTTP suite (embedded, the file backend, PostgreSQL +
Redis).
"""

from tests.integration.conftest import backend_settings, client, make_client

__all__ = ["backend_settings", "client", "make_client"]
