"""What an Agent Server run plays on the turn runner (`turns.TurnRunner`, which owns the
lease, cancel, fencing, event log, metrics and tracing of every turn): the graph on the
run's input or command, its stream parts as `run_events` names them, after a `metadata`
event and, when it fails, before an `error` event as `langgraph-api` sends them. The run's
status in `thread_runs` follows: `running`, then `success`, `interrupted` (the graph paused, or
the run was stopped) or `error`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StateSnapshot

from src.api import tracing
from src.api.agent_server.records import thread_config
from src.api.agent_server.run_book import RunBook
from src.api.agent_server.run_events import run_events
from src.api.agent_server.snapshots import TOLD_ERRORS
from src.api.error_catalogue import message_of
from src.api.schemas import ErrorCode
from src.api.state_reads import readable_state
from src.api.turn_messages import TurnRecord, tally
from src.api.turn_resume import WAITING
from src.api.turn_stream import Turn, TurnEvent

logger = logging.getLogger("vera.runs")


def error_data(code: ErrorCode, exc: BaseException | None) -> dict[str, str]:
    """The `error` event of a failed run: the error's type and message, as `langgraph-api`
    sends them (the catalogue's message for one whose text is not shown)."""
    if exc is None:
        return {"error": "CancelledError", "message": message_of(code)}
    message = str(exc) if isinstance(exc, TOLD_ERRORS) else message_of(code)
    return {"error": type(exc).__name__, "message": message}


@dataclass
class RunSpec:
    """What a run runs: the graph's input (a dict, or a `Command`), the caller's config
    (merged under the runner's own), and how it streams."""

    graph_input: Any
    config: RunnableConfig
    stream_modes: Sequence[str]
    subgraphs: bool
    astream_kwargs: dict[str, Any] = field(default_factory=dict)


class RunPlay:
    """One attempt at run `run_id` of a thread (the turn's id; the turn's `run_id` is the
    attempt's lease, the run id on a first attempt). A later attempt (`run_recovery`) may
    be told the run already `ended` (nothing runs, it ends with that status), or to fail at
    once with `refusal`."""

    def __init__(
        self,
        graph: CompiledStateGraph,
        book: RunBook,
        spec: RunSpec,
        run_id: uuid.UUID,
        attempt: int = 1,
        ended: str | None = None,
        refusal: Exception | None = None,
    ) -> None:
        self.graph = graph
        self.book = book
        self.spec = spec
        self.run_id = run_id
        self.attempt = attempt
        self.ended_as = ended
        self.refusal = refusal
        self.status = "running"
        self.record: TurnRecord | None = None
        self.seen: set[str | None] = set()

    def opening(self, turn: Turn) -> TurnEvent:
        data = {"run_id": str(self.run_id), "attempt": self.attempt}
        return turn.record_event("metadata", data)

    def _config(self, config: RunnableConfig) -> RunnableConfig:
        """The caller's config under the runner's: the runner's configurable keys (thread,
        lease, tool guard) and run id win; metadata and callbacks are joined."""
        mine: dict[str, Any] = dict(self.spec.config)
        configurable = {**(mine.pop("configurable", None) or {}), **config["configurable"]}
        metadata = {**(mine.pop("metadata", None) or {}), **(config.get("metadata") or {})}
        # Each checkpoint names its run (as langgraph-api's): a rollback deletes them by it.
        metadata["run_id"] = str(self.run_id)
        metadata["run_attempt"] = self.attempt
        theirs, ours = mine.pop("callbacks", None), config.get("callbacks") or []
        callbacks = (
            [*theirs, *ours] if isinstance(theirs, list) and isinstance(ours, list) else ours
        )
        merged: dict[str, Any] = {**mine, **config}
        merged |= {"configurable": configurable, "metadata": metadata, "callbacks": callbacks}
        return merged  # type: ignore[return-value]

    async def _state(self, turn: Turn) -> StateSnapshot:
        """The thread's state; as before a write it refuses (stored before inputs were
        checked), so that such a thread still takes runs."""
        snapshot, _ = await readable_state(self.graph, thread_config(turn.session_id))
        return snapshot

    async def _messages(self, turn: Turn) -> list[Any]:
        return list((await self._state(turn)).values.get("messages") or [])

    async def play(self, turn: Turn, record: TurnRecord, config: RunnableConfig) -> None:
        await self.book.set_status(self.run_id, "running")
        if self.refusal is not None:
            raise self.refusal
        if self.ended_as is not None:
            self.status = self.ended_as
            return
        self.record = record
        self.seen = {message.id for message in await self._messages(turn)}
        stream = run_events(
            self.graph,
            self.spec.graph_input,
            self._config(config),
            self.spec.stream_modes,
            self.spec.subgraphs,
            # Each step's checkpoint is stored before the next starts (as `/chat`'s).
            durability="sync",
            **self.spec.astream_kwargs,
        )
        async for event in tracing.graph_run(stream):
            turn.deliver(turn.record_event(event.event, event.data))
        state = await self._state(turn)
        # A graph that paused (an interrupt, or interrupt_before/after) has steps left.
        self.status = "interrupted" if state.next else "success"

    def finished(self, turn: Turn, record: TurnRecord) -> tuple[TurnEvent | None, str]:
        return None, WAITING if self.status == "interrupted" else "ok"

    async def stopped(self, turn: Turn, record: TurnRecord, config: RunnableConfig) -> TurnEvent:
        self.status = "interrupted"
        # Still under the lease: no other turn has written on top of the run's checkpoints.
        try:
            if await self.book.rollback_asked(self.run_id):
                saver = self.graph.checkpointer
                await saver.adelete_for_runs([str(self.run_id)])  # type: ignore[union-attr]
                self.status = "rolled_back"
        except Exception as exc:  # the run stays, `interrupted`, with what it stored
            logger.error("run not rolled back run_id=%s", self.run_id, exc_info=exc)
        stopped = {"error": "UserInterrupt", "message": "The run was cancelled."}
        return turn.record_event("error", stopped)

    def failed(self, turn: Turn, code: ErrorCode, exc: BaseException | None) -> TurnEvent:
        self.status = "error"
        return turn.record_event("error", error_data(code, exc))

    async def _tally(self, turn: Turn) -> None:
        """Count what the run stored as a `/chat` turn's messages are counted (its log
        line, the tool metrics): the messages new since it started."""
        if self.record is None or self.status == "rolled_back":
            return
        try:
            for message in await self._messages(turn):
                if message.id not in self.seen:
                    tally(message, self.record)
        except Exception as exc:  # the run ended all the same; its counts are short
            logger.warning("run not counted run_id=%s", turn.run_id, exc_info=exc)

    async def ended(self, turn: Turn, outcome: str) -> None:
        await self._tally(turn)
        try:
            # With the lease: whoever sees the thread free finds the run ended, and whoever
            # sees it ended may start the next run at once.
            if self.status == "rolled_back":
                await self.book.drop(turn.session_id, self.run_id, turn.run_id)
            else:
                await self.book.end(turn.session_id, self.run_id, turn.run_id, self.status)
        except Exception as exc:  # its row says `running`: a live worker's sweep ends it
            logger.error("run status not stored run_id=%s", self.run_id, exc_info=exc)
