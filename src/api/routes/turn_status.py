"""A turn after the fact: `GET /sessions/{id}/turns/{turn_id}` (how it ended) and
`GET /sessions/{id}/turns/{turn_id}/events` (its stream again, after `Last-Event-ID`,
followed live until it ends, from any worker)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from src.api.approval_schemas import InterruptEvent
from src.api.deps import EventLogDep, LeasesDep, OwnedSessionDep, SettingsDep
from src.api.errors import ApiError
from src.api.event_schema import event_stream_schema
from src.api.schemas import (
    LAST_EVENT_ID_PATTERN,
    MAX_EVENT_NUMBER,
    READ_ERRORS,
    TURN_ID_PATTERN,
    TurnError,
    TurnStatus,
    Usage,
)
from src.api.turn_events import StoredEvent

router = APIRouter(prefix="/sessions", tags=["turns"])
LAST_EVENT_ID_CHARS = 64 + 1 + 9  # turn_id, ':', the number
TurnId = Annotated[str, Path(pattern=TURN_ID_PATTERN, description="The turn's turn_id")]


def unknown_turn(turn_id: str) -> ApiError:
    return ApiError(
        404, "not_found", f"No turn {turn_id!r} in this session (or its events expired)."
    )


def status_of_turn(
    session_id: uuid.UUID, turn_id: str, events: list[StoredEvent], running: bool
) -> TurnStatus:
    last_session = max((i for i, e in enumerate(events) if e.event == "session"), default=0)
    attempt = events[last_session:]
    answer = "".join(e.data.get("content", "") for e in attempt if e.event == "token")
    last = events[-1]
    status = TurnStatus(
        session_id=session_id,
        turn_id=turn_id,
        status="running",
        answer=answer,
        last_event_id=f"{turn_id}:{last.seq}",
    )
    if last.event == "done":
        status.status = "done"
        status.message_id = last.data.get("message_id")
        status.usage = Usage(**last.data.get("usage", {}))
    elif last.event == "error":
        status.status = "error"
        status.error = TurnError(**last.data)
    elif last.event == "interrupt":
        status.status = "needs_approval"
        status.interrupt = InterruptEvent(**last.data)
    elif last.event == "cancelled":
        status.status = "cancelled"
        status.message_id = last.data.get("message_id")
        status.usage = Usage(**last.data.get("usage", {}))
    elif not running:
        status.status = "interrupted"
    return status


@router.get("/{session_id}/turns/{turn_id}", response_model=TurnStatus, responses=READ_ERRORS)
async def get_turn(
    session_id: OwnedSessionDep, turn_id: TurnId, log: EventLogDep, leases: LeasesDep
) -> TurnStatus:
    """How the turn stands: `running`, `done` (with its answer and usage), `error` (with its
    code), `cancelled` (stopped; the answer streamed until then is kept), `interrupted`
    (its worker stopped; send the same message with this turn_id to resume it), or
    `needs_approval` (it paused for the user's approval of a tool call, `interrupt`;
    answer with `POST .../resume`)."""
    events = await log.events_after(session_id, turn_id, 0)
    if not events:
        raise unknown_turn(turn_id)
    return status_of_turn(session_id, turn_id, events, await leases.held_by_any(session_id))


def _after(turn_id: str, last_event_id: str | None, after: int | None) -> int:
    """The event number to replay after: `?after`, else that of `Last-Event-ID` (of the
    documented form already), which must name an event of this turn."""
    if after is not None:
        return after
    if last_event_id is None:
        return 0
    prefix, _, number = last_event_id.rpartition(":")
    if prefix != turn_id:
        raise ApiError(
            422,
            "invalid_request",
            f"Last-Event-ID is not an event id of this turn (expected '{turn_id}:<number>').",
        )
    return int(number)


@router.get(
    "/{session_id}/turns/{turn_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "The turn's events, as `POST /chat` streams them",
            "content": {"text/event-stream": {"schema": event_stream_schema()}},
        },
        **READ_ERRORS,
    },
)
async def turn_events(
    session_id: OwnedSessionDep,
    turn_id: TurnId,
    log: EventLogDep,
    leases: LeasesDep,
    settings: SettingsDep,
    last_event_id: Annotated[
        str | None,
        Header(
            pattern=LAST_EVENT_ID_PATTERN,
            max_length=LAST_EVENT_ID_CHARS,
            description="The `id:` of the last event received, `<turn_id>:<n>` (n: the "
            "event's number, 1 to 9 digits), to resume after it; an id of another turn is "
            "refused (422). A browser `EventSource` sends it by itself when it reconnects.",
        ),
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_EVENT_NUMBER, description="Replay after this event number")
    ] = None,
) -> EventSourceResponse:
    """The turn's events after `Last-Event-ID` (or `?after=N`), as `POST /chat` sent them,
    then live until the turn ends. A browser `EventSource` reconnects with `Last-Event-ID`
    by itself. Ends early, with no terminal event, if the turn's worker stopped."""
    start = _after(turn_id, last_event_id, after)
    if not await log.events_after(session_id, turn_id, 0) and not await leases.held_by_any(
        session_id
    ):
        raise unknown_turn(turn_id)

    async def running() -> bool:
        return await leases.held_by_any(session_id)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async for event in log.follow(session_id, turn_id, start, running=running):
            yield ServerSentEvent(
                data=json.dumps(event.data), event=event.event, id=f"{turn_id}:{event.seq}"
            )

    return EventSourceResponse(
        stream(),
        ping=settings.sse_ping_seconds,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
