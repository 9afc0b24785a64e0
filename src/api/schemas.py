"""Bodies of the HTTP API: requests, responses, errors and the `/chat` event payloads."""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_MESSAGE_CHARS = 32_000


def _is_format(ch: str) -> bool:
    """Invisible format characters: zero-width spaces and joiners, word joiner, BOM, ..."""
    return unicodedata.category(ch) == "Cf"


TURN_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
MAX_EVENT_NUMBER = 2**31 - 1

ErrorCode = Literal[
    "invalid_request",
    "unauthorized",
    "not_found",
    "payload_too_large",
    "unsupported_media_type",
    "rate_limited",
    "session_busy",
    "turn_conflict",
    "lease_lost",
    "shutting_down",
    "llm_timeout",
    "llm_unavailable",
    "llm_incomplete",
    "llm_invalid_output",
    "llm_rejected",
    "turn_limit",
    "storage_unavailable",
    "internal",
]


class ChatRequest(BaseModel):
    """One user message for a session. The message is stored trimmed of outer whitespace."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "message": "What is the weather in Montevideo?",
                    "session_id": "6f1c2a3e-8d7b-4c59-9e1a-2b3c4d5e6f70",
                }
            ]
        },
    )

    message: str = Field(description=f"1 to {MAX_MESSAGE_CHARS:,} characters after trimming")
    session_id: uuid.UUID = Field(description="The conversation; a new id starts a new one")
    turn_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=TURN_ID_PATTERN,
        description="Idempotency key of this turn (letters, digits, `_.:-`). Sending the "
        "same turn_id again resumes the turn if it did not finish, or returns its stored "
        "answer if it did; nothing is stored twice. Without one, repeating the message "
        "of an unfinished turn resumes it.",
    )

    @field_validator("message")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        value = value.strip()
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(
                    "message must be valid Unicode text (it holds an unpaired surrogate)"
                ) from None
        if not any(ch.isprintable() and not ch.isspace() and not _is_format(ch) for ch in value):
            raise ValueError("message must hold a visible character (not only whitespace)")
        if len(value) > MAX_MESSAGE_CHARS:
            raise ValueError(f"message must be at most {MAX_MESSAGE_CHARS:,} characters")
        return value


class Usage(BaseModel):
    """Token usage of a turn, summed over its model calls (zeros when not reported)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class ToolCallRecord(BaseModel):
    """A tool call of the turn and its result."""

    id: str
    tool: str
    args: dict[str, Any]
    status: Literal["ok", "error"] | None = None
    result: Any = None


class ChatResponse(BaseModel):
    """Body of `POST /chat/complete`."""

    session_id: uuid.UUID
    run_id: uuid.UUID
    turn_id: str
    message_id: str | None
    response: str
    tool_calls: list[ToolCallRecord]
    usage: Usage


class TurnError(BaseModel):
    """How a failed turn ended: an error code of the `/chat` table and its message."""

    code: str
    message: str


class TurnStatus(BaseModel):
    """Body of `GET /sessions/{session_id}/turns/{turn_id}`."""

    session_id: uuid.UUID
    turn_id: str
    status: Literal["running", "done", "error", "interrupted"] = Field(
        description="`interrupted`: its worker stopped before it ended; send the same "
        "message with this turn_id to resume it"
    )
    answer: str = Field(description="The answer's text so far (all of it once `done`)")
    message_id: str | None = None
    usage: Usage | None = None
    error: TurnError | None = None
    last_event_id: str = Field(description="Id of the turn's last stored event")


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: a stable code, a human message, and field details for 422."""

    code: ErrorCode
    message: str
    details: list[dict[str, str]] | None = None


# The error answers every authenticated read endpoint documents.
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (401, 404, 422, 429, 503)
}


class TranscriptResponse(BaseModel):
    """Body of `GET /sessions/{session_id}/messages`: `conversations.messages`, oldest first."""

    session_id: uuid.UUID
    messages: list[dict[str, Any]]


# -- `/chat` event payloads (`data:` of each Server-Sent Event) --------------------------


class SessionEvent(BaseModel):
    session_id: uuid.UUID
    run_id: uuid.UUID
    turn_id: str = Field(description="The turn's idempotency key (the client's, or a new one)")
    resumed: bool = Field(description="True when this request resumes or replays a turn")


class TokenEvent(BaseModel):
    content: str


class ToolCallEvent(BaseModel):
    id: str
    tool: str
    args: dict[str, Any]


class ToolResultEvent(BaseModel):
    id: str
    tool: str
    status: Literal["ok", "error"]
    result: Any


class ErrorEvent(BaseModel):
    code: ErrorCode
    message: str


class DoneEvent(BaseModel):
    message_id: str | None
    usage: Usage


EVENT_EXAMPLES: dict[str, dict[str, Any]] = {
    "session": {
        "session_id": "6f1c2a3e-8d7b-4c59-9e1a-2b3c4d5e6f70",
        "run_id": "1b2c...",
        "turn_id": "t-42",
        "resumed": False,
    },
    "token": {"content": "It is "},
    "tool_call": {"id": "call_1", "tool": "get_weather", "args": {"city": "Montevideo"}},
    "tool_result": {
        "id": "call_1",
        "tool": "get_weather",
        "status": "ok",
        "result": {"city": "Montevideo", "temperature_c": 18.5},
    },
    "error": {"code": "llm_timeout", "message": "The model did not answer in time."},
    "done": {
        "message_id": "run-1b2c...",
        "usage": {"input_tokens": 120, "output_tokens": 24, "total_tokens": 144},
    },
}
EVENT_MODELS: dict[str, type[BaseModel]] = {
    "session": SessionEvent,
    "token": TokenEvent,
    "tool_call": ToolCallEvent,
    "tool_result": ToolResultEvent,
    "error": ErrorEvent,
    "done": DoneEvent,
}
