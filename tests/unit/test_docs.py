"""The docs stay true to the code: every setting in the configuration table, the README in
the shape a newcomer reads in five minutes, and every relative link pointing at a file."""

from __future__ import annotations

import re
from pathlib import Path

from src.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def documented_variables(text: str) -> set[str]:
    """Names in the table's first column: `A_B` and its shorthands `A_B` / `_C` (= A_C)."""
    names = set()
    for row in text.splitlines():
        if not row.startswith("| `"):
            continue
        first = row.split("|")[1]
        full = re.findall(r"`([A-Z][A-Z0-9_]+)`", first)
        names.update(full)
        if full:
            base = full[0].rsplit("_", 1)[0]
            names.update(base + suffix for suffix in re.findall(r"`(_[A-Z0-9_]+)`", first))
    return names


def test_every_setting_is_in_the_configuration_table() -> None:
    documented = documented_variables((ROOT / "docs" / "configuration.md").read_text())
    missing = sorted(
        name.upper() for name in Settings.model_fields if name.upper() not in documented
    )
    assert not missing, f"add to docs/configuration.md: {missing}"


def test_the_readme_is_what_it_is_the_two_commands_the_page_three_requests_then_links() -> None:
    readme = (ROOT / "README.md").read_text()
    titles = re.findall(r"(?m)^## (.+)$", readme)
    assert titles[:3] == ["Set-up: two commands", "The chat page", "Three requests"], titles
    assert titles[-1] == "More"
    lines = readme.splitlines()
    first_curl = next(i for i, line in enumerate(lines) if line.startswith("curl "))
    assert first_curl < 60, first_curl
    assert len(lines) < 160, len(lines)


def test_relative_links_point_at_files() -> None:
    broken = []
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
