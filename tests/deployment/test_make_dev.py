"""`make dev PORT=...`: the exact command the target runs (taken from `make -n`, run with
this venv instead of `uv run` so the test never syncs it) binds the port it is given,
fails clearly when that port is taken, prints the real Studio URL, and its file watcher
ignores the data folders."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.studio_harness import LANGGRAPH, LANGGRAPH_DEV_MARKS
from tests.support import free_port, memory_env

ROOT = Path(__file__).resolve().parents[2]
STUDIO = "https://smith.langchain.com/studio/?baseUrl=http://127.0.0.1:{port}"

pytestmark = [
    *LANGGRAPH_DEV_MARKS,
    pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed"),
]


def dev_command(port: int) -> list[str]:
    """What `make dev PORT=<port>` runs after syncing, without its `uv run` prefix."""
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", "dev", f"PORT={port}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    [line] = [line for line in done.stdout.splitlines() if re.search(r"\buv run\b", line)]
    words = shlex.split(line)
    words = words[words.index("run") + 1 :]
    while words[0].startswith("--"):
        words.pop(0)
    program = {"python": sys.executable, "langgraph": str(LANGGRAPH)}
    return [program.get(words[0], words[0]), *words[1:]]


@contextmanager
def started(command: list[str], dsn: str, log_path: Path) -> Iterator[subprocess.Popen]:
    env = {
        **os.environ,
        **memory_env(dsn),
        "WEATHER_PROVIDER": "offline",
        "STOCK_PROVIDER": "offline",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
        "NO_COLOR": "1",
    }
    env.pop("OPENAI_API_KEY", None)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def wait_for(log_path: Path, proc: subprocess.Popen, text: str, limit: float = 90) -> str:
    """The log once it holds `text` or the process ended (polling, for at most `limit` s)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        log = re.sub(r"\x1b\[[0-9;]*m", "", log_path.read_text())
        if text in log or proc.poll() is not None:
            return log
        time.sleep(0.3)
    return re.sub(r"\x1b\[[0-9;]*m", "", log_path.read_text())


def test_taken_port_fails_clearly(database_dsn: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log_path = tmp_path / "dev.log"
        with started(dev_command(port), database_dsn, log_path) as proc:
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                code = None
            log = log_path.read_text()
    assert code not in (None, 0), f"make dev kept running on another port:\n{log[-2000:]}"
    assert f"port {port} is already in use" in log.lower(), log[-2000:]
    assert "PORT=" in log  # it says how to choose another one
    assert "Application started up" not in log


def test_given_port_real_studio_url_and_quiet_watcher(database_dsn: str, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "dev.log"
    data = ROOT / ".data"
    data.mkdir(exist_ok=True)
    probe = data / f"watch-probe-{port}.py"
    try:
        with started(dev_command(port), database_dsn, log_path) as proc:
            log = wait_for(log_path, proc, "Application started up")
            assert "Application started up" in log, log[-3000:]
            assert STUDIO.format(port=port) in log
            assert f"API: http://127.0.0.1:{port}" in log
            mark = len(log)
            probe.write_text("x = 1\n")  # a .py file: a watcher that saw it would reload
            time.sleep(3)  # the watcher's debounce is 1.6 s: give it time to react
            after = re.sub(r"\x1b\[[0-9;]*m", "", log_path.read_text())[mark:]
    finally:
        probe.unlink(missing_ok=True)
    assert "change detected" not in after and "changes detected" not in after, after
    assert "Reloading" not in after, after
