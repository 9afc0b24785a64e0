"""`LimitStorage` and `RateLimiter` (issue 23, point 11): while the shared storage refuses
or never answers, limits count in this process's memory (bounded by the timeout, never
lifted); once it answers again, they count there again."""

from __future__ import annotations

import asyncio
from typing import Any

from limits.aio.storage import MemoryStorage

from src.api.security import LimitStorage, RateLimiter, RateLimitExceeded


class FlakyStorage(MemoryStorage):
    """This process's memory as a moving-window storage that can be made to refuse, or to
    never answer, like a Redis that went away or was black-holed."""

    state = "up"

    async def _reach(self) -> None:
        if self.state == "refusing":
            raise ConnectionRefusedError("redis is down")
        if self.state == "black hole":
            await asyncio.Event().wait()

    async def acquire_entry(self, *args: Any, **kwargs: Any) -> bool:
        await self._reach()
        return await super().acquire_entry(*args, **kwargs)

    async def get_moving_window(self, *args: Any, **kwargs: Any) -> tuple[float, int]:
        await self._reach()
        return await super().get_moving_window(*args, **kwargs)


async def outcomes(limiter: RateLimiter, n: int) -> list[str]:
    seen = []
    for _ in range(n):
        try:
            await limiter.hit("client")
            seen.append("ok")
        except RateLimitExceeded:
            seen.append("429")
    return seen


async def test_limits_count_locally_while_the_storage_fails_and_there_again_after() -> None:
    flaky, local = FlakyStorage(), MemoryStorage()
    storage = LimitStorage(flaky, timeout_seconds=0.05, retry_seconds=0, local=local)
    limiter = RateLimiter(2, storage, "test", "requests")
    async with asyncio.timeout(30):  # a limiter that waited for the black hole would hang
        assert await outcomes(limiter, 3) == ["ok", "ok", "429"]  # counted in the storage
        for failure in ("refusing", "black hole"):
            flaky.state = failure
            # This process's own count: a limit of 2 still stops the third hit.
            await local.reset()
            assert await outcomes(limiter, 3) == ["ok", "ok", "429"], failure
            assert storage.down
        flaky.state = "up"
        assert await outcomes(limiter, 1) == ["429"]  # the storage's count again
        assert not storage.down
