"""Checks of the numbers an adapter is built with."""


def require_positive(**values: float) -> None:
    """A ValueError that names every one of ``values`` when any is zero or negative."""
    if any(value <= 0 for value in values.values()):
        *rest, last = values
        names = f"{', '.join(rest)} and {last}" if rest else last
        raise ValueError(f"{names} must be positive")
