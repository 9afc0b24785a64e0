"""Deleting sessions whole: everything the checkpointer stores of them (through its own
`delete_sessions`) and the API's rows (turn events, owner rows, the claiming leases).

Every deletion first holds each session's lease, as a turn does (`DELETE /sessions/{id}`
takes it, the TTL sweep and `forget` claim many at once), so no turn runs on a session
while it goes. The checkpointer's part is one transaction and the API's one statement:
a session is either gone or still all there, but for the API's rows after a crash in
between, which the next deletion of that session (or sweep) removes.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore
from src.api import metrics, sql
from src.api.errors import ApiError
from src.api.security import DEFAULT_PRINCIPAL

logger = logging.getLogger(__name__)

BATCH = 100  # sessions per transaction when forgetting


@dataclass
class Erased:
    """What a deletion removed: the sessions of which anything was stored, and the bytes
    their rows took (reusable by PostgreSQL once vacuumed)."""

    session_ids: set[uuid.UUID] = field(default_factory=set)
    bytes: int = 0

    def add(self, other: Erased) -> None:
        self.session_ids |= other.session_ids
        self.bytes += other.bytes


class SessionEraser:
    """Deletes sessions whose leases the caller holds (under `run_id`)."""

    def __init__(
        self,
        store: PostgresMemoryStore,
        checkpointer: ConversationCheckpointer,
        lease_seconds: float,
    ) -> None:
        self.store = store
        self.checkpointer = checkpointer
        self.lease_seconds = lease_seconds

    async def erase(self, session_ids: list[uuid.UUID], run_id: uuid.UUID, reason: str) -> Erased:
        """Delete these sessions and release the leases `run_id` holds on them; `reason`
        labels the metrics (request, ttl, forget)."""
        if not session_ids:
            return Erased()
        memory = await self.checkpointer.delete_sessions(session_ids)
        row = await self.store.run(
            lambda conn: conn.fetchrow(sql.ERASE_SESSIONS, session_ids, run_id)
        )
        erased = Erased(set(memory.session_ids) | set(row["sessions"]), memory.bytes + row["bytes"])
        metrics.sessions_deleted(reason, len(erased.session_ids), erased.bytes)
        return erased

    async def forget(self, principal: str, user_id: str | None) -> Erased:
        """Delete every session of `principal` (of its end user `user_id` only, unless
        None): all of them, or none when a turn runs on one (`ApiError` 409 naming them).
        The default principal's include the sessions written without the API."""
        run_id = uuid.uuid4()
        unowned = principal == DEFAULT_PRINCIPAL and not user_id
        rows = await self.store.run(
            lambda conn: conn.fetch(
                sql.CLAIM_OWNER_SESSIONS, principal, user_id, unowned, run_id, self.lease_seconds
            )
        )
        busy = [r["session_id"] for r in rows if not r["leased"]]
        if busy:
            await self._release(run_id)
            raise busy_error(busy)
        erased = Erased()
        sids = [r["session_id"] for r in rows]
        try:
            for start in range(0, len(sids), BATCH):
                erased.add(await self.erase(sids[start : start + BATCH], run_id, "forget"))
                await self.store.run(
                    lambda conn: conn.execute(sql.RENEW_RUN_LEASES, run_id, self.lease_seconds)
                )
        finally:
            await self._release(run_id)
        logger.info(
            "forgot principal=%s scope=%s sessions=%d bytes=%d",
            principal,
            "principal" if user_id is None else "user",
            len(erased.session_ids),
            erased.bytes,
        )  # the end user's id is not logged: it is what was forgotten
        return erased

    async def _release(self, run_id: uuid.UUID) -> None:
        await self.store.run(lambda conn: conn.execute(sql.RELEASE_RUN_LEASES, run_id))


MAX_LISTED = 20


def busy_error(session_ids: list[uuid.UUID]) -> ApiError:
    """409 `session_busy` naming the sessions with a running turn."""
    shown = ", ".join(str(s) for s in session_ids[:MAX_LISTED])
    more = f" and {len(session_ids) - MAX_LISTED} more" if len(session_ids) > MAX_LISTED else ""
    return ApiError(
        409,
        "session_busy",
        f"Nothing was deleted: {len(session_ids)} of these sessions have a turn in progress "
        f"({shown}{more}). Try again when they are done.",
        details=[
            {"field": "session_id", "message": f"{s} has a turn in progress"}
            for s in session_ids[:MAX_LISTED]
        ],
    )
