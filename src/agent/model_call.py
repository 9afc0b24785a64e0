"""One model call of a turn: streamed under an idle timeout and a cap on the whole call,
then checked before anything acts on it.

A reply is only used when it is whole and well-formed: a stream that broke off (no
`finish_reason`, a dropped connection) raises `ModelIncompleteError`, and tool calls whose
arguments are not a JSON object raise `ModelInvalidOutputError`, so no tool ever runs on
cut-off arguments and no such reply is stored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, cast

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    BaseMessageChunk,
    message_chunk_to_message,
)
from langchain_core.runnables import Runnable, RunnableConfig

from src.agent.errors import (
    ModelIncompleteError,
    ModelInvalidOutputError,
    ModelTimeoutError,
    ModelUnavailableError,
    classify_model_error,
    is_connection_error,
)


async def stream_reply(
    model: Runnable[Any, BaseMessage],
    messages: list[BaseMessage],
    config: RunnableConfig,
    *,
    idle: float,
    total: float,
) -> AIMessage:
    """The model's reply to `messages`, read as a stream: `ModelTimeoutError` when no chunk
    comes for `idle` seconds or the call lasts over `total`; provider failures as the
    `Model*Error` they stand for (see `classify_model_error`)."""
    merged: BaseMessage | None = None
    received = 0
    whole = asyncio.timeout(total)
    try:
        # `astream` is an async generator (declared as an iterator): close it when done.
        chunk_stream = cast(AsyncGenerator[BaseMessage, None], model.astream(messages, config))
        async with whole, aclosing(chunk_stream) as stream:
            chunks = aiter(stream)
            while True:
                async with asyncio.timeout(idle):
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                received += 1
                merged = chunk if merged is None else _add_chunk(merged, chunk)
    except TimeoutError as exc:
        if whole.expired():
            raise ModelTimeoutError(f"the model did not finish within {total:g} s") from exc
        raise ModelTimeoutError(f"the model sent nothing for {idle:g} s") from exc
    except Exception as exc:
        mapped = classify_model_error(exc)
        if received and isinstance(mapped, ModelUnavailableError) and is_connection_error(exc):
            raise ModelIncompleteError(
                f"the model's stream broke off after {received} chunks"
            ) from exc
        if mapped is None or mapped is exc:
            raise
        raise mapped from exc
    return checked_reply(merged)


def _add_chunk(merged: BaseMessage, chunk: BaseMessage) -> BaseMessage:
    """The stream so far plus `chunk` (chunks add up; a whole message takes nothing)."""
    if not isinstance(merged, BaseMessageChunk):
        raise ModelInvalidOutputError(f"the model streamed a whole {type(merged).__name__}")
    return merged + chunk


def checked_reply(merged: BaseMessage | None) -> AIMessage:
    """`merged` (the sum of a stream's chunks) as a message, if it is whole and usable."""
    if merged is None:
        raise ModelIncompleteError("the model's stream ended before any chunk")
    reply = message_chunk_to_message(merged) if isinstance(merged, BaseMessageChunk) else merged
    if not isinstance(reply, AIMessage):
        raise ModelInvalidOutputError(f"the model answered a {type(reply).__name__}")
    meta = reply.response_metadata
    # Every OpenAI-protocol stream ends with a finish_reason; without it the body was cut.
    # (Other models, like the offline one, do not report one.)
    if meta.get("model_provider") == "openai":
        reason = meta.get("finish_reason")
        if not reason:
            raise ModelIncompleteError("the model's stream ended before its finish_reason")
        if reason == "length" and (reply.tool_calls or reply.invalid_tool_calls):
            raise ModelIncompleteError("the model was cut at its length limit in a tool call")
    invalid = (
        _unparsable(merged) if isinstance(merged, AIMessageChunk) else reply.invalid_tool_calls
    )
    if invalid:
        raise ModelInvalidOutputError(
            f"{len(invalid)} tool call(s) without a name, an id or JSON-object arguments: "
            + ", ".join(str(call.get("name")) for call in invalid)
        )
    return reply


def _unparsable(merged: AIMessageChunk) -> list[dict[str, Any]]:
    """The streamed tool calls whose arguments are not a whole JSON object.

    LangChain parses streamed arguments leniently (`{"city": "Mont` becomes
    `{"city": "Mont"}`), so the raw text is checked strictly here.
    """
    bad = []
    for chunk in merged.tool_call_chunks:
        raw = chunk.get("args") or "{}"
        try:
            args = json.loads(raw)
        except ValueError:
            args = None
        if not isinstance(args, dict) or not chunk.get("name") or not chunk.get("id"):
            bad.append(dict(chunk))
    return bad
