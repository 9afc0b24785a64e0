"""The import graph docs/architecture.md draws: the memory is a library (no settings, no API), the
graph never imports the memory, and the memory's SQL lives in its SQL modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEMORY = ROOT / "src" / "agent" / "memory"
SQL_MODULES = {"sql.py", "prune_sql.py"}
SQL_TEXT = re.compile(
    r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE (TABLE|DATABASE)|SHOW [a-z_]+$)\b"
)


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_memory_imports_nothing_of_the_app() -> None:
    for path in MEMORY.rglob("*.py"):
        names = imports_of(path)
        app = {n for n in names if n.startswith("src.") and not n.startswith("src.agent.memory")}
        assert not app, f"{path.relative_to(ROOT)} imports {sorted(app)}"


def test_the_graph_does_not_import_the_memory() -> None:
    for path in (ROOT / "src" / "agent").glob("*.py"):
        memory = {n for n in imports_of(path) if n.startswith("src.agent.memory")}
        assert not memory, f"{path.relative_to(ROOT)} imports {sorted(memory)}"


def test_the_sql_is_in_the_sql_modules() -> None:
    """The memory's SQL in `sql.py` / `prune_sql.py`, the API's in `src/api/sql.py`."""
    for path in [*(ROOT / "src").rglob("*.py"), *(ROOT / "graphs").rglob("*.py")]:
        if path.name in SQL_MODULES:
            continue
        strings = [
            node.value
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
        found = [s for s in strings if SQL_TEXT.search(s)]
        assert not found, f"{path.relative_to(ROOT)} holds SQL: {found[:2]}"


def test_the_checkpointer_ships_its_migrations_in_the_package() -> None:
    assert sorted(p.name for p in (MEMORY / "migrations").glob("*.sql"))
    assert not list((ROOT / "migrations").glob("000[1245]_*.sql"))
