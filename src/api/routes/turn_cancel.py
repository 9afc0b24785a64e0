"""`POST /sessions/{id}/turns/{turn_id}/cancel`: stop a running turn, from any worker."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from fastapi import APIRouter, Response

from src.api import metrics
from src.api.deps import EventLogDep, LeasesDep, OwnedSessionDep, RunnerDep
from src.api.routes.turn_status import TurnId, status_of_turn, unknown_turn
from src.api.schemas import READ_ERRORS, ErrorBody, TurnStatus
from src.api.turn_events import StoredEvent

router = APIRouter(prefix="/sessions", tags=["turns"])

# How long the answer waits for the stopped turn's `cancelled` event (its worker stops it
# within about a second; a slower end is answered 202, and the turn still stops).
WAIT_SECONDS = 5.0

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The turn has ended: `cancelled` by this request, or how it ended"},
    202: {
        "model": TurnStatus,
        "description": f"Asked to stop, still `running` after {WAIT_SECONDS:g} s (it stops)",
    },
    **READ_ERRORS,
    # A POST: a body it does not take is still checked (size, media type, JSON).
    **{status: {"model": ErrorBody} for status in (400, 413, 415)},
}


def _run_id(events: list[StoredEvent]) -> uuid.UUID:
    """The run of the turn's last attempt (its last `session` event)."""
    session = next(e for e in reversed(events) if e.event == "session")
    return uuid.UUID(session.data["run_id"])


@router.post("/{session_id}/turns/{turn_id}/cancel", response_model=TurnStatus, responses=RESPONSES)
async def cancel_turn(
    session_id: OwnedSessionDep,
    turn_id: TurnId,
    log: EventLogDep,
    leases: LeasesDep,
    runner: RunnerDep,
    response: Response,
) -> TurnStatus:
    """Stop the turn: its worker, whichever it is, stops it within about a second. What
    was streamed is kept as the assistant's answer (marked `response_metadata.stopped`),
    tool calls that had not finished get a "cancelled" tool result, and the stream ends
    with `cancelled`. Answers the turn's status once it ended (200, `cancelled`). A turn
    that is not running (`done`, `error`, `cancelled`, `interrupted`) is left as it is:
    200 with its status, nothing changed."""
    events = await log.events_after(session_id, turn_id, 0)
    if not events:
        raise unknown_turn(turn_id)
    status = status_of_turn(session_id, turn_id, events, await leases.held_by_any(session_id))
    if status.status != "running":
        metrics.turn_cancel("finished")
        return status
    await runner.cancels.request(session_id, turn_id, _run_id(events))
    metrics.turn_cancel("requested")

    async def running() -> bool:
        return await leases.held_by_any(session_id)

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(WAIT_SECONDS):
            async for event in log.follow(session_id, turn_id, events[-1].seq, running=running):
                events.append(event)
    status = status_of_turn(session_id, turn_id, events, await leases.held_by_any(session_id))
    if status.status == "running":
        response.status_code = 202
    return status
