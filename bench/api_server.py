"""`python -m bench.api_server`: Vera's real app under uvicorn, configured by the
environment, with a stand-in model that takes `BENCH_MODEL_DELAY` seconds (default 0.2)
before it streams its answer, like a fast hosted LLM."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from src.agent.offline_model import OfflineChatModel
from src.api.__main__ import KEEP_ALIVE_SECONDS
from src.api.app import create_app
from src.config.settings import get_settings


class DelayedModel(OfflineChatModel):
    """The offline model, answering after `delay` seconds."""

    delay: float = 0.2

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        await asyncio.sleep(self.delay)
        async for chunk in super()._astream(*args, **kwargs):
            yield chunk

    async def _agenerate(self, *args: Any, **kwargs: Any) -> ChatResult:
        await asyncio.sleep(self.delay)
        return self._generate(*args, **kwargs)


def main() -> None:
    settings = get_settings()
    model = DelayedModel(delay=float(os.environ.get("BENCH_MODEL_DELAY", "0.2")))
    app = create_app(settings, model=model)
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


if __name__ == "__main__":
    main()
