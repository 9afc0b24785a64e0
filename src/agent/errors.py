"""Failures of the model that callers (the API) tell apart from programming errors."""

from __future__ import annotations


class ModelTimeoutError(TimeoutError):
    """The model did not answer within `AGENT_TIMEOUT_SECONDS`."""


class ModelUnavailableError(RuntimeError):
    """The model provider refused or failed the call (rate limited, 5xx, unreachable)."""


def classify_model_error(exc: BaseException) -> Exception | None:
    """The `Model*Error` a provider exception stands for, or None when it is not one.

    Works on OpenAI-compatible clients without importing them: their errors carry an HTTP
    `status_code`, and timeouts/connection failures are named so.
    """
    if isinstance(exc, ModelTimeoutError | ModelUnavailableError):
        return exc
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"APITimeoutError", "TimeoutException", "ReadTimeout", "TimeoutError"}:
        return ModelTimeoutError("the model did not answer in time")
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and (status == 429 or status >= 500):
        return ModelUnavailableError(f"the model provider answered HTTP {status}")
    if names & {"APIConnectionError", "ConnectError", "RateLimitError"}:
        return ModelUnavailableError("the model provider is unreachable")
    return None
