"""Fixtures every test directory shares."""

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, the loop the service itself runs on."""
    return "asyncio"
