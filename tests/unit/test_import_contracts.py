"""The allow-list contract that keeps the domain to the standard library and msgspec."""

import grimp
from importlinter import ContractCheck

from tools.import_contracts import AllowListContract


def check(*imports: tuple[str, str]) -> ContractCheck:
    graph = grimp.ImportGraph()
    for module in ("pure", "pure.model", "outer"):
        graph.add_module(module)
    for module in ("msgspec", "anyio", "datetime"):
        graph.add_module(module, is_squashed=True)
    for line, (importer, imported) in enumerate(imports, start=1):
        graph.add_import(
            importer=importer, imported=imported, line_number=line, line_contents="import"
        )
    contract = AllowListContract(
        name="pure",
        session_options={},
        contract_options={"source_modules": ["pure"], "allowed_modules": ["msgspec"]},
    )
    return contract.check(graph, verbose=False)


def test_the_package_itself_the_standard_library_and_the_allowed_ones_pass() -> None:
    result = check(("pure.model", "pure"), ("pure.model", "datetime"), ("pure", "msgspec"))

    assert result.kept


def test_anything_else_is_reported_with_its_line() -> None:
    result = check(("pure.model", "msgspec"), ("pure.model", "anyio"), ("pure", "outer"))

    assert not result.kept
    assert result.metadata["illegal_imports"] == [
        {"importer": "pure", "imported": "outer", "line_numbers": [3]},
        {"importer": "pure.model", "imported": "anyio", "line_numbers": [2]},
    ]


def test_what_others_import_is_not_its_business() -> None:
    assert check(("outer", "anyio")).kept
