"""Sealed text columns (ADR 0031): values bound to their row and column, clear values
passed through, a missing key or a changed byte refused, re-wrapping without re-sealing."""

import base64

import pytest

from application.errors import BackendUnavailableError
from application.ports.sealed_blobs import Rewrap
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.crypto.columns import PREFIX, ColumnSeal, SealedColumnError
from infrastructure.crypto.keyring import parse_keyring
from tests.keys import fresh_keyring, key_lines

ROW = "evaluations|eval-1"


def _seal(**kwargs: object) -> ColumnSeal:
    return ColumnSeal(fresh_keyring(), seal=True, **kwargs)  # type: ignore[arg-type]


def test_a_value_round_trips_and_holds_no_plaintext() -> None:
    seal = _seal()
    stored = seal.one(ROW, "code", "print('secret ✓')")
    assert stored.startswith(PREFIX) and "secret" not in stored
    assert seal.open(ROW, "code", stored) == "print('secret ✓')"


def test_a_value_moved_to_another_row_or_column_does_not_open() -> None:
    seal = _seal()
    stored = seal.one(ROW, "code", "x")
    with pytest.raises(SealedColumnError):
        seal.open("evaluations|eval-2", "code", stored)
    with pytest.raises(SealedColumnError):
        seal.open(ROW, "output", stored)


def test_a_value_of_one_tenant_does_not_open_in_another_tenants_row_of_the_same_id() -> None:
    seal = _seal()
    acme = seal.of(TenantId("acme"))
    stored = acme.one(ROW, "code", "acme's")
    assert acme.open(ROW, "code", stored) == "acme's"
    with pytest.raises(SealedColumnError):
        seal.open(ROW, "code", stored)
    with pytest.raises(SealedColumnError):
        acme.of(TenantId("other")).open(ROW, "code", stored)
    assert seal.of(DEFAULT_TENANT) is seal
    assert seal.open(ROW, "code", seal.one(ROW, "code", "default's")) == "default's"


def test_a_tenants_value_is_rewrapped_bound_to_its_tenant() -> None:
    old, new = key_lines(2)
    acme = TenantId("acme")
    stored = ColumnSeal(parse_keyring(old), seal=True, tenant=acme).one(ROW, "code", "x")
    outcome, moved = (
        ColumnSeal(parse_keyring(old + new), seal=True).of(acme).rewrap(ROW, "code", stored)
    )
    assert outcome is Rewrap.REWRAPPED
    assert ColumnSeal(parse_keyring(new), tenant=acme).open(ROW, "code", moved) == "x"
    with pytest.raises(SealedColumnError):
        ColumnSeal(parse_keyring(new)).open(ROW, "code", moved)


def test_a_changed_byte_is_refused_as_unavailable() -> None:
    seal = _seal()
    raw = bytearray(base64.b64decode(seal.one(ROW, "code", "x" * 100)[len(PREFIX) :]))
    raw[-3] ^= 1
    tampered = PREFIX + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(BackendUnavailableError, match="does not open"):
        seal.open(ROW, "code", tampered)


def test_clear_values_pass_and_sealed_ones_need_the_key() -> None:
    seal = _seal()
    assert seal.open(ROW, "code", "print(1)") == "print(1)"
    stored = seal.one(ROW, "code", "x")
    with pytest.raises(SealedColumnError):
        ColumnSeal().open(ROW, "code", stored)  # no keys file
    with pytest.raises(SealedColumnError):
        ColumnSeal(fresh_keyring()).open(ROW, "code", stored)  # another one


def test_without_sealing_values_are_stored_in_clear() -> None:
    seal = ColumnSeal(fresh_keyring(), seal=False)
    assert seal.row(ROW) is None
    assert seal.one(ROW, "code", "x") == "x"
    assert seal.rewrap(ROW, "code", "x") == (Rewrap.CLEAR, "x")


def test_rewrap_keeps_the_ciphertext_and_moves_the_key() -> None:
    old, new = key_lines(2)
    before = ColumnSeal(parse_keyring(old), seal=True)
    stored = before.one(ROW, "code", "print('x')")
    both = ColumnSeal(parse_keyring(old + new), seal=True)

    outcome, moved = both.rewrap(ROW, "code", stored)

    assert outcome is Rewrap.REWRAPPED
    assert moved[-40:] == stored[-40:]  # nonce and ciphertext as they were
    assert ColumnSeal(parse_keyring(new)).open(ROW, "code", moved) == "print('x')"
    assert both.rewrap(ROW, "code", moved) == (Rewrap.CURRENT, moved)
    outcome, sealed = both.rewrap(ROW, "code", "clear")
    assert outcome is Rewrap.SEALED and both.open(ROW, "code", sealed) == "clear"


def test_only_the_named_metadata_keys_are_sealed() -> None:
    seal = _seal(metadata_keys=frozenset({"secret"}))
    sealer = seal.row(ROW)
    assert sealer is not None
    stored = seal.seal_metadata(sealer, {"secret": {"nested": [1, "✓"]}, "team": "a"})
    assert stored["team"] == "a" and stored["secret"].startswith(PREFIX)
    assert seal.open_metadata(ROW, stored) == {"secret": {"nested": [1, "✓"]}, "team": "a"}
