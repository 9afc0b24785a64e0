"""Stopping a running turn from any worker: `TurnCancels`.

`request` (on whichever worker answers `POST .../cancel`) stores a row in `turn_cancels`
for the turn's run and announces it with NOTIFY on `vera_turn_cancels` (payload: the run
id). Every worker listens on a connection of its own, reconnecting when it drops, and
also looks at the table once a second while it runs turns, so a notification lost while
its connection was down still stops the turn within about a second. `stoppable` runs a
turn's work and raises `TurnStopped` once a request for its run arrived (the work is
cancelled first; `turn_stop.py` then stores what the user saw).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable
from typing import Any

import asyncpg

from src.agent.memory.store import CONNECTION_ERRORS, PostgresMemoryStore, StorageUnavailableError
from src.api import sql

logger = logging.getLogger(__name__)

CHANNEL = "vera_turn_cancels"


def _setter(event: asyncio.Event) -> Any:
    """A connection's termination listener that sets `event`."""
    return lambda _conn: event.set()


class TurnStopped(Exception):
    """The turn was asked to stop, and its work was cancelled."""


class TurnCancels:
    """This worker's end of the cancel requests: it asks, listens and looks."""

    def __init__(
        self, store: PostgresMemoryStore, *, poll_seconds: float = 1.0, retry_seconds: float = 1.0
    ) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self._runs: dict[uuid.UUID, asyncio.Event] = {}  # the runs of this worker's turns
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()  # set while the LISTEN connection is up

    # -- asking ----------------------------------------------------------------------

    async def request(self, session_id: uuid.UUID, turn_id: str, run_id: uuid.UUID) -> None:
        """Ask the worker running `run_id` to stop it (stored, then announced)."""
        await self.store.run(
            lambda conn: conn.execute(sql.REQUEST_CANCEL, run_id, session_id, turn_id, CHANNEL)
        )

    # -- being told ------------------------------------------------------------------

    async def stoppable(self, run_id: uuid.UUID, work: Awaitable[None]) -> None:
        """Run `work`; when `run_id` is asked to stop first, cancel it and raise
        `TurnStopped` (the request is then done with)."""
        stop = self._runs[run_id] = asyncio.Event()
        task = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not stop.is_set() or task.done():
                await task  # its result or its error; a request too late stops nothing
                return
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise TurnStopped
        finally:
            self._runs.pop(run_id, None)
            waiter.cancel()
            if not task.done():  # we are cancelled ourselves (shutdown)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def asked(self, run_id: uuid.UUID) -> bool:
        """Whether someone asked `run_id` to stop (a request its worker may never have seen)."""
        rows = await self.store.run(lambda conn: conn.fetch(sql.CANCELS_REQUESTED, [run_id]))
        return bool(rows)

    async def done(self, run_id: uuid.UUID) -> None:
        """Drop the request of a run that stopped (best effort: an hour on, it goes anyway)."""
        with contextlib.suppress(StorageUnavailableError, asyncpg.PostgresError):
            await self.store.run(lambda conn: conn.execute(sql.CANCEL_DONE, run_id))

    def _stop(self, run_id: uuid.UUID) -> None:
        stop = self._runs.get(run_id)
        if stop is not None:
            stop.set()

    async def _look(self) -> None:
        """Stop the runs of this worker that a stored request names."""
        runs = list(self._runs)
        if not runs:
            return
        rows = await self.store.run(lambda conn: conn.fetch(sql.CANCELS_REQUESTED, runs))
        for row in rows:
            self._stop(row["run_id"])

    # -- the background tasks ---------------------------------------------------------

    async def start(self) -> None:
        """Listen (unless a pooler stands in the way: then only look) and look."""
        self._tasks.append(asyncio.create_task(self._poll(), name="turn-cancels-poll"))
        if self.store.behind_pooler and self.store.direct_dsn is None:
            logger.warning(
                "turn cancels: no LISTEN (%s is a connection pooler); a cancel request is "
                "seen within %g s. Set POSTGRES_MEMORY_DIRECT_URL to see it at once",
                self.store.address,
                self.poll_seconds,
            )
            return
        self._tasks.append(asyncio.create_task(self._listen(), name="turn-cancels-listen"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self._look()
            except (StorageUnavailableError, asyncpg.PostgresError) as exc:
                logger.debug("turn cancels: look failed (%s)", type(exc).__name__)

    async def _listen(self) -> None:
        """Hold a LISTEN connection; when it drops, connect again (every `retry_seconds`)."""
        while True:
            lost = asyncio.Event()
            conn: asyncpg.Connection | None = None
            try:
                conn = await self.store.connect()
                conn.add_termination_listener(_setter(lost))
                await conn.add_listener(CHANNEL, self._on_notify)
                self.listening.set()
                await self._look()  # what was asked while no connection listened
                await lost.wait()
                logger.warning("turn cancels: the LISTEN connection dropped; reconnecting")
            except (*CONNECTION_ERRORS, asyncpg.PostgresError, StorageUnavailableError) as exc:
                logger.warning("turn cancels: no LISTEN connection (%s)", type(exc).__name__)
            finally:
                self.listening.clear()
                if conn is not None:
                    with contextlib.suppress(*CONNECTION_ERRORS, asyncpg.PostgresError):
                        await conn.close(timeout=1)
            await asyncio.sleep(self.retry_seconds)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self._stop(uuid.UUID(payload))
