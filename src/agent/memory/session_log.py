"""One session's message log in memory (`SessionLog`), and the plan of a checkpoint's
transcript made from it (`TranscriptPlan`).

A copy holds the session's stored messages of seqs `[0, n)` (every branch's, not only the
transcript shown): elements never change once stored, so a copy is only ever extended. A
checkpoint's transcript is planned against it: each message gets the seq of an equal
stored message (the one at the same position in the last checkpoint written first, so a
list of id-less messages is not stored again at every step; else the latest one with its
id), or a new seq, numbered on from the copy's end. The plan is only as good as the copy:
`vera_put_checkpoint` stores it only when the copy was current, and the copy takes in the
plan's new messages (`record`) once the write has committed.
"""

from __future__ import annotations

import gc
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.checkpoint.serde.base import SerializerProtocol

from src.agent.memory.jsonb import dumps_jsonb
from src.agent.memory.transcript import MessageSnapshot, element_to_message, message_to_element

# What a cached message really holds, fitted to tracemalloc (tests/memory/test_cache_bytes.py
# checks it): its element dict, the message given out and the stored copy (`MessageSnapshot`)
# with their index entries cost MESSAGE_BYTES; the strings, shared by the three, about what
# the JSON text does as a string (`text_bytes`); every dict or list below the element
# (metadata, tool calls, content blocks) exists three times: CONTAINER_BYTES each, plus
# ITEM_BYTES per item.
MESSAGE_BYTES = 1750
CONTAINER_BYTES = 80
ITEM_BYTES = 76
_NESTED = ("content", "tool_calls", "data")


def text_bytes(text: str | None) -> int:
    """The memory of a JSON text as a Python string (1, 2 or 4 bytes per character)."""
    return sys.getsizeof(text) if text else 0


def structure_bytes(value: Any) -> int:
    """What the dicts and lists in `value` cost, all three copies (strings excluded)."""
    kind = type(value)
    if kind is dict:
        return CONTAINER_BYTES + ITEM_BYTES * len(value) + sum(map(structure_bytes, value.values()))
    if kind is list:
        return CONTAINER_BYTES + ITEM_BYTES * len(value) + sum(map(structure_bytes, value))
    return 0


def element_bytes(element: dict[str, Any], text: int) -> int:
    """The memory one cached message holds, `text` its share of `text_bytes`."""
    nested = 0
    for key in _NESTED:
        value = element.get(key)
        if value is not None and type(value) is not str:
            nested += structure_bytes(value)
    return MESSAGE_BYTES + text + nested


@dataclass(frozen=True)
class TranscriptPlan:
    """The plan of one checkpoint's transcript, made from the copy of the log of
    conversation `conversation_id` (None: no copy) that held seqs `[0, next_seq)`.

    `seqs` are the transcript's messages; `new_elements` those not stored yet, taking seqs
    `next_seq`, `next_seq + 1`, ... (`new_messages`: their JSON text, None when there are
    none; `new_snapshots`: the messages as they were, for the copy)."""

    conversation_id: uuid.UUID | None
    next_seq: int
    seqs: list[int]
    new_elements: list[dict[str, Any]]
    new_snapshots: list[MessageSnapshot]
    new_messages: str | None


