"""`TurnRunner`: runs one turn of a session, a `/chat` turn or an Agent Server run, through
one lifecycle. A turn takes the session's lease (one turn at a time, across worker
processes), then runs in a background task that pushes events into the turn's queue
(`turn_stream.Turn`) and the turn event log; what it plays (the graph's input, its events,
how it ends) is its `Play` (`turn_play.py`: `/chat`'s own; the runs' in
`agent_server/run_play.py`). The HTTP response only reads that queue, so a client that
disconnects stops reading but never stops the turn: it still completes and is stored whole
(no dangling tool call). No pooled connection is held while the model or a tool works; the
checkpointer takes one per write.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from src.agent.memory.fencing import LEASE_CONFIG_KEY
from src.agent.tool_guard import TOOL_GUARD_KEY, TOOL_TURN_KEY
from src.api import metrics, tracing
from src.api.approval_schemas import ResumeRequest
from src.api.session_directory import SessionDirectory
from src.api.turn_cancel import TurnCancels, TurnStopped
from src.api.turn_errors import error_code
from src.api.turn_events import TurnEventLog, TurnEventWriter
from src.api.turn_forks import Fork, plan_fork
from src.api.turn_identity import TURN_ID_KEY, TurnPlan, plan_turn
from src.api.turn_leases import TurnLeases
from src.api.turn_messages import TurnRecord
from src.api.turn_play import ChatPlay, Play
from src.api.turn_resume import plan_resume
from src.api.turn_stream import END, Turn, TurnEvent

logger = logging.getLogger("vera.turns")

# What a turn's `prepare` step decides, under the lease: how it runs and what it plays.
Prepare = Callable[[], Awaitable[tuple[TurnPlan, Play]]]


def _config(session_id: uuid.UUID) -> RunnableConfig:
    return {"configurable": {"thread_id": str(session_id)}}


def _turn_config(turn: Turn) -> RunnableConfig:
    config = _config(turn.session_id)
    config["configurable"][LEASE_CONFIG_KEY] = str(turn.run_id)  # fences every write
    config["metadata"] = {TURN_ID_KEY: turn.plan.turn_id}
    return config


class TurnRunner:
    """Starts turns on the graph and tracks them until they finish."""

    def __init__(
        self,
        graph: CompiledStateGraph,
        leases: TurnLeases,
        events: TurnEventLog,
        directory: SessionDirectory,
        cancels: TurnCancels,
    ) -> None:
        self.graph = graph
        self.leases = leases
        self.events = events
        self.directory = directory
        self.cancels = cancels
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(
        self,
        session_id: uuid.UUID,
        message: str,
        turn_id: str | None = None,
        answer: ResumeRequest | None = None,
        fork: Fork | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> Turn:
        """Start a `/chat` turn: take the session's lease, decide what the request means
        (`plan_turn`, or `plan_resume` for the `answer` to an approval of turn `turn_id`,
        `plan_fork` for a fork of the transcript), and run the turn in the background;
        `on_end` is called once that ends (not when this raises).

        Raises `SessionBusyError`, `TurnConflictError`, `ApprovalPendingError`, `ApiError`
        (nothing to resume) or `StorageUnavailableError` before anything is stored.
        """

        async def prepare() -> tuple[TurnPlan, Play]:
            if answer is not None and turn_id is not None:
                plan = await plan_resume(self.graph, _config(session_id), turn_id, answer)
            elif fork is not None:
                plan = await plan_fork(self.graph, _config(session_id), fork, turn_id)
            else:
                plan = await plan_turn(self.graph, _config(session_id), message, turn_id)
            return plan, ChatPlay(self.graph, message)

        return await self.launch(session_id, uuid.uuid4(), prepare, on_end)

    async def launch(
        self,
        session_id: uuid.UUID,
        run_id: uuid.UUID,
        prepare: Prepare,
        on_end: Callable[[], None] | None = None,
    ) -> Turn:
        """Take the session's lease for `run_id` (`SessionBusyError` when another turn
        holds it), `prepare` the turn under it (what it raises is raised, the lease given
        back), store its first event and run it in the background; `on_end` is called once
        that ends (not when this raises)."""
        await self.leases.acquire(session_id, run_id)
        try:
            plan, play = await prepare()
            last_seq = await self.events.last_seq(session_id, plan.turn_id)
        except BaseException:
            await asyncio.shield(self.leases.release_soon(session_id, run_id))
            raise
        turn = Turn(session_id, run_id, plan, seq=last_seq)
        # Every attempt is stored, a replay too: its ids can be resumed from like any other.
        turn.writer = TurnEventWriter(self.events, session_id, plan.turn_id)
        opening = play.opening(turn)
        await turn.writer.flush()  # stored before the client can ask about the turn
        turn.deliver(opening)
        task = asyncio.create_task(self._run(turn, play), name=f"turn-{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if on_end is not None:
            task.add_done_callback(lambda _: on_end())
        return turn

    def track(self, task: asyncio.Task[None]) -> None:
        """Hold a background task of turns to come (a queued run) until it ends; `drain`
        waits for it as for a turn."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, grace_seconds: float) -> None:
        """Let running turns finish (at most `grace_seconds`), then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def config(self, turn: Turn) -> RunnableConfig:
        """The config a turn runs the graph with: its writes fenced by the lease, no tool
        started unless the lease surely holds (`src.agent.tool_guard`), its run id, the
        metrics' and tracing's callbacks."""
        config = _turn_config(turn)
        config["configurable"][TOOL_GUARD_KEY] = self.leases.guard(turn.session_id, turn.run_id)
        config["configurable"][TOOL_TURN_KEY] = turn.plan.turn_id
        config["run_id"] = turn.run_id
        config["callbacks"] = [metrics.MODEL_CALL_METRICS, *tracing.callbacks()]
        return config

    async def _run(self, turn: Turn, play: Play) -> None:
        started = time.perf_counter()
        span = tracing.TurnSpan(turn.session_id, turn.run_id, turn.plan.turn_id)
        record = TurnRecord()
        status = "ok"
        final: TurnEvent | None = None
        try:
            async with self.leases.held(turn.session_id, turn.run_id):
                try:
                    work = play.play(turn, record, self.config(turn))
                    await self.cancels.stoppable(turn.run_id, work)
                    final, status = play.finished(turn, record)
                except TurnStopped:
                    status = "cancelled"
                    final = await play.stopped(turn, record, _turn_config(turn))
                    await self.cancels.done(turn.run_id)
                except asyncio.CancelledError:
                    status = "shutting_down"
                    final = play.failed(turn, "shutting_down", None)
                    raise
                except Exception as exc:
                    status = error_code(exc)
                    if status == "internal":
                        logger.error(
                            "turn failed session_id=%s run_id=%s error=%s",
                            turn.session_id,
                            turn.run_id,
                            type(exc).__name__,
                            exc_info=exc,
                        )
                    final = play.failed(turn, status, exc)
                finally:
                    # The last event is stored before the lease goes: whoever sees the
                    # session free also finds how the turn ended.
                    if turn.writer is not None:
                        await asyncio.shield(turn.writer.close())
                    await asyncio.shield(self._touch(turn.session_id))
                    await asyncio.shield(play.ended(turn, status))
            # ... and the client gets it after: its next message is not refused as busy.
            self._deliver_end(turn, final)
        except asyncio.CancelledError:
            self._deliver_end(turn, final)
            raise
        finally:
            metrics.turn_finished(status, time.perf_counter() - started)
            span.end(status)
            logger.info(
                "turn session_id=%s run_id=%s status=%s latency_ms=%.0f tool_calls=%s "
                "tool_errors=%d input_tokens=%d output_tokens=%d total_tokens=%d",
                turn.session_id,
                turn.run_id,
                status,
                (time.perf_counter() - started) * 1000,
                ",".join(record.tool_calls) or "-",
                record.tool_errors,
                record.usage["input_tokens"],
                record.usage["output_tokens"],
                record.usage["total_tokens"],
            )

    @staticmethod
    def _deliver_end(turn: Turn, final: TurnEvent | None) -> None:
        """The turn's last event, then the end of its stream (a run may end on any)."""
        if final is not None:
            turn.deliver(final)
        turn.deliver(END)

    async def _touch(self, session_id: uuid.UUID) -> None:
        """Put the session first in its owner's list (best effort: a failure is logged)."""
        try:
            await self.directory.touch(session_id)
        except Exception as exc:
            logger.warning(
                "could not update the session list session_id=%s error=%s",
                session_id,
                type(exc).__name__,
            )
