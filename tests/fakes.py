"""Fake chat models for API tests: the offline model, made slow, gated or failing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from src.agent.offline_model import OfflineChatModel


class ProviderError(Exception):
    """Looks like an OpenAI SDK error: it carries the provider's HTTP status."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"provider answered {status_code}")
        self.status_code = status_code


class FakeModel(OfflineChatModel):
    """The offline model, answering after `delay` seconds and/or once `gate` is set (from
    call number `gate_from_call` on), or raising `error`; `calls` counts model calls and
    `started` is set when a gated call is waiting."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    delay: float = 0.0
    gate: asyncio.Event | None = None
    gate_from_call: int = 1
    error: Exception | None = None
    calls: int = 0
    started: asyncio.Event | None = None

    async def _before(self) -> None:
        self.calls += 1
        if self.gate is not None and self.calls >= self.gate_from_call:
            if self.started is not None:
                self.started.set()
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        await self._before()
        async for chunk in super()._astream(*args, **kwargs):
            yield chunk

    async def _agenerate(self, *args: Any, **kwargs: Any) -> ChatResult:
        await self._before()
        return self._generate(*args, **kwargs)
