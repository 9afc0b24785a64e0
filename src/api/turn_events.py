"""The events of every turn, kept in PostgreSQL for a while: how a client whose connection
dropped learns how its turn ended, and replays the stream after its `Last-Event-ID`, from
any worker (the stream of a running turn is followed live through LISTEN/NOTIFY).

Event ids are `<turn_id>:<seq>`; a resumed turn numbers on after its earlier attempts, so a
turn's events are one sequence across attempts. Writing is best effort and never slows a
turn: events are batched (tokens arrive many per second) and a failed write is logged. The
batch holding a turn's last event (`done`, `error`) is the exception: its write is retried
(bounded backoff, while the turn still holds its lease), as it is what the turn's status
and a resumed stream end with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from src.agent.memory.jsonb import dumps_jsonb, loads_jsonb
from src.agent.memory.store import CONNECTION_ERRORS, PostgresMemoryStore, StorageUnavailableError
from src.api import sql

logger = logging.getLogger(__name__)

CHANNEL = "vera_turn_events"
TERMINAL = frozenset({"done", "error", "interrupt", "cancelled"})
PROBE_PREFIX = "probe "  # a batch's payload starts with a session id (a UUID), never this


@dataclass(frozen=True)
class StoredEvent:
    """One event of a turn as stored: its number, SSE name and payload."""

    seq: int
    event: str
    data: Any


class TurnEventLog:
    """Writes turns' events in batches, reads them back, and wakes followers on NOTIFY."""

    def __init__(
        self,
        store: PostgresMemoryStore,
        *,
        ttl_seconds: float = 3600.0,
        batch_seconds: float = 0.05,
        probe_seconds: float = 2.0,
        terminal_retry_seconds: float = 10.0,
    ) -> None:
        self.store = store
        self.terminal_retry_seconds = terminal_retry_seconds
        self.ttl_seconds = ttl_seconds
        self.batch_seconds = batch_seconds
        self.probe_seconds = probe_seconds
        self._probes: dict[str, asyncio.Event] = {}  # payload -> set when it arrives
        self._changed = asyncio.Condition()
        self._generation = 0  # batches announced so far
        self._waking: set[asyncio.Task[None]] = set()
        self._listener: asyncpg.Connection | None = None
        self._last_prune = 0.0

    # -- writing ---------------------------------------------------------------------

    async def last_seq(self, session_id: uuid.UUID, turn_id: str) -> int:
        return await self.store.run(lambda conn: conn.fetchval(sql.LAST_SEQ, session_id, turn_id))

    async def write(
        self, session_id: uuid.UUID, turn_id: str, events: list[tuple[int, str, Any]]
    ) -> None:
        """Store a batch (best effort: a failure is logged, the turn goes on); a batch that
        ends the turn is retried for up to `terminal_retry_seconds` first (the insert skips
        the events a cut-short attempt stored)."""
        seqs = [seq for seq, _, _ in events]
        names = [name for _, name, _ in events]
        payloads = [dumps_jsonb(data) for _, _, data in events]  # NUL and lone surrogates too

        async def insert() -> None:
            await self.store.run(
                lambda conn: conn.execute(
                    sql.INSERT_EVENTS, session_id, turn_id, seqs, names, payloads, CHANNEL
                )
            )

        try:
            if names[-1] in TERMINAL:
                await self._durably(insert)
            else:
                await insert()
        except (StorageUnavailableError, asyncpg.PostgresError) as exc:
            logger.warning(
                "events %s-%s of turn %s not stored (%s)",
                seqs[0],
                seqs[-1],
                turn_id,
                type(exc).__name__,
            )
        await self._prune()

    async def _durably(self, insert: Callable[[], Awaitable[None]]) -> None:
        """`insert`, retried with backoff while the database is unavailable or out of pooled
        connections, for up to `terminal_retry_seconds`."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(StorageUnavailableError),
            stop=stop_after_delay(self.terminal_retry_seconds),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            reraise=True,
        ):
            with attempt:
                await insert()

    async def _prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < 60:
            return
        self._last_prune = now
        with contextlib.suppress(StorageUnavailableError, asyncpg.PostgresError):
            await self.store.run(
                lambda conn: conn.execute(sql.DELETE_EXPIRED_EVENTS, self.ttl_seconds)
            )

    # -- reading ---------------------------------------------------------------------

    async def events_after(
        self, session_id: uuid.UUID, turn_id: str, seq: int
    ) -> list[StoredEvent]:
        rows = await self.store.run(
            lambda conn: conn.fetch(sql.EVENTS_AFTER, session_id, turn_id, seq)
        )
        return [StoredEvent(r["seq"], r["event"], loads_jsonb(r["data"])) for r in rows]

    async def follow(
        self, session_id: uuid.UUID, turn_id: str, after: int, *, running: Any, poll: float = 1.0
    ) -> AsyncIterator[StoredEvent]:
        """Stored events after `after`, then new ones as they are stored, until a terminal
        one; ends early when `running()` says no turn of this session runs any more."""
        while True:
            seen = self._generation
            batch = await self.events_after(session_id, turn_id, after)
            if not batch:
                if not await running():  # a last look: its final batch may just have landed
                    batch = await self.events_after(session_id, turn_id, after)
                    if not batch:
                        return
                else:
                    async with self._changed:
                        if self._generation == seen:  # nothing announced since the read
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(self._changed.wait(), poll)
                    continue
            for event in batch:
                after = event.seq
                yield event
                if event.event in TERMINAL:
                    return

    # -- LISTEN ----------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for stored batches on a connection of its own (pooled ones are shared),
        once a NOTIFY sent through the pool is seen to reach it; without it, followers look
        every second.

        Behind a connection pooler (`store.behind_pooler`) with no direct connection
        (`store.direct_dsn`), no LISTEN at all: in transaction pooling it would run on a
        pooled server connection that keeps listening for good, and receive nothing.
        """
        if self.store.behind_pooler and self.store.direct_dsn is None:
            self._no_listen(f"{self.store.address} is a connection pooler (PgBouncer?)")
            return
        try:
            self._listener = await self.store.connect()
            await self._listener.add_listener(CHANNEL, self._on_notify)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            logger.warning("turn events: no LISTEN connection (%s); followers poll", exc)
            await self.close()
            return
        if not await self._probe():
            self._no_listen(
                f"a NOTIFY sent through the pool did not reach the LISTEN connection within "
                f"{self.probe_seconds:g} s"
            )
            await self.close()

    async def _probe(self) -> bool:
        """Whether a NOTIFY sent through the pool reaches the listener in time."""
        payload = f"{PROBE_PREFIX}{uuid.uuid4()}"
        arrived = self._probes[payload] = asyncio.Event()
        try:
            await self.store.run(lambda conn: conn.execute(sql.PROBE_NOTIFY, CHANNEL, payload))
            await asyncio.wait_for(arrived.wait(), self.probe_seconds)
        except (TimeoutError, StorageUnavailableError, asyncpg.PostgresError):
            return False
        finally:
            del self._probes[payload]
        return True

    @staticmethod
    def _no_listen(reason: str) -> None:
        logger.warning(
            "turn events: no LISTEN (%s); followers of running turns poll every second. "
            "Set POSTGRES_MEMORY_DIRECT_URL to a DSN of the database that bypasses the "
            "pooler to wake them at once",
            reason,
        )

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload.startswith(PROBE_PREFIX):  # ours, or another worker's start-up
            probe = self._probes.get(payload)
            if probe is not None:
                probe.set()
            return
        task = asyncio.get_running_loop().create_task(self._wake())
        self._waking.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._waking.discard)

    async def _wake(self) -> None:
        async with self._changed:
            self._generation += 1
            self._changed.notify_all()

    async def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(*CONNECTION_ERRORS, asyncpg.PostgresError):
                await self._listener.close()
            self._listener = None


class TurnEventWriter:
    """Stores one turn's events as they are emitted, in batches, off the turn's path."""

    def __init__(self, log: TurnEventLog, session_id: uuid.UUID, turn_id: str) -> None:
        self.log = log
        self.session_id = session_id
        self.turn_id = turn_id
        self._buffer: list[tuple[int, str, Any]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def add(self, seq: int, event: str, data: Any) -> None:
        """Buffer an event; the writer's task stores it within `batch_seconds`."""
        self._buffer.append((seq, event, data))
        self._wake.set()
        if self._task is None and event != "session":  # `session` is flushed by the runner
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._closing:
                await asyncio.sleep(self.log.batch_seconds)  # gather the tokens of a burst
            self._wake.clear()
            await self.flush()
            if self._closing and not self._buffer:
                return

    async def flush(self) -> None:
        """Store what is buffered now (the writer's task stores the rest in batches)."""
        batch, self._buffer = self._buffer, []
        if batch:
            await self.log.write(self.session_id, self.turn_id, batch)

    async def close(self) -> None:
        """Store what is left, in order; after the turn's last event."""
        self._closing = True
        if self._task is None:
            await self.flush()
            return
        self._wake.set()
        await self._task
