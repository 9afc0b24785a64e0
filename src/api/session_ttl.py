"""The session TTL: sessions idle longer than their time-to-live are deleted whole, as
`DELETE /sessions/{id}` deletes one.

The TTL is the server's default (`SESSION_TTL_MINUTES`, off unless set) or a session's
own (`PATCH /sessions/{id}`, in `session_owners.ttl_minutes`). Every worker runs a sweep
every `SESSION_TTL_SWEEP_INTERVAL_MINUTES`: in batches of `SESSION_TTL_SWEEP_BATCH`, it
claims expired sessions by taking their leases (`FOR UPDATE SKIP LOCKED` over the
candidates; a lease a running turn holds is never taken), deletes them, and goes on until a
batch comes back short or `SESSION_TTL_SWEEP_LIMIT` sessions are gone. Each batch holds its
row locks for one statement and its leases while its sessions are deleted, never longer.
The settings mirror `checkpointer.ttl` of LangGraph's `langgraph.json` (`default_ttl`,
`sweep_interval_minutes`, `sweep_limit`; strategy `delete`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from src.agent.memory import PostgresMemoryStore
from src.agent.memory.store import StorageUnavailableError
from src.api import metrics, sql
from src.api.checkpoint_retention import CheckpointRetention
from src.api.security import DEFAULT_PRINCIPAL
from src.api.session_erase import Erased, SessionEraser
from src.config.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TTLPolicy:
    """The server's default TTL (None: off) and how its sweeps go."""

    default_minutes: float | None = None
    sweep_interval_minutes: float = 5.0
    sweep_limit: int = 1000
    sweep_batch: int = 100

    @classmethod
    def from_settings(cls, settings: Settings) -> TTLPolicy:
        return cls(
            default_minutes=settings.session_ttl_minutes,
            sweep_interval_minutes=settings.session_ttl_sweep_interval_minutes,
            sweep_limit=settings.session_ttl_sweep_limit,
            sweep_batch=settings.session_ttl_sweep_batch,
        )


@dataclass(frozen=True)
class SessionRecord:
    """What is stored about a session besides its messages (`SESSION_RECORD`)."""

    title: str
    created_at: datetime | None
    idle_since: datetime | None
    ttl_minutes: float | None
    stored: bool  # a conversation row exists

    def effective_ttl(self, policy: TTLPolicy) -> float | None:
        return self.ttl_minutes if self.ttl_minutes is not None else policy.default_minutes

    def expires_at(self, policy: TTLPolicy) -> datetime | None:
        ttl = self.effective_ttl(policy)
        if ttl is None or self.idle_since is None:
            return None
        return self.idle_since + timedelta(minutes=ttl)


async def session_record(store: PostgresMemoryStore, session_id: uuid.UUID) -> SessionRecord | None:
    """The session's record; None when nothing of it is stored."""
    row = await store.run(lambda conn: conn.fetchrow(sql.SESSION_RECORD, session_id))
    return None if row is None else SessionRecord(**{**dict(row), "title": row["title"] or ""})


async def set_session_ttl(
    store: PostgresMemoryStore, session_id: uuid.UUID, minutes: float | None
) -> bool:
    """Give the session its own TTL (None: the default again); False when it is unknown."""
    args = (session_id, minutes, DEFAULT_PRINCIPAL)
    return await store.run(lambda conn: conn.fetchval(sql.SET_SESSION_TTL, *args)) is not None


class SessionSweeper:
    """Deletes the sessions idle past their TTL, a sweep at a time."""

    def __init__(
        self,
        store: PostgresMemoryStore,
        eraser: SessionEraser,
        policy: TTLPolicy,
        lease_seconds: float = 30.0,
        retention: CheckpointRetention | None = None,
    ) -> None:
        """`retention`: checkpoint retention, run after each sweep of the loop."""
        self.store = store
        self.eraser = eraser
        self.policy = policy
        self.lease_seconds = lease_seconds
        self.retention = retention
        self._stopping = asyncio.Event()

    async def sweep(self) -> Erased:
        """One sweep; what it deleted (logged when anything)."""
        started = time.perf_counter()
        swept = Erased()
        while not self._stopping.is_set() and len(swept.session_ids) < self.policy.sweep_limit:
            wanted = min(self.policy.sweep_batch, self.policy.sweep_limit - len(swept.session_ids))
            claimed = await self._batch(wanted, swept)
            if claimed < wanted:
                break
        if swept.session_ids:
            logger.info(
                "ttl sweep: deleted %d sessions (%d bytes) in %.0f ms",
                len(swept.session_ids),
                swept.bytes,
                (time.perf_counter() - started) * 1000,
            )
        return swept

    async def _batch(self, wanted: int, swept: Erased) -> int:
        """Claim up to `wanted` expired sessions and delete them; how many were claimed."""
        run_id = uuid.uuid4()
        args = (self.policy.default_minutes, run_id, wanted, self.lease_seconds)
        rows = await self.store.run(lambda conn: conn.fetch(sql.CLAIM_EXPIRED_SESSIONS, *args))
        sids = [r["session_id"] for r in rows]
        try:
            swept.add(await self.eraser.erase(sids, run_id, "ttl"))
        finally:
            if sids:  # erased ones released theirs; a failure leaves them to expire else
                with contextlib.suppress(StorageUnavailableError, asyncpg.PostgresError):
                    await self.store.run(lambda conn: conn.execute(sql.RELEASE_RUN_LEASES, run_id))
        return len(sids)

    async def run(self) -> None:
        """Sweep every interval (the first within a minute of start-up, workers spread out)
        until `stop()`; a failed sweep is logged and counted, and the next one tries again."""
        interval = self.policy.sweep_interval_minutes * 60
        delay = random.uniform(0, min(interval, 60.0))
        while not await self._wait(delay):
            try:
                await self.sweep()
                metrics.ttl_sweep("ok")
            except (StorageUnavailableError, asyncpg.PostgresError) as exc:
                metrics.ttl_sweep("error")
                logger.warning(
                    "ttl sweep failed (%s); next one in %.0f s", type(exc).__name__, interval
                )
            except Exception as exc:
                metrics.ttl_sweep("error")
                logger.error("ttl sweep failed", exc_info=exc)
            if self.retention is not None and not self._stopping.is_set():
                await self.retention.run_pass_logged()
            delay = interval * random.uniform(0.9, 1.1)

    async def _wait(self, seconds: float) -> bool:
        """Sleep `seconds`; True when stopped meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    def stop(self) -> None:
        """End the loop (a sweep in progress ends after its current batch)."""
        self._stopping.set()


@contextlib.asynccontextmanager
async def sweeping(sweeper: SessionSweeper) -> AsyncIterator[SessionSweeper]:
    """Run `sweeper`'s loop for the block."""
    task = asyncio.create_task(sweeper.run(), name="ttl-sweep")
    try:
        yield sweeper
    finally:
        sweeper.stop()
        await task
