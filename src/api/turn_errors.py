"""The stable error codes of a failed turn, and what each tells the user."""

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
from src.agent.memory.store import StorageUnavailableError

ERROR_MESSAGES = {
    "llm_timeout": "The model did not answer in time. Send the message again to retry.",
    "llm_unavailable": "The model provider is unavailable. Send the message again to retry.",
    "llm_incomplete": "The model's answer broke off before it was complete; nothing of it "
    "was kept. Send the message again to retry.",
    "llm_invalid_output": "The model produced an invalid tool call, so nothing was run or "
    "kept. Send the message again to retry, or rephrase it.",
    "llm_rejected": "The model provider rejected the request (its key, model or settings "
    "need fixing on the service); sending the message again will not help until then.",
    "turn_limit": "This turn needed more model steps or tool calls than the service allows; "
    "ask for less at once.",
    "storage_unavailable": "The conversation store is unavailable. Try again shortly.",
    "shutting_down": "This server is restarting. Send the same message with the same turn_id "
    "to get this turn's answer (it is resumed where it stopped).",
    "lease_lost": "This turn ran past its lease and another turn took the session; its "
    "last step was not stored. Reload the conversation.",
    "internal": "An internal error stopped this turn. Send the message again to retry.",
}


def error_code(exc: BaseException) -> str:
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
    if isinstance(exc, StorageUnavailableError):
        return "storage_unavailable"
    if isinstance(exc, LeaseLostError):
        return "lease_lost"
    return "internal"
