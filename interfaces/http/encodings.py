"""``Accept-Encoding``: whether a client takes a payload in its stored zstd form."""

from typing import Annotated

from litestar.params import HeaderParameter

AcceptEncodingHeader = Annotated[str | None, HeaderParameter(name="Accept-Encoding")]


def accepts_zstd(header: str | None) -> bool:
    """Whether ``Accept-Encoding`` lists zstd with a non-zero weight."""
    for item in (header or "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() == "zstd":
            weight = params.strip().removeprefix("q=").strip()
            return not weight or _weight(weight) > 0
    return False


def _weight(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        return 1.0
