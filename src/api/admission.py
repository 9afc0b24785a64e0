"""`TurnAdmission`: how many turns one worker runs at once.

A turn holds no pooled connection while the model or a tool works, but each of its steps
needs one for a moment, and so does every turn that starts. When more turns arrive than
the database serves in time, the turns already running would wait behind them for their
writes. So each worker runs at most `MAX_CONCURRENT_TURNS` turns (by default
`TURNS_PER_CONNECTION` per connection of its pool, see docs/scaling.md); a turn over the
bound waits for one to end, up to `TURN_QUEUE_SECONDS`, then is answered 503 `overloaded`
with `Retry-After`, before anything of it is stored.
"""

from __future__ import annotations

import asyncio

from src.api import metrics
from src.config.settings import Settings

# Turns per pooled connection a worker admits by default: measured in docs/scaling.md.
TURNS_PER_CONNECTION = 5


class OverloadedError(RuntimeError):
    """This worker runs as many turns as it may and none ended within the queue's wait."""


def turn_limit(settings: Settings) -> int:
    """The per-worker bound on concurrent turns the settings ask for."""
    if settings.max_concurrent_turns:
        return settings.max_concurrent_turns
    return TURNS_PER_CONNECTION * settings.postgres_memory_pool_max


class Ticket:
    """A running turn's place; `release()` gives it to the next waiting turn (once)."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots: asyncio.Semaphore | None = slots

    def release(self) -> None:
        if self._slots is not None:
            self._slots.release()
            self._slots = None


class TurnAdmission:
    """At most `limit` turns at once; a turn waits for a place up to `wait_seconds`."""

    def __init__(self, limit: int, wait_seconds: float) -> None:
        self.limit = limit
        self.wait_seconds = wait_seconds
        self._slots = asyncio.Semaphore(limit)

    @classmethod
    def from_settings(cls, settings: Settings) -> TurnAdmission:
        return cls(turn_limit(settings), settings.turn_queue_seconds)

    async def admit(self) -> Ticket:
        """A place for one turn; `OverloadedError` when none came free in time."""
        try:
            async with asyncio.timeout(self.wait_seconds):
                await self._slots.acquire()
        except TimeoutError:
            metrics.overloaded("admission")
            raise OverloadedError(
                f"this worker runs {self.limit} turns and none ended within {self.wait_seconds:g} s"
            ) from None
        return Ticket(self._slots)
