"""The import graph docs/architecture.md draws: the memory is a library (no settings, no API), the
graph never imports the memory, and the memory's SQL lives in its SQL modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEMORY = ROOT / "src" / "agent" / "memory"
SQL_MODULES = {"sql.py", "prune_sql.py", "retention_sql.py"}
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
    """The memory's SQL in its SQL modules (`SQL_MODULES`), the API's in `src/api/sql.py`."""
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
    ours = {p.name[5:] for p in (MEMORY / "migrations").glob("*.sql")}
    apps = {p.name[5:] for p in (ROOT / "migrations").glob("*.sql")}
    assert ours and apps and not ours & apps


def tables_created_in(folder: Path) -> set[str]:
    found = set()
    for path in folder.glob("*.sql"):
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", text))
    return found


def test_the_memory_touches_only_its_own_tables() -> None:
    """No SQL of the library (statements, migrations, functions) names a table the app
    creates: the checkpointer owns everything its SQL touches."""
    app_tables = tables_created_in(ROOT / "migrations") | {"vera_app_migrations"}
    assert app_tables >= {"turn_events", "session_owners"}
    texts = [p.read_text(encoding="utf-8") for p in MEMORY.rglob("*.sql")]
    texts += [p.read_text(encoding="utf-8") for p in MEMORY.rglob("*.py")]
    for table in app_tables:
        named = [t for t in texts if re.search(rf"\b{table}\b", t)]
        assert not named, f"the memory's SQL names the app's table {table}"
