"""Calls the platform's storage worker makes, shared by the platform tests."""

from datetime import UTC, datetime
from typing import Any

from litestar.testing import TestClient


def submit(client: TestClient[Any], eval_id: str) -> None:
    """``handle_evaluation_submitted``: create as submitted; the worker checks for exactly 200."""
    response = client.post(
        "/evaluations",
        json={
            "id": eval_id,
            "code": "print('hi')",
            "language": "python",
            "status": "submitted",
            "metadata": {"submitted_at": datetime.now(UTC).isoformat(), "timeout": 300},
        },
    )
    assert response.status_code == 200, response.text
