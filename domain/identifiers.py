"""Evaluation identifiers: validated once here, so no other layer ever sees a raw one.

An id becomes part of file paths and cache keys, so the rule is strict: the
characters ``A-Z a-z 0-9 . _ : -``, 1 to 255 of them, never ``..`` and never a
leading ``.``. Anything else is refused before it reaches storage.
"""

import re
from datetime import datetime
from typing import NewType

from domain.errors import InvalidIdentifierError

EvaluationId = NewType("EvaluationId", str)

MAX_ID_LENGTH = 255
_ALLOWED = re.compile(r"[A-Za-z0-9._:-]+")


def parse_evaluation_id(value: str) -> EvaluationId:
    """Return ``value`` as an :class:`EvaluationId` or raise ``InvalidIdentifierError``."""
    if not value:
        raise InvalidIdentifierError(value, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidIdentifierError(value, f"must be at most {MAX_ID_LENGTH} characters")
    if not _ALLOWED.fullmatch(value):
        raise InvalidIdentifierError(value, "may contain only letters, digits and . _ : -")
    if value.startswith("."):
        raise InvalidIdentifierError(value, "must not start with '.'")
    if ".." in value:
        raise InvalidIdentifierError(value, "must not contain '..'")
    return EvaluationId(value)


def generate_evaluation_id(now: datetime, random_hex: str) -> EvaluationId:
    """Build ``eval_YYYYMMDD_HHMMSS_<hex>`` from a time and caller-supplied randomness."""
    return parse_evaluation_id(f"eval_{now:%Y%m%d_%H%M%S}_{random_hex}")
