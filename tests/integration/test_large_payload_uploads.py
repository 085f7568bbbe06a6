"""Payload uploads: byte-exact round trips, chunk boundaries inside characters, concurrency.

The contract and the helpers: tests/integration/large_payloads.py.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime

import httpx
import pytest

from interfaces.settings import Settings
from tests.integration.conftest import ClientFactory
from tests.integration.large_payloads import (
    IDENTITY,
    KINDS,
    THRESHOLD,
    Client,
    asgi_put,
    assert_stored,
    blob_dir,
    chunks_of,
    cuts_characters,
    get_identity,
    new,
    put_body,
    split_every,
    storage,
    stray_files,
    text_bytes,
    wait_no_stray_files,
)

# -- round trips ----------------------------------------------------------------------------

SIZES = [0, 1, THRESHOLD - 1, THRESHOLD, THRESHOLD + 1, 5_000_000]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES, ids=[f"{s}B" for s in SIZES])
def test_round_trip_is_byte_exact(
    client: Client, backend_settings: Settings, size: int, kind: str
) -> None:
    eval_id = f"rt-{kind}-{size}"
    new(client, eval_id)
    body = text_bytes(size, seed=size)
    content_type = "text/plain; charset=utf-8" if kind == "output" else "application/octet-stream"

    response = put_body(client, eval_id, body, kind, content_type)

    assert response.status_code == 200, response.text
    record = response.json()
    assert record["id"] == eval_id
    info = record["_storage_info"]
    assert info[f"{kind}_size"] == size
    assert info[f"{kind}_location"] == ("file" if size > THRESHOLD else "inline")
    if kind == "output":
        assert info["output_compressed"] is (size > THRESHOLD)
    assert response.headers["etag"] == client.get(f"/evaluations/{eval_id}").headers["etag"]
    assert_stored(client, backend_settings, eval_id, body, kind)

    got = client.get(f"/evaluations/{eval_id}/{kind}", headers=IDENTITY)
    assert got.status_code == 200
    assert got.headers["content-length"] == str(size)
    assert got.headers["accept-ranges"] == "bytes"
    assert got.headers["content-type"].startswith("text/plain")
    assert got.headers["etag"]
    parsedate_to_datetime(got.headers["last-modified"])  # a valid HTTP date
    other = "error" if kind == "output" else "output"
    assert client.get(f"/evaluations/{eval_id}/{other}").status_code == 204  # never written
    complete = client.get(f"/evaluations/{eval_id}/complete").json()
    assert complete["evaluation"][kind] == body.decode()


def test_a_new_upload_replaces_the_content_and_its_validators(
    client: Client, backend_settings: Settings
) -> None:
    new(client, "replace-1")
    big, small, big2 = text_bytes(300_000, 1), text_bytes(500, 2), text_bytes(200_000, 3)
    etags = []
    for body in (big, small, big2, small):
        assert put_body(client, "replace-1", body).status_code == 200
        assert_stored(client, backend_settings, "replace-1", body)
        etags.append(client.get("/evaluations/replace-1/output", headers=IDENTITY).headers["etag"])
    assert len(set(etags[:3])) == 3, f"the ETag must change with the content: {etags}"
    assert not list(blob_dir(backend_settings, "replace-1").glob("output.*"))
    assert stray_files(backend_settings, "replace-1") == []


def test_small_thresholds_route_a_stream_like_a_json_update(make_client: ClientFactory) -> None:
    client = make_client(
        storage={"large_file_threshold": 50, "compression_threshold": 20, "preview_size": 4}
    )
    new(client, "tiny-stream")
    body = "✓é🚀".encode() * 10  # 90 bytes, 30 characters
    response = asgi_put(client, "tiny-stream", split_every(body, 5))
    assert response.status == 200, bytes(response.body)
    record = storage(client, "tiny-stream")
    assert record["_storage_info"]["output_location"] == "file"
    assert record["_storage_info"]["output_size"] == 90
    assert record["output"] == "✓é🚀✓"
    assert get_identity(client, "tiny-stream") == body
    exact = "✓é🚀".encode() * 5 + b"12345"  # 50 bytes: still inline
    assert asgi_put(client, "tiny-stream", split_every(exact, 7)).status == 200
    assert storage(client, "tiny-stream")["_storage_info"]["output_location"] == "inline"
    assert get_identity(client, "tiny-stream") == exact


def test_unknown_evaluation_is_404(client: Client) -> None:
    assert put_body(client, "no-such-eval", b"x").status_code == 404
    assert client.get("/evaluations/no-such-eval/output").status_code == 404
    assert (
        client.get("/evaluations/no-such-eval/error", headers={"Range": "bytes=0-1"}).status_code
        == 404
    )


# -- chunk boundaries inside characters --------------------------------------------------

SPLITS = [
    # (body size, chunk size): odd chunk sizes cut 2-, 3- and 4-byte characters
    (10_000, 1),
    (10_000, 7),
    (THRESHOLD + 3, 4093),
    (350_000, 65_537),
    (2_000_000, 131_071),
]


@pytest.mark.parametrize(("size", "chunk"), SPLITS, ids=[f"{s}B-by-{c}" for s, c in SPLITS])
def test_characters_split_across_chunks_survive(
    client: Client, backend_settings: Settings, size: int, chunk: int
) -> None:
    eval_id = f"split-{size}-{chunk}"
    new(client, eval_id)
    body = text_bytes(size, seed=chunk)
    chunks = split_every(body, chunk)
    assert chunk == 1 or cuts_characters(chunks)

    result = asgi_put(client, eval_id, chunks)

    assert result.status == 200, bytes(result.body)[:500]
    assert_stored(client, backend_settings, eval_id, body)


def test_a_character_straddling_the_threshold_is_kept_whole(
    client: Client, backend_settings: Settings
) -> None:
    """The first chunk is exactly LARGE_FILE_THRESHOLD bytes and ends inside a '🚀'."""
    new(client, "straddle")
    rocket = "🚀".encode()
    cases = [
        [b"a" * (THRESHOLD - 2) + rocket[:2], rocket[2:] + b"tail"],  # file, THRESHOLD + 6
        [b"a" * (THRESHOLD - 1) + rocket[:1], rocket[1:]],  # file, THRESHOLD + 3
        [b"a" * (THRESHOLD - 4) + rocket[:3], rocket[3:]],  # inline, exactly THRESHOLD
        [b"a" * (THRESHOLD - 3) + rocket[:3], rocket[3:]],  # file, THRESHOLD + 1
    ]
    for chunks in cases:
        body = b"".join(chunks)
        result = asgi_put(client, "straddle", chunks)
        assert result.status == 200, (len(body), bytes(result.body)[:300])
        assert_stored(client, backend_settings, "straddle", body)


def test_the_preview_is_whole_characters_when_chunks_cut_them(
    make_client: ClientFactory, backend_settings: Settings
) -> None:
    client = make_client(storage={"preview_size": 1000})
    new(client, "preview")
    body = ("🚀" * 2000).encode() + b"x" * THRESHOLD
    assert asgi_put(client, "preview", split_every(body, 3)).status == 200
    record = storage(client, "preview")
    assert record["output"] == "🚀" * 1000
    assert get_identity(client, "preview") == body


# -- real server: concurrency and interrupted uploads --------------------------------------


def test_concurrent_uploads_to_different_evaluations(
    app_server: str, backend_settings: Settings
) -> None:
    sizes = [1_500_000, 900_000, 2_500_000, 50_000, THRESHOLD + 1, 1_200_000]
    bodies = {f"conc-{i}": text_bytes(size, 100 + i) for i, size in enumerate(sizes)}
    with httpx.Client(base_url=app_server, timeout=60) as client:
        for eval_id in bodies:
            new(client, eval_id)
    barrier = threading.Barrier(len(bodies))

    def upload(eval_id: str) -> int:
        with httpx.Client(base_url=app_server, timeout=60) as own:
            barrier.wait()
            # an iterator body goes out chunked; 8191-byte chunks cut characters
            response = put_body(own, eval_id, chunks_of(bodies[eval_id], 8191))
            return response.status_code

    with ThreadPoolExecutor(len(bodies)) as pool:
        statuses = dict(zip(bodies, pool.map(upload, bodies), strict=True))
    assert statuses == dict.fromkeys(bodies, 200)
    with httpx.Client(base_url=app_server, timeout=60) as client:
        for eval_id, body in bodies.items():
            assert_stored(client, backend_settings, eval_id, body)
            assert stray_files(backend_settings, eval_id) == []


def test_concurrent_uploads_to_one_evaluation_leave_one_whole_payload(
    app_server: str, backend_settings: Settings
) -> None:
    candidates = [text_bytes(1_200_000, 200), text_bytes(700_000, 201), text_bytes(90_000, 202)]
    with httpx.Client(base_url=app_server, timeout=60) as client:
        new(client, "same-1")
    for round_ in range(8):
        barrier = threading.Barrier(len(candidates))

        def upload(body: bytes, barrier: threading.Barrier = barrier) -> int:
            with httpx.Client(base_url=app_server, timeout=60) as own:
                barrier.wait()
                return put_body(own, "same-1", chunks_of(body, 65_536)).status_code

        with ThreadPoolExecutor(len(candidates)) as pool:
            statuses = list(pool.map(upload, candidates))
        assert all(status == 200 for status in statuses), statuses
        with httpx.Client(base_url=app_server, timeout=60) as client:
            got = get_identity(client, "same-1")
            assert got in candidates, f"round {round_}: a mix of uploads ({len(got)} bytes)"
            assert_stored(client, backend_settings, "same-1", got)
        assert wait_no_stray_files(backend_settings, "same-1") == []


def test_readers_during_replacements_get_one_whole_payload(
    app_server: str, backend_settings: Settings
) -> None:
    """While one writer keeps replacing the output, every read is one upload, whole."""
    a, b = text_bytes(1_200_000, 210), text_bytes(700_000, 211)
    with httpx.Client(base_url=app_server, timeout=60) as client:
        new(client, "readers-1")
        assert put_body(client, "readers-1", a).status_code == 200
    done = threading.Event()
    seen: list[str] = []

    def write() -> None:
        try:
            with httpx.Client(base_url=app_server, timeout=60) as own:
                for i in range(40):
                    assert put_body(own, "readers-1", b if i % 2 == 0 else a).status_code == 200
        finally:
            done.set()

    def read(encoding: str) -> None:
        with httpx.Client(base_url=app_server, timeout=60) as own:
            while not done.is_set():
                try:
                    got = own.get(
                        "/evaluations/readers-1/output", headers={"Accept-Encoding": encoding}
                    ).content
                    seen.append("whole" if got in (a, b) else f"{encoding}: mix of {len(got)} B")
                except httpx.HTTPError as exc:
                    seen.append(f"{encoding}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=write)] + [
        threading.Thread(target=read, args=(encoding,)) for encoding in ("identity", "zstd")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bad = [outcome for outcome in seen if outcome != "whole"]
    assert seen and not bad, f"{len(bad)} of {len(seen)} reads were not one whole upload: {bad[:5]}"
