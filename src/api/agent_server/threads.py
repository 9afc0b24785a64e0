"""Threads of the Agent Server API: create, get, search, update, delete and copy. A thread
is a Vera session: made here, it is listed by `GET /sessions` once it has a message; made
by `/chat`, it is found here. Another principal's thread is an unknown id (404)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from src.api.agent_server.records import ThreadBook
from src.api.agent_server.shapes import (
    Thread,
    ThreadCreate,
    ThreadPatch,
    ThreadSearch,
)
from src.api.auth import PrincipalDep
from src.api.deps import DirectoryDep, EraserDep, LeasesDep, StoreDep
from src.api.errors import ApiError
from src.api.schemas import BODY_ERRORS, READ_ERRORS, ErrorBody
from src.api.session_directory import not_found

router = APIRouter(prefix="/threads", tags=["agent server"])

WRITE_ERRORS: dict[int | str, dict[str, Any]] = {**BODY_ERRORS, 409: {"model": ErrorBody}}


async def get_book(request: Request, store: StoreDep, directory: DirectoryDep) -> ThreadBook:
    return ThreadBook(store, request.app.state.runner.graph, directory)


BookDep = Annotated[ThreadBook, Depends(get_book)]


async def owned_thread(thread_id: uuid.UUID, principal: PrincipalDep, book: BookDep) -> uuid.UUID:
    """The path's thread, when the caller owns it (404 otherwise, as for an unknown id)."""
    await book.require(thread_id, principal)
    return thread_id


OwnedThreadDep = Annotated[uuid.UUID, Depends(owned_thread)]


def not_served(field: str, why: str) -> ApiError:
    return ApiError(
        422,
        "invalid_request",
        f"{field} is not served by this server: {why}.",
        details=[{"field": field, "message": f"not served: {why}"}],
    )


@router.post("", response_model=Thread, response_model_exclude_unset=True, responses=WRITE_ERRORS)
async def create_thread(body: ThreadCreate, principal: PrincipalDep, book: BookDep) -> Thread:
    """A new thread (a session) of the caller's, with `metadata` and a TTL; an existing id
    of theirs is a 409 unless `if_exists` is `do_nothing` (then it is returned)."""
    if body.supersteps is not None:
        raise not_served("supersteps", "write the state with POST /threads/{id}/state")
    thread = await book.create(
        principal, body.thread_id or uuid.uuid4(), body.metadata or {}, body.ttl, body.if_exists
    )
    return Thread(**thread)


@router.post(
    "/search",
    response_model=list[Thread],
    response_model_exclude_unset=True,
    responses=BODY_ERRORS,
)
async def search_threads(
    body: ThreadSearch, principal: PrincipalDep, book: BookDep
) -> list[Thread]:
    """The caller's threads (the sessions `GET /sessions` lists, and those without a
    message yet), most recently active first, `limit` from `offset`; `metadata` filters by
    containment, `ids` by id, `select` names the fields sent."""
    for field in ("values", "status", "extract"):
        if getattr(body, field) is not None:
            raise not_served(field, "filter by metadata or ids")
    return [Thread(**thread) for thread in await book.search(principal, body)]


@router.get(
    "/{thread_id}", response_model=Thread, response_model_exclude_unset=True, responses=READ_ERRORS
)
async def get_thread(thread_id: OwnedThreadDep, book: BookDep) -> Thread:
    """The thread: its metadata, status and current values."""
    return Thread(**await book.thread(thread_id))


@router.patch(
    "/{thread_id}", response_model=Thread, response_model_exclude_unset=True, responses=BODY_ERRORS
)
async def patch_thread(thread_id: OwnedThreadDep, body: ThreadPatch, book: BookDep) -> Thread:
    """Merge `metadata` into the thread's (top-level keys replaced); `ttl` sets the TTL of
    its session (`PUT /sessions/{id}/ttl`)."""
    return Thread(**await book.update(thread_id, body.metadata, body.ttl))


@router.delete("/{thread_id}", status_code=204, response_class=Response, responses=WRITE_ERRORS)
async def delete_thread(
    thread_id: OwnedThreadDep, leases: LeasesDep, eraser: EraserDep
) -> Response:
    """Delete the thread whole, as `DELETE /sessions/{id}` does (409 mid-turn)."""
    run_id = uuid.uuid4()
    await leases.acquire(thread_id, run_id)  # a running turn would write it back
    try:
        erased = await eraser.erase([thread_id], run_id, "request")
    finally:
        await leases.release(thread_id, run_id)
    if not erased.session_ids:
        raise not_found(thread_id)
    return Response(status_code=204)


@router.post(
    "/{thread_id}/copy",
    response_model=Thread,
    response_model_exclude_unset=True,
    responses=READ_ERRORS,
)
async def copy_thread(thread_id: OwnedThreadDep, book: BookDep) -> Thread:
    """A new thread of the caller's with this one's checkpoints, transcript and metadata."""
    return Thread(**await book.copy(thread_id))
