"""Where a bench run's wall time goes: each section's seconds, on stderr as it ends, and
a summary at the end (stdout and docs/benchmarks.md stay the tables)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Stopwatch:
    """Laps of one run (`python -m bench`, `python -m bench.retention`)."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.started = time.perf_counter()
        self.laps: list[tuple[str, float]] = []

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            self.laps.append((name, seconds))
            print(f"[{self.run}] {name}: {seconds:.0f} s", file=sys.stderr, flush=True)

    def summary(self) -> str:
        total = time.perf_counter() - self.started
        lines = [f"[{self.run}] wall time by section:"]
        lines += [f"  {seconds:7.0f} s  {name}" for name, seconds in self.laps]
        lines.append(f"  {total:7.0f} s  total ({total / 60:.1f} min)")
        return "\n".join(lines)

    def report(self) -> None:
        print(self.summary(), file=sys.stderr, flush=True)
