"""Runs of the Agent Server API on a thread: `POST /threads/{id}/runs/stream` (its events as
Server-Sent Events), `/runs/wait` (its final values), `/runs` (in the background: the run
as created), and `GET /threads/{id}/runs[/{run_id}]`. A run is a turn of the thread's
session on Vera's turn runner; its events are stored in the turn event log under turn
`run_id`, each with the SSE id `<run_id>:<n>` (`GET /sessions/{id}/turns/{run_id}/events`
replays them after a `Last-Event-ID`). Another principal's thread is an unknown id (404)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from src.api.agent_server.records import ThreadBook
from src.api.agent_server.responses import AgentServerJSONResponse
from src.api.agent_server.run_book import RunBook
from src.api.agent_server.run_follow import RunFollower
from src.api.agent_server.run_shapes import Run, RunCreate, RunStatus
from src.api.agent_server.run_start import StartedRun, start_run
from src.api.agent_server.run_stop import cancelling, read_waited
from src.api.agent_server.shapes import MAX_PAGE
from src.api.agent_server.snapshots import as_json
from src.api.agent_server.sse import sse_data
from src.api.agent_server.threads import BookDep, OwnedThreadDep
from src.api.auth import PrincipalDep
from src.api.deps import AdmissionDep, EventLogDep, LeasesDep, RunnerDep, SettingsDep, StoreDep
from src.api.schemas import BODY_ERRORS, READ_ERRORS, ErrorBody
from src.api.turn_stream import Turn

router = APIRouter(prefix="/threads", tags=["agent server"])

RUN_ERRORS: dict[int | str, dict[str, Any]] = {
    **BODY_ERRORS,
    409: {"model": ErrorBody, "description": "`session_busy`: a turn or run holds the thread"},
}


async def get_runs(store: StoreDep) -> RunBook:
    return RunBook(store)


RunsDep = Annotated[RunBook, Depends(get_runs)]


async def get_follower(
    thread_id: uuid.UUID, log: EventLogDep, leases: LeasesDep, runs: RunsDep
) -> RunFollower:
    return RunFollower(log, leases, runs, thread_id)


FollowerDep = Annotated[RunFollower, Depends(get_follower)]


async def _start(
    thread_id: uuid.UUID,
    body: RunCreate,
    principal: PrincipalDep,
    runner: RunnerDep,
    admission: AdmissionDep,
    threads: BookDep,
    runs: RunsDep,
) -> StartedRun:
    return await start_run(thread_id, body, principal, runner, admission, threads, runs)


StartedDep = Annotated[StartedRun, Depends(_start)]


async def turn_sse(turn: Turn) -> AsyncIterator[ServerSentEvent]:
    """A live run's events as `runs/stream` sends them (ids `<run_id>:<n>`)."""
    async for event in turn.events():
        yield ServerSentEvent(
            data=sse_data(event.data), event=event.event, id=f"{turn.plan.turn_id}:{event.seq}"
        )


def _where(thread_id: uuid.UUID, run_id: uuid.UUID, then: str) -> dict[str, str]:
    path = f"/threads/{thread_id}/runs/{run_id}"
    return {"Location": f"{path}/{then}", "Content-Location": path}


@router.post(
    "/{thread_id}/runs/stream",
    response_class=EventSourceResponse,
    responses={
        200: {"description": "The run's events", "content": {"text/event-stream": {}}},
        **RUN_ERRORS,
    },
)
async def stream_run(
    thread_id: uuid.UUID,
    started: StartedDep,
    settings: SettingsDep,
    follower: FollowerDep,
    runner: RunnerDep,
    runs: RunsDep,
) -> EventSourceResponse:
    """Start a run and stream its events: `metadata` (`run_id`, `attempt`), then the
    requested `stream_mode`s' parts (`values`, `updates`, `messages`, ...; a subgraph's as
    `<mode>|<namespace>`), and `error` if it fails. A client that disconnects does not stop
    the run, unless it sent `on_disconnect: "cancel"`: then the run is cancelled as
    `POST .../cancel` cancels it (`action=interrupt`)."""
    run_id = started.run["run_id"]
    events = turn_sse(started.turn) if started.turn else follower.sse(run_id)
    if started.cancel_on_disconnect:
        events = cancelling(events, runs, runner, thread_id, run_id)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return EventSourceResponse(
        events,
        ping=settings.sse_ping_seconds,
        headers=headers | _where(thread_id, run_id, "stream"),
    )


