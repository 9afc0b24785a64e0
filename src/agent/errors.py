"""Failures of the model that callers (the API) tell apart from programming errors, and
the model's health as `/health` reports it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal


class ModelTimeoutError(TimeoutError):
    """The model sent nothing for `AGENT_TIMEOUT_SECONDS`, or its whole call outlasted
    `AGENT_CALL_TIMEOUT_SECONDS`."""


class ModelUnavailableError(RuntimeError):
    """The model provider failed the call (rate limited, 5xx, unreachable): a retry may work."""


class ModelRejectedError(RuntimeError):
    """The provider refused the request itself (HTTP 4xx: bad key, unknown model, a request
    it will not take); sending it again does not help until the service is fixed."""

    def __init__(self, status: int, provider_code: str | None = None) -> None:
        self.status = status
        self.provider_code = provider_code
        detail = f" ({provider_code})" if provider_code else ""
        super().__init__(f"the model provider rejected the request: HTTP {status}{detail}")


class ModelIncompleteError(RuntimeError):
    """The model's answer broke off (its stream ended before a `finish_reason`, the
    connection dropped, or it was cut at its length limit inside a tool call)."""


class ModelInvalidOutputError(ValueError):
    """The model's answer cannot be used (tool-call arguments that are not a JSON object)."""


class TurnLimitError(RuntimeError):
    """The turn needed more model steps or tool calls than the settings allow."""


# Providers' error codes ("invalid_api_key", "model_not_found") are safe to show; their
# messages are not (OpenAI's 401 message quotes part of the key).
_SAFE_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CONNECTION = {"APIConnectionError", "ConnectError", "RemoteProtocolError", "ReadError"}


def classify_model_error(exc: BaseException) -> Exception | None:
    """The `Model*Error` a provider exception stands for, or None when it is not one.

    Works on OpenAI-compatible clients without importing them: their errors carry an HTTP
    `status_code`, and timeouts/connection failures are named so.
    """
    if isinstance(
        exc,
        ModelTimeoutError | ModelUnavailableError | ModelRejectedError | ModelIncompleteError,
    ):
        return exc
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"APITimeoutError", "TimeoutException", "ReadTimeout", "TimeoutError"}:
        return ModelTimeoutError("the model did not answer in time")
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        if status == 408:
            return ModelTimeoutError("the model provider answered HTTP 408")
        if status in (409, 429) or status >= 500:
            return ModelUnavailableError(f"the model provider answered HTTP {status}")
        if 400 <= status < 500:
            code = getattr(exc, "code", None)
            safe = code if isinstance(code, str) and _SAFE_CODE.fullmatch(code) else None
            return ModelRejectedError(status, safe)
    if names & (_CONNECTION | {"RateLimitError"}):
        return ModelUnavailableError("the model provider is unreachable")
    return None


def is_connection_error(exc: BaseException) -> bool:
    """Whether `exc` is a broken or refused connection (not an HTTP answer)."""
    return bool({cls.__name__ for cls in type(exc).__mro__} & _CONNECTION)


# A rejection for one of these is about the service's configuration (key, permissions,
# model name), not about one request: `/health` shows it until a call succeeds.
CONFIG_STATUSES = frozenset({401, 403, 404})


@dataclass
class ModelHealth:
    """What `/health` tells about the model: `unknown` before the first call, `ok` after a
    call the provider accepted, `rejected` (since when, and why) after it refused the key,
    the permissions or the model name, until a call succeeds again."""

    status: Literal["unknown", "ok", "rejected"] = "unknown"
    since: datetime | None = None
    error: str | None = None

    def accepted(self) -> None:
        if self.status != "ok":
            self.status, self.since, self.error = "ok", datetime.now(UTC), None

    def failed(self, error: BaseException | None) -> None:
        if isinstance(error, ModelRejectedError) and error.status in CONFIG_STATUSES:
            if self.status != "rejected":
                self.status, self.since = "rejected", datetime.now(UTC)
            self.error = str(error)
