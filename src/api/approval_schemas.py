"""Bodies of approve-before-acting: the `interrupt` event a paused turn ends with, and the
answer that resumes it (`POST /sessions/{id}/turns/{turn_id}/resume`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr


class InterruptEvent(BaseModel):
    """The turn paused at LangGraph's `interrupt()`: it waits for the user's answer."""

    id: str = Field(description="The interrupt's id")
    value: Any = Field(
        description="What the turn asks: for a tool that needs approval, `{kind: "
        '"tool_approval", question, tool_calls: [{id, tool, args}]}`'
    )


class ResumeRequest(BaseModel):
    """The user's answer to the approval a turn waits for."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"approved": True}, {"approved": ["call_1"]}]},
    )

    # Strict: an approval is never read into a text such as "no" or "0".
    approved: StrictBool | list[StrictStr] = Field(
        description="`true`: run every call awaiting approval; `false`: run none (each is "
        "answered to the model as declined); a list of tool call ids: run those, decline "
        "the others",
        json_schema_extra={"examples": [True]},
    )

    def decision(self, asked: list[str]) -> str:
        """`approved`, `declined` or `partial`, for the metrics."""
        ok = set(asked) if self.approved is True else set(self.approved or []) & set(asked)
        return "approved" if ok == set(asked) else "declined" if not ok else "partial"
