"""Who is calling: API keys and the principals they stand for, and the rate limits.

Each API key is a principal (`API_KEY` is the one named `default`; `API_KEYS` adds named
ones). A key listed in `API_GATEWAY_KEYS` may act for an end user with `X-User-Id`, so
one backend serves many users without mixing their sessions; a key listed in
`API_ADMIN_KEYS` may also run the admin operations (`/admin/...`). Without any key
configured (development) every caller is the `default` principal, and no one is an admin.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from src.api import metrics
from src.config.settings import Settings, SettingsError

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_PRINCIPAL = "default"
USER_ID_PATTERN = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no space
PRINCIPAL_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_NAME_PATTERN = re.compile(PRINCIPAL_PATTERN)
_PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]+$")
MIN_PRODUCTION_KEY_CHARS = 32


@dataclass(frozen=True)
class Principal:
    """The owner of the sessions a request may touch: a key's name, and the end user a
    trusted gateway acts for (empty otherwise)."""

    name: str
    user_id: str = ""


@dataclass(frozen=True)
class ApiKey:
    name: str
    secret: bytes
    gateway: bool
    admin: bool = False


def _parse_keys(settings: Settings) -> list[ApiKey]:
    gateways = set(settings.api_gateway_keys)
    admins = set(settings.api_admin_keys)
    pairs: list[tuple[str, str]] = []
    if settings.api_key is not None:
        pairs.append((DEFAULT_PRINCIPAL, settings.api_key.get_secret_value()))
    if settings.api_keys is not None:
        for entry in settings.api_keys.get_secret_value().split(","):
            if not entry.strip():
                continue
            name, sep, secret = entry.strip().partition(":")
            if not sep or not _NAME_PATTERN.match(name) or not secret:
                raise SettingsError(
                    "API_KEYS must be `name:key,name:key` (names: letters, digits, `_-`)"
                )
            pairs.append((name, secret))
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise SettingsError("API_KEYS: each principal name may appear once (API_KEY is `default`)")
    for variable, listed in (("API_GATEWAY_KEYS", gateways), ("API_ADMIN_KEYS", admins)):
        unknown = listed - set(names)
        if unknown:
            raise SettingsError(f"{variable} names no configured key: {sorted(unknown)}")
    for name, secret in pairs:
        if not _PRINTABLE_ASCII.match(secret):
            raise SettingsError(f"API key {name!r} must be printable ASCII (no spaces)")
        if settings.environment == "production" and len(secret) < MIN_PRODUCTION_KEY_CHARS:
            raise SettingsError(
                f"API key {name!r} must be at least {MIN_PRODUCTION_KEY_CHARS} characters "
                "when ENVIRONMENT=production"
            )
    return [
        ApiKey(name, secret.encode("ascii"), name in gateways, name in admins)
        for name, secret in pairs
    ]


class KeyRing:
    """The configured API keys; `identify` maps a presented key to its `ApiKey`."""

    def __init__(self, settings: Settings) -> None:
        self.keys = _parse_keys(settings)
        if settings.environment == "production" and not self.keys:
            raise SettingsError("API_KEY must be set when ENVIRONMENT=production (or API_KEYS)")

    @property
    def required(self) -> bool:
        return bool(self.keys)

    def identify(self, presented: str | None) -> ApiKey | None:
        """The key matching `presented` (compared in constant time with every key)."""
        if presented is None:
            return None
        try:
            candidate = presented.encode("ascii")
        except UnicodeEncodeError:
            return None
        match = None
        for key in self.keys:
            if hmac.compare_digest(candidate, key.secret):
                match = key
        return match


def limiter_storage(uri: str) -> Storage:
    """The `limits` async storage for `RATE_LIMIT_STORAGE_URI` (`memory://`, `redis://`)."""
    scheme = uri.split("://", 1)[0]
    if scheme in {"memory", "redis", "rediss", "redis+unix"}:
        uri = "async+" + uri
    options = {"implementation": "redispy"} if "redis" in scheme else {}
    try:
        storage = storage_from_string(uri, **options)
    except Exception as exc:  # ConfigurationError, missing driver
        raise SettingsError(f"RATE_LIMIT_STORAGE_URI is not usable: {exc}") from None
    if not isinstance(storage, Storage):  # a scheme with no async implementation
        raise SettingsError(f"RATE_LIMIT_STORAGE_URI is not usable: {scheme} is not async")
    return storage


class RateLimitExceeded(Exception):
    """Over a limit; `retry_after` seconds until the window frees a slot."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"over {limit} per minute")
        self.limit = limit
        self.retry_after = retry_after


