"""Joining and stopping a run of a thread: `GET /threads/{id}/runs/{run_id}/join` (its final
values once it ended), `GET .../stream` (its events from the turn event log, after a
`Last-Event-ID`, then live until it ends) and `POST .../cancel`. The log and the run's row
are in PostgreSQL, so any worker answers for a run any worker runs. Another principal's
thread is an unknown id (404)."""

from __future__ import annotations

import json
import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from sse_starlette import EventSourceResponse

from src.api.agent_server.responses import AgentServerJSONResponse
from src.api.agent_server.run_events import RUN_MODES
from src.api.agent_server.run_follow import ACTIVE, RunFollower
from src.api.agent_server.run_stop import (
    Action,
    cancelling,
    read_waited,
    stop_run,
)
from src.api.agent_server.runs import RunsDep, final_values
from src.api.agent_server.snapshots import as_json
from src.api.agent_server.threads import BookDep, OwnedThreadDep
from src.api.deps import EventLogDep, LeasesDep, RunnerDep, SettingsDep
from src.api.errors import ApiError
from src.api.schemas import BODY_ERRORS, READ_ERRORS

router = APIRouter(prefix="/threads", tags=["agent server"])

LAST_EVENT_ID_CHARS = 36 + 1 + 9  # the run id, ':', the event's number


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid_request", message, details=[{"field": field, "message": message}])


def _where(thread_id: uuid.UUID, run_id: uuid.UUID, then: str) -> dict[str, str]:
    path = f"/threads/{thread_id}/runs/{run_id}"
    return {"Location": f"{path}/{then}", "Content-Location": path}


def _after(run_id: uuid.UUID, last_event_id: str | None) -> int:
    """The event number a `Last-Event-ID` of this run names (0 without one)."""
    if last_event_id is None:
        return 0
    prefix, _, number = last_event_id.rpartition(":")
    if prefix != str(run_id) or not number.isdigit() or len(number) > 9:
        raise _invalid(
            "Last-Event-ID",
            f"Last-Event-ID must be '<run_id>:<n>' of run {run_id}, as this run's events carry it.",
        )
    return int(number)


def _modes(values: list[str]) -> frozenset[str]:
    """The stream modes a join asks for: each value a mode or a JSON array of them (as
    `langgraph-api` reads them; the SDK sends an empty one for none)."""
    modes: list[Any] = []
    for value in values:
        try:
            found = json.loads(value) if value.startswith("[") else [value]
        except json.JSONDecodeError:
            found = [value]
        modes += found if isinstance(found, list) else [value]
    unknown = [m for m in modes if m and m not in RUN_MODES]
    if unknown:
        raise _invalid(
            "stream_mode",
            f"Unknown stream mode {unknown[0]!r}: one of {', '.join(sorted(RUN_MODES))}.",
        )
    return frozenset(m for m in modes if m)


CancelOnDisconnect = Annotated[
    bool, Query(description="Cancel the run (as `.../cancel`) if the client disconnects first")
]


@router.get("/{thread_id}/runs/{run_id}/join", responses={200: {"content": {}}, **READ_ERRORS})
async def join_run(
    thread_id: OwnedThreadDep,
    run_id: uuid.UUID,
    runs: RunsDep,
    threads: BookDep,
    log: EventLogDep,
    leases: LeasesDep,
    runner: RunnerDep,
    request: Request,
    cancel_on_disconnect: CancelOnDisconnect = False,
) -> Response:
    """Wait for the run to end and answer its final values, as `runs/wait` does (at once
    for a run that already ended); with `cancel_on_disconnect`, a client that disconnects
    first cancels the run."""
    await runs.get(thread_id, run_id)  # 404 for a run of no such id
    follower = RunFollower(log, leases, runs, thread_id)
    events = follower.events(run_id)
    read = partial(final_values, thread_id=thread_id, threads=threads)
    cancel = cancel_on_disconnect
    values = await read_waited(events, read, cancel, runs, runner, thread_id, run_id, request)
    await follower.settled(run_id)
    return AgentServerJSONResponse(values, headers=_where(thread_id, run_id, "join"))


