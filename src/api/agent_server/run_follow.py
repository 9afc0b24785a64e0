"""`RunFollower`: one run's events read from the turn event log (in PostgreSQL, so on any
worker), followed live while the run is queued or runs."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from sse_starlette import ServerSentEvent

from src.api.agent_server.run_book import RunBook
from src.api.agent_server.run_events import joined
from src.api.agent_server.sse import sse_data
from src.api.errors import ApiError
from src.api.turn_events import StoredEvent, TurnEventLog
from src.api.turn_leases import TurnLeases

ACTIVE = frozenset({"pending", "running"})
SETTLE_SECONDS = 10.0
SETTLE_POLL_SECONDS = 0.02


class RunFollower:
    """Reads one run's events from the turn event log, following it while it runs."""

    def __init__(
        self, log: TurnEventLog, leases: TurnLeases, runs: RunBook, thread_id: uuid.UUID
    ) -> None:
        self.log, self.leases, self.runs, self.thread_id = log, leases, runs, thread_id

    async def status(self, run_id: uuid.UUID) -> str | None:
        """The run's status, `None` once it is gone."""
        try:
            return str((await self.runs.get(self.thread_id, run_id))["status"])
        except ApiError:
            return None

    async def active(self, run_id: uuid.UUID) -> bool:
        """Whether the run may still write events: queued or running (one whose worker
        died is taken over by a live worker's sweep, `run_recovery`, so it ends too)."""
        return await self.status(run_id) in ACTIVE

    async def settled(self, run_id: uuid.UUID) -> None:
        """Return once the run's row says it ended: its last event is stored just before
        its status (and lease) are, so a reader of that event waits this moment out
        (bounded: a run whose worker died is `running` until it is taken over)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE_SECONDS):
                while await self.active(run_id):  # noqa: ASYNC110 (a row, maybe another worker's)
                    await asyncio.sleep(SETTLE_POLL_SECONDS)

    def events(self, run_id: uuid.UUID, after: int = 0) -> AsyncIterator[StoredEvent]:
        """The run's events after number `after`, then live until it ended."""

        async def running() -> bool:
            return await self.active(run_id)

        return self.log.follow(self.thread_id, str(run_id), after, running=running)

    async def sse(
        self, run_id: uuid.UUID, after: int = 0, modes: frozenset[str] = frozenset()
    ) -> AsyncIterator[ServerSentEvent]:
        """The run's events as `runs/stream` sent them (ids `<run_id>:<n>`); with `modes`,
        only those of these stream modes (`run_events.joined`)."""
        async for event in self.events(run_id, after):
            if not joined(event.event, modes):
                continue
            yield ServerSentEvent(
                data=sse_data(event.data), event=event.event, id=f"{run_id}:{event.seq}"
            )
