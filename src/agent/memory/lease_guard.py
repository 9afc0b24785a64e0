"""`LeaseGuard`: whether a run still holds its session's lease, known cheaply.

A lease expires `ttl_seconds` after the statement that took or renewed it ran in the
database; that ran after the run sent it, so the monotonic time of sending plus the TTL is
a lower bound of the expiry, without reading the database's clock. `confirm()` trusts that
bound while it is more than `margin_seconds` away, and otherwise renews the lease (one
statement) before answering: a run that was frozen, partitioned or slow to renew learns
that it lost its lease before it acts, not after. What the guard cannot know, it does not
assume: a renewal that fails (the database is unreachable) raises, as a lost lease does.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from src.agent.memory.fencing import LeaseLostError


class Renewer(Protocol):
    """What renews a lease (`SessionLeases`)."""

    async def renew(self, session_id: uuid.UUID, run_id: uuid.UUID, ttl_seconds: float) -> bool: ...


class LeaseGuard:
    """The lease of one run of one session: renewed through it, confirmed before acting."""

    def __init__(
        self,
        leases: Renewer,
        session_id: uuid.UUID,
        run_id: uuid.UUID,
        ttl_seconds: float,
        *,
        margin_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases = leases
        self.session_id = session_id
        self.run_id = run_id
        self.ttl_seconds = ttl_seconds
        # A third of the TTL by default: the renewer renews every third, so a run whose
        # renewals keep up never needs the database to confirm.
        self.margin_seconds = ttl_seconds / 3 if margin_seconds is None else margin_seconds
        self.clock = clock
        self._expires = -math.inf  # lower bound of the lease's expiry (clock time)
        self._lost = False

    def taken(self, sent_at: float) -> None:
        """The lease was taken (or renewed) by a statement sent at `sent_at` (clock time)."""
        self._expires = max(self._expires, sent_at + self.ttl_seconds)

    @property
    def lost(self) -> bool:
        """Whether the run learnt that another run took the lease (or it was released)."""
        return self._lost

    def remaining(self) -> float:
        """Seconds the lease surely lasts from now (negative: it may have expired)."""
        return self._expires - self.clock()

    async def renew(self) -> bool:
        """Push the expiry out again; False (and lost for good) when the run no longer
        holds the lease. Database errors are raised as they come."""
        if self._lost:
            return False
        sent_at = self.clock()
        if await self.leases.renew(self.session_id, self.run_id, self.ttl_seconds):
            self.taken(sent_at)
            return True
        self._lost = True
        return False

    async def confirm(self) -> None:
        """Return when the run surely holds its lease for `margin_seconds` more (renewing
        it when the known expiry is closer); `LeaseLostError` when it does not."""
        if not self._lost and self.remaining() > self.margin_seconds:
            return
        if not await self.renew():
            raise LeaseLostError(
                f"session {self.session_id}: lease {self.run_id} is no longer held"
            )
