"""Rules the whole tree keeps: no formatter opt-outs, and the checkpointer's stored
functions defined in their current form only, in `src/agent/memory/functions/`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "src" / "agent" / "memory" / "functions"
_SKIPPED = {".git", ".venv", ".tools", ".data", "node_modules", "__pycache__"}


def tree() -> list[Path]:
    """The files of the checkout (git's list when there is one, else a walk)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return [ROOT / name for name in listed if (ROOT / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [p for p in ROOT.rglob("*") if p.is_file() and not _SKIPPED & set(p.parts)]


def test_no_formatter_opt_outs() -> None:
    marker = "# fmt: " + "skip"  # not itself a marker
    found = [
        str(p.relative_to(ROOT))
        for p in tree()
        if p.suffix == ".py" and marker in p.read_text(encoding="utf-8")
    ]
    assert not found, f"{marker} in {found}"


def test_plpgsql_functions_are_defined_only_in_their_current_home() -> None:
    """(A data move may define a temporary SQL function; none is PL/pgSQL.)"""
    definition = re.compile(
        r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+([\w.]+)(.*?)\bAS\s+\$\$",
        re.IGNORECASE | re.DOTALL,
    )
    found = []
    for path in tree():
        if path.suffix not in {".sql", ".py", ".md"} or path.parent == FUNCTIONS:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for name, header in definition.findall(text):
            if "plpgsql" not in header.lower():
                continue
            # Tests may define helpers of their own (a trigger counting rewrites); none of
            # the checkpointer's, and no source file any.
            if name.startswith("vera_") or "tests" not in path.relative_to(ROOT).parts:
                found.append(f"{path.relative_to(ROOT)}: {name}")
    assert not found, found
    assert len(list(FUNCTIONS.glob("vera_*.sql"))) > 10
