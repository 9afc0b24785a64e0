"""The root `messages` channel, stored once per message in `conversation_messages`.

Every message a root checkpoint holds is stored once, as a readable element numbered by
`seq` within its session (a replaced message is stored again, as a new element; a branch
point adds only its own new messages). A checkpoint's `messages` value is the seqs of its
messages, kept as a few `[start, end)` ranges, usually one: storage grows with the number of
messages, not with messages x checkpoints, and every checkpoint of every branch rebuilds
exactly. `conversations.messages` shows the latest root checkpoint's messages, at the end
of each run (the database keeps it so, see `migrations/0005_message_store.sql` and
`0008_transcript_per_turn.sql`).

Stored elements never change, so `MessageLogCache` (the saver's in-process copy of each
recent session's message log: every stored message of the session, of all its branches,
not only the transcript shown) can keep each recent session's elements
in memory as a prefix `[0, n)` of its seqs and read only the ones it has not seen; a copy
is only ever extended, by whichever coroutine comes first, never rewritten.
"""

from __future__ import annotations

import gc
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.serde.base import SerializerProtocol

from src.agent.memory import sql
from src.agent.memory.jsonb import loads_jsonb
from src.agent.memory.transcript import Pristine, element_to_message, message_to_element

DEFAULT_CACHE_MAX_BYTES = 64 * 2**20
# What a cached message costs beyond its JSON text (its element dict, the message given
# out, the stored copy's dict, index entries): ~2.5 KiB measured with tracemalloc for the
# bench's chat messages (strings are shared by the three).
MESSAGE_OVERHEAD_BYTES = 2560


