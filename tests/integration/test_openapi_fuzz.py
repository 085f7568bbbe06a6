"""schemathesis against the service's own ``/openapi.json``, on every configuration.

Every operation the published document describes is fuzzed with an admin key
over real HTTP (uvicorn in a thread, so the lifespan runs as in production),
with valid and invalid data: no answer may be a server error, and every answer
must be one the document describes (status, content type, headers and body
schema). Half the generated evaluation ids are swapped for ids that exist, so
the fuzzer reaches stored records and not only 404s. The event streams, which
stay open, are left to their own tests. The example budget keeps
the whole file well under a minute and a half on two cores; a failure prints
a ``curl`` that reproduces it.
"""

import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from litestar.testing import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from infrastructure.sql.migrate import upgrade
from interfaces.http.app import create_app
from interfaces.settings import AccessSettings, Settings, load_settings, parse_api_keys
from tests.services import (
    TEST_REDIS_URL,
    migrated_postgres_database,
    redis_test_keys,
    serve_in_thread,
)

ADMIN_SECRET = "fuzz-admin-secret-0123456789"
API_KEYS = parse_api_keys(f"fuzzer:{ADMIN_SECRET}:admin")
AUTH = {"X-API-Key": ADMIN_SECRET}
MAX_EXAMPLES = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLE_ID = "eval_20240701_120000_abc123"  # the id the document itself uses as an example
SEEDS = [EXAMPLE_ID, "fuzz-queued", "fuzz-running", "fuzz-done"]
# The longest request head uvicorn's parser takes here (``http="auto"``: httptools, as in
# production). Measured: a request line of 65,561 bytes gets uvicorn's own 400, one a few
# bytes shorter is served, sent whole or in pieces.
MAX_HEAD_BYTES = 64 * 1024


def _published_document() -> dict[str, Any]:
    """``GET /openapi.json`` of an app with keys configured (no lifespan, no storage touched)."""
    response = TestClient(create_app(Settings(access=AccessSettings(api_keys=API_KEYS)))).get(
        "/openapi.json", headers=AUTH
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


DOCUMENT = _published_document()
# The server-sent event streams never end while their evaluation runs (a fuzzed call would
# wait for ever); tests/integration/test_change_streams.py covers their answers.
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(path_regex=r"/stream$")


class Served:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers.update(AUTH)

    def create(self, evaluation_id: str) -> None:
        response = self.session.post(
            f"{self.base_url}/evaluations", json={"id": evaluation_id, "code": "print(1)"}
        )
        assert response.status_code == 200, response.text


def _seed(served: Served) -> None:
    """Records in several states: queued, running with a log, completed with a file-stored output."""
    for evaluation_id in SEEDS:
        served.create(evaluation_id)
    for method, path, body in [
        ("PUT", "fuzz-running", {"status": "running", "container_id": "c-1"}),
        ("POST", "fuzz-running/logs", {"content": "step 1\n"}),
        ("POST", "fuzz-running/events", {"event_type": "started"}),
        ("PUT", "fuzz-done", {"status": "running"}),
        ("POST", "fuzz-done/logs", {"content": "done\n"}),
        ("PUT", "fuzz-done", {"status": "completed", "output": "x" * 200_000, "error": "e"}),
    ]:
        response = served.session.request(
            method, f"{served.base_url}/evaluations/{path}", json=body
        )
        assert response.status_code < 300, response.text


@pytest.fixture(
    scope="module",
    params=[
        "embedded",
        pytest.param("postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ],
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The app on one fresh data set of the parametrized configuration, served over HTTP."""
    root = tmp_path_factory.mktemp("fuzz")
    files = root / "files"
    if request.param == "embedded":
        url = f"sqlite+aiosqlite:///{root / 'storage.db'}"
        upgrade(url)
        yield from _serve(
            load_settings(
                {},
                database={"url": url},
                storage={"file_storage_path": files},
                access={"api_keys": API_KEYS},
            )
        )
        return
    with redis_test_keys() as prefix, migrated_postgres_database() as url:
        yield from _serve(
            load_settings(
                {},
                database={"url": url},
                storage={"file_storage_path": files},
                redis={"url": TEST_REDIS_URL, "key_prefix": prefix},
                access={"api_keys": API_KEYS},
            )
        )


def _serve(settings: Settings) -> Iterator[Served]:
    with serve_in_thread(create_app(settings)) as base_url:
        served = Served(base_url)
        try:
            _seed(served)
            yield served
        finally:
            served.session.close()
    root = settings.storage.file_storage_path.resolve()
    escaped = [p for p in Path(root).rglob("*") if not p.resolve().is_relative_to(root)]
    assert not escaped, escaped


def _aim_at_stored_records(case: Any, served: Served) -> None:
    """Swap about half the generated ids for stored ones (DELETE gets a fresh record)."""
    generated = case.path_parameters.get("eval_id") if case.path_parameters else None
    if not isinstance(generated, str):
        return
    pick = zlib.crc32(generated.encode("utf-8", "surrogatepass"))
    if pick % 2:
        return
    if case.method.upper() == "DELETE":
        target = f"fuzz-delete-{uuid.uuid4().hex[:12]}"
        served.create(target)
    else:
        target = SEEDS[pick // 2 % len(SEEDS)]
    case.path_parameters["eval_id"] = target


def test_the_fuzzed_document_is_the_one_served(served: Served) -> None:
    response = served.session.get(f"{served.base_url}/openapi.json")
    assert response.status_code == 200
    assert response.json() == DOCUMENT


def _head_bytes(request: requests.PreparedRequest) -> int:
    """The size of the request line and headers as sent (HTTP/1.1)."""
    target = urlsplit(request.url or "")
    path = target.path + (f"?{target.query}" if target.query else "")
    size = len(f"{request.method} {path} HTTP/1.1\r\n".encode("latin-1", "replace")) + 2
    for name, value in request.headers.items():
        raw = value if isinstance(value, bytes) else value.encode("latin-1", "replace")
        size += len(name) + len(raw) + 4  # "name: value\r\n"
    return size


# Headers that frame the message. The fuzzer adds arbitrary headers, among them these with
# values that are not HTTP ("content-length: \oUq0rn"), which uvicorn's parser refuses with
# its own plain-text 400 before the app sees the request (RFC 9112, 6.3). An HTTP client
# library sets them itself; removed, the request reaches the app and is checked in full.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})


def _without_framing_headers(case: Any) -> None:
    for name in [name for name in case.headers or {} if name.lower() in FRAMING_HEADERS]:
        del case.headers[name]


def _refused_by_uvicorn_for_its_size(response: Any) -> bool:
    """uvicorn's own plain-text 400 for a request head over ``MAX_HEAD_BYTES``, sent before
    the app sees the request. Any other answer is checked in full."""
    return (
        response.status_code == 400
        and response.headers.get("content-type", [""])[0].startswith("text/plain")
        and response.text == "Invalid HTTP request received."
        and _head_bytes(response.request) > MAX_HEAD_BYTES
    )


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_and_never_fails(case: Any, served: Served) -> None:
    _aim_at_stored_records(case, served)
    _without_framing_headers(case)
    response = case.call(base_url=served.base_url, session=served.session, headers=AUTH)
    if _refused_by_uvicorn_for_its_size(response):
        return
    case.validate_response(
        response,
        checks=CHECKS,
        headers=AUTH,
        transport_kwargs={"base_url": served.base_url, "session": served.session, "headers": AUTH},
    )
