"""A running turn as its client sees it: `Turn`, the queue of `TurnEvent`s it hands the
HTTP response, and `error_event`, the `error` event of a failed turn. Each event is
numbered within the turn and handed to the turn's `TurnEventWriter` before it is
delivered; `events()` yields them until the terminal `done`, `error` or `cancelled` (an
Agent Server run's events have no such last one: its stream ends at `END`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from src.api.error_catalogue import message_of
from src.api.schemas import EVENT_MODELS, ErrorCode, ErrorEvent, TokenEvent
from src.api.turn_events import TurnEventWriter
from src.api.turn_identity import TurnPlan

TERMINAL_EVENTS = frozenset({"done", "error", "interrupt", "cancelled"})
EVENT_NAMES: dict[type[BaseModel], str] = {model: name for name, model in EVENT_MODELS.items()}


def error_event(code: ErrorCode) -> ErrorEvent:
    """The `error` event of a turn that failed with `code` (its message: the catalogue's)."""
    return ErrorEvent(code=code, message=message_of(code))


@dataclass(frozen=True)
class TurnEvent:
    """One event of a turn: its SSE name, JSON payload and number within the turn (its
    SSE id is `<turn_id>:<seq>`; None for a notice that is not part of the turn)."""

    event: str
    data: Any
    seq: int | None = None


END = TurnEvent("end", None)  # delivered after the last event of every turn; never sent


@dataclass
class Turn:
    """A running turn; `events()` yields its events until `done`, `error` or `cancelled`."""

    session_id: uuid.UUID
    run_id: uuid.UUID
    plan: TurnPlan
    queue: asyncio.Queue[TurnEvent] = field(default_factory=asyncio.Queue)
    answer: str = ""  # the text of the turn's last assistant message
    seq: int = 0  # the number of the last event (a resumed turn numbers on)
    writer: TurnEventWriter | None = None  # stores the events (none for a replay)
    streamed: str = ""  # the answer's text sent since the last stored message (a stop keeps it)

    def emit(self, payload: BaseModel) -> None:
        self.deliver(self.record(payload))

    def record(self, payload: BaseModel) -> TurnEvent:
        """Number the event (one of `schemas.EVENT_MODELS`) and hand it to the writer (not
        yet to the client)."""
        if isinstance(payload, TokenEvent):
            self.streamed += payload.content
        return self.record_event(EVENT_NAMES[type(payload)], payload.model_dump(mode="json"))

    def record_event(self, event: str, data: Any) -> TurnEvent:
        """Number an event of any name and JSON data and hand it to the writer."""
        self.seq += 1
        if self.writer is not None:
            self.writer.add(self.seq, event, data)
        return TurnEvent(event, data, self.seq)

    def deliver(self, item: TurnEvent) -> None:
        """Pass a recorded event to the client's stream."""
        self.queue.put_nowait(item)

    async def events(self) -> AsyncIterator[TurnEvent]:
        while True:
            item = await self.queue.get()
            if item is END:
                return
            yield item
            if item.event in TERMINAL_EVENTS:
                return
