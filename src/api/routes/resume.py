"""`POST /sessions/{id}/turns/{turn_id}/resume`: answer the approval a turn waits for, and
stream the rest of the turn (from any worker, exactly once: see `src.api.turn_resume`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sse_starlette import EventSourceResponse

from src.api.approval_schemas import ResumeRequest
from src.api.deps import AdmissionDep, OwnedSessionDep, RunnerDep, SettingsDep
from src.api.event_schema import event_stream_schema
from src.api.routes.chat import ERRORS, admitted, stream_turn
from src.api.routes.turn_status import TurnId
from src.api.schemas import ErrorBody

router = APIRouter(prefix="/sessions", tags=["turns"])

RESUME_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {
        "model": ErrorBody,
        "description": "`nothing_to_resume`: this turn does not wait for an approval (it "
        "never paused, another turn is waiting, or no such turn); `session_busy`: a turn "
        "of this session is running",
    },
    422: {
        "model": ErrorBody,
        "description": "`invalid_request`: the body is wrong, or `approved` names a call "
        "that does not await approval",
    },
}


@router.post(
    "/{session_id}/turns/{turn_id}/resume",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "The rest of the turn's events, as `POST /chat` streams them "
            "(numbered on from the paused stream), ending with `done`, `error` or another "
            "`interrupt`",
            "content": {"text/event-stream": {"schema": event_stream_schema()}},
        },
        **RESUME_ERRORS,
    },
)
async def resume_turn(
    session_id: OwnedSessionDep,
    turn_id: TurnId,
    body: ResumeRequest,
    runner: RunnerDep,
    admission: AdmissionDep,
    settings: SettingsDep,
) -> EventSourceResponse:
    """Approve or deny the tool calls a turn paused on (its `interrupt` event), and stream
    the rest of the turn. Declined calls are not run; the model is told the user declined
    them. Sending the same answer again once the turn went on replays its stored events and
    runs nothing (a tool never runs twice)."""
    turn = await admitted(
        admission,
        lambda on_end: runner.start(session_id, "", turn_id, answer=body, on_end=on_end),
    )
    return stream_turn(turn, settings)
