"""Which chat model answers: OpenAI (or a compatible server) when a key is set, else offline."""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.language_models import BaseChatModel

from src.agent.offline_model import OfflineChatModel
from src.config.settings import Settings

logger = logging.getLogger(__name__)
_warned = False


def build_chat_model(settings: Settings) -> BaseChatModel:
    """`ChatOpenAI` with the settings' model, timeout and base URL; the offline model without
    `OPENAI_API_KEY` (logged once, loudly).

    `AGENT_TIMEOUT_SECONDS` is an idle timeout here as in the graph: httpx applies it to
    each read, and langchain-openai (when it has the option) to the wait for each chunk,
    instead of its own 120 s. The graph also caps the whole call.
    """
    global _warned
    if settings.openai_api_key is None:
        if not _warned:
            logger.warning(
                "OPENAI_API_KEY is not set: answers come from the OFFLINE rule-based model, "
                "NOT a real LLM. Set OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible "
                "server) to use one."
            )
            _warned = True
        return OfflineChatModel()
    from langchain_openai import ChatOpenAI

    idle = settings.agent_timeout_seconds
    # Older langchain-openai lacks the option, and would send an unknown one to the API.
    extra: dict[str, Any] = (
        {"stream_chunk_timeout": idle} if "stream_chunk_timeout" in ChatOpenAI.model_fields else {}
    )
    return ChatOpenAI(
        model=settings.agent_model,
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        timeout=idle,
        max_retries=1,
        streaming=True,
        stream_usage=True,
        **extra,
    )


def model_label(model: BaseChatModel) -> str:
    """What `/health` reports as the active model."""
    if isinstance(model, OfflineChatModel):
        return "offline (rule-based, not an LLM)"
    return str(getattr(model, "model_name", type(model).__name__))
