"""The plans of the service as a whole: statistics, health, storage layout."""

from typing import Never

import msgspec

from crucible_storage._build import new_request, read
from crucible_storage._plan import Call, Plan, Reply, one
from crucible_storage.models import Health, Statistics, StorageInfo


def statistics() -> Plan[Never, Statistics]:
    return (yield from one(read("/statistics", Statistics)))


def _health(reply: Reply) -> Health:
    return msgspec.json.decode(reply.body, type=Health)


def health() -> Plan[Never, Health]:
    """The health report; an ``unavailable`` one (a 503) is returned, not raised."""
    return (yield from one(Call(new_request("GET", "/health"), _health, ok=frozenset({503}))))


def storage_info() -> Plan[Never, StorageInfo]:
    return (yield from one(read("/storage-info", StorageInfo)))
