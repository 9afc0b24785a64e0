"""How a checkpoint becomes rows, and rows become a checkpoint: encode and decode side by
side (as the official saver's `_dump_blobs` / `_load_blobs`).

A checkpoint is one `checkpoints` row (its body as JSONB, with the channel values that are
plain scalars inline, and an inline `true` marking each `_DeltaSnapshot`, as the official
saver writes it) plus one `checkpoint_blobs` row per other new channel version: the
value serialized by the serde, `empty` for a channel that has none, or, for the root
`messages` channel, the seqs of its messages as ranges (`TRANSCRIPT_BLOB_TYPE`, see
`session_log.py`). Pending writes are one `checkpoint_writes` row each. Which checkpoints
and writes let the transcript wait for the end of their run is decided here too
(`run_goes_on`, `RUN_STOP_CHANNELS`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT, TASKS, _DeltaSnapshot

from src.agent.memory import sql
from src.agent.memory.jsonb import dumps_jsonb, loads_jsonb
from src.agent.memory.message_log import MessageLogCache
from src.agent.memory.seq_ranges import (
    TRANSCRIPT_BLOB_TYPE,
    decode_ranges,
    encode_ranges,
    ranges_end,
)
from src.agent.memory.session_log import SessionLog
from src.agent.memory.threads import session_id_for
from src.agent.memory.transcript import is_message_list

# The blob type of a channel version that holds no value (as the official saver writes).
EMPTY_BLOB_TYPE = "empty"
# Writes after which the run stops (LangGraph's error and interrupt channels): the
# transcript then shows the messages that waited for the run's end.
RUN_STOP_CHANNELS = frozenset((ERROR, INTERRUPT))

# -- encode ------------------------------------------------------------------------


@dataclass
class CheckpointRows:
    """A checkpoint as rows: the `checkpoints` row's JSONB texts, its `checkpoint_blobs`
    rows `(channel, version, type, blob)`, and the root transcript's messages (stored as
    message seqs, which need the session's message log) with their channel version."""

    body: str
    metadata: str
    blobs: list[tuple[str, str, str, bytes | None]]
    transcript: list[BaseMessage] | None
    transcript_version: str


def encode_checkpoint(
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
    serde: SerializerProtocol,
    transcript_channel: str,
) -> CheckpointRows:
    """The rows of `checkpoint` (only the channels of `new_versions` get blobs)."""
    ns = config["configurable"].get("checkpoint_ns", "")
    values = checkpoint["channel_values"]
    body: dict[str, Any] = {k: v for k, v in checkpoint.items() if k != "channel_values"}
    inline = {k: v for k, v in values.items() if v is None or isinstance(v, str | int | bool)}
    # The snapshot's value is a blob; the marker is what `keep_latest` finds it by.
    markers = {k: True for k, v in values.items() if isinstance(v, _DeltaSnapshot)}
    body["channel_values"] = inline | markers
    blobs: list[tuple[str, str, str, bytes | None]] = []
    transcript: list[BaseMessage] | None = None
    version = ""
    for channel, channel_version in new_versions.items():
        if channel in inline:
            continue
        if channel not in values:
            blobs.append((channel, str(channel_version), EMPTY_BLOB_TYPE, None))
        elif ns == "" and channel == transcript_channel and is_message_list(values[channel]):
            transcript, version = values[channel], str(channel_version)
        else:
            blobs.append((channel, str(channel_version), *serde.dumps_typed(values[channel])))
    return CheckpointRows(
        body=dumps_jsonb(body),
        metadata=dumps_jsonb(get_serializable_checkpoint_metadata(config, metadata)),
        blobs=blobs,
        transcript=transcript,
        transcript_version=version,
    )


# A StateGraph node runs when its trigger channel holds a value it has not seen: the
# `__start__` node on `__start__`, any other node on `branch:to:<node>`.
_START = "__start__"
_BRANCH_TO = "branch:to:"


def run_goes_on(checkpoint: Checkpoint, metadata: CheckpointMetadata) -> bool:
    """True when the run that wrote `checkpoint` provably has a node left to run (a step of
    the run, one of a StateGraph's triggers holding a value its node has not seen).

    Then the transcript may show the checkpoint's new messages at the run's end. False
    whenever that can't be shown (state edits, `Send` tasks, other kinds of graphs): such
    checkpoints are shown at once.
    """
    if metadata.get("source") not in ("input", "loop"):
        return False
    versions, seen = checkpoint["channel_versions"], checkpoint["versions_seen"]
    for channel in checkpoint["channel_values"]:
        if channel == _START:
            node = _START
        elif channel.startswith(_BRANCH_TO):
            node = channel[len(_BRANCH_TO) :]
        else:
            continue
        last, current = seen.get(node, {}).get(channel), versions.get(channel)
        if current is None:
            continue
        if last is None or (type(current) is type(last) and current > last):  # type: ignore[operator]
            return True
    return False


def transcript_row(channel: str, version: str, seqs: list[int]) -> tuple[str, str, str, bytes]:
    """The `checkpoint_blobs` row of the root transcript: its messages' seqs (planned by
    `TranscriptPlan.seqs`) as `[start, end)` ranges."""
    return (channel, version, TRANSCRIPT_BLOB_TYPE, encode_ranges(seqs))


