"""Errors mapped once, by class: database errors to the fencing errors (by SQLSTATE),
provider exceptions to the model's errors, and a failed turn to its API error code."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from langgraph.errors import GraphRecursionError

from src.agent.errors import (
    ModelIncompleteError,
    ModelInvalidOutputError,
    ModelRejectedError,
    ModelTimeoutError,
    ModelUnavailableError,
    TurnLimitError,
    classify_model_error,
)
from src.agent.memory.fencing import (
    LeaseLostError,
    SessionLeasedError,
    StaleRunError,
    as_fencing_error,
)
from src.agent.memory.store import PostgresMemoryStore, StorageUnavailableError
from src.api.turn_errors import error_code


def postgres_error(sqlstate: str, message: str = "refused") -> asyncpg.PostgresError:
    """The exception asyncpg raises for an error the server sends with `sqlstate`."""
    return asyncpg.PostgresError.new({"C": sqlstate, "M": message, "S": "ERROR"})


@pytest.mark.parametrize(
    ("sqlstate", "kind"),
    [("VR001", LeaseLostError), ("VR002", SessionLeasedError), ("VR003", StaleRunError)],
)
def test_vera_sqlstates_are_the_fencing_errors(sqlstate: str, kind: type) -> None:
    error = as_fencing_error(postgres_error(sqlstate, "lease of session s lost"))
    assert type(error) is kind
    assert str(error) == "lease of session s lost"


@pytest.mark.parametrize(
    "exc", [postgres_error("40001"), postgres_error("23505"), RuntimeError("VR001"), OSError()]
)
def test_other_errors_are_no_fencing_error(exc: BaseException) -> None:
    assert as_fencing_error(exc) is None


class ProviderStatusError(Exception):
    """What OpenAI-compatible clients raise: an HTTP status and a code."""

    def __init__(self, status_code: int, code: str | None = None) -> None:
        super().__init__("Incorrect API key provided: sk-abc***")
        self.status_code, self.code = status_code, code


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ProviderStatusError(408), ModelTimeoutError),
        (ProviderStatusError(429), ModelUnavailableError),
        (ProviderStatusError(503), ModelUnavailableError),
        (ProviderStatusError(401, "invalid_api_key"), ModelRejectedError),
        (httpx.ReadTimeout("slow"), ModelTimeoutError),
        (httpx.ConnectError("refused"), ModelUnavailableError),
    ],
)
def test_provider_failures_become_the_models_errors(exc: BaseException, kind: type) -> None:
    assert type(classify_model_error(exc)) is kind


def test_a_rejection_names_a_safe_code_never_the_providers_message() -> None:
    rejected = classify_model_error(ProviderStatusError(401, "invalid_api_key"))
    assert str(rejected) == "the model provider rejected the request: HTTP 401 (invalid_api_key)"
    unsafe = classify_model_error(ProviderStatusError(400, "<script>alert(1)</script>"))
    assert str(unsafe) == "the model provider rejected the request: HTTP 400"


def test_a_programming_error_is_not_a_model_error() -> None:
    assert classify_model_error(KeyError("x")) is None


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ModelTimeoutError(), "llm_timeout"),
        (ModelUnavailableError(), "llm_unavailable"),
        (ModelIncompleteError(), "llm_incomplete"),
        (ModelInvalidOutputError(), "llm_invalid_output"),
        (ModelRejectedError(401), "llm_rejected"),
        (TurnLimitError(), "turn_limit"),
        (GraphRecursionError(), "turn_limit"),
        (StorageUnavailableError(), "storage_unavailable"),
        (LeaseLostError(), "lease_lost"),
        (KeyError("bug"), "internal"),
    ],
)
def test_a_failed_turn_ends_with_its_stable_code(exc: BaseException, code: str) -> None:
    assert error_code(exc) == code


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            postgres_error("28P01", 'password authentication failed for user "veramoney"'),
            "memory database db:5432 refused the connection (InvalidPasswordError: password "
            'authentication failed for user "veramoney")',
        ),
        (ConnectionRefusedError(111, "Connection refused"), "memory database db:5432 unreachable"),
        (TimeoutError(), "memory database db:5432 unreachable (TimeoutError"),
    ],
)
async def test_a_store_that_cannot_connect_says_where_and_why(
    monkeypatch: pytest.MonkeyPatch, error: BaseException, said: str
) -> None:
    """What start-up prints in one line (`src/api/startup.py`), without the embedded
    fallback."""

    async def refused(self: PostgresMemoryStore, dsn: str) -> None:
        raise error

    monkeypatch.setattr(PostgresMemoryStore, "_create_pool", refused)
    store = PostgresMemoryStore("postgresql://veramoney:secret@db:5432/veramoney_memory")
    with pytest.raises(StorageUnavailableError) as failed:
        await store.initialize()
    assert str(failed.value).startswith(said)
    assert "secret" not in str(failed.value)
