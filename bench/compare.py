"""Before and after: the figures of the previous docs/benchmarks.md beside this run's, row by
row (`python -m bench` writes them under its tables; `python -m bench.compare OLD NEW` prints
them for any two files). A row is matched by its section heading (up to its first "(" or
" on ") and its first cell; rows without a match in both files are left out."""

from __future__ import annotations

import re
import sys
from pathlib import Path

HEADING = "## Before and after"


def _section(line: str) -> str:
    title = line.lstrip("#").strip()
    return re.split(r" \(| on (?=a |the )", title, maxsplit=1)[0]


def rows(markdown: str) -> dict[tuple[str, str], tuple[list[str], list[str]]]:
    """(section, first cell) -> (the table's header, the row's cells), first row of each."""
    found: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    section, header = "", None
    for line in markdown.splitlines():
        if line.startswith(HEADING) or line.startswith("## What the figures say"):
            break  # an earlier comparison, then the hand-written analysis
        if line.startswith("#"):
            section, header = _section(line), None
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
            elif not set("".join(cells)) <= set("-: "):
                found.setdefault((section, cells[0]), (header, cells))
        else:
            header = None
    return found


def _cells(header: list[str], cells: list[str]) -> str:
    return "; ".join(f"{h}: {c}" for h, c in zip(header[1:], cells[1:], strict=False))


def side_by_side(before: str, after: str) -> str:
    """A table of every row both files have, before and after."""
    old, new = rows(before), rows(after)
    lines = ["| section | figure | before | after |", "| --- | --- | --- | --- |"]
    for key, (header, cells) in new.items():
        if key in old:
            lines.append(f"| {key[0]} | {key[1]} | {_cells(*old[key])} | {_cells(header, cells)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(side_by_side(Path(sys.argv[1]).read_text(), Path(sys.argv[2]).read_text()))
