"""Subject keys while nothing is encrypted per subject: nothing to destroy."""

from application.ports.subject_keys import SubjectKeys


class NoSubjectKeys(SubjectKeys):
    """``SubjectKeys`` of a deployment without encryption at rest."""

    async def destroy(self, subject: str) -> None:
        pass