async def final_values(
    events: AsyncIterable[Any], thread_id: uuid.UUID, threads: ThreadBook
) -> Any:
    """What `runs/wait` (and `join`) answers of a run's `events`: the last `values` part,
    or the part holding the run's interrupts (merged when there are several), or
    `{"__error__": ...}` when the run failed; the thread's values when the run streamed
    none of those."""
    latest: Any = None
    interrupts: list[Any] = []
    errored = False
    async for event in events:
        data = event.data
        if event.event == "error":
            latest, errored = {"__error__": data}, True
        elif event.event in ("values", "updates"):
            if isinstance(data, dict) and data.get("__interrupt__"):
                interrupts.append(data)
                latest = data
            elif event.event == "values":
                latest = data
    if interrupts and not errored:
        if len(interrupts) == 1:
            return interrupts[0]
        return {"__interrupt__": [i for chunk in interrupts for i in chunk["__interrupt__"]]}
    if latest is not None:
        return latest
    state, _ = await threads.state(thread_id)
    return as_json(state.values)


WAITED = {
    "description": "The run's final values (or `__interrupt__`, or `__error__`)",
    "content": {"application/json": {"schema": {}}},
}


@router.post("/{thread_id}/runs/wait", responses={200: WAITED, **RUN_ERRORS})
async def wait_run(
    thread_id: uuid.UUID,
    started: StartedDep,
    threads: BookDep,
    follower: FollowerDep,
    runner: RunnerDep,
    runs: RunsDep,
    request: Request,
) -> Response:
    """Start a run and answer its final values once it ends (see `final_values`); with
    `on_disconnect: "cancel"`, a client that disconnects first cancels it (as `.../cancel`)."""
    run_id = started.run["run_id"]
    events = started.turn.events() if started.turn is not None else follower.events(run_id)
    read = partial(final_values, thread_id=thread_id, threads=threads)
    cancel = started.cancel_on_disconnect
    values = await read_waited(events, read, cancel, runs, runner, thread_id, run_id, request)
    if started.turn is None:
        await follower.settled(run_id)
    headers = _where(thread_id, run_id, "join")
    return AgentServerJSONResponse(values, headers=headers)


@router.post("/{thread_id}/runs", response_model=Run, responses=RUN_ERRORS)
async def create_run(thread_id: uuid.UUID, started: StartedDep, response: Response) -> Run:
    """Start a run in the background: the run as created (`pending`); it runs on."""
    response.headers["Content-Location"] = f"/threads/{thread_id}/runs/{started.run['run_id']}"
    return Run.of(started.run)


@router.get("/{thread_id}/runs", response_model=list[Run], responses=READ_ERRORS)
async def list_runs(
    thread_id: OwnedThreadDep,
    runs: RunsDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 10,
    offset: Annotated[int, Query(ge=0)] = 0,
    status: RunStatus | None = None,
) -> list[Run]:
    """The thread's runs, newest first: `limit` after the first `offset`, of `status`."""
    return [Run.of(run) for run in await runs.list(thread_id, limit, offset, status)]


@router.get("/{thread_id}/runs/{run_id}", response_model=Run, responses=READ_ERRORS)
async def get_run(thread_id: OwnedThreadDep, run_id: uuid.UUID, runs: RunsDep) -> Run:
    """One run of the thread."""
    return Run.of(await runs.get(thread_id, run_id))
