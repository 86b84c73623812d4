"""Only the gate touches personal-data tables: domain, route and CLI modules import neither the
session nor the table models (STYLE.md, habit 1). Checked on the import statements."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "registry"
FORBIDDEN = ("registry.db", "registry.models", "sqlalchemy", "sqlmodel")
# The gate and the infrastructure under it; every other module sits outside the gate and
# talks to people or programs (a new domain folder is covered without being listed).
INSIDE = {"vault", "models", "security"}
INSIDE_MODULES = {"db.py", "migrate.py", "config.py", "__init__.py", "clock.py", "errors.py"}
# The importers sit outside the gate too: they parse files and call services.
IMPORTERS = PACKAGE.parent / "importers"
OUTSIDE = sorted(
    [p for p in PACKAGE.glob("*/*.py") if p.parent.name not in INSIDE]
    + [p for p in PACKAGE.glob("*.py") if p.name not in INSIDE_MODULES]
    + list(IMPORTERS.glob("*.py"))
)


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", OUTSIDE, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_outside_the_gate_no_session_or_tables(path):
    bad = {m for m in imported_modules(path)
           if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)}
    assert not bad, f"{path.name} imports {sorted(bad)}: go through the vault"


def test_the_check_sees_every_domain_module():
    assert {p.parent.name for p in OUTSIDE} >= {
        "rentals", "residents", "corrections", "releases", "accounts", "audit", "jurisdictions",
        "web"}
    assert {p.name for p in OUTSIDE} >= {"api.py", "cli.py", "deps.py", "demo.py", "run.py",
                                          "rows.py"}
