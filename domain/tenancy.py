"""Tenants: whose evaluations a caller sees (ADR 0032).

A tenant name becomes part of storage names (``<tenant>/<id>`` outside the database),
so it is strict: lowercase letters, digits, ``_`` and ``-``, starting with a letter or
digit, at most 63 characters; never ``/`` or ``:``, which those names use as separators.
"""

import re
from typing import NewType

TenantId = NewType("TenantId", str)

DEFAULT_TENANT = TenantId("default")
_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def parse_tenant(value: str) -> TenantId:
    """``value`` as a :class:`TenantId`, or ``ValueError`` saying what is wrong with it."""
    if not _TENANT.fullmatch(value):
        raise ValueError("a tenant is 1 to 63 of a-z 0-9 _ -, starting with a letter or a digit")
    return TenantId(value)