@dataclass
class SessionLog:
    """The in-memory copy of one session's stored messages, seqs `[0, len(messages))`
    (`conversation_id`, the conversation row's id, changes if the session is deleted and
    recreated)."""

    conversation_id: uuid.UUID
    elements: list[dict[str, Any]] = field(default_factory=list)
    messages: list[MessageSnapshot] = field(default_factory=list)  # as stored, never given out
    by_id: dict[str, list[int]] = field(default_factory=dict)
    handed: dict[int, BaseMessage] = field(default_factory=dict)  # last objects given out
    unread: set[int] = field(default_factory=set)  # of `handed`: built, not given out yet
    last_seqs: list[int] = field(default_factory=list)  # the last checkpoint written
    nbytes: int = 0  # the memory it holds, as `element_bytes` counts it

    def message_at(self, pos: int, serde: SerializerProtocol) -> BaseMessage:
        """A message object for seq `pos`, for a checkpoint being read.

        The object given out last time is given again while it still equals the stored
        message (checked at ~1 us, against ~10 us to build one); once a caller has changed
        it in place, a fresh one is built. Callers see what LangGraph's own state does: the
        message objects of a conversation are shared, and are not to be mutated.
        """
        if pos in self.unread:  # just built from its element: nobody could change it yet
            self.unread.discard(pos)
            return self.handed[pos]
        given = self.handed.get(pos)
        if given is None or self.messages[pos] != given:
            given = self.handed[pos] = element_to_message(self.elements[pos], serde)
        return given

    def add(self, element: dict[str, Any], message: MessageSnapshot, chars: int) -> None:
        """Hold one more message (`chars`: its share of its JSON text's `text_bytes`)."""
        self.nbytes += element_bytes(element, chars)
        if message.id is not None:
            self.by_id.setdefault(message.id, []).append(len(self.messages))
        self.elements.append(element)
        self.messages.append(message)

    def extend_from(
        self,
        start: int,
        elements: list[dict[str, Any]],
        build: Callable[[dict[str, Any]], BaseMessage],
        chars: int = 0,
    ) -> None:
        """Add elements read from seq `start` on (`chars`: their JSON text's `text_bytes`),
        skipping the ones already held. Each is built once: the message is kept as the one
        to give out next, beside its stored copy."""
        share = chars // len(elements) if elements else 0
        # A cold read builds thousands of objects at once, none of them garbage: the
        # collector's passes meanwhile cost ~20% of the build, for nothing.
        pause = len(elements) >= 256 and gc.isenabled()
        if pause:
            gc.disable()
        try:
            for seq, element in enumerate(elements, start):
                if seq == len(self.messages):
                    message = build(element)
                    self.add(element, MessageSnapshot(message), share)
                    self.handed[seq] = message
                    self.unread.add(seq)
        finally:
            if pause:
                gc.enable()

    def seq_of(self, message: BaseMessage, hint: int | None) -> int | None:
        """A seq holding a message equal to `message`: `hint` (the same position in the
        last checkpoint written) when it matches, else the latest one with its id."""
        if hint is not None and hint < len(self.messages) and self.messages[hint] == message:
            return hint
        if message.id is None:
            return None
        for pos in reversed(self.by_id.get(message.id, ())):
            if self.messages[pos] == message:
                return pos
        return None

    def record(self, plan: TranscriptPlan) -> bool:
        """Take in a committed plan's new messages; False (nothing changed) when they do
        not follow on from this copy (it was behind: the next read catches up)."""
        if len(self.messages) < plan.next_seq:
            return False
        share = text_bytes(plan.new_messages) // max(1, len(plan.new_elements))
        pairs = zip(plan.new_elements, plan.new_snapshots, strict=True)
        for seq, (element, snapshot) in enumerate(pairs, plan.next_seq):
            if seq == len(self.messages):
                self.add(element, snapshot, share)
        self.last_seqs = plan.seqs
        return True


def plan_transcript(
    log: SessionLog | None, messages: list[BaseMessage], serde: SerializerProtocol
) -> TranscriptPlan:
    """The plan of `messages` against the copy `log` (None: nothing cached)."""
    next_seq = len(log.messages) if log is not None else 0
    last = log.last_seqs if log is not None else []
    seqs: list[int] = []
    elements: list[dict[str, Any]] = []
    snapshots: list[MessageSnapshot] = []
    for i, message in enumerate(messages):
        seq = None if log is None else log.seq_of(message, last[i] if i < len(last) else None)
        if seq is None:
            seq = next_seq + len(elements)
            elements.append(message_to_element(message, serde))
            snapshots.append(MessageSnapshot(message))
        seqs.append(seq)
    return TranscriptPlan(
        conversation_id=log.conversation_id if log is not None else None,
        next_seq=next_seq,
        seqs=seqs,
        new_elements=elements,
        new_snapshots=snapshots,
        new_messages=dumps_jsonb(elements) if elements else None,
    )
