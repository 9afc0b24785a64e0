"""Threadless runs (`POST /runs/stream`, `/runs/wait`, `/runs`: what `langgraph_sdk` calls
with `thread_id=None`): as langgraph_api, each runs on a new thread of the caller's, made
for it with the run's metadata, on the same turn runner as a thread's run
(`run_start.start_run`). With `on_completion: "delete"` (the default) the thread is deleted
once the run ended, by a task of the worker that accepted the run (one that shuts down
first leaves it, a thread of the caller's); with `"keep"` it stays, a thread like any other."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic.json_schema import SkipJsonSchema
from sse_starlette import EventSourceResponse

from src.api.agent_server import sql
from src.api.agent_server.graphs import assistant_id_of
from src.api.agent_server.records import ThreadBook
from src.api.agent_server.responses import AgentServerJSONResponse
from src.api.agent_server.run_book import RunBook
from src.api.agent_server.run_follow import RunFollower
from src.api.agent_server.run_shapes import CommandBody, Run, RunCreate
from src.api.agent_server.run_start import StartedRun, checked, start_run
from src.api.agent_server.run_stop import cancelling, read_waited
from src.api.agent_server.runs import (
    RUN_ERRORS,
    WAITED,
    RunsDep,
    final_values,
    turn_sse,
)
from src.api.agent_server.threads import BookDep
from src.api.auth import PrincipalDep
from src.api.deps import (
    AdmissionDep,
    EraserDep,
    EventLogDep,
    LeasesDep,
    RunnerDep,
    SettingsDep,
)
from src.api.errors import ApiError
from src.api.session_erase import SessionEraser
from src.api.turn_leases import SessionBusyError, TurnLeases

logger = logging.getLogger("vera.runs")
router = APIRouter(prefix="/runs", tags=["agent server"])

# How often the deleting task looks whether the run ended (its row: no event to await).
ENDED_POLL_SECONDS = 0.1
THREADLESS = "a threadless run's thread is made for it"


class ThreadlessCommand(CommandBody):
    """A threadless run's command: no `resume` (a new thread has nothing to resume: 400, as
    langgraph_api answers), so not in the OpenAPI document."""

    resume: SkipJsonSchema[Any] = None


class ThreadlessRunCreate(RunCreate):
    """Body of `POST /runs/stream`, `/runs/wait` and `/runs` (langgraph_api's
    `RunCreateStateless`): a thread's run's, with `on_completion`, without what names a
    thread's checkpoint or how to find the thread."""

    on_completion: Literal["delete", "keep"] | None = None
    command: ThreadlessCommand | None = None
    if_not_exists: SkipJsonSchema[Literal["create", "reject"] | None] = None
    checkpoint_id: SkipJsonSchema[str | None] = None
    checkpoint: SkipJsonSchema[Any] = None

    def unserved(self) -> list[tuple[str, str]]:
        found = [(name, why) for name, why in super().unserved() if name != "on_completion"]
        for name in ("if_not_exists", "checkpoint_id", "checkpoint"):
            if getattr(self, name) is not None:
                found.append((name, THREADLESS))
        return found


def thread_metadata(body: RunCreate, graph_id: str) -> dict[str, Any]:
    """The new thread's metadata, as langgraph_api makes it: its graph and assistant, the
    config's metadata and the run's."""
    config_metadata = (
        body.config.model_dump(exclude_unset=True).get("metadata") if body.config else None
    ) or {}
    return {
        "graph_id": graph_id,
        "assistant_id": str(assistant_id_of(graph_id)),
        **config_metadata,
        **(body.metadata or {}),
    }


async def delete_when_ended(
    thread_id: uuid.UUID,
    run_id: uuid.UUID,
    follower: RunFollower,
    leases: TurnLeases,
    eraser: SessionEraser,
) -> None:
    """Delete the run's thread once the run ended (under the thread's lease: a run sent
    to it meanwhile is waited out)."""
    deleter = uuid.uuid4()
    try:
        while True:
            while await follower.active(run_id):  # noqa: ASYNC110 (a row, maybe another worker's)
                await asyncio.sleep(ENDED_POLL_SECONDS)
            try:
                await leases.acquire(thread_id, deleter)
            except SessionBusyError:
                await asyncio.sleep(ENDED_POLL_SECONDS)
                continue
            try:
                await eraser.erase([thread_id], deleter, "request")
            finally:
                with contextlib.suppress(Exception):
                    await leases.release(thread_id, deleter)
            return
    except Exception as exc:  # the thread stays, a thread of the caller's
        logger.error("thread %s of threadless run %s not deleted", thread_id, run_id, exc_info=exc)


