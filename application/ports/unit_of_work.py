from abc import abstractmethod
from typing import Protocol


class UnitOfWork(Protocol):
    """The transaction every repository of one request shares.

    Nothing is durable until ``commit`` returns; a request that never commits is
    rolled back when its scope closes.
    """

    @abstractmethod
    async def commit(self) -> None: ...

    @abstractmethod
    async def rollback(self) -> None: ...

    @abstractmethod
    async def release(self) -> None:
        """Give the connection back before long I/O (streaming a body); nothing may be pending.

        A later statement takes a connection again, so a slow client never holds one.
        """
