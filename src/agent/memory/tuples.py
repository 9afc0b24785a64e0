"""Turning checkpoint rows into `CheckpointTuple`s, and the `alist` query builder."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.serde.base import SerializerProtocol

from src.agent.memory import sql
from src.agent.memory.message_log import (
    TRANSCRIPT_BLOB_TYPE,
    SessionLog,
    TranscriptCache,
    decode_ranges,
)
from src.agent.memory.transcript import loads_jsonb


class TupleBuilder:
    """Builds tuples from rows; a message shared by several checkpoints is decoded once
    per builder (one `aget_tuple` or `alist` call), so a history costs O(messages)."""

    def __init__(self, serde: SerializerProtocol, transcripts: TranscriptCache) -> None:
        self.serde = serde
        self.transcripts = transcripts
        self.logs: dict[uuid.UUID, SessionLog | None] = {}
        self._built: dict[uuid.UUID, list[BaseMessage | None]] = {}
        self._filled: dict[uuid.UUID, bytearray] = {}

    def _transcript_value(self, sid: uuid.UUID, blob: bytes) -> list[BaseMessage]:
        log = self.logs.get(sid)
        if log is None:
            raise LookupError(f"transcript of session {sid} is missing")
        built = self._built.get(sid)
        filled = self._filled.get(sid)
        if built is None or filled is None or len(built) < len(log.elements):
            built = self._built[sid] = [None] * len(log.elements)
            filled = self._filled[sid] = bytearray(len(log.elements))
        out: list[BaseMessage] = []
        for start, end in decode_ranges(blob):
            if filled.find(0, start, end) != -1:  # some of these are not decoded yet
                for pos in range(start, end):
                    if not filled[pos]:
                        built[pos] = log.message_at(pos, self.serde)
                        filled[pos] = 1
            out.extend(built[start:end])  # type: ignore[arg-type]
        return out

    def build(self, row: asyncpg.Record) -> CheckpointTuple:
        sid = row["session_id"]
        checkpoint = loads_jsonb(row["checkpoint"])
        values = checkpoint["channel_values"]
        for channel, kind, blob in row["blobs"] or ():
            if kind == TRANSCRIPT_BLOB_TYPE:
                values[channel] = self._transcript_value(sid, blob)
            elif kind != "empty":
                values[channel] = self.serde.loads_typed((kind, blob))
        thread_id, ns = row["thread_id"], row["checkpoint_ns"]
        parent = row["parent_checkpoint_id"]
        return CheckpointTuple(
            config=_config(thread_id, ns, row["checkpoint_id"]),
            checkpoint=checkpoint,
            metadata=loads_jsonb(row["metadata"]),
            parent_config=_config(thread_id, ns, parent) if parent else None,
            pending_writes=[
                (task_id, channel, self.serde.loads_typed((kind, blob)))
                for task_id, channel, kind, blob in row["writes"] or ()
            ],
        )


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def build_list_query(
    config: RunnableConfig | None,
    filter: dict[str, Any] | None,
    before: RunnableConfig | None,
    cursor: tuple[str, uuid.UUID, str] | None,
    page: int,
    session_id_for: Callable[[str], uuid.UUID],
    dumps_jsonb: Callable[[Any], str],
) -> tuple[str, list[Any]]:
    """One page of `alist`: newest first, resuming strictly after `cursor`."""
    where: list[str] = []
    args: list[Any] = []

    def param(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if config is not None:
        conf = config["configurable"]
        where.append(f"c.session_id = {param(session_id_for(conf['thread_id']))}")
        if conf.get("checkpoint_ns") is not None:
            where.append(f"c.checkpoint_ns = {param(conf['checkpoint_ns'])}")
        if conf.get("checkpoint_id"):
            where.append(f"c.checkpoint_id = {param(conf['checkpoint_id'])}")
    if filter:
        where.append(f"c.metadata @> {param(dumps_jsonb(filter))}::jsonb")
    if before is not None and before["configurable"].get("checkpoint_id"):
        where.append(f"c.checkpoint_id < {param(before['configurable']['checkpoint_id'])}")
    if cursor is not None:
        a, b, c = (param(v) for v in cursor)
        where.append(f"(c.checkpoint_id, c.session_id, c.checkpoint_ns) < ({a}, {b}, {c})")
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    return sql.SELECT_TUPLES_PAGE.format(where=clause, limit=param(page)), args
