"""Vera's LangGraph graph: a model node and a tool node, looping until a plain answer."""

from __future__ import annotations

import asyncio

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from src.agent.context import select_window
from src.agent.errors import ModelTimeoutError, classify_model_error
from src.agent.model import build_chat_model
from src.agent.prompts import SYSTEM_PROMPT
from src.agent.state import VeraState
from src.agent.tools import build_tools
from src.config.settings import Settings, get_settings


def build_graph(
    settings: Settings | None = None,
    *,
    model: BaseChatModel | None = None,
    tools: list[BaseTool] | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
) -> CompiledStateGraph:
    """Compile the graph; model and tools default to the ones the settings select."""
    settings = settings or get_settings()
    tools = tools if tools is not None else build_tools(settings)
    bound = (model or build_chat_model(settings)).bind_tools(tools)
    max_messages = settings.agent_max_context_messages
    timeout = settings.agent_timeout_seconds

    async def call_model(state: VeraState, config: RunnableConfig) -> dict:
        window = select_window(state["messages"], max_messages)
        try:
            async with asyncio.timeout(timeout):
                reply = await bound.ainvoke([SystemMessage(SYSTEM_PROMPT), *window], config)
        except TimeoutError as exc:
            raise ModelTimeoutError(f"the model did not answer within {timeout:g} s") from exc
        except Exception as exc:
            mapped = classify_model_error(exc)
            if mapped is None or mapped is exc:
                raise
            raise mapped from exc
        return {"messages": [reply]}

    builder = StateGraph(VeraState)
    builder.add_node("model", call_model)
    # ToolNode runs one turn's tool calls concurrently and turns failures into tool messages.
    builder.add_node("tools", ToolNode(tools, handle_tool_errors=True))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition, {"tools": "tools", END: END})
    builder.add_edge("tools", "model")
    return builder.compile(checkpointer=checkpointer, name="vera")
