"""API key check and per-client rate limit, as FastAPI dependencies."""

from __future__ import annotations

import hmac
import math
import time
from typing import Annotated

from fastapi import Depends, Request
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from src.api.errors import ApiError
from src.config.settings import Settings


def presented_key(request: Request) -> str | None:
    """The key a request carries in `X-API-Key` or `Authorization: Bearer`."""
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


async def require_api_key(request: Request) -> str | None:
    """Reject the request unless it carries the configured key (no-op without `API_KEY`).

    Returns the verified key, which the rate limit uses as the client's identity.
    """
    settings: Settings = request.app.state.settings
    if settings.api_key is None:
        return None
    key = presented_key(request)
    expected = settings.api_key.get_secret_value().encode()
    if key is None or not hmac.compare_digest(key.encode(), expected):
        raise ApiError(
            401,
            "unauthorized",
            "A valid API key is required: send it as X-API-Key or Authorization: Bearer.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return key


class RateLimiter:
    """A moving-window limit of `per_minute` requests per client (in this process)."""

    def __init__(self, per_minute: int) -> None:
        self.item = RateLimitItemPerMinute(per_minute)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def check(self, client: str) -> None:
        """Count one request of `client`; `ApiError` 429 with `Retry-After` when over."""
        if await self.limiter.hit(self.item, client):
            return
        stats = await self.limiter.get_window_stats(self.item, client)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise ApiError(
            429,
            "rate_limited",
            f"Too many requests: the limit is {self.item.amount} per minute.",
            headers={"Retry-After": str(retry_after)},
        )


async def authorize(request: Request, key: Annotated[str | None, Depends(require_api_key)]) -> None:
    """Authenticate, then rate-limit per API key (per client IP when there is no key)."""
    if key is not None:
        # Keys are hashed so that the limiter's memory never holds one in clear.
        client = "key:" + hmac.new(b"vera-rate-limit", key.encode(), "sha256").hexdigest()
    else:
        client = "ip:" + (request.client.host if request.client else "unknown")
    limiter: RateLimiter = request.app.state.rate_limiter
    await limiter.check(client)


Authorized = Depends(authorize)