class LimitStorage:
    """Where limits count: the configured storage while it answers within
    `timeout_seconds`, else this process's memory for `retry_seconds`, then the configured
    one is tried again. A limit never stops counting: while a shared storage (Redis) is
    unreachable or slow, each process counts its own hits, as with `memory://` (N workers
    allow up to N times the limit), and no request waits for it longer than the timeout."""

    def __init__(
        self,
        shared: Storage,
        timeout_seconds: float = 0.1,
        retry_seconds: float = 5.0,
        local: Storage | None = None,
    ) -> None:
        self.shared = shared
        # `memory://` already counts in this process: nothing to fall back to.
        self.local = local or (shared if isinstance(shared, MemoryStorage) else MemoryStorage())
        self.timeout_seconds = timeout_seconds
        self.retry_seconds = retry_seconds
        self.down = False
        self._retry_at = 0.0

    def use_shared(self) -> bool:
        return self.shared is not self.local and time.monotonic() >= self._retry_at

    def failed(self, exc: BaseException) -> None:
        """The shared storage did not answer in time, or refused: count locally for now."""
        if not self.down:
            self.down = True
            logger.warning(
                "rate-limit storage unavailable (%s); counting in each process until it "
                "answers again (tried every %gs)",
                type(exc).__name__,
                self.retry_seconds,
            )
        self._retry_at = time.monotonic() + self.retry_seconds

    def answered(self) -> None:
        if self.down:
            self.down = False
            logger.info("rate-limit storage answers again; counting there")


class RateLimiter:
    """A moving-window limit of `per_minute` hits per client, counted in `storage`
    (`LimitStorage`: shared by every worker when it is Redis, this process's otherwise)."""

    def __init__(self, per_minute: int, storage: LimitStorage, namespace: str, name: str) -> None:
        self.item = RateLimitItemPerMinute(per_minute, namespace=namespace)
        self.storage = storage
        self.name = name
        self.shared = MovingWindowRateLimiter(storage.shared)
        self.local = MovingWindowRateLimiter(storage.local)

    async def _counted(self, check: Callable[[MovingWindowRateLimiter], Awaitable[T]]) -> T:
        if self.storage.use_shared():
            try:
                async with asyncio.timeout(self.storage.timeout_seconds):
                    result = await check(self.shared)
            except Exception as exc:  # a timeout, a refused connection, a Redis error
                self.storage.failed(exc)
            else:
                self.storage.answered()
                return result
        if self.storage.down:
            metrics.rate_limit_fallback(self.name)
        return await check(self.local)

    async def _exceeded(self, limiter: MovingWindowRateLimiter, client: str) -> RateLimitExceeded:
        stats = await limiter.get_window_stats(self.item, client)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        return RateLimitExceeded(self.item.amount, retry_after)

    async def hit(self, client: str) -> None:
        """Count one hit of `client`; `RateLimitExceeded` when over the limit."""

        async def check(limiter: MovingWindowRateLimiter) -> RateLimitExceeded | None:
            if await limiter.hit(self.item, client):
                return None
            return await self._exceeded(limiter, client)

        exceeded = await self._counted(check)
        if exceeded is not None:
            raise exceeded

    async def exhausted(self, client: str) -> RateLimitExceeded | None:
        """Whether `client` has no hit left (counting nothing)."""

        async def check(limiter: MovingWindowRateLimiter) -> RateLimitExceeded | None:
            if await limiter.test(self.item, client):
                return None
            return await self._exceeded(limiter, client)

        return await self._counted(check)


def client_key(principal: Principal) -> str:
    """The rate-limit identity of an authenticated caller."""
    return f"principal:{principal.name}/{principal.user_id}"
