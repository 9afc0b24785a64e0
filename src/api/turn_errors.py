"""Which error code a failed turn ends with (its status and message: `error_catalogue`)."""

from __future__ import annotations

from langgraph.errors import GraphRecursionError

from src.agent.errors import (
    ModelIncompleteError,
    ModelInvalidOutputError,
    ModelRejectedError,
    ModelTimeoutError,
    ModelUnavailableError,
    TurnLimitError,
)
from src.agent.memory.fencing import LeaseLostError
from src.agent.memory.store import PoolExhaustedError, StorageUnavailableError
from src.api.schemas import ErrorCode


def error_code(exc: BaseException) -> ErrorCode:
    """The stable API error code of a failed turn."""
    if isinstance(exc, ModelTimeoutError):
        return "llm_timeout"
    if isinstance(exc, ModelUnavailableError):
        return "llm_unavailable"
    if isinstance(exc, ModelIncompleteError):
        return "llm_incomplete"
    if isinstance(exc, ModelInvalidOutputError):
        return "llm_invalid_output"
    if isinstance(exc, ModelRejectedError):
        return "llm_rejected"
    if isinstance(exc, TurnLimitError | GraphRecursionError):
        return "turn_limit"
    if isinstance(exc, PoolExhaustedError):  # before its base class: load, not an outage
        return "overloaded"
    if isinstance(exc, StorageUnavailableError):
        return "storage_unavailable"
    if isinstance(exc, LeaseLostError):
        return "lease_lost"
    return "internal"
