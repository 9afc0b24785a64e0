"""`SessionLeases`: which run may write each session now, across every process.

A lease is a row of the checkpointer's `turn_leases` table (`migrations/0003_turn_leases.sql`)
naming the run that holds the session until `expires_at`, unless renewed. Taking one is a
single statement (no connection is held while the run goes on), and a process that crashes
frees its sessions once their leases run out. What a lease means for writes (a write of a
run whose lease is gone, or without a lease while one is held, is refused) is `fencing.py`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from src.agent.memory import sql
from src.agent.memory.store import PostgresMemoryStore


@dataclass(frozen=True)
class TakenLease:
    """A lease just taken; `took_over`: it had expired in another run's hands."""

    took_over: bool


class SessionLeases:
    """Take, renew, release and inspect the sessions' leases, on the store's pool."""

    def __init__(self, store: PostgresMemoryStore) -> None:
        self.store = store

    async def take(
        self, session_id: uuid.UUID, run_id: uuid.UUID, ttl_seconds: float
    ) -> TakenLease | None:
        """The session's lease for `run_id` when it is free or expired; None while another
        run holds it."""
        row = await self.store.run(
            lambda conn: conn.fetchrow(sql.TAKE_LEASE, session_id, run_id, ttl_seconds)
        )
        return None if row is None else TakenLease(took_over=row["took_over"])

    async def renew(self, session_id: uuid.UUID, run_id: uuid.UUID, ttl_seconds: float) -> bool:
        """Push the lease's expiry out again; False when `run_id` no longer holds it."""
        status: str = await self.store.run(
            lambda conn: conn.execute(sql.RENEW_LEASE, session_id, run_id, ttl_seconds)
        )
        return status != "UPDATE 0"

    async def release(self, session_id: uuid.UUID, run_id: uuid.UUID) -> None:
        """Give the lease up (nothing happens when `run_id` no longer holds it)."""
        await self.store.run(lambda conn: conn.execute(sql.RELEASE_LEASE, session_id, run_id))

    async def held(self, session_id: uuid.UUID) -> bool:
        """Whether a run holds an unexpired lease of the session now."""
        held: bool = await self.store.run(lambda conn: conn.fetchval(sql.LEASE_HELD, session_id))
        return held

    async def delete_expired(self) -> None:
        """Drop the leases that expired a minute ago or more (their holders are gone)."""
        await self.store.run(lambda conn: conn.execute(sql.DELETE_EXPIRED_LEASES))
