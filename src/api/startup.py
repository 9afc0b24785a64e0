"""Start-up failures a person can act on, said in one line: the memory database unreachable
or refusing us, the embedded PostgreSQL unable to start, a setting refused once the database
is known, the HTTP port taken. Never a traceback for those (uvicorn would log one)."""

from __future__ import annotations

import os
import socket

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.agent.memory.embedded import EmbeddedPostgresError
from src.agent.memory.store import StorageUnavailableError
from src.config.settings import SettingsError

# Failures of the environment or the configuration, not of the code.
EXPECTED_FAILURES: tuple[type[BaseException], ...] = (
    StorageUnavailableError,
    EmbeddedPostgresError,
    SettingsError,
)


def failure_line(exc: BaseException) -> str:
    return f"Vera cannot start: {exc}"


class OneLineStartupFailure:
    """Pure ASGI, outermost: when the lifespan's start-up fails with one of
    `EXPECTED_FAILURES`, the failure message uvicorn logs is that one line instead of the
    traceback Starlette puts there. Other failures keep their traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold_failure(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                held.append(message)  # sent once the exception behind it is known
                return
            await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except EXPECTED_FAILURES as exc:
            if held:
                held[:] = [{"type": "lifespan.startup.failed", "message": failure_line(exc)}]
            raise
        finally:
            for message in held:
                await send(message)


def port_problem(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on (taken, not an address of this machine), or
    None when it can (as uvicorn binds it: SO_REUSEADDR, so a closing socket is no
    obstacle)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_server((host, port), family=family):
            return None
    except OSError as exc:
        return os.strerror(exc.errno) if exc.errno else str(exc)
