"""Data subjects: whose evaluations a metadata value says they are (erasure, export)."""

import hashlib

from domain.errors import InvalidTextError

MAX_SUBJECT_LENGTH = 1024


def check_subject(subject: str) -> str:
    """``subject`` if a metadata value can hold it: 1 to 1024 characters, no NUL."""
    if not subject:
        raise InvalidTextError("subject", "must not be empty")
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise InvalidTextError("subject", f"is longer than {MAX_SUBJECT_LENGTH} characters")
    if "\x00" in subject:
        raise InvalidTextError("subject", "holds a NUL character")
    return subject


def subject_digest(subject: str) -> str:
    """What the audit trail keeps of a subject: a SHA-256 of it, never the identifier
    itself (which may be a name or an e-mail address). Whoever knows the subject can
    recompute it to find the erasure; the digest alone does not name anyone."""
    return hashlib.sha256(b"crucible-subject\x00" + subject.encode("utf-8")).hexdigest()
