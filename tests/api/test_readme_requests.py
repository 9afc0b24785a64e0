"""The README's "Three requests", run as written (bash and curl) against the app on a free
port instead of 8000."""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest

from src.api.app import create_app
from tests.api_harness import serve, settings_for
from tests.fakes import FakeModel
from tests.support import ROOT


def readme_requests() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Three requests", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no bash block in the README's section"
    return match[1]


async def test_the_three_requests_run_as_written(database_dsn: str) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    script = readme_requests()
    assert script.count("curl ") == 3
    app = create_app(settings_for(database_dsn), model=FakeModel())
    async with serve(app) as url:
        shell = await asyncio.create_subprocess_exec(
            "bash",
            "-euo",
            "pipefail",
            "-c",
            script.replace("http://127.0.0.1:8000", url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(shell.communicate(), 120)
    assert shell.returncode == 0, err.decode()
    text = out.decode()
    assert "event: tool_call" in text and "event: done" in text  # the stream
    assert '"response":' in text and "MSFT" in text  # the JSON answer
    roles = re.findall(r'"role":\s*"(\w+)"', text.rsplit('"response":', 1)[1])
    assert roles.count("user") == 2 and "tool" in roles and roles[-1] == "assistant", roles
