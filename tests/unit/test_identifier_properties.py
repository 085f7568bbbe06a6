"""Property tests: no text, however hostile, becomes a path outside the storage root.

Two layers are held to it independently. ``parse_evaluation_id`` either refuses
a value or returns it unchanged, and every blob key the service builds from an
accepted id lands inside the root (checked with ``Path.resolve`` here, not only
with the store's own check). And ``FileBlobStore`` itself refuses any key that
would leave its root, whatever built it, writing nothing anywhere.
"""

import asyncio
import os
import string
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.errors import BackendUnavailableError
from application.services.payloads import new_token, snapshot_key
from domain.blob_paths import evaluation_prefix, evaluations_prefix
from domain.errors import InvalidIdentifierError
from domain.identifiers import MAX_ID_LENGTH, EvaluationId, parse_evaluation_id
from domain.payload import (
    StorageThresholds,
    blob_key,
    route_payload,
    streamed_blob_payload,
)
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.files.blob_store import FileBlobStore
from infrastructure.files.keys import resolve_inside

RULE_CHARACTERS = "ABCXYZabcxyz0189._:-"
ALLOWED = set(string.ascii_letters + string.digits + "._:-")
HOSTILE_PIECES = [
    "..",
    ".",
    "/",
    "\\",
    "\x00",
    "%00",
    "%2e",
    "%2E",
    "%2f",
    "%2F",
    "%5c",
    "%252e%252e%252f",
    "..%2F",
    "%2e%2e/",
    "../",
    "..\\",
    "/etc/passwd",
    "C:\\Windows",
    "~",
    "$HOME",
    "\n",
    " ",
    "é",
    "\u2024",  # one dot leader
    "\uff0e\uff0e",  # fullwidth full stops
    "\u2215",  # division slash
    "\ud800",  # a lone surrogate
    "🎉",
    "x" * 300,
]

hostile_text = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=RULE_CHARACTERS + "/\\\x00%", max_size=300),
    st.lists(
        st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(RULE_CHARACTERS, max_size=8)),
        max_size=12,
    ).map("".join),
    st.text(alphabet=RULE_CHARACTERS, min_size=MAX_ID_LENGTH - 2, max_size=MAX_ID_LENGTH + 2),
)
"""Arbitrary unicode, rule characters mixed with separators, and hostile fragments."""

PROPERTY_SETTINGS = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


