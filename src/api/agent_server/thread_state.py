"""A thread's state: now, at a checkpoint, its history (newest first, a page at a time), and
a write as a node (`update_state`), fenced by the session's lease like a turn's writes."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from langgraph.errors import InvalidUpdateError

from src.agent.memory.fencing import LEASE_CONFIG_KEY
from src.api.agent_server.records import thread_config
from src.api.agent_server.shapes import (
    MAX_PAGE,
    CheckpointConfig,
    CheckpointRef,
    HistoryQuery,
    StateAt,
    StateUpdate,
    StateUpdated,
    ThreadState,
)
from src.api.agent_server.snapshots import checkpoint_of, thread_state
from src.api.agent_server.state_values import check_values
from src.api.agent_server.threads import WRITE_ERRORS, BookDep, OwnedThreadDep
from src.api.deps import LeasesDep
from src.api.errors import ApiError
from src.api.schemas import BODY_ERRORS, READ_ERRORS
from src.api.state_reads import readable_state

router = APIRouter(prefix="/threads", tags=["agent server"])

CHECKPOINT_ID = r"^[0-9A-Za-z-]{1,64}$"
SubgraphsQuery = Annotated[bool, Query(description="The states of subgraph tasks too")]


def no_checkpoint(thread_id: uuid.UUID, checkpoint_id: str) -> ApiError:
    return ApiError(404, "not_found", f"No checkpoint {checkpoint_id} in thread {thread_id}.")


async def _state_at(
    book: BookDep, thread_id: uuid.UUID, checkpoint_id: str | None, subgraphs: bool
) -> dict[str, Any]:
    config = thread_config(thread_id, checkpoint_id)
    snapshot, _ = await readable_state(book.graph, config, subgraphs)
    if checkpoint_id is not None and snapshot.metadata is None:
        raise no_checkpoint(thread_id, checkpoint_id)
    return thread_state(snapshot)


@router.get("/{thread_id}/state", response_model=ThreadState, responses=READ_ERRORS)
async def get_state(
    thread_id: OwnedThreadDep, book: BookDep, subgraphs: SubgraphsQuery = False
) -> dict[str, Any]:
    """The thread's latest state (all null/empty before its first checkpoint)."""
    return await _state_at(book, thread_id, None, subgraphs)


@router.get("/{thread_id}/state/{checkpoint_id}", response_model=ThreadState, responses=READ_ERRORS)
async def get_state_at(
    thread_id: OwnedThreadDep,
    checkpoint_id: Annotated[str, Path(pattern=CHECKPOINT_ID)],
    book: BookDep,
    subgraphs: SubgraphsQuery = False,
) -> dict[str, Any]:
    """The thread's state at one of its checkpoints (404 for one it does not have)."""
    return await _state_at(book, thread_id, checkpoint_id, subgraphs)


@router.post("/{thread_id}/state/checkpoint", response_model=ThreadState, responses=BODY_ERRORS)
async def post_state_at(thread_id: OwnedThreadDep, body: StateAt, book: BookDep) -> dict[str, Any]:
    """`GET /threads/{id}/state/{checkpoint_id}` with the checkpoint in the body."""
    if body.checkpoint.checkpoint_id is None:
        return await _state_at(book, thread_id, None, body.subgraphs)
    return await _state_at(book, thread_id, body.checkpoint.checkpoint_id, body.subgraphs)


@router.post("/{thread_id}/state", response_model=StateUpdated, responses=WRITE_ERRORS)
async def update_state(
    thread_id: OwnedThreadDep, body: StateUpdate, book: BookDep, leases: LeasesDep
) -> dict[str, Any]:
    """Write `values` as node `as_node` wrote them (LangGraph's `update_state`), on the
    latest checkpoint or on `checkpoint_id` (a fork from there); 409 while a turn runs."""
    checkpoint_id = body.checkpoint_id or (
        body.checkpoint.checkpoint_id if body.checkpoint else None
    )
    check_values(book.graph, "values", body.values)
    if checkpoint_id is not None:
        await _state_at(book, thread_id, checkpoint_id, False)  # 404 for an unknown one
    run_id = uuid.uuid4()
    config = thread_config(thread_id, checkpoint_id)
    config["configurable"][LEASE_CONFIG_KEY] = str(run_id)  # fences the write, as a turn's
    await leases.acquire(thread_id, run_id)
    try:
        written = await book.graph.aupdate_state(config, body.values, as_node=body.as_node)
    except (InvalidUpdateError, ValueError, TypeError, KeyError, NotImplementedError) as exc:
        raise ApiError(
            422,
            "invalid_request",
            f"The update can not be applied: {exc}",
            details=[{"field": "values", "message": str(exc)[:500]}],
        ) from None
    finally:
        await leases.release(thread_id, run_id)
    checkpoint = checkpoint_of(written)
    if checkpoint is None:  # LangGraph always names the checkpoint it wrote
        raise RuntimeError("update_state returned no checkpoint")
    return {
        "checkpoint": checkpoint,
        "configurable": checkpoint,
        "checkpoint_id": checkpoint["checkpoint_id"],
    }


async def _history(
    book: BookDep,
    thread_id: uuid.UUID,
    limit: int,
    before: str | CheckpointRef | CheckpointConfig | None,
    metadata: dict[str, Any] | None,
    start: CheckpointRef | None,
) -> list[dict[str, Any]]:
    config = thread_config(thread_id, start.checkpoint_id if start else None)
    if start is not None and start.checkpoint_ns:
        config["configurable"]["checkpoint_ns"] = start.checkpoint_ns
    if isinstance(before, CheckpointConfig):
        before = before.configurable
    before_id = before.checkpoint_id if isinstance(before, CheckpointRef) else before
    states = book.graph.aget_state_history(
        config,
        filter=metadata,
        before=thread_config(thread_id, before_id) if before_id else None,
        limit=limit,
    )
    return [thread_state(snapshot) async for snapshot in states]


@router.get("/{thread_id}/history", response_model=list[ThreadState], responses=READ_ERRORS)
async def get_history(
    thread_id: OwnedThreadDep,
    book: BookDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 10,
    before: Annotated[str | None, Query(pattern=CHECKPOINT_ID)] = None,
) -> list[dict[str, Any]]:
    """The thread's checkpoints, newest first: `limit` of them, those before `before`."""
    return await _history(book, thread_id, limit, before, None, None)


@router.post("/{thread_id}/history", response_model=list[ThreadState], responses=BODY_ERRORS)
async def post_history(
    thread_id: OwnedThreadDep, body: HistoryQuery, book: BookDep
) -> list[dict[str, Any]]:
    """`GET /threads/{id}/history` with filters: `metadata` (containment) and `checkpoint`
    (from that checkpoint back)."""
    return await _history(book, thread_id, body.limit, body.before, body.metadata, body.checkpoint)
