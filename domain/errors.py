"""Errors the domain raises; the edge maps each to one HTTP status."""


class DomainError(Exception):
    """Base of every rule the domain enforces."""


class InvalidIdentifierError(DomainError, ValueError):
    """An evaluation id breaks the identifier rule."""

    def __init__(self, value: str, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"invalid evaluation id: {reason}")


class InvalidTextError(DomainError, ValueError):
    """Text a field cannot hold (for example a NUL character)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class UnsatisfiableRangeError(DomainError):
    """A byte range that lies wholly outside a payload of ``size`` bytes (HTTP 416)."""

    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"no byte of the range lies within the {size} bytes")