@router.get(
    "/{thread_id}/runs/{run_id}/stream",
    response_class=EventSourceResponse,
    responses={
        200: {"description": "The run's events", "content": {"text/event-stream": {}}},
        **READ_ERRORS,
    },
)
async def join_run_stream(
    thread_id: OwnedThreadDep,
    run_id: uuid.UUID,
    runs: RunsDep,
    log: EventLogDep,
    leases: LeasesDep,
    settings: SettingsDep,
    runner: RunnerDep,
    last_event_id: Annotated[
        str | None,
        Header(
            max_length=LAST_EVENT_ID_CHARS,
            description="The `id:` of the last event received, `<run_id>:<n>`, to resume "
            "after it (what `langgraph_sdk`'s `join_stream(last_event_id=...)` sends).",
        ),
    ] = None,
    stream_mode: Annotated[
        list[str] | None,
        Query(
            max_length=len(RUN_MODES),
            description="Only the events of these stream modes (repeated, or a JSON "
            "array); without it, every event of the run",
        ),
    ] = None,
    cancel_on_disconnect: Annotated[
        bool, Query(description="Cancel the run (as `.../cancel`) if the client disconnects")
    ] = False,
) -> EventSourceResponse:
    """The run's events, as `POST /threads/{id}/runs/stream` sent them (same names, data
    and ids), after `Last-Event-ID` or from the start, then live until the run ends; with
    `cancel_on_disconnect`, a client that disconnects first cancels the run."""
    modes = _modes(stream_mode or [])
    after = _after(run_id, last_event_id)
    await runs.get(thread_id, run_id)
    follower = RunFollower(log, leases, runs, thread_id)
    events = follower.sse(run_id, after, modes)
    if cancel_on_disconnect:
        events = cancelling(events, runs, runner, thread_id, run_id)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return EventSourceResponse(
        events,
        ping=settings.sse_ping_seconds,
        headers=headers | _where(thread_id, run_id, "stream"),
    )


@router.post(
    "/{thread_id}/runs/{run_id}/cancel",
    status_code=202,
    responses={200: {"content": {}}, 202: {"content": {}}, **BODY_ERRORS},
)
async def cancel_run(
    thread_id: OwnedThreadDep,
    run_id: uuid.UUID,
    runs: RunsDep,
    threads: BookDep,
    log: EventLogDep,
    leases: LeasesDep,
    runner: RunnerDep,
    wait: bool = False,
    action: Action = "interrupt",
) -> Response:
    """Stop the run: its worker, whichever it is, stops it within about a second.
    `action=interrupt`: what it stored stays and it ends `interrupted`. `action=rollback`:
    its worker then deletes, under the thread's lease, the checkpoints it wrote and the run
    itself (the thread as it was before it). A queued run leaves its queue and never
    starts. 202 at once, or with `wait=1` once it stopped: its final values (after a
    rollback, the thread's). A run that already ended: 404, as `langgraph dev` answers."""
    follower = RunFollower(log, leases, runs, thread_id)
    run = await runs.get(thread_id, run_id)
    status = run["status"]
    if status not in ACTIVE:
        raise ApiError(
            404,
            "not_found",
            f"Run {run_id} already ended ({status}): no matching run to cancel.",
        )
    await stop_run(runs, runner, thread_id, run, action)
    if not wait:
        return Response(status_code=202, headers=_where(thread_id, run_id, "join"))
    values = await final_values(follower.events(run_id), thread_id, threads)
    await follower.settled(run_id)
    if await follower.status(run_id) is None:  # rolled back: the thread as it was before
        state, _ = await threads.state(thread_id)
        values = as_json(state.values)
    return AgentServerJSONResponse(values, headers=_where(thread_id, run_id, "join"))
