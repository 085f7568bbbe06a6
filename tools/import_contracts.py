"""import-linter contract types that the built-in ones do not cover.

Registered in ``[tool.importlinter] contract_types``; ``lint-imports`` puts the
working directory on ``sys.path``, so this module is found without being installed.
"""

import sys
from typing import TypedDict, cast

import grimp
from importlinter import Contract, ContractCheck, fields, output
from importlinter.domain.imports import Module


class IllegalImport(TypedDict):
    importer: str
    imported: str
    line_numbers: list[int]


class AllowListContract(Contract):
    """The source packages import only themselves, the standard library and ``allowed_modules``.

    The built-in ``forbidden`` type holds only against the packages someone thought to list:
    a dependency added later slips through. This one lists what may come in instead. It needs
    ``include_external_packages = true`` to see the imports of packages outside the root ones.
    Direct imports only: what msgspec imports in turn is msgspec's business.

    Options:
        - source_modules: the packages held to the list, each with all its submodules.
        - allowed_modules: top-level packages beyond the standard library they may import.
    """

    source_modules = fields.ListField(subfield=fields.ModuleField())
    allowed_modules = fields.ListField(subfield=fields.StringField())

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        allowed = frozenset(cast("list[str]", self.allowed_modules)) | sys.stdlib_module_names
        illegal: list[IllegalImport] = []
        for source in cast("list[Module]", self.source_modules):
            modules = {source.name} | graph.find_descendants(source.name)
            output.verbose_print(verbose, f"Checking the imports of {len(modules)} modules...")
            for importer in sorted(modules):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    inside = imported == source.name or imported.startswith(f"{source.name}.")
                    if inside or imported.partition(".")[0] in allowed:
                        continue
                    details = graph.get_import_details(importer=importer, imported=imported)
                    lines = [detail["line_number"] for detail in details]
                    illegal.append(
                        {"importer": importer, "imported": imported, "line_numbers": lines}
                    )
        return ContractCheck(kept=not illegal, metadata={"illegal_imports": illegal})

    def render_broken_contract(self, check: ContractCheck) -> None:
        allowed = ", ".join(cast("list[str]", self.allowed_modules))
        output.print_error(f"Only the standard library and {allowed} may be imported:", bold=False)
        output.new_line()
        for link in cast("list[IllegalImport]", check.metadata["illegal_imports"]):
            lines = ", ".join(map(str, link["line_numbers"]))
            where = f"{link['importer']} -> {link['imported']} (l.{lines})"
            output.print_error(f"- {where}", bold=False)
            output.new_line()
