"""Stopping a run of a thread: what `POST .../cancel` does, and the same `interrupt` when
the client of a stream that asked for it (`on_disconnect: "cancel"`, what `useStream`
sends; `cancel_on_disconnect` on a join) drops the connection before the run ended."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Coroutine, Mapping
from typing import Any, Literal, TypeVar

from starlette.requests import Request

from src.api.agent_server.run_book import RunBook
from src.api.agent_server.run_follow import ACTIVE
from src.api.errors import ClientGone
from src.api.turns import TurnRunner

logger = logging.getLogger("vera.runs")

Action = Literal["interrupt", "rollback"]
Event = TypeVar("Event")
Result = TypeVar("Result")


async def stop_run(
    runs: RunBook, runner: TurnRunner, thread_id: uuid.UUID, run: Mapping[str, Any], action: Action
) -> None:
    """Stop `run` (its row, an active one): a queued run leaves its queue; a started one is
    stopped by the worker of its attempt, whichever it is (`rollback`: that worker then
    drops what it stored, under the thread's lease)."""
    run_id = run["run_id"]
    queued = run["status"] == "pending" and run["multitask_strategy"] != "reject"
    if queued and await runs.dequeue(run_id, "interrupted"):
        if action == "rollback":
            await runs.drop(thread_id, run_id, run_id)  # never leased
        return
    if action == "rollback":
        await runs.mark_rollback(run_id)
    await runner.cancels.request(thread_id, str(run_id), run["lease_id"])


async def _stop_if_active(
    runs: RunBook, runner: TurnRunner, thread_id: uuid.UUID, run_id: uuid.UUID
) -> None:
    try:
        run = await runs.get(thread_id, run_id)
        if run["status"] in ACTIVE:
            await stop_run(runs, runner, thread_id, run, "interrupt")
    except Exception as exc:  # the client is gone: nobody to tell but the log
        logger.error("run not cancelled on disconnect run_id=%s", run_id, exc_info=exc)


async def cancelling(
    events: AsyncIterable[Event],
    runs: RunBook,
    runner: TurnRunner,
    thread_id: uuid.UUID,
    run_id: uuid.UUID,
) -> AsyncGenerator[Event, None]:
    """`events`; when the stream ends before they did (the client disconnected), the run
    is stopped as `POST .../cancel` stops it, in a task of its own: the stream's is being
    torn down."""
    ended = False
    try:
        async for event in events:
            yield event
        ended = True
    finally:
        if not ended:
            stop = _stop_if_active(runs, runner, thread_id, run_id)
            runner.track(asyncio.create_task(stop, name=f"cancel-on-disconnect-{run_id}"))


async def _disconnected(request: Request) -> None:
    # After its body, a request's `receive` waits for the client's disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(work: Coroutine[Any, Any, Result], request: Request) -> Result:
    """`work`'s result, or, when the client disconnects first, `work` cancelled (a run's
    events read through `cancelling` then stop the run) and `ClientGone`."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if task.cancelled():
        raise ClientGone
    return task.result()


async def read_waited(
    events: AsyncIterable[Event],
    read: Callable[[AsyncIterable[Event]], Coroutine[Any, Any, Result]],
    cancel: bool,
    runs: RunBook,
    runner: TurnRunner,
    thread_id: uuid.UUID,
    run_id: uuid.UUID,
    request: Request,
) -> Result:
    """`read(events)` of a waited run (`runs/wait`, `join`); with `cancel` (its client asked
    to cancel it on disconnect), a client that disconnects first stops the run as
    `.../cancel` stops it, and `ClientGone` (answered 499)."""
    if not cancel:
        return await read(events)
    stopping = cancelling(events, runs, runner, thread_id, run_id)
    try:
        return await unless_disconnected(read(stopping), request)
    except ClientGone:
        await stopping.aclose()  # its events not all read: the run is stopped
        raise