async def _start(
    body: ThreadlessRunCreate,
    principal: PrincipalDep,
    runner: RunnerDep,
    admission: AdmissionDep,
    threads: BookDep,
    runs: RunsDep,
    log: EventLogDep,
    leases: LeasesDep,
    eraser: EraserDep,
) -> StartedRun:
    """Check the request, make its thread and start the run on it (nothing is stored for
    a request refused)."""
    graph_id, _ = checked(body)
    if body.command is not None and body.command.resume is not None:
        raise ApiError(400, "invalid_request", "You must provide a thread_id when resuming.")
    thread_id = uuid.uuid4()
    temporary = body.on_completion != "keep"
    await threads.create(principal, thread_id, thread_metadata(body, graph_id), None, "raise")
    try:
        started = await start_run(
            thread_id, body, principal, runner, admission, threads, runs, temporary, True
        )
    except BaseException:
        await asyncio.shield(_drop_thread(threads, thread_id))
        raise
    if temporary:
        follower = RunFollower(log, leases, runs, thread_id)
        run_id = started.run["run_id"]
        task = delete_when_ended(thread_id, run_id, follower, leases, eraser)
        runner.track(asyncio.create_task(task, name=f"delete-thread-{thread_id}"))
    return started


async def _drop_thread(threads: ThreadBook, thread_id: uuid.UUID) -> None:
    """The thread made for a run that did not start, removed again (nothing was stored)."""
    await threads.store.run(lambda conn: conn.execute(sql.DROP_BARE_OWNER, thread_id))


StartedDep = Annotated[StartedRun, Depends(_start)]


def _follower(started: StartedRun, log: Any, leases: Any, runs: RunBook) -> RunFollower:
    return RunFollower(log, leases, runs, started.run["thread_id"])


@router.post(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        200: {"description": "The run's events", "content": {"text/event-stream": {}}},
        **RUN_ERRORS,
    },
)
async def stream_threadless_run(
    started: StartedDep,
    settings: SettingsDep,
    log: EventLogDep,
    leases: LeasesDep,
    runs: RunsDep,
    runner: RunnerDep,
) -> EventSourceResponse:
    """Start a run on a new thread and stream its events, as `POST /threads/{id}/runs/stream`
    (`on_disconnect: "cancel"` likewise)."""
    run_id = started.run["run_id"]
    if started.turn is not None:
        events = turn_sse(started.turn)
    else:
        events = _follower(started, log, leases, runs).sse(run_id)
    if started.cancel_on_disconnect:
        events = cancelling(events, runs, runner, started.run["thread_id"], run_id)
    headers = {
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
        "Location": f"/runs/{run_id}/stream",
        "Content-Location": f"/runs/{run_id}",
    }
    return EventSourceResponse(events, ping=settings.sse_ping_seconds, headers=headers)


@router.post("/wait", responses={200: WAITED, **RUN_ERRORS})
async def wait_threadless_run(
    started: StartedDep,
    threads: BookDep,
    log: EventLogDep,
    leases: LeasesDep,
    runs: RunsDep,
    runner: RunnerDep,
    request: Request,
) -> Response:
    """Start a run on a new thread and answer its final values once it ends
    (`on_disconnect: "cancel"` as a thread's run's)."""
    thread_id, run_id = started.run["thread_id"], started.run["run_id"]
    events: AsyncIterator[Any]
    if started.turn is not None:
        events = started.turn.events()
    else:
        events = _follower(started, log, leases, runs).events(run_id)
    read = partial(final_values, thread_id=thread_id, threads=threads)
    cancel = started.cancel_on_disconnect
    values = await read_waited(events, read, cancel, runs, runner, thread_id, run_id, request)
    path = f"/threads/{thread_id}/runs/{run_id}"
    headers = {"Location": f"{path}/join", "Content-Location": path}
    return AgentServerJSONResponse(values, headers=headers)


@router.post("", response_model=Run, responses=RUN_ERRORS)
async def create_threadless_run(started: StartedDep, response: Response) -> Run:
    """Start a run on a new thread in the background: the run as created."""
    response.headers["Content-Location"] = f"/runs/{started.run['run_id']}"
    return Run.of(started.run)
