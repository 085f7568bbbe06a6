from abc import abstractmethod
from typing import Protocol, TypeVar

T = TypeVar("T")


class UseCaseLocator(Protocol):
    """Builds a collaborator of the current request only when a path needs it.

    A write dispatches to one use case of seven, and the failover journal's views
    are needed only while the journal holds entries: building them all for every
    request would cost the hot paths for nothing.
    """

    @abstractmethod
    async def get(self, kind: type[T], /) -> T: ...
