"""Shared HTTP plumbing of the tools: bounded retries and one error type the model can relay."""

from __future__ import annotations

from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)


class ToolError(Exception):
    """A failure the model should explain to the user (unknown city, quota, outage...)."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500


async def get_json(
    client: httpx.AsyncClient, url: str, params: dict[str, Any], *, attempts: int, service: str
) -> Any:
    """GET `url` and decode JSON, retrying timeouts and 5xx; every failure is a `ToolError`."""
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=0.2, max=2),
            retry=retry_if_exception(_retryable),
            reraise=True,
        ):
            with attempt:
                response = await client.get(url, params=params)
                response.raise_for_status()
                return response.json()
    except httpx.TimeoutException as exc:
        raise ToolError(f"{service} did not answer in time") from exc
    except httpx.HTTPStatusError as exc:
        code = exc.response.status_code
        if code == 429:
            raise ToolError(f"{service} quota exceeded, try again later") from exc
        if code in (401, 403):
            raise ToolError(f"{service} refused our credentials") from exc
        raise ToolError(f"{service} answered with HTTP {code}") from exc
    except (httpx.TransportError, ValueError) as exc:
        raise ToolError(f"{service} is unreachable or sent invalid data") from exc
    raise AssertionError("unreachable")  # pragma: no cover