@dataclass
class WriteRows:
    """A task's pending writes as `checkpoint_writes` columns; `replace` when every one is
    to a special channel (errors, interrupts...: stored over an earlier write of the same
    idx); `run_stops` when one stops the run (`RUN_STOP_CHANNELS`)."""

    idxs: list[int]
    channels: list[str]
    types: list[str]
    blobs: list[bytes]
    replace: bool
    run_stops: bool


def encode_writes(writes: Sequence[tuple[str, Any]], serde: SerializerProtocol) -> WriteRows:
    rows = WriteRows(
        [],
        [],
        [],
        [],
        replace=all(channel in WRITES_IDX_MAP for channel, _ in writes),
        run_stops=any(channel in RUN_STOP_CHANNELS for channel, _ in writes),
    )
    for idx, (channel, value) in enumerate(writes):
        kind, payload = serde.dumps_typed(value)
        rows.idxs.append(WRITES_IDX_MAP.get(channel, idx))
        rows.channels.append(channel)
        rows.types.append(kind)
        rows.blobs.append(payload)
    return rows


# -- decode ------------------------------------------------------------------------


class TupleBuilder:
    """Builds tuples from rows; a message shared by several checkpoints is decoded once
    per builder (one `aget_tuple` or `alist` call), so a history costs O(messages).
    `next_version` is the saver's `get_next_version` (a version for migrated sends)."""

    def __init__(
        self,
        serde: SerializerProtocol,
        message_logs: MessageLogCache,
        next_version: Callable[[str | None], str],
    ) -> None:
        self.serde = serde
        self.message_logs = message_logs
        self.next_version = next_version
        self.logs: dict[uuid.UUID, SessionLog | None] = {}
        self._built: dict[uuid.UUID, list[BaseMessage | None]] = {}
        self._filled: dict[uuid.UUID, bytearray] = {}

    async def load(self, conn: asyncpg.Connection, rows: Sequence[asyncpg.Record]) -> TupleBuilder:
        """Hold the transcript logs that `rows` refer to: the cached log as is when it
        already holds every position the rows need, else read its unseen tail (one query
        per session). Returns self."""
        needed: dict[uuid.UUID, tuple[uuid.UUID, int]] = {}
        for r in rows:
            for _, kind, blob in r["blobs"] or ():
                if kind == TRANSCRIPT_BLOB_TYPE:
                    sid = r["session_id"]
                    end = max(ranges_end(blob), needed.get(sid, (None, 0))[1])
                    needed[sid] = (r["conversation_id"], end)
        for sid, (conversation_id, end) in needed.items():
            log = self.logs.get(sid)
            if (
                log is not None
                and log.conversation_id == conversation_id
                and len(log.messages) >= end
            ):
                continue
            log = self.message_logs.covering(sid, conversation_id, end)
            self.logs[sid] = log or await self.message_logs.catch_up(conn, sid)
        return self

    async def read(
        self, conn: asyncpg.Connection, config: RunnableConfig
    ) -> CheckpointTuple | None:
        """The checkpoint of `config` (the namespace's latest without a `checkpoint_id`)."""
        conf = config["configurable"]
        sid = session_id_for(conf["thread_id"])
        ns, checkpoint_id = conf.get("checkpoint_ns", ""), conf.get("checkpoint_id")
        cached = self.message_logs.peek(sid) if ns == "" and sid not in self.logs else None
        if cached is not None:  # what the copy lacks (another process wrote) comes along
            seen = len(cached.messages)
            if checkpoint_id:
                row = await conn.fetchrow(
                    sql.SELECT_TUPLE_BY_ID_WITH_TAIL, sid, ns, checkpoint_id, seen
                )
            else:
                row = await conn.fetchrow(sql.SELECT_LATEST_TUPLE_WITH_TAIL, sid, ns, seen)
            if row is not None and (log := self.message_logs.take_tail(sid, seen, row)):
                self.logs[sid] = log
        elif checkpoint_id:
            row = await conn.fetchrow(sql.SELECT_TUPLE_BY_ID, sid, ns, checkpoint_id)
        elif ns == "" and sid not in self.logs:  # nothing cached: the whole log comes along
            row = await conn.fetchrow(sql.SELECT_LATEST_TUPLE_WITH_LOG, sid, ns)
            if row is not None:
                self.logs[sid] = self.message_logs.take_whole(sid, row)
        else:
            row = await conn.fetchrow(sql.SELECT_LATEST_TUPLE, sid, ns)
        if row is None:
            return None
        return (await self.load(conn, [row])).build(row)

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
            elif kind != EMPTY_BLOB_TYPE:
                values[channel] = self.serde.loads_typed((kind, blob))
        if row["sends"]:
            self._migrate_sends(checkpoint, row["sends"])
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

    def _migrate_sends(self, checkpoint: Checkpoint, sends: Sequence[tuple[str, bytes]]) -> None:
        """A checkpoint older than format v4 holds the `Send`s its parent left pending as
        its `TASKS` value, at its highest channel version (the first one if it has none),
        as the official saver reads it."""
        checkpoint["channel_values"][TASKS] = [self.serde.loads_typed(s) for s in sends]
        versions = checkpoint["channel_versions"]
        versions[TASKS] = max(versions.values()) if versions else self.next_version(None)


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }
