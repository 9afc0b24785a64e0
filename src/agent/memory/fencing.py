"""Fencing tokens: the writes of a turn carry the turn's lease, and the database refuses
them, in the same statement, once another worker holds the session.

A turn passes its lease id in its run config (`configurable[LEASE_CONFIG_KEY]`); the
checkpointer hands it to `vera_put_checkpoint` / `vera_put_writes`, which raise SQLSTATE
`VR001` unless `turn_leases` still holds it for the session (see
`migrations/0005_message_store.sql`).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

LEASE_CONFIG_KEY = "vera_lease"
LEASE_LOST_SQLSTATE = "VR001"


class LeaseLostError(RuntimeError):
    """A write of a turn whose lease another turn has taken: nothing was stored."""


def lease_of(configurable: dict[str, Any]) -> uuid.UUID | None:
    """The lease a run config carries, if any."""
    lease = configurable.get(LEASE_CONFIG_KEY)
    return None if lease is None else uuid.UUID(str(lease))


def as_lease_lost(exc: BaseException) -> LeaseLostError | None:
    """The `LeaseLostError` a database error stands for, or None."""
    if isinstance(exc, asyncpg.PostgresError) and exc.sqlstate == LEASE_LOST_SQLSTATE:
        return LeaseLostError(str(exc))
    return None
