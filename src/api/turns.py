"""`TurnRunner`: runs one chat turn of a session. A turn takes the session's lease (one
turn at a time, across worker processes), then runs the graph in a background task that
pushes events into the turn's queue (`turn_stream.Turn`; `turn_messages` makes the events
of the graph's messages). The HTTP response only reads that queue, so a client that
disconnects stops reading but never stops the turn: it still completes and is stored whole
(no dangling tool call). No pooled connection is held while the model or a tool works; the
checkpointer takes one per write.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel

from src.agent.memory.fencing import LEASE_CONFIG_KEY
from src.agent.tool_guard import TOOL_GUARD_KEY, TOOL_TURN_KEY
from src.api import metrics, tracing
from src.api.approval_schemas import ResumeRequest
from src.api.schemas import CancelledEvent, SessionEvent, TokenEvent, Usage
from src.api.session_directory import SessionDirectory
from src.api.tool_events import STREAM_MODES, StoredMessages
from src.api.turn_cancel import TurnCancels, TurnStopped
from src.api.turn_errors import error_code
from src.api.turn_events import TurnEventLog, TurnEventWriter
from src.api.turn_forks import Fork, plan_fork
from src.api.turn_identity import TURN_ID_KEY, plan_turn
from src.api.turn_leases import TurnLeases
from src.api.turn_messages import TurnRecord, emit_message, text_of
from src.api.turn_resume import WAITING, final_event, plan_resume
from src.api.turn_stop import stopped_answer_id, store_stop
from src.api.turn_stream import Turn, TurnEvent, error_event

logger = logging.getLogger("vera.turns")


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
        """Take the session's lease, decide what the request means (`plan_turn`, or
        `plan_resume` for the `answer` to an approval of turn `turn_id`, `plan_fork` for a
        fork of the transcript), and run the turn in the background; `on_end` is called
        once that ends (not when this raises).

        Raises `SessionBusyError`, `TurnConflictError`, `ApprovalPendingError`, `ApiError`
        (nothing to resume) or `StorageUnavailableError` before anything is stored.
        """
        run_id = uuid.uuid4()
        await self.leases.acquire(session_id, run_id)
        try:
            if answer is not None and turn_id is not None:
                plan = await plan_resume(self.graph, _config(session_id), turn_id, answer)
            elif fork is not None:
                plan = await plan_fork(self.graph, _config(session_id), fork, turn_id)
            else:
                plan = await plan_turn(self.graph, _config(session_id), message, turn_id)
            last_seq = await self.events.last_seq(session_id, plan.turn_id)
        except BaseException:
            await asyncio.shield(self.leases.release_soon(session_id, run_id))
            raise
        turn = Turn(session_id, run_id, plan, seq=last_seq)
        # Every attempt is stored, a replay too: its ids can be resumed from like any other.
        turn.writer = TurnEventWriter(self.events, session_id, plan.turn_id)
        session = turn.record(
            SessionEvent(
                session_id=session_id,
                run_id=run_id,
                turn_id=plan.turn_id,
                resumed=plan.kind != "new",
            )
        )
        await turn.writer.flush()  # stored before the client can ask about the turn
        turn.deliver(session)
        task = asyncio.create_task(self._run(turn, message), name=f"turn-{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if on_end is not None:
            task.add_done_callback(lambda _: on_end())
        return turn

    async def drain(self, grace_seconds: float) -> None:
        """Let running turns finish (at most `grace_seconds`), then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self, turn: Turn, message: str) -> None:
        started = time.perf_counter()
        span = tracing.TurnSpan(turn.session_id, turn.run_id, turn.plan.turn_id)
        record = TurnRecord()
        status = "ok"
        final: TurnEvent | None = None
        try:
            async with self.leases.held(turn.session_id, turn.run_id):
                try:
                    await self.cancels.stoppable(turn.run_id, self._play(turn, message, record))
                    final = turn.record(self._final(turn, record))
                    if record.interrupt is not None:
                        status = WAITING
                except TurnStopped:
                    status = "cancelled"
                    final = turn.record(await self._stopped(turn, record))
                except asyncio.CancelledError:
                    status = "shutting_down"
                    final = turn.record(error_event("shutting_down"))
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
                    final = turn.record(error_event(status))
                finally:
                    # The last event is stored before the lease goes: whoever sees the
                    # session free also finds how the turn ended.
                    if turn.writer is not None:
                        await asyncio.shield(turn.writer.close())
                    await asyncio.shield(self._touch(turn.session_id))
            # ... and the client gets it after: its next message is not refused as busy.
            turn.deliver(final)
        except asyncio.CancelledError:
            if final is not None:
                turn.deliver(final)
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
    def _final(turn: Turn, record: TurnRecord) -> BaseModel:
        """The last event of a turn that ran to its end; a stopped turn's replay ends as
        the turn did."""
        if turn.plan.kind == "replay" and turn.plan.stopped:
            message_id = stopped_answer_id(turn.plan.stored)
            return CancelledEvent(message_id=message_id, usage=Usage(**record.usage))
        return final_event(record)

    async def _stopped(self, turn: Turn, record: TurnRecord) -> CancelledEvent:
        """Store what the user saw of a stopped turn (`turn_stop`); its `cancelled` event."""
        message_id = None
        try:
            message_id = await store_stop(self.graph, _turn_config(turn), turn.streamed)
        except Exception as exc:  # the turn stopped all the same; its end was not stored
            logger.error("stopped turn not stored session_id=%s", turn.session_id, exc_info=exc)
        await self.cancels.done(turn.run_id)
        return CancelledEvent(message_id=message_id, usage=Usage(**record.usage))

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

    async def _play(self, turn: Turn, message: str, record: TurnRecord) -> None:
        if turn.plan.kind != "replay":
            await self._stream(turn, message, record)
            return
        for stored in turn.plan.stored:
            emit_message(turn, stored, record)
        if turn.answer:
            turn.emit(TokenEvent(content=turn.answer))

    async def _stream(self, turn: Turn, message: str, record: TurnRecord) -> None:
        config = _turn_config(turn)
        # No tool starts unless the lease surely holds (`src.agent.tool_guard`).
        config["configurable"][TOOL_GUARD_KEY] = self.leases.guard(turn.session_id, turn.run_id)
        config["configurable"][TOOL_TURN_KEY] = turn.plan.turn_id
        if turn.plan.start_from is not None:
            config["configurable"]["checkpoint_id"] = turn.plan.start_from
        config["run_id"] = turn.run_id
        config["callbacks"] = [metrics.MODEL_CALL_METRICS, *tracing.callbacks()]
        started, first_token = time.perf_counter(), True
        resume = turn.plan.kind == "resume"
        # A fixed id: readers of the state mid-turn (Studio) see the id that is stored.
        user = turn.plan.message or HumanMessage(message, id=str(uuid.uuid4()))
        graph_input: Any = None if resume else {"messages": [user]}
        if turn.plan.command is not None:
            graph_input = turn.plan.command  # the user's answer to the turn's interrupt
        # "sync": each step's checkpoint is stored before the next step starts, so the
        # user's message is in the database before the model is called (LangGraph's
        # default writes in the background, and a crash or outage could lose it).
        # With a list of modes, LangGraph yields (mode, chunk) pairs (its overloads cannot
        # say so).
        stream = cast(
            AsyncIterator[tuple[str, Any]],
            self.graph.astream(graph_input, config, stream_mode=STREAM_MODES, durability="sync"),
        )
        stream = tracing.graph_run(stream)  # spans of the run, its calls and writes
        held = StoredMessages()  # a message's events wait for its checkpoint (`tool_events`)
        async for mode, chunk in stream:
            if mode == "messages":
                piece, meta = chunk
                # Chunks from a streaming model; one whole message from a non-streaming one.
                if isinstance(piece, AIMessage) and meta.get("langgraph_node") == "model":
                    text = text_of(piece.content)
                    if text:
                        if first_token:
                            metrics.first_token(time.perf_counter() - started)
                            first_token = False
                        turn.emit(TokenEvent(content=text))
                continue
            if mode == "updates":
                if "__interrupt__" in chunk:  # the graph paused: the turn waits for the user
                    record.interrupt = chunk["__interrupt__"][0]
                held.hold(chunk)
                continue
            for item in held.stored():  # "checkpoints": the steps before it are stored
                emit_message(turn, item, record)
