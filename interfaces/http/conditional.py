"""ETags: written from a record's version, read back from ``If-Match`` and ``If-Range``.

A record's version is its strong ETag, ``"3"``; a payload sent in a content
coding is another representation of it, with its own tag, ``"3-zstd"``.
"""

from interfaces.http.errors import problem


def etag(version: int, encoding: str | None = None) -> str:
    """The strong ETag of ``version``, or of its ``encoding`` representation."""
    return f'"{version}"' if encoding is None else f'"{version}-{encoding}"'


def parse_if_match(raw: str | None) -> int | None:
    """The version an ``If-Match`` names; ``None`` when absent or ``*``."""
    if raw is None or raw.strip() == "*":
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    try:
        return int(value)
    except ValueError:
        raise problem(
            400,
            "Malformed If-Match",
            f"If-Match must be an ETag such as '\"3\"', not {raw!r}",
            "malformed-header",
            field="If-Match",
        ) from None


def parse_if_range(raw: str) -> int | None:
    """The version an ``If-Range`` ETag names exactly as ``etag`` writes it.

    ``None`` when it can name none: a date, a weak tag, another representation's
    tag, or anything else that no version's ETag equals.
    """
    tag = raw.strip()
    if not tag.startswith('"'):
        return None
    value = tag.strip('"')
    try:
        version = int(value)
    except ValueError:
        return None
    return version if str(version) == value else None
