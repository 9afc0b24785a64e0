"""The branches of a session, as a chat product shows them ("< 2/3 >"): where the transcript
has alternatives (`branch_points`), the checkpoint a fork of the transcript's first n
messages starts from (`fork_point`), and the copy of another branch's tip that makes it
the branch shown (`switch_copy`).

Each message is stored once (`session_log.py`), so two branches hold the same message at
a position exactly when they hold the same seq there: the alternatives at a position are
the distinct seqs the branches sharing the transcript's messages before it hold there,
oldest first. Showing another branch writes a copy of its tip as the session's latest
checkpoint (no blob, no message is stored again): the transcript stays, as everywhere in
this library, the latest root checkpoint's, so the next run, LangGraph Studio and every
read go on from the branch shown.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
from langgraph.checkpoint.base import Checkpoint, CheckpointMetadata, create_checkpoint

from src.agent.memory import sql


@dataclass(frozen=True)
class Tip:
    """A branch's tip: its checkpoint and its transcript's seqs."""

    checkpoint_id: str
    seqs: list[int]


@dataclass(frozen=True)
class BranchPoint:
    """The alternatives at one position of the transcript: `tips[k]` is the newest tip of
    the branch holding the k-th alternative (oldest first; the one shown: the head),
    `index` the one shown (0-based)."""

    position: int
    index: int
    tips: list[str]

    @property
    def count(self) -> int:
        return len(self.tips)


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def branch_points(head: str, shown: list[int], tips: list[Tip]) -> list[BranchPoint]:
    """The positions of `shown` (the transcript's seqs, head checkpoint `head`) where
    `tips` (newest first) hold another message after the same earlier ones."""
    others: dict[int, dict[int, str]] = {}  # position -> seq -> newest tip holding it
    for tip in tips:
        n = _common(tip.seqs, shown)
        if n < len(shown) and n < len(tip.seqs):
            others.setdefault(n, {}).setdefault(tip.seqs[n], tip.checkpoint_id)
    points = []
    for position in sorted(others):
        by_seq = others[position] | {shown[position]: head}
        order = sorted(by_seq)
        points.append(
            BranchPoint(position, order.index(shown[position]), [by_seq[s] for s in order])
        )
    return points


def pick_fork_point(chain: list[tuple[str, list[int] | None]], prefix: list[int]) -> str | None:
    """The oldest checkpoint of `chain` (head first) whose transcript is `prefix`: a run
    from it with a new input adds its messages after exactly these."""
    found = None
    for checkpoint_id, seqs in chain:
        if (seqs or []) == prefix:
            found = checkpoint_id
        elif found is not None:
            break
    return found


async def read_branch_points(
    conn: asyncpg.Connection, sid: uuid.UUID, channel: str
) -> list[BranchPoint]:
    """`branch_points` of the session, read on one snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow(sql.HEAD_SEQS, sid)
        if head is None or head["checkpoint_id"] is None:
            return []
        rows = await conn.fetch(sql.BRANCH_TIPS, sid, channel)
    tips = [Tip(r["checkpoint_id"], list(r["seqs"])) for r in rows if r["seqs"] is not None]
    return branch_points(head["checkpoint_id"], list(head["seqs"] or []), tips)


async def read_fork_point(
    conn: asyncpg.Connection, sid: uuid.UUID, channel: str, position: int
) -> str | None:
    """The checkpoint of the branch shown holding exactly its first `position` messages
    (None: no such checkpoint, or `position` is past the transcript's end)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow(sql.HEAD_SEQS, sid)
        if head is None or not 0 <= position <= len(head["seqs"] or []):
            return None
        rows = await conn.fetch(sql.SHOWN_CHAIN, sid, channel, position)
    chain = [(r["checkpoint_id"], r["seqs"]) for r in rows]
    return pick_fork_point(chain, list(head["seqs"] or [])[:position])


def switch_copy(
    tip: Checkpoint, metadata: CheckpointMetadata
) -> tuple[Checkpoint, CheckpointMetadata]:
    """The checkpoint that shows `tip`'s branch, a child of it with its channels (what
    LangGraph's `update_state(..., as_node="__copy__")` makes), and its metadata."""
    step = int(metadata.get("step", -1)) + 1
    copy: CheckpointMetadata = {"source": "fork", "step": step, "parents": {}}
    return create_checkpoint(tip, None, step), copy
