"""Copies the default tenant sealed under its evaluation key before tenants had keys of
their own (ADR 0032's step 4) still open: its key row, its blobs, the mirror's files and
the journal's lines keep the bindings they had. And another tenant's copy of the same id
is sealed under a key of that tenant's, which a copy moved to the default tenant's name
never opens with."""

from pathlib import Path

import pytest

from application.backends import Backend
from application.errors import BackendUnavailableError
from application.ports.evaluation_keys import WrappedKey
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.crypto.blob_store import SealedBlobStore
from infrastructure.crypto.evaluation_keys import EvaluationKeyring
from infrastructure.crypto.keyring import parse_keyring
from infrastructure.crypto.lines import LineSeal
from infrastructure.files.blob_store import FileBlobStore
from infrastructure.files.journal import FileJournal
from infrastructure.files.mirror import FileRecordMirror
from infrastructure.memory.evaluation_keys import MemoryEvaluationKeys

pytestmark = pytest.mark.anyio

KEYS_FILE = "k20261207T000000-b8dc8c YDGDFl/4nC/IOcxyJEkWg8LR86O2ftBX3qjWnQMCUfk=\n"
ID = "eval-pinned"
ROW = WrappedKey(
    kid="k20261207T000000-b8dc8c",
    wrapped=bytes.fromhex(
        "8d1c29280ea31a497f8b8c32517ca1f5033a7ead264ae75d2611051deb0e4892"
        "fa6522d7c0d2dbc3d6fc756cd8b6baa4e0d186c033c79d50d9aebc7b"
    ),
)
BLOB_KEY = f"evaluations/{ID}/output.pin.txt"
BLOB = bytes.fromhex(
    "ff43525345414c31027e65a877d5f1dc316791fd718b4d8a11a3e104ead7d22c"
    "32eb1f6460e7f796ab99e9b7ba84c5d2b732cc2761d90a52e7fb48072cd65af4"
    "a19779ab4f0cff2eb67b0729ef8f1e3fc55a9c66cfc2554f647e284a9a2a353c"
    "87a5cb94e227f1512b"
)
METADATA = (
    b"sealed~eval-pinned /0NSU0VBTDECfmUtwgxu0qxZN/ycaOkI/AidP1FVZjeGqV9xNT6Y32pZJyj+ZaIT3q"
    b"uf1IvhvZ4xNtno73tEi+waVBe9gpurNSc/5/zCCvYnsm/X7dt3GiOMirvjTIgU8eqSUvq7REj154ZlWP7KsE"
    b"KDwrufrt7amazYLvioE4T7A1/RXYfpBuMRfXp9MeR/O60KbUWBmmwTu5EnLkF2ZHYb/Sy/bB316HTfhogO7f"
    b"iLlaOZ5dqk9+MS+PAjyhgEK4u3wETfi96Bqc4M+t1LoadOX7kAlzEiA5TwuiOKrP3zRHXFsKWTbqV76Az9u9"
    b"ibr3R5LVTlXVTciFstkU7VBFA/lYOGJZQmLLUJn0rZj9eC4o952ZX8u7uYKeagUZPjoSH5MApGLFpnwEb2z2"
    b"iAbtCIW1pNEruT2cQqJN7H2eiaMilIHp1KHlp6iSJSdeP74tmoIaPza1kIF+xriSNcqmKkqTq9+mNEMaAzN2"
    b"lJPS1v1cVraer1nI6gtK3cuYvxKTTKCdNHXuK31w7LBC1pJn1e0ECEQG+yYJ9fOJ/b5q8cShNxl6fR190Ijt"
    b"TZsHs2BISbsjJg9v+UzhxdaXNo9oEo9mhP0vO1yYoUMOxG23GfJ4o5HnPv9E5vGSvHnIa1SMGzH96xDn5VRC"
    b"OVRnl35Gxq+L41kmWLVIYJKjhcyym0k0uR34uDlcOLkQuYU544Hr5QzwRrDqWkJziMPplR"
)
JOURNAL_LINE = (
    b"sealed~eval-pinned entry-pinned /0NSU0VBTDECfmUJRrog0iiEC7k0rALrmYMQ8ezdC0+P0YYxWzbc"
    b"OpM4NaedLIimJ3/skD4JEKRgxHTQYJ0OXWGHC71vnJbOWK8VLK7iD4tQu6BYnghLfVlixfiaeE9vR9/i1bIY"
    b"jgpJ4miAlLmyxeNwcmt+AaDY8x1wLg3rxDT3e20D+p29QhAYJWLZIjJ7gmD83RHh995OxwnZQM9KoXciXLiz"
    b"hYJbZS12q7Y17YlVDqsXKjnxVQHuqi2K/9T6Yq0kdBCPGqtXlRn5tMw/h66Iw8I4NYD7613GOVEMYWHHjVfj"
    b"4OxNiVgziXHlpaiU35GbhYP6SafAW4JheWbWcMmOTIUPHuLZREuZk7wSDUr0BW7QTi4rwZgoInoA1qqcsPei"
    b"2gXWyL8XsQqzGSc3cif+Z0/LabslmFrNudmavjYW+XjdrxAfFg=="
)
ACME = TenantId("acme")


