"""`SessionDirectory`: which principal owns each session, and the caller's session list.

A session belongs to the principal whose first message created it; for everyone else it
does not exist (404 on every endpoint, the same answer as for an unknown id).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from src.agent.memory.jsonb import loads_jsonb
from src.agent.memory.store import PostgresMemoryStore
from src.api import sql
from src.api.errors import ApiError
from src.api.security import DEFAULT_PRINCIPAL, Principal
from src.api.turn_messages import text_of

TITLE_CHARS = 80


@dataclass(frozen=True)
class SessionPage:
    """One page of a caller's sessions, newest first, and the cursor of the next."""

    sessions: list[dict[str, Any]]
    next_cursor: str | None


def not_found(session_id: uuid.UUID) -> ApiError:
    return ApiError(404, "not_found", f"No session {session_id}.")


def title_of(message: str) -> str:
    """A session's title: its first message on one line, cut to `TITLE_CHARS` (control
    characters, which JSONB may refuse, become spaces)."""
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in message).split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


def title_from(content: str | None) -> str:
    """The title of a stored message's content (JSON text, as SQL returns it; a string or
    a list of content blocks); '' for none."""
    value = loads_jsonb(content) if content is not None else None
    return title_of(text_of(value)) if isinstance(value, str | list) else ""


def _summary(row: asyncpg.Record) -> dict[str, Any]:
    """A listed session; an untitled one (its first turn still runs) titled on the fly."""
    summary = dict(row)
    first = summary.pop("first_message")
    summary["title"] = summary["title"] or title_from(first)
    return summary


# A cursor is the position of the last session of a page: its `updated_at` in microseconds
# since the epoch and its id. Any string of this form is a valid position.
CURSOR_PATTERN = r"^[0-9]{1,16}-[0-9a-f]{32}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(updated_at: datetime, session_id: uuid.UUID) -> str:
    micros = (updated_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}-{session_id.hex}"


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor names (`ValueError` when it is not of the cursor's form)."""
    if not re.match(CURSOR_PATTERN, cursor):
        raise ValueError("not a cursor returned by GET /sessions")
    micros, hex_id = cursor.split("-")
    return _EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(hex=hex_id)


class SessionDirectory:
    """Session ownership and listing, in the API's `session_owners` table."""

    def __init__(self, store: PostgresMemoryStore) -> None:
        self.store = store
        # When this worker last looked for sessions written without the API (the
        # database's clock; None: never, so its first look reads every conversation).
        self._adopted_since: datetime | None = None

    async def claim(self, session_id: uuid.UUID, principal: Principal) -> None:
        """Record `principal` as the owner of a new session; 404 when the session belongs
        to someone else. (Its title comes with its first stored user message.)"""
        args = (session_id, principal.name, principal.user_id, DEFAULT_PRINCIPAL)
        row = await self.store.run(lambda conn: conn.fetchrow(sql.CLAIM_SESSION, *args))
        while row is None:  # claimed by a concurrent request that committed meanwhile
            row = await self.store.run(lambda conn: conn.fetchrow(sql.SESSION_OWNER, session_id))
            if row is None:  # ... and deleted since: claim it again
                row = await self.store.run(lambda conn: conn.fetchrow(sql.CLAIM_SESSION, *args))
        if (row["principal"], row["user_id"]) != (principal.name, principal.user_id):
            raise not_found(session_id)

    async def require(self, session_id: uuid.UUID, principal: Principal) -> None:
        """404 unless `principal` owns the session (an unowned stored one is the default's).
        An unknown id is a 404 for every principal, the same as someone else's session."""
        row = await self.store.run(lambda conn: conn.fetchrow(sql.SESSION_ACCESS, session_id))
        owner: tuple[str, str] | None
        if row["principal"] is not None:
            owner = (row["principal"], row["user_id"])
        else:
            owner = (DEFAULT_PRINCIPAL, "") if row["stored"] else None
        if owner != (principal.name, principal.user_id):
            raise not_found(session_id)

    async def touch(self, session_id: uuid.UUID) -> None:
        """Move the session to the top of its owner's list (a turn just ended); an untitled
        one is titled by its first stored user message."""

        async def touch(conn: asyncpg.Connection) -> None:  # one pooled connection for both
            title = title_from(await conn.fetchval(sql.TOUCH_SESSION, session_id))
            if title:
                await conn.execute(sql.SET_TITLE, session_id, title)

        await self.store.run(touch)

    async def adopt_unowned(self, principal: Principal) -> None:
        """For the default principal: give the sessions written without the API (Studio,
        the library) their owner rows, so they are listed like the others."""
        if (principal.name, principal.user_id) != (DEFAULT_PRINCIPAL, ""):
            return
        since = self._adopted_since
        query = sql.ADOPT_UNOWNED_SESSIONS if since is None else sql.ADOPT_UNOWNED_SESSIONS_SINCE
        self._adopted_since = await self.store.run(
            lambda conn: conn.fetchval(query, DEFAULT_PRINCIPAL, since)
        )

    async def adopt(self, session_id: uuid.UUID) -> None:
        """Give one session written without the API its owner row, the default principal's
        (nothing when it has one)."""
        args = (DEFAULT_PRINCIPAL, session_id)
        await self.store.run(lambda conn: conn.execute(sql.ADOPT_UNOWNED_SESSION, *args))

    async def page(self, principal: Principal, limit: int, cursor: str | None) -> SessionPage:
        """The caller's sessions after `cursor`, newest first (`ValueError`: bad cursor);
        the default principal's include those written without the API."""
        await self.adopt_unowned(principal)
        args: list[Any] = [principal.name, principal.user_id, limit + 1]
        query = sql.LIST_SESSIONS_FIRST
        if cursor is not None:
            args += decode_cursor(cursor)
            query = sql.LIST_SESSIONS_AFTER
        rows = await self.store.run(lambda conn: conn.fetch(query, *args))
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if more else None
        return SessionPage(
            sessions=[_summary(row) for row in rows],
            next_cursor=encode_cursor(last["updated_at"], last["session_id"]) if last else None,
        )
