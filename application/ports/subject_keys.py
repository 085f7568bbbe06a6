from abc import abstractmethod
from typing import Protocol


class SubjectKeys(Protocol):
    """The keys that encrypt one data subject's data at rest, for crypto-shredding.

    Erasure calls ``destroy`` before it removes anything: once the key is gone every
    copy encrypted with it (a backup, a replica, a file missed by the erasure) is
    unreadable. Destroying a key that does not exist, or twice, is no error.
    """

    @abstractmethod
    async def destroy(self, subject: str) -> None: ...
