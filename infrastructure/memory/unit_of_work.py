"""The unit of work of the memory backend."""

from application.ports.unit_of_work import UnitOfWork


class MemoryUnitOfWork(UnitOfWork):
    """``UnitOfWork`` for the memory adapters, which apply every write immediately.

    There is no transaction to undo: ``rollback`` cannot revert earlier writes,
    it only records that it was asked. ``committed`` and ``rolled_back`` let
    tests assert what a use case did (the cosmicpython ``FakeUnitOfWork`` idea).
    """

    def __init__(self) -> None:
        self.committed = False
        self.rolled_back = False
        self.released = False

    async def commit(self) -> None:
        self.committed = True

    async def rollback(self) -> None:
        self.rolled_back = True

    async def release(self) -> None:
        self.released = True
