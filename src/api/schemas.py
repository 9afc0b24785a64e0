"""Bodies of the HTTP API: requests, responses, errors and the `/chat` event payloads."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from src.api.approval_schemas import InterruptEvent

MAX_MESSAGE_CHARS = 32_000


# Characters that show nothing: whitespace, controls, format characters (zero-width spaces
# and joiners, BOM, ...) and separators, in the Basic Multilingual Plane (so that one regex
# in the OpenAPI document, valid in Python and ECMA dialects, says exactly the same).
# Unassigned code points count as visible: an emoji newer than this Python's Unicode
# tables is still text. Lone surrogates are refused separately.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def _is_invisible(ch: str) -> bool:
    return ord(ch) <= 0xFFFF and (ch.isspace() or unicodedata.category(ch) in _INVISIBLE_CATEGORIES)


def _visible_pattern() -> str:
    """A regex matching one visible character (a class of everything but the invisible
    ranges), so that the OpenAPI schema says what `ChatRequest.message` requires."""
    ranges: list[tuple[int, int]] = []
    for code in range(0x10000):
        if _is_invisible(chr(code)):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    parts = (f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges)
    return "[^" + "".join(parts) + "]"


VISIBLE_CHARACTER = _visible_pattern()


TURN_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
MAX_EVENT_NUMBER = 2**31 - 1
# An event's id, `<turn_id>:<n>`: n has at most 9 digits, so any id of this form is in range.
LAST_EVENT_ID_PATTERN = TURN_ID_PATTERN.removesuffix("$") + r":[0-9]{1,9}$"

ErrorCode = Literal[
    "invalid_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "request_timeout",
    "payload_too_large",
    "headers_too_large",
    "unsupported_media_type",
    "rate_limited",
    "session_busy",
    "thread_exists",
    "turn_conflict",
    "approval_pending",
    "nothing_to_resume",
    "message_not_found",
    "not_a_user_message",
    "nothing_to_regenerate",
    "no_such_alternative",
    "turn_cancelled",
    "lease_lost",
    "shutting_down",
    "llm_timeout",
    "llm_unavailable",
    "llm_incomplete",
    "llm_invalid_output",
    "llm_rejected",
    "turn_limit",
    "storage_unavailable",
    "overloaded",
    "not_implemented",
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

    message: str = Field(
        min_length=1,
        max_length=MAX_MESSAGE_CHARS,
        json_schema_extra={"pattern": VISIBLE_CHARACTER},
        description=f"1 to {MAX_MESSAGE_CHARS:,} characters, at least one of them visible "
        "(not whitespace or a zero-width character); stored trimmed of outer whitespace",
    )
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
        if all(_is_invisible(ch) for ch in value):
            raise ValueError("message must hold a visible character (not only whitespace)")
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
    status: Literal["ok", "error", "declined"] | None = None
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
    interrupt: InterruptEvent | None = Field(
        default=None,
        description="Set when the turn paused for approval (`response` is then the text "
        "so far): answer it with `POST /sessions/{id}/turns/{turn_id}/resume`",
    )


class TurnError(BaseModel):
    """How a failed turn ended: an error code of the `/chat` table and its message."""

    code: str
    message: str


class TurnStatus(BaseModel):
    """Body of `GET /sessions/{session_id}/turns/{turn_id}`."""

    session_id: uuid.UUID
    turn_id: str
    status: Literal["running", "done", "error", "cancelled", "interrupted", "needs_approval"] = (
        Field(
            description="`cancelled`: stopped by `POST .../cancel` (what was streamed is kept "
            "as its answer); `interrupted`: its worker stopped before it ended; send the same "
            "message with this turn_id to resume it. `needs_approval`: it paused for the "
            "user's approval of a tool call (`interrupt`); answer with `POST .../resume`"
        )
    )
    answer: str = Field(
        description="The answer's text so far (all of it once `done`, what was kept once "
        "`cancelled`)"
    )
    message_id: str | None = None
    usage: Usage | None = None
    error: TurnError | None = None
    interrupt: InterruptEvent | None = None
    last_event_id: str = Field(description="Id of the turn's last stored event")


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: a stable code, a human message, and field details for 422."""

    code: ErrorCode
    message: str
    details: list[dict[str, str]] | None = None


# The error answers every authenticated read endpoint documents.
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (401, 403, 404, 422, 429, 503)
}
# ... and those of an endpoint with a JSON body (not JSON, too large, another media type).
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS,
    **{status: {"model": ErrorBody} for status in (400, 413, 415)},
}


class TranscriptResponse(BaseModel):
    """Body of `GET /sessions/{session_id}/messages`: `conversations.messages` (the branch
    shown), oldest first."""

    session_id: uuid.UUID
    messages: list[dict[str, Any]] = Field(
        description="The transcript's elements (`role`, `content`, `tool_calls`, "
        "`tool_call_id`, `timestamp`, `id`, ...). A message where other branches hold "
        "another one after the same earlier messages (a regenerated answer, an edited "
        "message) also has `alternatives`: `{index, count}`, the one shown as `index` of "
        "`count` (1-based, oldest first), as a chat product's `< 2/3 >`."
    )


class SessionSummary(BaseModel):
    """One session of `GET /sessions`."""

    session_id: uuid.UUID
    title: str = Field(
        description="The session's first stored user message, on one line, cut to 80 "
        "characters ('' when it has no text)"
    )
    message_count: int = Field(description="Messages in its transcript")
    created_at: datetime
    updated_at: datetime = Field(description="When its last turn ended (or it was created)")


class SessionList(BaseModel):
    """Body of `GET /sessions`: a page of the caller's sessions, newest first."""

    sessions: list[SessionSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


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
    status: Literal["ok", "error", "declined"] = Field(
        description="`declined`: the user declined the call, it was not run"
    )
    result: Any


class ErrorEvent(BaseModel):
    code: ErrorCode
    message: str


class DoneEvent(BaseModel):
    message_id: str | None
    usage: Usage


class CancelledEvent(BaseModel):
    message_id: str | None = Field(
        description="The stopped answer's id (its text: the tokens streamed), or null when "
        "no text had come yet"
    )
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
    "interrupt": {
        "id": "f6e7cb15...",
        "value": {
            "kind": "tool_approval",
            "question": "Run get_stock_price?",
            "tool_calls": [{"id": "call_2", "tool": "get_stock_price", "args": {"ticker": "MSFT"}}],
        },
    },
    "error": {"code": "llm_timeout", "message": "The model did not answer in time."},
    "done": {
        "message_id": "run-1b2c...",
        "usage": {"input_tokens": 120, "output_tokens": 24, "total_tokens": 144},
    },
    "cancelled": {
        "message_id": "9c1d...",
        "usage": {"input_tokens": 120, "output_tokens": 0, "total_tokens": 120},
    },
}
EVENT_MODELS: dict[str, type[BaseModel]] = {
    "session": SessionEvent,
    "token": TokenEvent,
    "tool_call": ToolCallEvent,
    "tool_result": ToolResultEvent,
    "interrupt": InterruptEvent,
    "error": ErrorEvent,
    "done": DoneEvent,
    "cancelled": CancelledEvent,
}
