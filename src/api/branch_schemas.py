"""Bodies of the branch routes (`routes/branches.py`): regenerate, edit, switch."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from src.api.schemas import MAX_MESSAGE_CHARS, TURN_ID_PATTERN, VISIBLE_CHARACTER, ChatRequest


class RegenerateRequest(BaseModel):
    """Answer the last user message again, as a new branch."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}]})

    turn_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=TURN_ID_PATTERN,
        description="Idempotency key of the new turn, as in `/chat`: sending it again "
        "resumes or replays that turn; it never forks twice.",
    )


class EditRequest(RegenerateRequest):
    """The edited text of a user message; the conversation goes on from it as a new branch."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"message": "And in Buenos Aires?"}]}
    )

    message: str = Field(
        min_length=1,
        max_length=MAX_MESSAGE_CHARS,
        json_schema_extra={"pattern": VISIBLE_CHARACTER},
        description=ChatRequest.model_fields["message"].description,
    )

    @field_validator("message")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        trimmed: str = ChatRequest._trimmed(value)
        return trimmed


class SwitchRequest(BaseModel):
    """Which alternative of a message to show (its `alternatives.index`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"index": 1}]})

    index: int = Field(ge=1, description="1 to the message's `alternatives.count`")