SANDBOX_DEPTH = 8


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A storage root nested deep in a sandbox, so a ``../`` escape still lands in the sandbox.

    Were the store ever broken, an escaping write would hit the sandbox (and the
    test would see it), never a real file of the machine running the tests.
    """
    sandbox = tmp_path_factory.mktemp("confinement")
    (sandbox / "outside").mkdir()
    root = sandbox.joinpath(*["d"] * SANDBOX_DEPTH, "root")
    root.mkdir(parents=True)
    return root


def sandbox_of(root: Path) -> Path:
    return root.parents[SANDBOX_DEPTH]


TENANTS = (DEFAULT_TENANT, TenantId("acme"))


def keys_built_from(tenant: TenantId, identifier: EvaluationId) -> Iterator[str]:
    """Every blob key the service derives from an evaluation id of ``tenant``."""
    thresholds = StorageThresholds(large_file_threshold=4, compression_threshold=2, preview_size=1)
    for kind in ("output", "error"):
        for compressed in (False, True):
            yield blob_key(tenant, identifier, kind, compressed=compressed, token=new_token())
        routed = route_payload(tenant, identifier, kind, "large text", thresholds, new_token())
        assert routed.stored.key is not None
        yield routed.stored.key
        streamed = streamed_blob_payload(tenant, identifier, kind, 10, "l", thresholds, "t")
        yield streamed.key or ""
    yield snapshot_key(tenant, identifier)
    yield evaluation_prefix(tenant, identifier).rstrip("/")


def assert_confined(root: Path, key: str, tenant: TenantId, identifier: str) -> None:
    resolved_root = root.resolve()
    independent = (root / key).resolve()
    assert independent.is_relative_to(resolved_root), (identifier, key)
    assert independent != resolved_root
    assert resolve_inside(root, key).is_relative_to(resolved_root)
    parts = PurePosixPath(key).parts
    home = (*PurePosixPath(evaluations_prefix(tenant)).parts, identifier)
    assert parts[: len(home)] == home, key  # one directory per evaluation and tenant
    assert not any(part in {"", ".", ".."} for part in parts)


@PROPERTY_SETTINGS
@given(value=hostile_text)
def test_any_text_is_refused_or_confined(root: Path, value: str) -> None:
    for candidate in {value, unquote(value), unquote(unquote(value))}:
        try:
            identifier = parse_evaluation_id(candidate)
        except InvalidIdentifierError:
            continue
        assert identifier == candidate  # accepted as given, never rewritten
        assert 1 <= len(identifier) <= MAX_ID_LENGTH
        assert not identifier.startswith(".") and ".." not in identifier
        assert set(identifier) <= ALLOWED
        for tenant in TENANTS:
            for key in keys_built_from(tenant, identifier):
                assert_confined(root, key, tenant, identifier)


@PROPERTY_SETTINGS
@given(value=st.sampled_from(HOSTILE_PIECES) | hostile_text)
def test_separators_nul_and_dot_dot_are_always_refused(value: str) -> None:
    if not {"/", "\\", "\x00", "%", "\n", " "} & set(value) and ".." not in value:
        return
    with pytest.raises(InvalidIdentifierError):
        parse_evaluation_id(value)


@PROPERTY_SETTINGS
@given(value=st.text(alphabet=RULE_CHARACTERS, min_size=1, max_size=MAX_ID_LENGTH))
def test_rule_characters_without_dot_dot_are_accepted(value: str) -> None:
    """The rule is not so strict it refuses what it documents."""
    if value.startswith(".") or ".." in value:
        return
    assert parse_evaluation_id(value) == value


# -- the file store on its own: any key, whoever built it ------------------------------------

hostile_keys = st.one_of(
    hostile_text,
    st.lists(
        st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(RULE_CHARACTERS, max_size=6)),
        min_size=1,
        max_size=6,
    ).map("/".join),
    st.lists(st.sampled_from(["..", ".", "", "a", "evaluations"]), min_size=1, max_size=6).map(
        "/".join
    ),
)


def entries_outside(root: Path) -> set[Path]:
    """Everything in the sandbox that is not under the root (files and directories)."""
    return {p for p in sandbox_of(root).rglob("*") if not p.is_relative_to(root)}


def independent_target(root: Path, key: str) -> Path | None:
    """Where ``root / key`` really points, by plain path arithmetic (``None``: not a path)."""
    try:
        return (root / key).resolve()
    except (ValueError, OSError):
        return None


@settings(max_examples=300, deadline=None)
@given(key=hostile_keys)
def test_file_store_refuses_any_key_that_escapes(root: Path, key: str) -> None:
    before = entries_outside(root)
    store = FileBlobStore(root)
    target = independent_target(root, key)
    resolved_root = root.resolve()
    inside = target is not None and target.is_relative_to(resolved_root) and target != resolved_root
    if not inside:
        with pytest.raises(ValueError):
            resolve_inside(root, key)
        if target is not None and target.is_relative_to(sandbox_of(root).resolve()):
            with pytest.raises(ValueError):  # and the write itself is refused, not attempted
                asyncio.run(store.put(key, b"x"))
    else:
        try:
            asyncio.run(store.put(key, b"x"))
        except ValueError:
            pass  # stricter than plain path arithmetic ('\\', '.', empty parts): fine
        except BackendUnavailableError:
            pass  # a name the file system refuses (too long, a file where a directory is)
        else:
            assert target is not None and target.is_file()
            asyncio.run(store.delete(key))
    assert entries_outside(root) == before, key


ESCAPES = [
    "../x",
    "../../../outside/x",
    "evaluations/../../x",
    "evaluations\\..\\..\\x",
    "evaluations/a\x00/x",
    "evaluations/./x",
    "evaluations//x",
    "",
    ".",
    "..",
    "{outside}/x",  # an absolute path (in the sandbox)
]


@pytest.mark.parametrize("key", ESCAPES)
def test_file_store_refuses_known_escapes_for_every_operation(root: Path, key: str) -> None:
    key = key.format(outside=sandbox_of(root) / "outside")
    before = entries_outside(root)
    store = FileBlobStore(root)

    async def every_operation() -> None:
        for attempt in (
            lambda: store.put(key, b"x"),
            lambda: store.get(key),
            lambda: store.delete(key),
            lambda: store.stored_size(key),
        ):
            with pytest.raises(ValueError):
                await attempt()

    asyncio.run(every_operation())
    assert entries_outside(root) == before


def test_file_store_refuses_a_symlink_that_leads_out(tmp_path: Path) -> None:
    """A link planted inside the root is followed by resolve, and refused."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    (root / "evaluations").mkdir(parents=True)
    os.symlink(outside, root / "evaluations" / "planted")
    store = FileBlobStore(root)
    with pytest.raises(ValueError):
        asyncio.run(store.put("evaluations/planted/output.txt", b"escaped"))
    assert not (outside / "output.txt").exists()
