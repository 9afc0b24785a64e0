"""What a turn plays: the part of a turn that differs between a `/chat` turn and an Agent
Server run. `TurnRunner` (`turns.py`) owns the rest of the lifecycle (the lease, cancel,
fencing and tool guard, the event log, metrics, tracing, the session list); a `Play` makes
the turn's first event, runs the graph with the config the runner gives it, and names the
events that end the turn. `ChatPlay` is `/chat`'s: Vera's own events (`schemas`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol, cast

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from src.api import metrics, tracing
from src.api.schemas import CancelledEvent, ErrorCode, SessionEvent, TokenEvent, Usage
from src.api.tool_events import STREAM_MODES, StoredMessages
from src.api.turn_messages import TurnRecord, emit_message, text_of
from src.api.turn_resume import WAITING, final_event
from src.api.turn_stop import stopped_answer_id, store_stop
from src.api.turn_stream import Turn, TurnEvent, error_event

logger = logging.getLogger("vera.turns")


class Play(Protocol):
    """The part of a turn that is its own; each method records the event it returns."""

    def opening(self, turn: Turn) -> TurnEvent:
        """The turn's first event, stored before the client hears of the turn."""
        ...

    async def play(self, turn: Turn, record: TurnRecord, config: RunnableConfig) -> None:
        """Run the turn (cancelled when it is stopped), emitting its events."""
        ...

    def finished(self, turn: Turn, record: TurnRecord) -> tuple[TurnEvent | None, str]:
        """The event (if any) and outcome (`ok`, `waiting`) of a turn that ran to its end."""
        ...

    async def stopped(self, turn: Turn, record: TurnRecord, config: RunnableConfig) -> TurnEvent:
        """The event of a turn stopped by a cancel request (what it saw may be stored)."""
        ...

    def failed(self, turn: Turn, code: ErrorCode, exc: BaseException | None) -> TurnEvent:
        """The event of a turn that failed (`code` from `turn_errors.error_code`, or
        `shutting_down` when the server stops, then `exc` is None)."""
        ...

    async def ended(self, turn: Turn, outcome: str) -> None:
        """Called last before the lease goes, once every event is stored; it may release
        the lease itself, in the transaction that records how the turn ended."""
        ...


class ChatPlay:
    """A `/chat` turn: the user's message (or the planned resume, fork, replay) through the
    graph, as Vera's events (`session`, `token`, `tool_call`, ..., `done`)."""

    def __init__(self, graph: CompiledStateGraph, message: str) -> None:
        self.graph = graph
        self.message = message

    def opening(self, turn: Turn) -> TurnEvent:
        return turn.record(
            SessionEvent(
                session_id=turn.session_id,
                run_id=turn.run_id,
                turn_id=turn.plan.turn_id,
                resumed=turn.plan.kind != "new",
            )
        )

    def finished(self, turn: Turn, record: TurnRecord) -> tuple[TurnEvent | None, str]:
        """A stopped turn's replay ends as the turn did."""
        outcome = WAITING if record.interrupt is not None else "ok"
        if turn.plan.kind == "replay" and turn.plan.stopped:
            message_id = stopped_answer_id(turn.plan.stored)
            stopped = CancelledEvent(message_id=message_id, usage=Usage(**record.usage))
            return turn.record(stopped), outcome
        return turn.record(final_event(record)), outcome

    async def stopped(self, turn: Turn, record: TurnRecord, config: RunnableConfig) -> TurnEvent:
        """Store what the user saw of a stopped turn (`turn_stop`); its `cancelled` event."""
        message_id = None
        try:
            message_id = await store_stop(self.graph, config, turn.streamed)
        except Exception as exc:  # the turn stopped all the same; its end was not stored
            logger.error("stopped turn not stored session_id=%s", turn.session_id, exc_info=exc)
        return turn.record(CancelledEvent(message_id=message_id, usage=Usage(**record.usage)))

    def failed(self, turn: Turn, code: ErrorCode, exc: BaseException | None) -> TurnEvent:
        return turn.record(error_event(code))

    async def ended(self, turn: Turn, outcome: str) -> None:
        return None

    async def play(self, turn: Turn, record: TurnRecord, config: RunnableConfig) -> None:
        if turn.plan.kind != "replay":
            await self._stream(turn, record, config)
            return
        for stored in turn.plan.stored:
            emit_message(turn, stored, record)
        if turn.answer:
            turn.emit(TokenEvent(content=turn.answer))

    async def _stream(self, turn: Turn, record: TurnRecord, config: RunnableConfig) -> None:
        if turn.plan.start_from is not None:
            config["configurable"]["checkpoint_id"] = turn.plan.start_from
        started, first_token = time.perf_counter(), True
        resume = turn.plan.kind == "resume"
        # A fixed id: readers of the state mid-turn (Studio) see the id that is stored.
        user = turn.plan.message or HumanMessage(self.message, id=str(uuid.uuid4()))
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