@dataclass
class SessionLog:
    """The in-memory copy of one session's stored messages, seqs `[0, len(messages))`
    (`row_id`, the conversation row's id, changes if the session is deleted and recreated)."""

    row_id: uuid.UUID
    elements: list[dict[str, Any]] = field(default_factory=list)
    messages: list[Pristine] = field(default_factory=list)  # as stored, never given out
    by_id: dict[str, list[int]] = field(default_factory=dict)
    handed: dict[int, BaseMessage] = field(default_factory=dict)  # last objects given out
    unread: set[int] = field(default_factory=set)  # of `handed`: built, not given out yet
    last_seqs: list[int] = field(default_factory=list)  # the last checkpoint written
    nbytes: int = 0  # estimated memory: JSON text of the elements plus a per-message overhead

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

    def add(self, element: dict[str, Any], message: Pristine, chars: int) -> None:
        """Hold one more message (`chars`: the length of its JSON text, for `nbytes`)."""
        self.nbytes += chars + MESSAGE_OVERHEAD_BYTES
        if message.id is not None:
            self.by_id.setdefault(message.id, []).append(len(self.messages))
        self.elements.append(element)
        self.messages.append(message)

    def extend_from(
        self, start: int, elements: list[dict[str, Any]], build: Any, chars: int = 0
    ) -> None:
        """Add elements read from seq `start` on (`chars`: the length of their JSON text),
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
                    self.add(element, Pristine(message), share)
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


async def _read_messages(
    conn: asyncpg.Connection, session_id: uuid.UUID, start: int
) -> tuple[uuid.UUID, list[dict[str, Any]], int] | None:
    """The conversation row's id, the session's elements of seqs `start`, `start + 1`,
    ... in seq order, and the length of the JSON text read (None if the row is missing).

    A tail is cut on the server; the whole log (a cold read) is the stored transcript as
    text plus the other branches' messages, merged here: a plain read of the row costs the
    server less than half of cutting it, and a linear conversation's transcript is the
    whole log as it is.
    """
    if start:
        row = await conn.fetchrow(sql.MESSAGES_FROM, session_id, start)
        if row is None:
            return None
        tail = row["tail"]
        return row["id"], loads_jsonb(tail) if tail else [], len(tail or "")
    row = await conn.fetchrow(sql.MESSAGES_ALL, session_id)
    if row is None:
        return None
    shown = loads_jsonb(row["shown"]) if row["shown"] else []
    seqs: list[int] = row["seqs"] or []
    other_seqs: list[int] = row["other_seqs"] or []
    chars = len(row["shown"] or "") + len(row["others"] or "")
    if not other_seqs and len(seqs) == len(shown) and seqs == list(range(len(seqs))):
        return row["id"], shown, chars
    by_seq: dict[int, dict[str, Any]] = {}
    for seq, element in zip(other_seqs, loads_jsonb(row["others"]), strict=True):
        by_seq[seq] = element
    for seq, element in zip(seqs, shown, strict=False):  # as the server's join: by position
        by_seq.setdefault(seq, element)
    return row["id"], [by_seq[seq] for seq in sorted(by_seq)], chars


class MessageLogCache:
    """The in-process copy of recently used sessions' message logs (every stored message
    by seq, all branches), extended from the database as needed."""

    def __init__(
        self,
        serde: SerializerProtocol,
        max_sessions: int = 512,
        max_messages: int = 100_000,
        max_bytes: int = DEFAULT_CACHE_MAX_BYTES,
    ) -> None:
        self.serde = serde
        self.max_sessions = max_sessions
        self.max_messages = max_messages
        self.max_bytes = max_bytes  # bounds memory whatever the messages' sizes
        self._logs: OrderedDict[uuid.UUID, SessionLog] = OrderedDict()
        # Messages and estimated bytes of each cached log, as counted, and their sums (kept
        # up to date instead of summed per write).
        self._counted: dict[uuid.UUID, tuple[int, int]] = {}
        self._total = 0
        self.total_bytes = 0

    def __len__(self) -> int:
        """How many sessions' logs are cached."""
        return len(self._logs)

    def peek(self, session_id: uuid.UUID) -> SessionLog | None:
        """The cached copy, possibly behind the database (seqs are never reused)."""
        return self._logs.get(session_id)

    def covering(self, session_id: uuid.UUID, row_id: uuid.UUID, needed: int) -> SessionLog | None:
        """The cached copy when it is of row `row_id` and holds seqs `[0, needed)`."""
        log = self._logs.get(session_id)
        if log is None or log.row_id != row_id or len(log.messages) < needed:
            return None
        self._logs.move_to_end(session_id)
        return log

    def seed(self, session_id: uuid.UUID, row_id: uuid.UUID) -> None:
        """Cache the empty store of a conversation row just created (unless a concurrent
        call already cached it)."""
        if session_id not in self._logs:
            self._install(session_id, SessionLog(row_id))

    def invalidate(self, session_id: uuid.UUID | None = None) -> None:
        if session_id is None:
            self._logs.clear()
            self._counted.clear()
            self._total = self.total_bytes = 0
        else:
            self._logs.pop(session_id, None)
            self._account(session_id)

    async def sync(self, conn: asyncpg.Connection, session_id: uuid.UUID) -> SessionLog | None:
        """The session's copy, holding at least every message committed before this call
        (None if the conversation row is missing).

        Safe under any interleaving: after its read, the copy then cached (which another
        coroutine may have extended or replaced meanwhile) is only extended by seqs it
        lacks; a copy of another row, or one with a gap, is replaced by a full read.
        """
        log = self._logs.get(session_id)
        seen = len(log.messages) if log is not None else 0
        read = await _read_messages(conn, session_id, seen)
        if read is None:
            if self._logs.get(session_id) is log:
                self.invalidate(session_id)
            return None
        row_id, tail, chars = read
        current = self._logs.get(session_id)
        if current is None or current.row_id != row_id or len(current.messages) < seen:
            if seen:  # what was read starts past a copy that is gone: read it all
                read = await _read_messages(conn, session_id, 0)
                if read is None:
                    return None
                (row_id, tail, chars), seen = read, 0
            current = self._logs.get(session_id)
            if current is None or current.row_id != row_id:
                current = SessionLog(row_id)
        current.extend_from(seen, tail, self._build, chars)
        self._install(session_id, current)
        return current

    def _build(self, element: dict[str, Any]) -> BaseMessage:
        return element_to_message(element, self.serde)

    def _install(self, session_id: uuid.UUID, log: SessionLog) -> None:
        self._logs[session_id] = log
        self._logs.move_to_end(session_id)
        self._trim(session_id)

    def _account(self, session_id: uuid.UUID) -> None:
        """Bring the counts of one session's cached log (or its absence) up to date."""
        log = self._logs.get(session_id)
        count, nbytes = (len(log.messages), log.nbytes) if log is not None else (0, 0)
        was_count, was_bytes = self._counted.pop(session_id, (0, 0))
        self._total += count - was_count
        self.total_bytes += nbytes - was_bytes
        if log is not None:
            self._counted[session_id] = (count, nbytes)

    def _trim(self, changed: uuid.UUID) -> None:
        """Account for the log of `changed`, then drop least recently used logs beyond
        `max_sessions`, `max_messages` or `max_bytes` (the most recent log always stays)."""
        self._account(changed)
        while len(self._logs) > 1 and (
            len(self._logs) > self.max_sessions
            or self._total > self.max_messages
            or self.total_bytes > self.max_bytes
        ):
            dropped, _ = self._logs.popitem(last=False)
            self._account(dropped)

    def plan(
        self, log: SessionLog | None, messages: list[BaseMessage]
    ) -> tuple[list[int], list[dict[str, Any]], list[Pristine]]:
        """Seqs for `messages`, new seqs (from the copy's end) for those not stored yet.

        A message at the same position as in the last checkpoint written is matched there
        first, so a plain list of id-less messages is not stored again at every step.
        Returns (seqs, new elements, private copies of the new messages).
        """
        seqs: list[int] = []
        elements: list[dict[str, Any]] = []
        copies: list[Pristine] = []
        next_seq = len(log.messages) if log is not None else 0
        base = log.last_seqs if log is not None else []
        for i, message in enumerate(messages):
            seq = None
            if log is not None:
                seq = log.seq_of(message, base[i] if i < len(base) else None)
            if seq is None:
                seq = next_seq
                next_seq += 1
                elements.append(message_to_element(message, self.serde))
                copies.append(Pristine(message))
            seqs.append(seq)
        return seqs, elements, copies

    def commit(
        self,
        session_id: uuid.UUID,
        row_id: uuid.UUID,
        start: int,
        elements: list[dict[str, Any]],
        copies: list[Pristine],
        seqs: list[int] | None,
        chars: int = 0,
    ) -> None:
        """Record elements stored from seq `start` on, once their transaction committed
        (`chars`: the length of their JSON text)."""
        log = self._logs.get(session_id)
        if log is None or log.row_id != row_id:
            if start != 0:
                return  # nothing cached to extend; the next read loads what it needs
            log = SessionLog(row_id)
        if len(log.messages) < start:
            return  # a gap: leave the copy as it is
        share = chars // len(elements) if elements else 0
        for seq, (element, message) in enumerate(zip(elements, copies, strict=True), start):
            if seq == len(log.messages):
                log.add(element, message, share)
        if seqs is not None:
            log.last_seqs = seqs
        self._install(session_id, log)
