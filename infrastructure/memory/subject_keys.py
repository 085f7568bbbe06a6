"""Subject keys while no data is sealed per subject: nothing to destroy."""

from application.ports.subject_keys import SubjectKeys


class NoSubjectKeys(SubjectKeys):
    """``SubjectKeys`` of every configuration today: with ``ENCRYPTION=on`` too, data keys
    are wrapped by the key-encryption key, not by a key per subject (ADR 0031), so an
    erasure has no key to destroy and removes every copy it can reach instead."""

    async def destroy(self, subject: str) -> None:
        pass
