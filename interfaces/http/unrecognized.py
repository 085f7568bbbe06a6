"""Fields of a record body this service does not know: kept, named, never refused.

A strict 422 broke a real client (the platform's Celery tasks send fields that
were added after this API), and dropping them silently would lose data. So a
record body keeps what it does not know in the record's metadata under
``_unrecognized`` and names it in ``X-Unrecognized-Fields`` (ADR 0013).
"""

import logging
from typing import Any
from urllib.parse import quote

import msgspec

from domain.evaluation import UNRECOGNIZED_KEY

logger = logging.getLogger("storage_service.http")
HEADER = "X-Unrecognized-Fields"

_RawObject = msgspec.json.Decoder(dict[str, msgspec.Raw])


def known_names(body_type: type[msgspec.Struct]) -> frozenset[str]:
    return frozenset(field.encode_name for field in msgspec.structs.fields(body_type))


def unrecognized(body: bytes, known: frozenset[str]) -> dict[str, Any]:
    """The members of the JSON object ``body`` whose names are not in ``known``.

    Values are decoded only for those members, so a large known field (an
    output) costs one scan, not a second decode.
    """
    members = _RawObject.decode(body)
    extra = {name: msgspec.json.decode(raw) for name, raw in members.items() if name not in known}
    if extra:
        logger.warning(
            "kept unrecognized field(s) %s under metadata.%s", sorted(extra), UNRECOGNIZED_KEY
        )
    return extra


def header(extra: dict[str, Any]) -> dict[str, str]:
    """The names, percent-encoded: a header holds only visible ASCII, and a name may not."""
    return {HEADER: ", ".join(quote(name, safe="") for name in sorted(extra))} if extra else {}