def _ring(table: MemoryEvaluationKeys | None = None) -> tuple[EvaluationKeyring, LineSeal]:
    keyring = parse_keyring(KEYS_FILE)
    if table is None:
        table = MemoryEvaluationKeys()
        table.keys[ID] = ROW
    ring = EvaluationKeyring(table, keyring)
    return ring, LineSeal(keyring, keys=ring, shred=True)


def _blobs(root: Path, ring: EvaluationKeyring) -> SealedBlobStore:
    inner = FileBlobStore(root, compress=False)
    keyring = parse_keyring(KEYS_FILE)
    return SealedBlobStore(inner, keyring, Backend.FILE, keys=ring, shred=True)


async def test_the_default_tenants_pinned_copies_still_open(tmp_path: Path) -> None:
    ring, seal = _ring()
    (tmp_path / "evaluations" / ID).mkdir(parents=True)
    (tmp_path / BLOB_KEY).write_bytes(BLOB)
    (tmp_path / "evaluations" / ID / "metadata.json").write_bytes(METADATA)
    (tmp_path / "journal").mkdir()
    (tmp_path / "journal" / f"{'3' * 32}.jsonl").write_bytes(JOURNAL_LINE + b"\n")

    assert await _blobs(tmp_path, ring).get(BLOB_KEY) == b"pinned blob"
    (copy,) = [found async for found in FileRecordMirror(tmp_path, seal).evaluations()]
    assert copy.tenant == DEFAULT_TENANT and copy.record.code == "print('pinned')"  # type: ignore[union-attr]
    (entry,) = await FileJournal(tmp_path, seal).pending()
    assert (entry.id, entry.evaluation_id, entry.tenant) == ("entry-pinned", ID, DEFAULT_TENANT)


async def test_another_tenants_blob_of_the_same_id_has_its_own_key(tmp_path: Path) -> None:
    table = MemoryEvaluationKeys()
    ring, _ = _ring(table)
    store = _blobs(tmp_path, ring)
    theirs = f"tenants/acme/evaluations/{ID}/output.pin.txt"
    await store.put(theirs, b"acme's blob")
    assert ID not in table.keys  # not the default tenant's key
    assert ID in table.of(ACME).keys  # the key is in acme's rows, by its bare id

    (tmp_path / BLOB_KEY).parent.mkdir(parents=True)
    (tmp_path / BLOB_KEY).write_bytes((tmp_path / theirs).read_bytes())  # moved across
    with pytest.raises(BackendUnavailableError, match="does not open"):
        await store.get(BLOB_KEY)
    assert await store.get(theirs) == b"acme's blob"


async def test_erasing_one_tenants_key_leaves_the_others(tmp_path: Path) -> None:
    table = MemoryEvaluationKeys()
    ring, _ = _ring(table)
    store = _blobs(tmp_path, ring)
    ours, theirs = f"evaluations/{ID}/output.a.txt", f"tenants/acme/evaluations/{ID}/output.a.txt"
    await store.put(ours, b"ours")
    await store.put(theirs, b"theirs")

    assert await ring.of(ACME).destroy([ID]) == 1
    with pytest.raises(BackendUnavailableError, match="destroyed"):
        await store.get(theirs)
    assert await store.get(ours) == b"ours"
    assert await ring.count() == 1 and await ring.of(ACME).count() == 0


async def test_a_key_row_moved_to_another_tenant_does_not_open() -> None:
    table = MemoryEvaluationKeys()
    table.of(ACME).keys[ID] = ROW  # the default tenant's row, copied into acme's
    ring, _ = _ring(table)
    with pytest.raises(ValueError, match=r"does not open|unwrap"):
        await ring.key(f"acme/{ID}")
    assert await ring.key(ID) is None
