"""A session's life: its TTL (`GET`/`PUT /sessions/{id}/ttl`), its export
(`GET /sessions/{id}/export`, JSON or Markdown), and forgetting a user's sessions
(`POST /admin/forget`, admin keys only)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response

from src.api.auth import AdminDep
from src.api.deps import CheckpointerDep, EraserDep, OwnedSessionDep, StoreDep, TTLPolicyDep
from src.api.errors import SafeJSONResponse
from src.api.export import title_for, to_markdown, wanted_format
from src.api.lifecycle_schemas import (
    ExportBranch,
    ForgetRequest,
    ForgetResult,
    SessionExport,
    SessionLifetime,
    SessionTTLUpdate,
)
from src.api.schemas import READ_ERRORS, ErrorBody
from src.api.session_directory import not_found
from src.api.session_ttl import SessionRecord, TTLPolicy, session_record, set_session_ttl

router = APIRouter()


def _lifetime(session_id: uuid.UUID, record: SessionRecord, policy: TTLPolicy) -> SessionLifetime:
    return SessionLifetime(
        session_id=session_id,
        ttl_minutes=record.ttl_minutes,
        effective_ttl_minutes=record.effective_ttl(policy),
        idle_since=record.idle_since,
        expires_at=record.expires_at(policy),
    )


@router.get(
    "/sessions/{session_id}/ttl",
    response_model=SessionLifetime,
    responses=READ_ERRORS,
    tags=["sessions"],
)
async def get_ttl(
    session_id: OwnedSessionDep, store: StoreDep, policy: TTLPolicyDep
) -> SessionLifetime:
    """How long the session stays once idle: its own TTL, the one that applies, and from
    when the TTL sweep may delete it."""
    record = await session_record(store, session_id)
    if record is None:
        raise not_found(session_id)
    return _lifetime(session_id, record, policy)


@router.put(
    "/sessions/{session_id}/ttl",
    response_model=SessionLifetime,
    responses={**READ_ERRORS, **{status: {"model": ErrorBody} for status in (400, 413, 415)}},
    tags=["sessions"],
)
async def put_ttl(
    body: SessionTTLUpdate, session_id: OwnedSessionDep, store: StoreDep, policy: TTLPolicyDep
) -> SessionLifetime:
    """Give the session a TTL of its own (`null`: the server's default again). Once idle
    that long, the TTL sweep deletes it whole, as `DELETE /sessions/{id}` would."""
    if not await set_session_ttl(store, session_id, body.ttl_minutes):
        raise not_found(session_id)
    record = await session_record(store, session_id)
    if record is None:  # deleted meanwhile
        raise not_found(session_id)
    return _lifetime(session_id, record, policy)


EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": SessionExport,
        "description": "The session as JSON (`SessionExport`) or as Markdown",
        "content": {"text/markdown": {"schema": {"type": "string"}}},
    },
    **READ_ERRORS,
}


@router.get(
    "/sessions/{session_id}/export",
    response_class=Response,
    responses=EXPORT_RESPONSES,
    tags=["sessions"],
)
async def export_session(
    session_id: OwnedSessionDep,
    store: StoreDep,
    checkpointer: CheckpointerDep,
    format: Annotated[
        Literal["json", "markdown"] | None,
        Query(description="`json` or `markdown`; default: as the Accept header prefers (JSON)"),
    ] = None,
    branches: Annotated[
        bool, Query(description="Also every branch's tip (forks leave several)")
    ] = False,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Download the conversation: its transcript (the same as `GET /sessions/{id}/messages`)
    and, with `branches=true`, the transcript of every branch, as JSON or Markdown."""
    record = await session_record(store, session_id)
    messages = await store.get_messages(session_id)
    if record is None:
        raise not_found(session_id)
    tips = await checkpointer.branches(session_id) if branches else None
    export = SessionExport(
        session_id=session_id,
        title=title_for(record.title, messages or []),
        created_at=record.created_at,
        idle_since=record.idle_since,
        exported_at=datetime.now(UTC),
        messages=messages or [],
        branches=None if tips is None else [ExportBranch(**vars(tip)) for tip in tips],
    )
    kind = format or wanted_format(accept)
    name = f"vera-{session_id}.{'md' if kind == 'markdown' else 'json'}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Vary": "Accept"}
    if kind == "markdown":
        text = to_markdown(export).encode("utf-8", "replace")
        return Response(text, media_type="text/markdown; charset=utf-8", headers=headers)
    return SafeJSONResponse(export.model_dump(mode="json"), headers=headers)


FORGET_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 403, 413, 415, 422, 429, 503)
}
FORGET_ERRORS[409] = {
    "model": ErrorBody,
    "description": "`session_busy`: a turn runs on some of these sessions (listed in "
    "`details`); nothing was deleted",
}


@router.post("/admin/forget", response_model=ForgetResult, responses=FORGET_ERRORS, tags=["admin"])
async def forget(body: ForgetRequest, _admin: AdminDep, eraser: EraserDep) -> ForgetResult:
    """Delete every session of a principal, or of one end user of a gateway key, whole:
    transcripts, checkpoints, messages, turn events, leases and owner rows. All of them or
    none: while a turn runs on one, 409 names the busy sessions and nothing is deleted.
    Admin keys only (`API_ADMIN_KEYS`)."""
    erased = await eraser.forget(body.principal, body.user_id)
    return ForgetResult(
        principal=body.principal,
        user_id=body.user_id,
        sessions_deleted=len(erased.session_ids),
        bytes_deleted=erased.bytes,
    )
