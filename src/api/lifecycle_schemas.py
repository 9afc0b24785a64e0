"""Bodies of the endpoints of a session's life: its TTL (`/sessions/{id}/ttl`), its export
(`/sessions/{id}/export`) and forgetting a user (`POST /admin/forget`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from src.api.security import PRINCIPAL_PATTERN
from src.config.settings import MAX_TTL_MINUTES

# X-User-Id's characters; empty: the principal's own sessions (made without X-User-Id).
FORGET_USER_PATTERN = r"^[\x21-\x7e]{0,128}$"


class SessionTTLUpdate(BaseModel):
    """Body of `PUT /sessions/{session_id}/ttl`."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"ttl_minutes": 1440}]}
    )

    ttl_minutes: float | None = Field(
        gt=0,
        le=MAX_TTL_MINUTES,
        description="Delete the session once it has been idle this many minutes; null: the "
        "server's default (SESSION_TTL_MINUTES) applies again",
    )


class SessionLifetime(BaseModel):
    """How long a session stays: body of `GET` and `PUT /sessions/{session_id}/ttl`."""

    session_id: uuid.UUID
    ttl_minutes: float | None = Field(
        description="The session's own TTL; null: the server's default applies"
    )
    effective_ttl_minutes: float | None = Field(
        description="The TTL that applies; null: never deleted for being idle"
    )
    idle_since: datetime | None = Field(
        description="When its last turn ended (or its transcript last changed)"
    )
    expires_at: datetime | None = Field(
        description="From when the TTL sweep deletes it if it stays idle (sweeps run every "
        "SESSION_TTL_SWEEP_INTERVAL_MINUTES); null: never"
    )


class ExportBranch(BaseModel):
    """The tip of one branch of the conversation (forks leave several)."""

    checkpoint_id: str
    created_at: datetime
    shown: bool = Field(description="The branch the transcript shows (the latest)")
    messages: list[dict[str, Any]] = Field(description="Its whole transcript, oldest first")


class SessionExport(BaseModel):
    """Body of `GET /sessions/{session_id}/export` as JSON."""

    session_id: uuid.UUID
    title: str
    created_at: datetime | None
    idle_since: datetime | None = Field(description="When its last turn ended")
    exported_at: datetime
    messages: list[dict[str, Any]] = Field(
        description="The transcript, oldest first: `conversations.messages` (and the "
        "messages of a turn still running), as `GET /sessions/{id}/messages` gives it"
    )
    branches: list[ExportBranch] | None = Field(
        default=None,
        description="With `branches=true`: the tip of every branch, newest first (the first "
        "`shown` one is the transcript)",
    )


class ForgetRequest(BaseModel):
    """Body of `POST /admin/forget`: whose sessions to delete."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"principal": "webapp", "user_id": "user-42"}]},
    )

    principal: str = Field(
        pattern=PRINCIPAL_PATTERN, description="The API key's name (`default`: API_KEY's)"
    )
    user_id: str | None = Field(
        default=None,
        pattern=FORGET_USER_PATTERN,
        description="The end user (X-User-Id of a gateway key) whose sessions go; empty: "
        "the principal's own sessions (made without X-User-Id); omitted: every session of "
        "the principal, its own and all its end users'",
    )


class ForgetResult(BaseModel):
    """Body of `POST /admin/forget`: what was deleted."""

    principal: str
    user_id: str | None
    sessions_deleted: int = Field(description="Sessions deleted, each whole")
    bytes_deleted: int = Field(description="Bytes their rows took as stored")
