"""Vera's LangGraph graph: a model node and a tool node, looping until a plain answer.

Each turn (the messages after the last user message) may make at most
`AGENT_MAX_MODEL_STEPS_PER_TURN` model calls and `AGENT_MAX_TOOL_CALLS_PER_TURN` tool
calls. They are counted from the stored messages, so a resumed turn keeps its count; a
reply that would go over is not stored and no tool of it runs (`TurnLimitError`), so the
history never holds an unanswered call.

With `AGENT_CONFIRM_TOOLS` set, a reply calling one of those tools goes to the `approve`
node first, which pauses the turn until the user answers (`src.agent.approval`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from src.agent.approval import make_approve_node, route_after_model
from src.agent.context import select_window
from src.agent.errors import (
    ModelHealth,
    ModelIncompleteError,
    ModelInvalidOutputError,
    ModelRejectedError,
    TurnLimitError,
)
from src.agent.model import build_chat_model
from src.agent.model_call import stream_reply
from src.agent.prompts import SYSTEM_PROMPT
from src.agent.state import VeraState
from src.agent.tool_errors import describe_tool_error, track_tool_call
from src.agent.tools import build_tools
from src.config.settings import Settings, get_settings

logger = logging.getLogger(__name__)


def turn_so_far(messages: Sequence[BaseMessage]) -> tuple[int, int]:
    """(model replies, tool calls) of the current turn: the messages after the last user
    message."""
    steps = calls = 0
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            break
        if isinstance(message, AIMessage):
            steps += 1
            calls += len(message.tool_calls) + len(message.invalid_tool_calls)
    return steps, calls


def _limit(reason: str) -> TurnLimitError:
    logger.warning("turn limit reached: %s", reason)
    return TurnLimitError(reason)


def build_graph(
    settings: Settings | None = None,
    *,
    model: BaseChatModel | None = None,
    tools: list[BaseTool] | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    model_health: ModelHealth | None = None,
) -> CompiledStateGraph:
    """Compile the graph; model and tools default to the ones the settings select.
    `model_health` (for `/health`) learns whether the provider accepts the calls."""
    settings = settings or get_settings()
    tools = tools if tools is not None else build_tools(settings)
    bound = (model or build_chat_model(settings)).bind_tools(tools)
    health = model_health or ModelHealth()
    max_messages = settings.agent_max_context_messages
    max_steps = settings.agent_max_model_steps_per_turn
    max_calls = settings.agent_max_tool_calls_per_turn

    async def call_model(state: VeraState, config: RunnableConfig) -> dict:
        steps, calls = turn_so_far(state["messages"])
        if steps >= max_steps:
            raise _limit(f"the turn already made {steps} model calls (max {max_steps})")
        window = select_window(state["messages"], max_messages)
        try:
            reply = await stream_reply(
                bound,
                [SystemMessage(SYSTEM_PROMPT), *window],
                config,
                idle=settings.agent_timeout_seconds,
                total=settings.agent_call_timeout_seconds,
            )
        except ModelRejectedError as exc:
            health.failed(exc)
            logger.error("model call rejected: %s", exc)  # status and provider code only
            raise
        except (ModelIncompleteError, ModelInvalidOutputError) as exc:
            health.accepted()  # the provider took the call; its answer was unusable
            logger.warning("model reply not used: %s", exc)
            raise
        health.accepted()
        if reply.tool_calls and steps + 1 >= max_steps:
            raise _limit(f"tool calls at the turn's last model step (max {max_steps} steps)")
        if calls + len(reply.tool_calls) > max_calls:
            raise _limit(
                f"{calls + len(reply.tool_calls)} tool calls in the turn (max {max_calls})"
            )
        return {"messages": [reply]}

    builder = StateGraph(VeraState)
    builder.add_node("model", call_model)
    # ToolNode runs one turn's tool calls concurrently and turns failures into tool messages
    # with a short human text (and a WARNING log line): see `src.agent.tool_errors`.
    tool_node = ToolNode(
        tools, handle_tool_errors=describe_tool_error, awrap_tool_call=track_tool_call
    )
    builder.add_node("tools", tool_node)
    builder.add_edge(START, "model")
    confirm = frozenset(settings.agent_confirm_tools)
    if confirm:
        unknown = confirm - {tool.name for tool in tools}
        if unknown:
            raise ValueError(
                f"AGENT_CONFIRM_TOOLS names unknown tools: {', '.join(sorted(unknown))}"
            )
        builder.add_node("approve", make_approve_node(confirm), destinations=("tools", "model"))
        builder.add_conditional_edges(
            "model", route_after_model(confirm), {"approve": "approve", "tools": "tools", END: END}
        )
    else:
        builder.add_conditional_edges("model", tools_condition, {"tools": "tools", END: END})
    builder.add_edge("tools", "model")
    graph = builder.compile(checkpointer=checkpointer, name="vera")
    # A backstop only: the step limit above ends a turn long before this many supersteps.
    return graph.with_config(recursion_limit=(3 if confirm else 2) * max_steps + 5)
