"""A deterministic offline chat model: Vera's demo and test stand-in for a real LLM.

It recognises weather and stock requests, emits proper tool calls, and writes its answer
from the tool results it gets back. It answers anything else with a fixed explanation, and
remembers a name the user gave ("my name is ..."), which makes multi-turn tests possible.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import BaseTool

WEATHER_WORDS = re.compile(r"\b(weather|temperature|forecast|rain(?:ing)?|sunny|cold|hot)\b", re.I)
STOCK_WORDS = re.compile(r"\b(price|prices|stock|stocks|share|shares|quote|trading|ticker)\b", re.I)
CITY = re.compile(r"\b(?:in|at|for)\s+([A-Z][\w'.-]*(?:\s+[A-Z][\w'.-]*)*)")
PLACE = re.compile(r"\b(?:in|at|for)\s+([^?!.,;]+?)(?:\s+and\b|[?!.,;]|$)")
TICKER = re.compile(r"(?<![\w.])\$?([A-Z]{1,5}(?:\.[A-Z]{1,2})?)(?![\w])")
NAME_GIVEN = re.compile(r"\bmy name is\s+([A-Z][\w'-]*)", re.I)
NAME_ASKED = re.compile(r"\bwhat(?:'s| is) my name\b", re.I)
NOT_TICKERS = {"I", "A", "AND", "THE", "OF", "USD", "OK", "AM", "PM", "US", "UK", "EU"}


def _tokens(text: str) -> list[str]:
    return re.findall(r"\S+\s*", text)


def _usage(messages: Sequence[BaseMessage], output: str) -> dict[str, int]:
    prompt = sum(len(str(m.content)) for m in messages) // 4 + 1
    completion = len(output) // 4 + 1
    return {
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _tool_name(tool: Any) -> str:
    """The name of a tool given as a `BaseTool` (or any object with a name) or as an
    OpenAI-format dict."""
    name = getattr(tool, "name", None)
    return str(name) if name else str(tool["function"]["name"])


class OfflineChatModel(BaseChatModel):
    """Rule-based chat model with tool calling; not a language model."""

    model_name: str = "vera-offline"

    @property
    def _llm_type(self) -> str:
        return "vera-offline"

    def bind_tools(self, tools: Sequence[BaseTool | Any], **kwargs: Any):
        names = [_tool_name(t) for t in tools]
        return self.bind(tool_names=names, **kwargs)

    # -- the rules -------------------------------------------------------------------

    def respond(self, messages: Sequence[BaseMessage], tool_names: Sequence[str]) -> AIMessage:
        """The reply to `messages` (tool calls, or text written from tool results)."""
        last = messages[-1] if messages else HumanMessage("")
        if isinstance(last, ToolMessage):
            text = self._summarise_results(messages)
            return AIMessage(text, usage_metadata=_usage(messages, text))
        text = str(last.content)
        calls = self._tool_calls(text, tool_names, salt=str(len(messages)))
        if calls:
            return AIMessage("", tool_calls=calls, usage_metadata=_usage(messages, ""))
        reply = self._plain_answer(text, messages)
        return AIMessage(reply, usage_metadata=_usage(messages, reply))

    def _tool_calls(self, text: str, tool_names: Sequence[str], salt: str) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = []
        if "get_weather" in tool_names and WEATHER_WORDS.search(text):
            city = CITY.search(text) or PLACE.search(text)
            calls.append({"name": "get_weather", "args": {"city": city[1] if city else text}})
        if "get_stock_price" in tool_names and (STOCK_WORDS.search(text) or "$" in text):
            city_words = set((CITY.search(text) or [""])[0].upper().split())
            for ticker in dict.fromkeys(TICKER.findall(text)):
                if ticker not in NOT_TICKERS and ticker not in city_words:
                    calls.append({"name": "get_stock_price", "args": {"ticker": ticker}})
        for call in calls:
            digest = hashlib.sha256((salt + json.dumps(call, sort_keys=True)).encode()).hexdigest()[
                :12
            ]
            call["id"] = f"call_{digest}"
        return calls

    def _summarise_results(self, messages: Sequence[BaseMessage]) -> str:
        results: list[ToolMessage] = []
        for message in reversed(messages):
            if not isinstance(message, ToolMessage):
                break
            results.insert(0, message)
        parts = [self._describe(result) for result in results]
        return " ".join(parts)

    @staticmethod
    def _describe(result: ToolMessage) -> str:
        try:
            data = json.loads(str(result.content))
        except ValueError:
            data = None
        if result.status == "error" or not isinstance(data, dict):
            reason = str(result.content).removeprefix("Error: ")
            return f"Sorry, I couldn't get that ({result.name}): {reason}"
        if "temperature_c" in data:
            where = data["city"] + (f", {data['country']}" if data.get("country") else "")
            return (
                f"In {where} it is {data['temperature_c']}°C (feels like "
                f"{data['feels_like_c']}°C), {data['conditions']}, humidity "
                f"{data['humidity_pct']:.0f}%, wind {data['wind_kmh']} km/h, according to "
                f"{data['source']}."
            )
        if "price" in data:
            return (
                f"{data['ticker']} is at {data['price']} {data['currency']} "
                f"({data['change']:+} / {data['change_percent']:+}%), according to "
                f"{data['source']}."
            )
        return f"The {result.name} tool returned: {result.content}"

    @staticmethod
    def _plain_answer(text: str, messages: Sequence[BaseMessage]) -> str:
        if given := NAME_GIVEN.search(text):
            return f"Nice to meet you, {given[1]}! How can I help with your finances today?"
        if NAME_ASKED.search(text):
            for message in reversed(messages[:-1]):
                if isinstance(message, HumanMessage) and (
                    found := NAME_GIVEN.search(str(message.content))
                ):
                    return f"Your name is {found[1]}."
            return "You haven't told me your name yet."
        return (
            "I'm Vera, running in offline mode without a language model, so I can look up "
            "current weather and stock prices but not answer general questions. Try: "
            '"What\'s the weather in Montevideo and the price of AAPL?"'
        )

    # -- LangChain plumbing ------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self.respond(messages, kwargs.get("tool_names", ()))
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(self.respond(messages, kwargs.get("tool_names", ()))):
            if run_manager and chunk.message.content:
                run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(self.respond(messages, kwargs.get("tool_names", ()))):
            if run_manager and chunk.message.content:
                await run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            yield chunk

    @staticmethod
    def _chunks(reply: AIMessage) -> Iterator[ChatGenerationChunk]:
        if reply.tool_calls:
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    tool_call_chunks=[
                        {
                            "name": c["name"],
                            "args": json.dumps(c["args"]),
                            "id": c["id"],
                            "index": i,
                        }
                        for i, c in enumerate(reply.tool_calls)
                    ],
                    usage_metadata=reply.usage_metadata,
                )
            )
            return
        tokens = _tokens(str(reply.content)) or [""]
        for i, token in enumerate(tokens):
            last = i == len(tokens) - 1
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content=token,
                    usage_metadata=reply.usage_metadata if last else None,
                    chunk_position="last" if last else None,
                )
            )
