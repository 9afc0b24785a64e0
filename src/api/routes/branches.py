"""A conversation's branches: `POST /sessions/{id}/regenerate` and
`POST /sessions/{id}/messages/{message_id}/edit` (turns that fork the transcript, streamed
as `/chat` streams), and `POST /sessions/{id}/messages/{message_id}/switch` (show another
alternative of a message, the "< 2/3 >" of the chat products). `transcript` is the body of
`GET /sessions/{id}/messages`, each message with its `alternatives`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path
from sse_starlette import EventSourceResponse

from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore
from src.api.branch_schemas import EditRequest, RegenerateRequest, SwitchRequest
from src.api.deps import (
    AdmissionDep,
    CheckpointerDep,
    LeasesDep,
    OwnedSessionDep,
    RunnerDep,
    SettingsDep,
    StoreDep,
)
from src.api.errors import ApiError
from src.api.event_schema import event_stream_schema
from src.api.routes.chat import ERRORS, STREAM_DOC, admitted, stream_turn
from src.api.schemas import ErrorBody, TranscriptResponse
from src.api.session_directory import not_found
from src.api.turn_forks import Edit, Regenerate

router = APIRouter(prefix="/sessions", tags=["branches"])

MessageId = Annotated[str, Path(min_length=1, max_length=256, description="A message's `id`")]

_STREAM = {
    200: {
        "description": "The new turn's events, as `POST /chat` sends them",
        "content": {"text/event-stream": {"schema": event_stream_schema()}},
    },
    **ERRORS,
}


async def transcript(
    store: PostgresMemoryStore, checkpointer: ConversationCheckpointer, session_id: uuid.UUID
) -> TranscriptResponse:
    """The session's transcript, each message where other branches differ with its
    `alternatives` (404 for an unknown session)."""
    messages = await store.get_messages(session_id)
    if messages is None:
        raise not_found(session_id)
    for point in await checkpointer.branch_points(session_id):
        if point.position < len(messages):
            alternatives = {"index": point.index + 1, "count": point.count}
            messages[point.position]["alternatives"] = alternatives
    return TranscriptResponse(session_id=session_id, messages=messages)


@router.post(
    "/{session_id}/regenerate",
    response_class=EventSourceResponse,
    description="Answer the last user message again, as a new branch from the checkpoint "
    "before it (the answer it replaces stays stored, an alternative of the new one). " + STREAM_DOC,
    responses={
        **_STREAM,
        409: {
            "model": ErrorBody,
            "description": "`session_busy`, "
            "`turn_conflict`, or `nothing_to_regenerate`: the session has no user message",
        },
    },
)
async def regenerate(
    session_id: OwnedSessionDep,
    body: RegenerateRequest,
    runner: RunnerDep,
    admission: AdmissionDep,
    settings: SettingsDep,
) -> EventSourceResponse:
    """Regenerate the last answer."""
    turn = await admitted(
        admission,
        lambda on_end: runner.start(session_id, "", body.turn_id, fork=Regenerate(), on_end=on_end),
    )
    return stream_turn(turn, settings)


@router.post(
    "/{session_id}/messages/{message_id}/edit",
    response_class=EventSourceResponse,
    description="Replace a user message of the branch shown and go on from there: a new "
    "branch from the checkpoint before it (the messages it replaces stay stored, "
    "alternatives of the new ones). " + STREAM_DOC,
    responses={
        **_STREAM,
        404: {
            "model": ErrorBody,
            "description": "`not_found` (the session) or "
            "`message_not_found` (no such message in the branch shown)",
        },
        422: {
            "model": ErrorBody,
            "description": "`invalid_request`, or "
            "`not_a_user_message`: the message is the assistant's or a tool's",
        },
    },
)
async def edit(
    session_id: OwnedSessionDep,
    message_id: MessageId,
    body: EditRequest,
    runner: RunnerDep,
    admission: AdmissionDep,
    settings: SettingsDep,
) -> EventSourceResponse:
    """Edit a user message and go on from it."""
    fork = Edit(message_id, body.message)
    turn = await admitted(
        admission,
        lambda on_end: runner.start(
            session_id, body.message, body.turn_id, fork=fork, on_end=on_end
        ),
    )
    return stream_turn(turn, settings)


@router.post(
    "/{session_id}/messages/{message_id}/switch",
    response_model=TranscriptResponse,
    responses={
        **ERRORS,
        404: {"model": ErrorBody, "description": "`not_found` or `message_not_found`"},
        409: {"model": ErrorBody, "description": "`session_busy`: a turn is running"},
        422: {
            "model": ErrorBody,
            "description": "`invalid_request`, or "
            "`no_such_alternative`: the message has no alternative of that index",
        },
    },
)
async def switch(
    session_id: OwnedSessionDep,
    message_id: MessageId,
    body: SwitchRequest,
    leases: LeasesDep,
    store: StoreDep,
    checkpointer: CheckpointerDep,
) -> TranscriptResponse:
    """Show alternative `index` of a message (and that branch's latest messages after it);
    the answer is the new transcript. The next message goes on from the branch shown."""
    run_id = uuid.uuid4()
    await leases.acquire(session_id, run_id)  # no turn writes meanwhile
    try:
        shown = await store.get_messages(session_id)
        if shown is None:
            raise not_found(session_id)
        position = _position(shown, message_id)
        point = next(
            (p for p in await checkpointer.branch_points(session_id) if p.position == position),
            None,
        )
        count = 1 if point is None else point.count
        if body.index > count:
            raise ApiError(
                422,
                "no_such_alternative",
                f"Message {message_id!r} has {count} alternative(s); index {body.index} "
                "is not one of them.",
            )
        if point is not None and body.index - 1 != point.index:
            await checkpointer.aswitch_branch(session_id, point.tips[body.index - 1], run_id)
    finally:
        await leases.release(session_id, run_id)
    return await transcript(store, checkpointer, session_id)


def _position(messages: list[dict[str, Any]], message_id: str) -> int:
    for position, message in enumerate(messages):
        if message.get("id") == message_id:
            return position
    raise ApiError(
        404, "message_not_found", f"No message {message_id!r} in the branch shown of this session."
    )
