"""Size and shape limits on caller-supplied JSON and text, checked before any storage."""

from typing import Any

import msgspec

from domain.errors import InvalidTextError


def json_depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value: a scalar is 0, ``{}`` and ``[]`` are 1."""
    depth, level = 0, [(value, 0)]
    while level:  # iterative: a hostile depth cannot exhaust the Python stack
        item, above = level.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth = max(depth, above + 1)
        level.extend((child, above + 1) for child in children)
    return depth


class InputLimits(msgspec.Struct, frozen=True, kw_only=True):
    metadata_bytes: int = 64 * 1024
    metadata_depth: int = 16
    event_message_bytes: int = 64 * 1024
    log_chunk_bytes: int = 1024 * 1024
    list_limit: int = 1000
    # The deepest ``offset`` of a list: deeper pages are walked by keyset cursor.
    list_offset: int = 10_000

    def check_json(self, field: str, value: Any) -> None:
        if json_depth(value) > self.metadata_depth:
            raise InvalidTextError(field, f"may nest at most {self.metadata_depth} levels deep")
        if len(msgspec.json.encode(value)) > self.metadata_bytes:
            raise InvalidTextError(field, f"may hold at most {self.metadata_bytes} bytes of JSON")

    def check_text(self, field: str, value: str, limit: int) -> None:
        if len(value.encode("utf-8")) > limit:
            raise InvalidTextError(field, f"may hold at most {limit} bytes")
