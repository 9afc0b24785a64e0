"""Fencing tokens: the writes of a turn carry the turn's lease, and the database refuses
them, in the same statement, once another run holds the session.

A turn passes its lease id in its run config (`configurable[LEASE_CONFIG_KEY]`); the
checkpointer hands it to `vera_put_checkpoint` / `vera_put_writes`, which raise SQLSTATE
`VR001` unless `turn_leases` still holds it for the session (`leases.py` takes them). A
write without a lease (Studio, a script) is refused with `VR002` while a turn holds the
session (both checks: `functions/vera_put_checkpoint.sql`, and alike in
`vera_put_writes.sql`), and a run's write on top of its own previous checkpoint with
`VR003` once another writer has continued the thread since (`vera_put_checkpoint.sql`).
Each error is one class, mapped once, by SQLSTATE.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

LEASE_CONFIG_KEY = "vera_lease"
LEASE_LOST_SQLSTATE = "VR001"
SESSION_LEASED_SQLSTATE = "VR002"
STALE_RUN_SQLSTATE = "VR003"


class LeaseLostError(RuntimeError):
    """A write of a turn whose lease another turn has taken: nothing was stored."""


class SessionLeasedError(RuntimeError):
    """A write without a lease while a turn of the API holds the session: nothing was
    stored (try again when the turn ends)."""


class StaleRunError(RuntimeError):
    """A run's write on top of its own previous checkpoint after another writer (an API
    turn, another Studio run) continued the thread: nothing was stored; the thread keeps the
    other writer's messages (run again from the latest state)."""


def lease_of(configurable: dict[str, Any]) -> uuid.UUID | None:
    """The lease a run config carries, if any."""
    lease = configurable.get(LEASE_CONFIG_KEY)
    return None if lease is None else uuid.UUID(str(lease))


def as_fencing_error(exc: BaseException) -> RuntimeError | None:
    """The fencing error a database error stands for (`LeaseLostError`,
    `SessionLeasedError`, `StaleRunError`), or None."""
    if isinstance(exc, asyncpg.PostgresError):
        kind = {
            LEASE_LOST_SQLSTATE: LeaseLostError,
            SESSION_LEASED_SQLSTATE: SessionLeasedError,
            STALE_RUN_SQLSTATE: StaleRunError,
        }.get(exc.sqlstate or "")
        if kind is not None:
            return kind(exc.args[0] if exc.args else str(exc))
    return None
