"""Checkpoint retention: which of a thread's checkpoints a policy keeps (pure logic, no
database; `retention_ops.py` reads the checkpoints and deletes the others).

A policy keeps the latest `keep_latest` root checkpoints of a thread (whatever branch they
are on) and those younger than `max_age`; with both set, a checkpoint goes only when it is
outside both. Whatever the policy, a thread keeps what continuing it, or reading any kept
checkpoint, needs:

- the latest root checkpoint (the head: the transcript shows it, the next turn continues
  it), with its pending writes (a run that was interrupted or stopped resumes from them);
- each subgraph call whose root checkpoint is kept, whole (an interrupted call resumes from
  its namespace's latest checkpoint), or whose root checkpoint is not saved yet; a
  namespace without a task id (a `checkpointer=True` subgraph, whose state outlives each
  call) keeps its latest too;
- a kept checkpoint older than format v4 keeps its parent when that parent's writes hold
  the `Send`s it reads;
- a `DeltaChannel`'s seed: a kept checkpoint that stores no value for a delta channel it
  has a version of keeps its ancestors up to the nearest one that does (the official
  saver's walk, `delta_history.py`), so its value rebuilds exactly.

Messages are never deleted: the transcript and `conversation_messages` keep every message,
so the record stays whole while the machinery behind it shrinks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

Key = tuple[str, str]  # (checkpoint_ns, checkpoint_id)


@dataclass(frozen=True)
class RetentionPolicy:
    """Keep the latest `keep_latest` root checkpoints and those younger than `max_age`
    (None: that rule is off; both None: keep everything)."""

    keep_latest: int | None = None
    max_age: timedelta | None = None

    def __post_init__(self) -> None:
        if self.keep_latest is not None and self.keep_latest < 1:
            raise ValueError(f"keep_latest must be 1 or more, not {self.keep_latest}")
        if self.max_age is not None and self.max_age <= timedelta(0):
            raise ValueError(f"max_age must be positive, not {self.max_age}")

    @property
    def enabled(self) -> bool:
        return self.keep_latest is not None or self.max_age is not None

    @property
    def label(self) -> str:
        """The policy as a short text, recorded with each prune (a changed policy prunes
        again)."""
        age = "" if self.max_age is None else f"{self.max_age.total_seconds():g}s"
        return f"latest={self.keep_latest or ''};age={age}"


@dataclass(frozen=True)
class StoredCheckpoint:
    """What the selection needs of one stored checkpoint: `root` is the root checkpoint a
    subgraph's checkpoint was made under (`metadata.parents['']`); `reads_parent_sends`:
    format < 4 and its parent's writes hold `Send`s; `versioned` / `valued`: the thread's
    delta channels it has a version of / stores a value for."""

    ns: str
    id: str
    parent: str | None
    created_at: datetime
    root: str | None = None
    reads_parent_sends: bool = False
    versioned: frozenset[str] = field(default_factory=frozenset)
    valued: frozenset[str] = field(default_factory=frozenset)

    @property
    def key(self) -> Key:
        return (self.ns, self.id)


@dataclass(frozen=True)
class Selection:
    """The checkpoints kept; those whose parent goes (their parent link is cleared); when
    the next root checkpoint falls out of `max_age` (None: never, until new ones come)."""

    kept: frozenset[Key]
    orphaned: frozenset[Key]
    due_at: datetime | None

    def gone(self, checkpoints: Iterable[StoredCheckpoint]) -> list[Key]:
        return [c.key for c in checkpoints if c.key not in self.kept]


def select(
    checkpoints: Sequence[StoredCheckpoint], policy: RetentionPolicy, now: datetime
) -> Selection:
    """The checkpoints `policy` keeps of one thread (`checkpoints`: all of them) at `now`."""
    by_ns: dict[str, list[StoredCheckpoint]] = defaultdict(list)
    for c in checkpoints:
        by_ns[c.ns].append(c)
    for group in by_ns.values():
        group.sort(key=lambda c: c.id, reverse=True)
    roots = by_ns.get("", [])
    if not policy.enabled:
        return Selection(frozenset(c.key for c in checkpoints), frozenset(), None)
    chosen, due_at = _root_choice(roots, policy, now)
    kept = _closure(roots, chosen)
    saved_roots = {c.id for c in roots}
    kept_roots = {i for ns, i in kept if ns == ""}
    for ns, group in by_ns.items():
        if ns == "":
            continue
        own = {c.id for c in group if c.root in kept_roots or c.root not in saved_roots}
        if ":" not in ns.rsplit("|", 1)[-1]:
            own.add(group[0].id)  # its state outlives each call
        kept |= _closure(group, own)
    orphaned = frozenset(
        c.key for c in checkpoints if c.key in kept and c.parent and (c.ns, c.parent) not in kept
    )
    return Selection(frozenset(kept), orphaned, due_at)


def _root_choice(
    roots: list[StoredCheckpoint], policy: RetentionPolicy, now: datetime
) -> tuple[set[str], datetime | None]:
    """The root checkpoints the policy itself keeps (newest first in `roots`), and when the
    oldest of those kept only for their age falls out."""
    chosen: set[str] = set()
    due_at: datetime | None = None
    for rank, c in enumerate(roots):
        if rank == 0 or (policy.keep_latest is not None and rank < policy.keep_latest):
            chosen.add(c.id)
        elif policy.max_age is not None and now - c.created_at < policy.max_age:
            chosen.add(c.id)
            expires = c.created_at + policy.max_age
            due_at = expires if due_at is None else min(due_at, expires)
    return chosen, due_at


def _closure(group: list[StoredCheckpoint], chosen: set[str]) -> set[Key]:
    """`chosen` of one namespace, with what each needs to read back exactly: the parent
    holding its sends, and its delta channels' history up to their seeds."""
    by_id = {c.id: c for c in group}
    kept: set[str] = set()
    todo = [i for i in chosen if i in by_id]
    while todo:
        c = by_id[todo.pop()]
        if c.id in kept:
            continue
        kept.add(c.id)
        if c.reads_parent_sends and c.parent in by_id:
            todo.append(c.parent)
        todo.extend(_delta_ancestors(c, by_id))
    return {(c.ns, i) for i in kept for c in (by_id[i],)}


def _delta_ancestors(c: StoredCheckpoint, by_id: dict[str, StoredCheckpoint]) -> list[str]:
    """The ancestors the delta-channel walk from `c` reads: up to the nearest that stores a
    value of each channel `c` has a version of but no value for (to the root if none)."""
    walking = set(c.versioned - c.valued)
    found: list[str] = []
    parent = c.parent
    while walking and parent in by_id:
        ancestor = by_id[parent]
        found.append(ancestor.id)
        walking -= ancestor.valued
        parent = ancestor.parent
    return found
