"""The root `messages` channel, stored once per message, and the cache of its log.

Every message a root checkpoint holds is stored once, as a readable element numbered by
`seq` within its session (a replaced message is stored again, as a new element; a branch
point adds only its own new messages). A checkpoint's `messages` value is the seqs of its
messages, kept as a few `[start, end)` ranges, usually one: storage grows with the number of
messages, not with messages x checkpoints, and every checkpoint of every branch rebuilds
exactly. `conversations.messages` shows the latest root checkpoint's messages, at the end
of each run (the database keeps it so: `functions/vera_put_checkpoint.sql`).

Stored elements never change, so `MessageLogCache`, the saver's in-process copies of
recent sessions' logs (`session_log.SessionLog`: every stored message of the session, of
all its branches, not only the transcript shown), keeps each as a prefix `[0, n)` of its
seqs and reads only the ones it has not seen; a copy is only ever extended, by whichever
coroutine comes first, never rewritten. Checkpoints' transcripts are planned against them
(`plan`), and they take in what a committed write stored (`record_stored`).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any

import asyncpg
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.serde.base import SerializerProtocol

from src.agent.memory import sql
from src.agent.memory.jsonb import loads_jsonb
from src.agent.memory.session_log import SessionLog, TranscriptPlan, plan_transcript, text_bytes
from src.agent.memory.transcript import element_to_message

DEFAULT_CACHE_MAX_BYTES = 64 * 2**20


async def _read_messages(
    conn: asyncpg.Connection, session_id: uuid.UUID, start: int
) -> tuple[uuid.UUID, list[dict[str, Any]], int] | None:
    """The conversation row's id, the session's elements of seqs `start`, `start + 1`,
    ... in seq order, and the `text_bytes` of the JSON text read (None if the row is missing).

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
        return row["conversation_id"], loads_jsonb(tail) if tail else [], text_bytes(tail)
    row = await conn.fetchrow(sql.MESSAGES_ALL, session_id)
    return None if row is None else whole_log(row)


def whole_log(row: asyncpg.Record) -> tuple[uuid.UUID, list[dict[str, Any]], int]:
    """The conversation row's id, every element of the session in seq order and the
    `text_bytes` of the JSON text, from the columns of `MESSAGES_ALL`
    (`SELECT_LATEST_TUPLE_WITH_LOG` has them too)."""
    shown = loads_jsonb(row["shown"]) if row["shown"] else []
    seqs: list[int] = row["seqs"] or []
    other_seqs: list[int] = row["other_seqs"] or []
    chars = text_bytes(row["shown"]) + text_bytes(row["others"])
    if not other_seqs and len(seqs) == len(shown) and seqs == list(range(len(seqs))):
        return row["conversation_id"], shown, chars
    by_seq: dict[int, dict[str, Any]] = {}
    for seq, element in zip(other_seqs, loads_jsonb(row["others"]), strict=True):
        by_seq[seq] = element
    for seq, element in zip(seqs, shown, strict=False):  # as the server's join: by position
        by_seq.setdefault(seq, element)
    return row["conversation_id"], [by_seq[seq] for seq in sorted(by_seq)], chars


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

    def covering(
        self, session_id: uuid.UUID, conversation_id: uuid.UUID, needed: int
    ) -> SessionLog | None:
        """The cached copy when it is of conversation `conversation_id` and holds seqs
        `[0, needed)`."""
        log = self._logs.get(session_id)
        if log is None or log.conversation_id != conversation_id or len(log.messages) < needed:
            return None
        self._logs.move_to_end(session_id)
        return log

    def seed(self, session_id: uuid.UUID, conversation_id: uuid.UUID) -> None:
        """Cache the empty log of a conversation row just created (unless a concurrent call
        already cached it)."""
        if session_id not in self._logs:
            self._install(session_id, SessionLog(conversation_id))

    def invalidate(self, session_id: uuid.UUID | None = None) -> None:
        if session_id is None:
            self._logs.clear()
            self._counted.clear()
            self._total = self.total_bytes = 0
        else:
            self._logs.pop(session_id, None)
            self._account(session_id)

    async def catch_up(self, conn: asyncpg.Connection, session_id: uuid.UUID) -> SessionLog | None:
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
        conversation_id, tail, chars = read
        current = self._logs.get(session_id)
        if (
            current is None
            or current.conversation_id != conversation_id
            or len(current.messages) < seen
        ):
            if seen:  # what was read starts past a copy that is gone: read it all
                read = await _read_messages(conn, session_id, 0)
                if read is None:
                    return None
                (conversation_id, tail, chars), seen = read, 0
            current = self._logs.get(session_id)
            if current is None or current.conversation_id != conversation_id:
                current = SessionLog(conversation_id)
        current.extend_from(seen, tail, self._build, chars)
        self._install(session_id, current)
        return current

    def take_whole(self, session_id: uuid.UUID, row: asyncpg.Record) -> SessionLog | None:
        """The session's copy, holding the whole log `row` read (`whole_log`; None when the
        conversation row is missing). A copy cached meanwhile is only extended."""
        if row["conversation_id"] is None:
            return None
        conversation_id, elements, chars = whole_log(row)
        current = self._logs.get(session_id)
        if current is None or current.conversation_id != conversation_id:
            current = SessionLog(conversation_id)
        current.extend_from(0, elements, self._build, chars)
        self._install(session_id, current)
        return current

    def take_tail(self, session_id: uuid.UUID, seen: int, row: asyncpg.Record) -> SessionLog | None:
        """The session's copy, extended by the `tail` that `row` read from seq `seen` on
        (`SELECT_LATEST_TUPLE_WITH_TAIL`); None when that cannot be (the copy is gone or
        shorter than `seen` now: `catch_up` reads what is needed). A copy of another
        conversation row (the thread was deleted and made again) is dropped."""
        conversation_id = row["conversation_id"]
        current = self._logs.get(session_id)
        if current is None or conversation_id is None or len(current.messages) < seen:
            return None
        if current.conversation_id != conversation_id:
            self.invalidate(session_id)
            return None
        tail = row["tail"]
        if tail:
            current.extend_from(seen, loads_jsonb(tail), self._build, len(tail))
            self._install(session_id, current)
        else:
            self._logs.move_to_end(session_id)
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

    def plan(self, session_id: uuid.UUID, messages: list[BaseMessage]) -> TranscriptPlan:
        """The plan of a checkpoint's transcript against the session's cached copy."""
        return plan_transcript(self._logs.get(session_id), messages, self.serde)

    def record_stored(
        self, session_id: uuid.UUID, conversation_id: uuid.UUID, plan: TranscriptPlan
    ) -> None:
        """Take in what a write of conversation `conversation_id` stored (`plan`), once its
        transaction committed."""
        log = self._logs.get(session_id)
        if log is None or log.conversation_id != conversation_id:
            if plan.next_seq != 0:
                return  # nothing cached to extend; the next read loads what it needs
            log = SessionLog(conversation_id)
        if log.record(plan):
            self._install(session_id, log)
