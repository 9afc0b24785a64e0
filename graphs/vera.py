"""Entry point for LangGraph Studio (`langgraph dev`): the compiled graph, no checkpointer.

The platform attaches our asyncpg checkpointer itself (see `langgraph.json`).
"""

from src.agent.graph import build_graph

graph = build_graph()
