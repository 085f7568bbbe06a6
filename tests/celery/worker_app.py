"""The app a test's ``celery worker`` subprocess runs (``-A tests.celery.worker_app``).

Its queue and the service's URL come from the environment the test sets.
"""

import os

from crucible_storage import StorageClient
from crucible_storage.celery import install

from tests.celery.tasks import make_app

app = make_app(os.environ["CRUCIBLE_TEST_QUEUE"])
storage_url = os.environ["CRUCIBLE_TEST_STORAGE_URL"]
install(
    app,
    client=lambda: StorageClient(storage_url, timeout=5.0, retries=3),
    final_report_deadline=20.0,
)
