"""A started app keeps its start-up objects out of full collections, and gives them back."""

import gc

from litestar.testing import TestClient

from interfaces import heap
from interfaces.http.app import create_app
from interfaces.settings import Settings


def test_start_up_objects_are_frozen_while_serving_and_thawed_at_shutdown(
    backend_settings: Settings,
) -> None:
    others = heap.apps_frozen()  # apps of other tests still serving in this process
    with TestClient(create_app(backend_settings)) as client:
        frozen = gc.get_freeze_count()
        assert heap.apps_frozen() == others + 1
        assert client.get("/health").status_code == 200
    # The routes, schema and drivers of the app: far more than a handful of objects.
    assert frozen > 10_000
    assert heap.apps_frozen() == others
    if others == 0:
        assert gc.get_freeze_count() == 0
