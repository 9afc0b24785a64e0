"""LangGraph's official checkpointer conformance suite, run against our saver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from src.agent.memory import ConversationCheckpointer
from tests.pgbouncer import Pooler


async def test_conformance_all_capabilities_pass(database_dsn: str, pooler: Pooler) -> None:
    """Each case gets a checkpointer of its own (`from_pool`: its own caches) on the pool
    that `from_dsn` opened for the whole suite (through the pooler)."""
    suite: list[ConversationCheckpointer] = []

    async def lifespan() -> AsyncIterator[None]:
        async with ConversationCheckpointer.from_dsn(
            pooler.dsn(database_dsn), min_size=1, max_size=5, statement_cache=pooler.statement_cache
        ) as saver:
            suite.append(saver)
            yield

    @checkpointer_test(name="ConversationCheckpointer", lifespan=lifespan)
    async def factory() -> AsyncIterator[ConversationCheckpointer]:
        async with ConversationCheckpointer.from_pool(suite[0].store.pool) as checkpointer:
            yield checkpointer

    report = await validate(factory, progress=ProgressCallbacks.quiet())
    failures = {
        name: result.failures for name, result in report.results.items() if not result.passed
    }
    assert not failures, failures
    assert len(report.results) == 8
    assert all(result.detected for result in report.results.values())


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
