"""Sealed lines: one sealed value per line of a JSON-lines file (ADR 0031).

``sealed:<base64>``: no JSON line starts with ``s``, so lines written in clear before
encryption was turned on are told apart and still read.
"""

import base64
import binascii

from infrastructure.crypto.keyring import Keyring
from infrastructure.crypto.sealed import (
    SealedDataError,
    open_value,
    seal_value,
)

PREFIX = b"sealed:"


class LineSeal:
    """Seals a line's bytes (when ``seal``) under a data key of its own; opens sealed ones."""

    def __init__(self, keyring: Keyring, *, seal: bool = True) -> None:
        self._keyring = keyring
        self.seals = seal

    def seal(self, data: bytes, context: bytes) -> bytes:
        """``data`` (one line, without its newline) as stored."""
        if not self.seals:
            return data
        return PREFIX + base64.b64encode(seal_value(self._keyring, context, data))

    def open(self, line: bytes, context: bytes) -> bytes:
        """The line's bytes; ``SealedDataError`` when a sealed line does not open."""
        if not line.startswith(PREFIX):
            return line
        try:
            sealed = base64.b64decode(line[len(PREFIX) :], validate=True)
        except binascii.Error:
            raise SealedDataError("a sealed line is not base64") from None
        return open_value(self._keyring, context, sealed)
