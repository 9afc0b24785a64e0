"""The wheel: `uv build` makes one that, installed into a new virtualenv outside the
checkout, runs the README's graph on the checkpointer and creates the schema from the
migrations shipped in the package. Nothing comes from the package index: the wheel is built
with the hatchling `make sync` installed (no build isolation), and the virtualenv gets the
locked runtime dependencies from uv's cache (`uv sync --offline`); about 5 s."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import fresh_database, run_example, schema_of

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")

pytestmark = pytest.mark.skipif(not Path(UV).exists(), reason="uv is not installed")


def uv(*args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        [UV, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a new virtualenv (outside the checkout) holding only the wheel and
    its locked runtime dependencies."""
    tmp = tmp_path_factory.mktemp("wheel")
    # The hatchling `make sync` installed (the dev group), no index.
    build = ["build", "--wheel", "--no-build-isolation", "--offline", "--python", sys.executable]
    uv(*build, "--out-dir", str(tmp / "dist"), "--quiet", cwd=ROOT)
    (wheel,) = (tmp / "dist").glob("vera-*.whl")
    # The locked runtime set as `make sync` installed it: from the lock file's own
    # addresses, which uv's cache holds (`uv pip install -r` would need the index's
    # pages, which `make sync` never fetched on a fresh machine).
    venv = tmp / "venv"
    env = os.environ | {"UV_PROJECT_ENVIRONMENT": str(venv)}
    sync = ["sync", "--frozen", "--offline", "--no-dev", "--no-install-project", "--quiet"]
    uv(*sync, "--python", sys.executable, cwd=ROOT, env=env)
    python = venv / "bin" / "python"
    uv(
        "pip",
        "install",
        "--offline",
        "--no-deps",
        "--quiet",
        "--python",
        str(python),
        str(wheel),
        cwd=tmp,
    )
    uv(
        "pip", "check", "--offline", "--quiet", "--python", str(python), cwd=tmp
    )  # the wheel's own requirements
    return python


def clean_env(home: Path) -> dict[str, str]:
    """The environment without anything pointing at the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env |= {"HOME": str(home), "XDG_DATA_HOME": str(home / ".local" / "share")}
    return env


def run(python: Path, code: str, cwd: Path) -> str:
    done = subprocess.run(
        [str(python), "-c", code],
        cwd=cwd,
        env=clean_env(cwd),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def test_the_installed_wheel_runs_a_graph_and_creates_the_schema(
    installed: Path, server_dsn: str, tmp_path: Path
) -> None:
    where = run(installed, "import src.agent.memory as m; print(m.__file__)", tmp_path)
    assert "site-packages" in where and not where.startswith(str(ROOT))
    async with fresh_database(server_dsn, "vera_wheel") as dsn:
        output = run_example(str(installed), dsn, tmp_path, env=clean_env(tmp_path))
        tables, conversations = await schema_of(dsn)
    assert output == "you said: hello\n"
    assert {
        "conversations",
        "checkpoints",
        "checkpoint_blobs",
        "checkpoint_writes",
        "conversation_messages",
        "transcript_heads",
    } <= tables
    assert conversations == 1


def test_the_installed_embedded_data_folder_is_not_in_site_packages(
    installed: Path, tmp_path: Path
) -> None:
    folder = run(
        installed,
        "from src.config.settings import Settings; print(Settings().postgres_memory_embedded_dir)",
        tmp_path,
    )
    assert "site-packages" not in folder
    assert Path(folder) == tmp_path / ".local" / "share" / "vera" / "postgres"


def test_the_installed_app_carries_its_own_migrations(installed: Path, tmp_path: Path) -> None:
    # The API's tables (turn events, session owners) come with the wheel too, so an
    # installed server starts without the checkout's top-level migrations/ folder.
    versions = run(
        installed,
        "from src.wiring import app_migrations; "
        "print([m.version for m in app_migrations().migrations])",
        tmp_path,
    )
    local = sorted(int(p.name[:4]) for p in (ROOT / "migrations").glob("*.sql"))
    assert versions == str(local)
