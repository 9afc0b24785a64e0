"""`TurnLeases`: one turn at a time per session, across every worker process.

A turn holds its session's lease (the checkpointer's `SessionLeases`, whose table fences the
turn's writes) for as long as it runs: taken when the turn starts, renewed meanwhile,
released at its end, or when the database is back if it is down then. A worker that crashes
frees its sessions once their leases run out. Each held lease has its `LeaseGuard` (`guard`),
through which it is renewed and which the turn's tools confirm before they start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator

from src.agent.memory.lease_guard import LeaseGuard
from src.agent.memory.leases import SessionLeases
from src.agent.memory.store import PostgresMemoryStore, StorageUnavailableError
from src.api import metrics

logger = logging.getLogger(__name__)


class SessionBusyError(RuntimeError):
    """Another turn of this session is in progress."""


class TurnLeases:
    """Take, renew and release per-session leases of `ttl_seconds`."""

    def __init__(self, store: PostgresMemoryStore, ttl_seconds: float = 30.0) -> None:
        self.leases = SessionLeases(store)
        self.ttl_seconds = ttl_seconds
        self._pending: set[asyncio.Task[None]] = set()
        self._swept = -math.inf  # when expired leases were last deleted (monotonic)
        self._guards: dict[tuple[uuid.UUID, uuid.UUID], LeaseGuard] = {}

    async def acquire(self, session_id: uuid.UUID, run_id: uuid.UUID) -> None:
        """Take the session's lease for this run; `SessionBusyError` if another run holds it."""
        guard = LeaseGuard(self.leases, session_id, run_id, self.ttl_seconds)
        sent_at = guard.clock()
        taken = await self.leases.take(session_id, run_id, self.ttl_seconds)
        if taken is None:
            metrics.session_busy()
            raise SessionBusyError(f"session {session_id} has a turn in progress")
        guard.taken(sent_at)
        self._guards[session_id, run_id] = guard
        if taken.took_over:
            metrics.lease_taken_over()
            logger.info("took over the expired lease of session %s", session_id)
        await self._delete_expired()

    async def _delete_expired(self) -> None:
        """Drop leases that expired a while ago (their workers died): at most once a minute
        per process, on the way of a turn that just started."""
        now = time.monotonic()
        if now - self._swept < 60.0:
            return
        self._swept = now
        await self.leases.delete_expired()

    def guard(self, session_id: uuid.UUID, run_id: uuid.UUID) -> LeaseGuard:
        """The guard of a lease this process acquired and has not released."""
        return self._guards[session_id, run_id]

    async def renew(self, session_id: uuid.UUID, run_id: uuid.UUID) -> bool:
        """Push the lease's expiry out again; False if it was lost (expired and taken)."""
        guard = self._guards.get((session_id, run_id))
        if guard is None:
            return await self.leases.renew(session_id, run_id, self.ttl_seconds)
        return await guard.renew()

    async def held_by_any(self, session_id: uuid.UUID) -> bool:
        """Whether a turn of the session holds an unexpired lease now."""
        return await self.leases.held(session_id)

    async def release(self, session_id: uuid.UUID, run_id: uuid.UUID) -> None:
        self._guards.pop((session_id, run_id), None)
        await self.leases.release(session_id, run_id)

    @contextlib.asynccontextmanager
    async def held(self, session_id: uuid.UUID, run_id: uuid.UUID) -> AsyncIterator[None]:
        """Keep an acquired lease renewed for the block, then release it."""
        renewer = asyncio.create_task(self._keep_renewed(session_id, run_id))
        try:
            yield
        finally:
            renewer.cancel()
            await asyncio.shield(self.release_soon(session_id, run_id))

    async def release_soon(self, session_id: uuid.UUID, run_id: uuid.UUID) -> None:
        """Release now, or, while the database is down, as soon as it is back (not only
        at expiry)."""
        try:
            await self.release(session_id, run_id)
        except StorageUnavailableError:
            task = asyncio.create_task(self._release_when_back(session_id, run_id))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _release_when_back(self, session_id: uuid.UUID, run_id: uuid.UUID) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ttl_seconds
        while loop.time() < deadline:
            await asyncio.sleep(min(1.0, self.ttl_seconds / 10))
            try:
                await self.release(session_id, run_id)
                return
            except StorageUnavailableError:
                continue
        logger.warning("lease of session %s left to expire (database down)", session_id)

    async def _keep_renewed(self, session_id: uuid.UUID, run_id: uuid.UUID) -> None:
        while True:
            await asyncio.sleep(self.ttl_seconds / 3)
            try:
                if not await self.renew(session_id, run_id):
                    logger.warning("lease of session %s was lost", session_id)
                    return
            except StorageUnavailableError:
                continue  # retried at the next period; the turn itself reports the outage
