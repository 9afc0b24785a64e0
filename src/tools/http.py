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

from src.tools.idempotency import IDEMPOTENCY_HEADER, idempotency_key


class ToolError(Exception):
    """A failure the model should explain to the user (unknown city, quota, outage...).

    `user_message` is the short human text the model and the user see; `str(exc)` keeps
    the technical detail (never logged: it may hold user text).
    """

    def __init__(self, detail: str, user_message: str | None = None) -> None:
        super().__init__(detail)
        self.user_message = user_message or detail[:1].upper() + detail[1:] + "."


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    params: dict[str, Any],
    *,
    attempts: int,
    service: str,
    topic: str,
) -> Any:
    """GET `url` and decode JSON, retrying timeouts and 5xx; every failure is a `ToolError`
    whose user message names the `topic` ("weather", "stock price") rather than the API.
    The running tool call's idempotency key goes along as the `Idempotency-Key` header."""
    key = idempotency_key()
    headers = {IDEMPOTENCY_HEADER: key} if key else {}
    down = f"The {topic} service is unreachable right now; try again later."
    refused = f"The {topic} service is not available right now; try again later."
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=0.2, max=2),
            retry=retry_if_exception(_retryable),
            reraise=True,
        ):
            with attempt:
                response = await client.get(url, params=params, headers=headers)
                response.raise_for_status()
                return response.json()
    except httpx.TimeoutException as exc:
        raise ToolError(
            f"{service} did not answer in time",
            f"The {topic} service did not answer in time; try again later.",
        ) from exc
    except httpx.HTTPStatusError as exc:
        code = exc.response.status_code
        if code == 429:
            raise ToolError(f"{service} quota exceeded, try again later", refused) from exc
        if code in (401, 403):
            raise ToolError(f"{service} refused our credentials", refused) from exc
        raise ToolError(
            f"{service} answered with HTTP {code}",
            f"The {topic} service is not working right now; try again later.",
        ) from exc
    except (httpx.TransportError, ValueError) as exc:
        raise ToolError(f"{service} is unreachable or sent invalid data", down) from exc
    raise AssertionError("unreachable")  # pragma: no cover
