"""The caller's sessions: `GET /sessions` (the list), `GET /sessions/{id}/messages` (a
transcript) and `DELETE /sessions/{id}` (everything of one session)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from src.api.auth import PrincipalDep
from src.api.deps import (
    CheckpointerDep,
    DirectoryDep,
    EraserDep,
    LeasesDep,
    OwnedSessionDep,
    StoreDep,
)
from src.api.routes import branches
from src.api.schemas import (
    READ_ERRORS,
    ErrorBody,
    SessionList,
    SessionSummary,
    TranscriptResponse,
)
from src.api.session_directory import CURSOR_PATTERN, not_found

router = APIRouter(prefix="/sessions", tags=["sessions"])

MAX_PAGE = 100


@router.get("", response_model=SessionList, responses=READ_ERRORS)
async def list_sessions(
    principal: PrincipalDep,
    directory: DirectoryDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Sessions per page")] = 20,
    cursor: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page"),
    ] = None,
) -> SessionList:
    """The caller's sessions, most recently active first, a page at a time. Pages are
    stable: sessions created while paging appear on the first page, never twice. A session
    is listed once one of its messages is stored (a refused first message lists nothing),
    titled by its first stored user message."""
    page = await directory.page(principal, limit, cursor)
    return SessionList(
        sessions=[SessionSummary(**row) for row in page.sessions], next_cursor=page.next_cursor
    )


@router.get("/{session_id}/messages", response_model=TranscriptResponse, responses=READ_ERRORS)
async def get_messages(
    session_id: OwnedSessionDep, store: StoreDep, checkpointer: CheckpointerDep
) -> TranscriptResponse:
    """The session's transcript (`conversations.messages`: the branch shown), oldest
    first; a message other branches hold alternatives of says so (`alternatives`)."""
    return await branches.transcript(store, checkpointer, session_id)


@router.delete(
    "/{session_id}",
    status_code=204,
    response_class=Response,
    responses={**READ_ERRORS, 409: {"model": ErrorBody}},
)
async def delete_session(
    session_id: OwnedSessionDep, leases: LeasesDep, eraser: EraserDep
) -> Response:
    """Delete the session: its transcript, checkpoints, pending writes, other branches'
    messages, turn events and owner row (409 mid-turn)."""
    run_id = uuid.uuid4()
    await leases.acquire(session_id, run_id)  # a running turn would write it back
    try:
        erased = await eraser.erase([session_id], run_id, "request")
    finally:
        await leases.release(session_id, run_id)
    if not erased.session_ids:
        raise not_found(session_id)
    return Response(status_code=204)
