"""The Makefile and Dockerfile install what each target needs: the runtime alone for
`make run` and the image, the dev group for tests, lint and tools (checked with `make -n`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(*targets: str) -> list[str]:
    """The uv commands `make -n <targets>` would run, in order."""
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", *targets],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return [line for line in done.stdout.splitlines() if re.search(r"\buv (sync|run)\b", line)]


def test_run_installs_and_runs_without_the_dev_group() -> None:
    commands = dry_run("run")
    assert commands, "make run runs no uv command"
    assert all("--no-dev" in command for command in commands), commands


@pytest.mark.parametrize("target", ["test", "lint", "dev", "bench"])
def test_dev_targets_sync_the_dev_group_again(target: str) -> None:
    # `make run` then `make test`: the second must put pytest back.
    commands = dry_run("run", target)
    syncs = [c for c in commands if " sync " in c + " "]
    assert "--no-dev" not in syncs[-1], commands
    assert all("--no-dev" not in c for c in commands[commands.index(syncs[-1]) :]), commands


def test_the_image_installs_without_the_dev_group() -> None:
    steps = [line for line in (ROOT / "Dockerfile").read_text().splitlines()
             if re.search(r"\buv (sync|run|pip)\b", line)]  # fmt: skip
    assert steps and all("--no-dev" in step for step in steps), steps
