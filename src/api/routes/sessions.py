"""`GET /sessions/{id}/messages` (the transcript) and `DELETE /sessions/{id}` (everything)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from src.api.deps import EventLogDep, LeasesDep, StoreDep
from src.api.errors import ApiError
from src.api.schemas import READ_ERRORS, ErrorBody, TranscriptResponse
from src.api.security import Authorized

router = APIRouter(prefix="/sessions", tags=["sessions"], dependencies=[Authorized])


def _unknown(session_id: uuid.UUID) -> ApiError:
    return ApiError(404, "not_found", f"No session {session_id}.")


@router.get("/{session_id}/messages", response_model=TranscriptResponse, responses=READ_ERRORS)
async def get_messages(session_id: uuid.UUID, store: StoreDep) -> TranscriptResponse:
    """The session's transcript (`conversations.messages`), oldest first."""
    messages = await store.get_messages(session_id)
    if messages is None:
        raise _unknown(session_id)
    return TranscriptResponse(session_id=session_id, messages=messages)


@router.delete(
    "/{session_id}",
    status_code=204,
    response_class=Response,
    responses={**READ_ERRORS, 409: {"model": ErrorBody}},
)
async def delete_session(
    session_id: uuid.UUID, store: StoreDep, leases: LeasesDep, events: EventLogDep
) -> Response:
    """Delete the session: its transcript, checkpoints, pending writes and turn events
    (409 mid-turn)."""
    run_id = uuid.uuid4()
    await leases.acquire(session_id, run_id)  # a running turn would write it back
    try:
        existed = await store.delete_session(session_id)
        await events.delete_session(session_id)
    finally:
        await leases.release(session_id, run_id)
    if not existed:
        raise _unknown(session_id)
    return Response(status_code=204)
