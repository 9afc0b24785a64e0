"""`POST /chat` (Server-Sent Events) and `POST /chat/complete` (one JSON answer)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from fastapi import APIRouter
from sse_starlette import EventSourceResponse, ServerSentEvent

from src.api.admission import TurnAdmission
from src.api.approval_schemas import InterruptEvent
from src.api.auth import Principal, PrincipalDep
from src.api.deps import AdmissionDep, RunnerDep, SettingsDep
from src.api.error_catalogue import message_of, status_of
from src.api.errors import ApiError
from src.api.event_schema import event_stream_schema
from src.api.schemas import (
    EVENT_EXAMPLES,
    EVENT_MODELS,
    CancelledEvent,
    ChatRequest,
    ChatResponse,
    DoneEvent,
    ErrorBody,
    ErrorEvent,
    ToolCallEvent,
    ToolCallRecord,
    ToolResultEvent,
    Usage,
)
from src.api.turn_stream import Turn, TurnEvent, error_event
from src.api.turns import TurnRunner
from src.config.settings import Settings

router = APIRouter(tags=["chat"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not UTF-8 JSON"},
    401: {"model": ErrorBody, "description": "Missing or wrong API key"},
    403: {"model": ErrorBody, "description": "`forbidden`: X-User-Id from a non-gateway key"},
    404: {"model": ErrorBody, "description": "The session belongs to another caller"},
    409: {
        "model": ErrorBody,
        "description": "`session_busy`: a turn of this session is running; `turn_conflict`: "
        "the turn_id was used for another message; `approval_pending`: the session's last "
        "turn waits for the user's approval of a tool call (the message names it); "
        "`turn_cancelled` (`/chat/complete`): the turn was stopped by a cancel request",
    },
    413: {"model": ErrorBody, "description": "Body over `MAX_BODY_BYTES`"},
    415: {"model": ErrorBody, "description": "Body is not JSON"},
    422: {"model": ErrorBody, "description": "`invalid_request`: the fields that are wrong"},
    429: {"model": ErrorBody, "description": "`rate_limited`, with `Retry-After`"},
    503: {
        "model": ErrorBody,
        "description": "`storage_unavailable`, `llm_unavailable`, or `overloaded` (with "
        "`Retry-After`: the worker is at capacity, the database is up)",
    },
}

STREAM_DOC = """Streams the turn as Server-Sent Events; every event has an `id:`, an `event:`
name and a JSON `data:` line. Order: `session`, then `token`s, `tool_call`s and
`tool_result`s as they happen, then exactly one of `done` (success), `error` (the turn
failed; the user's message is kept, and sending it again retries the turn), `interrupt`
(the turn paused for the user's approval of a tool call: answer it with
`POST /sessions/{session_id}/turns/{turn_id}/resume`) or `cancelled` (stopped by
`POST /sessions/{id}/turns/{turn_id}/cancel`; what was streamed is kept as the answer).
Comment lines
(`: ping`) keep the connection alive while the model or a tool is slow. A client that
disconnects does not stop the turn: it completes and is stored.

Errors found before the turn starts (auth, validation, rate limit, busy session, database
down) are answered as plain HTTP errors with a JSON body, not as a stream.

Events: """ + ", ".join(
    f"`{name}` `{json.dumps(example)}`" for name, example in EVENT_EXAMPLES.items()
)


async def admitted(
    admission: TurnAdmission, start: Callable[[Callable[[], None]], Awaitable[Turn]]
) -> Turn:
    """Admit a turn (`OverloadedError` when the worker stays at capacity), then `start` it
    with the callback that gives its place back when it ends."""
    ticket = await admission.admit()
    try:
        return await start(ticket.release)
    except BaseException:
        ticket.release()
        raise


async def _start(
    body: ChatRequest, principal: Principal, runner: TurnRunner, admission: TurnAdmission
) -> Turn:
    """Admit the turn, then claim the session and start the turn."""

    async def start(on_end: Callable[[], None]) -> Turn:
        await runner.directory.claim(body.session_id, principal)
        return await runner.start(body.session_id, body.message, body.turn_id, on_end=on_end)

    return await admitted(admission, start)


def _sse_example() -> str:
    return "".join(
        f"id: {i}\nevent: {name}\ndata: {json.dumps(example)}\n\n"
        for i, (name, example) in enumerate(EVENT_EXAMPLES.items(), 1)
        if name not in {"error", "interrupt", "cancelled"}
    )


async def _events(
    turn: Turn, shutdown: anyio.Event, grace_seconds: float
) -> AsyncIterator[ServerSentEvent]:
    """The turn's events; on server shutdown the stream stays open until the turn ends, for
    at most `grace_seconds`, then ends with `error` `shutting_down`."""
    deadline = asyncio.create_task(_end_at_shutdown(turn, shutdown, grace_seconds))
    turn_id = turn.plan.turn_id
    try:
        async for event in turn.events():
            # ASCII-escaped JSON: any text (NUL, lone surrogates, newlines) fits on one line.
            yield ServerSentEvent(
                data=json.dumps(event.data),
                event=event.event,
                id=None if event.seq is None else f"{turn_id}:{event.seq}",
            )
    finally:
        deadline.cancel()


async def _end_at_shutdown(turn: Turn, shutdown: anyio.Event, grace_seconds: float) -> None:
    """End this stream (not the turn, which is not told) a second before the hard cut."""
    await shutdown.wait()
    await asyncio.sleep(max(0.0, grace_seconds - 1.0))
    turn.deliver(TurnEvent("error", error_event("shutting_down").model_dump(mode="json")))


@router.post(
    "/chat",
    response_class=EventSourceResponse,
    description=STREAM_DOC,
    responses={
        200: {
            "description": "The turn's events",
            "content": {
                "text/event-stream": {
                    "schema": event_stream_schema(),
                    "example": _sse_example(),
                }
            },
        },
        **ERRORS,
    },
)
async def chat(
    body: ChatRequest,
    principal: PrincipalDep,
    runner: RunnerDep,
    admission: AdmissionDep,
    settings: SettingsDep,
) -> EventSourceResponse:
    """Send a message and stream the answer as it is generated."""
    turn = await _start(body, principal, runner, admission)
    return stream_turn(turn, settings)


def stream_turn(turn: Turn, settings: Settings) -> EventSourceResponse:
    """The SSE response of a started turn."""
    shutdown, grace = anyio.Event(), settings.shutdown_grace_seconds
    return EventSourceResponse(
        _events(turn, shutdown, grace),
        ping=settings.sse_ping_seconds,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        shutdown_event=shutdown,
        shutdown_grace_period=grace,
    )


@router.post(
    "/chat/complete",
    response_model=ChatResponse,
    responses={**ERRORS, **{status: {"model": ErrorBody} for status in (500, 502, 504)}},
)
async def chat_complete(
    body: ChatRequest, principal: PrincipalDep, runner: RunnerDep, admission: AdmissionDep
) -> ChatResponse:
    """Send a message and get the whole answer at once (same turn as `/chat`)."""
    turn = await _start(body, principal, runner, admission)
    calls: dict[str, ToolCallRecord] = {}
    result: ChatResponse | None = None
    async for event in turn.events():
        payload = EVENT_MODELS[event.event].model_validate(event.data)
        if isinstance(payload, ToolCallEvent):
            calls[payload.id] = ToolCallRecord(id=payload.id, tool=payload.tool, args=payload.args)
        elif isinstance(payload, ToolResultEvent) and payload.id in calls:
            calls[payload.id].status = payload.status
            calls[payload.id].result = payload.result
        elif isinstance(payload, ErrorEvent):
            raise ApiError(status_of(payload.code), payload.code, payload.message)
        elif isinstance(payload, InterruptEvent):
            result = ChatResponse(
                session_id=turn.session_id,
                run_id=turn.run_id,
                turn_id=turn.plan.turn_id,
                message_id=None,
                response=turn.answer,
                tool_calls=list(calls.values()),
                usage=Usage(),
                interrupt=payload,
            )
        elif isinstance(payload, CancelledEvent):
            raise ApiError(
                status_of("turn_cancelled"), "turn_cancelled", message_of("turn_cancelled")
            )
        elif isinstance(payload, DoneEvent):
            result = ChatResponse(
                session_id=turn.session_id,
                run_id=turn.run_id,
                turn_id=turn.plan.turn_id,
                message_id=payload.message_id,
                response=turn.answer,
                tool_calls=list(calls.values()),
                usage=payload.usage,
            )
    assert result is not None
    return result
