"""FastAPI dependencies: the objects the lifespan puts on `app.state`, as `Annotated` aliases.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker thread.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore
from src.api.admission import TurnAdmission
from src.api.auth import PrincipalDep
from src.api.session_directory import SessionDirectory
from src.api.session_erase import SessionEraser
from src.api.session_ttl import TTLPolicy
from src.api.turn_events import TurnEventLog
from src.api.turn_leases import TurnLeases
from src.api.turns import TurnRunner
from src.config.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> PostgresMemoryStore:
    return request.app.state.store


async def get_runner(request: Request) -> TurnRunner:
    return request.app.state.runner


async def get_admission(request: Request) -> TurnAdmission:
    return request.app.state.admission


async def get_event_log(request: Request) -> TurnEventLog:
    return request.app.state.runner.events


async def get_leases(request: Request) -> TurnLeases:
    return request.app.state.runner.leases


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[PostgresMemoryStore, Depends(get_store)]
RunnerDep = Annotated[TurnRunner, Depends(get_runner)]
AdmissionDep = Annotated[TurnAdmission, Depends(get_admission)]
LeasesDep = Annotated[TurnLeases, Depends(get_leases)]
EventLogDep = Annotated[TurnEventLog, Depends(get_event_log)]


async def get_directory(request: Request) -> SessionDirectory:
    return request.app.state.runner.directory


DirectoryDep = Annotated[SessionDirectory, Depends(get_directory)]


async def owned_session(
    session_id: uuid.UUID, principal: PrincipalDep, directory: DirectoryDep
) -> uuid.UUID:
    """The path's session, when the caller owns it (404 otherwise)."""
    await directory.require(session_id, principal)
    return session_id


OwnedSessionDep = Annotated[uuid.UUID, Depends(owned_session)]


async def get_checkpointer(request: Request) -> ConversationCheckpointer:
    return request.app.state.checkpointer


CheckpointerDep = Annotated[ConversationCheckpointer, Depends(get_checkpointer)]


async def get_eraser(request: Request) -> SessionEraser:
    return request.app.state.eraser


async def get_ttl_policy(request: Request) -> TTLPolicy:
    return request.app.state.ttl_policy


EraserDep = Annotated[SessionEraser, Depends(get_eraser)]
TTLPolicyDep = Annotated[TTLPolicy, Depends(get_ttl_policy)]
