"""The store's errors, mapped once, by class: what means the server is not there, what
means it will not let us in, and the two errors the store raises for them (the database
unavailable; the pool out of free connections while the database is up). `store` exports
them too."""

from __future__ import annotations

import asyncpg

# Errors that mean "the server is not there", as opposed to a bad query or bad data.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    # A reply cut short by a server going away can leave the protocol mid-message.
    asyncpg.exceptions.InternalClientError,
)


# Errors of a server that answers but will not let us in (wrong password, unknown role or
# database): no embedded fallback for those, the configuration needs fixing.
REFUSAL_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidCatalogNameError,
)


class StorageUnavailableError(ConnectionError):
    """The memory database cannot be reached (down, restarting, or out of connections)."""


class PoolExhaustedError(StorageUnavailableError):
    """The database is up, but every connection of the pool stayed lent out for the whole
    pool wait: this process is overloaded, the database is not down. A subclass, so that
    whoever degrades gracefully without the database does so here too; an API answers it
    as its own error (503 `overloaded`), never as the database being unavailable."""


def unavailable(exc: BaseException) -> StorageUnavailableError:
    """The error a connection error `exc` is answered with, once retried."""
    return StorageUnavailableError(f"memory database unavailable ({type(exc).__name__})")
