"""The Makefile and Dockerfile install what each target needs: the runtime alone for
`make run` and the image, the dev group for tests, lint and tools (checked with `make -n`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(*targets: str) -> list[str]:
    """The uv commands `make -n <targets>` would run, in order."""
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return [line for line in done.stdout.splitlines() if re.search(r"\buv (sync|run)\b", line)]


def test_run_installs_and_runs_without_the_dev_group() -> None:
    commands = dry_run("run")
    assert commands, "make run runs no uv command"
    assert all("--no-dev" in command for command in commands), commands


@pytest.mark.parametrize("target", ["test", "test-unit", "test-deployment", "lint", "dev", "bench"])
def test_dev_targets_sync_the_dev_group_again(target: str) -> None:
    # `make run` then `make test`: the second must put pytest back.
    commands = dry_run("run", target)
    syncs = [c for c in commands if " sync " in c + " "]
    assert "--no-dev" not in syncs[-1], commands
    assert all("--no-dev" not in c for c in commands[commands.index(syncs[-1]) :]), commands


def test_the_image_installs_without_the_dev_group() -> None:
    steps = [
        line
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if re.search(r"\buv (sync|run|pip)\b", line)
    ]
    assert steps and all("--no-dev" in step for step in steps), steps


@pytest.mark.parametrize("tier", ["unit", "memory", "api", "deployment"])
def test_each_tier_has_a_target_that_runs_its_folder(tier: str) -> None:
    (command,) = [c for c in dry_run(f"test-{tier}") if " pytest" in c]
    assert command.endswith(f"pytest tests/{tier}"), command


def test_make_test_unit_passes_with_no_database_reachable(tmp_path: Path) -> None:
    """The README's `make test-unit`, with every database address pointing nowhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["TEST_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/none"
    done = subprocess.run(
        ["make", "--no-print-directory", "test-unit"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"\d+ passed", done.stdout) and "error" not in done.stdout.splitlines()[-1]


def test_not_deployment_selects_every_tier_but_the_deployment_one() -> None:
    """The README's `pytest -m "not deployment"`."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not deployment"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    folders = {line.split("/")[1] for line in ids}
    assert folders == {"unit", "memory", "api"}, folders


def test_make_run_takes_a_port_as_make_dev_does() -> None:
    (given,) = dry_run("run", "PORT=8001")[-1:]
    assert given.startswith("API_PORT=8001 ") and given.endswith("python -m src.api"), given
    (default,) = dry_run("run")[-1:]
    assert "API_PORT" not in default, default  # API_PORT of .env or the environment, else 8000


def test_the_uv_make_sync_used_stays_for_later_targets(tmp_path: Path) -> None:
    """`make sync` with a uv on PATH, then `make test` where PATH has none (another shell,
    `env -i`, a network namespace): it must not try to install uv again (that needs the
    network)."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "uv"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "calls"}\n')
    fake.chmod(0o755)
    synced = subprocess.run(
        ["make", "--no-print-directory", "sync"],
        cwd=tmp_path,
        env={"PATH": f"{tools}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert synced.returncode == 0, synced.stderr
    assert (tmp_path / "calls").read_text().split() == ["sync", "--frozen"]
    later = subprocess.run(
        ["make", "-n", "--no-print-directory", "test"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "pip install" not in later.stdout, later.stdout
    assert f"{tmp_path}/.tools/bin/uv run --frozen pytest" in later.stdout, later.stdout
