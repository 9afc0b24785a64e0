"""The graphs this server runs and their fixed assistants: one per graph of `langgraph.json`,
with the id `langgraph dev` gives it (a UUIDv5 of the graph id), so a client that stored
an assistant id from one server finds it on the other."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

# The graph ids of `langgraph.json` (a test holds the two equal); each is served by the
# app's one graph (`src/agent/graph.py`).
GRAPH_IDS = ("vera",)
GRAPH_ID = GRAPH_IDS[0]
# `langgraph dev`'s namespace of the assistants it makes for the graphs of `langgraph.json`.
ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")

# When this process started: the assistants' creation time (they are not stored).
STARTED_AT = datetime.now(UTC)


def assistant_id_of(graph_id: str) -> uuid.UUID:
    return uuid.uuid5(ASSISTANT_NAMESPACE, graph_id)


def assistant_of(graph_id: str) -> dict[str, Any]:
    """The fixed assistant of a graph, as `GET /assistants/{id}` answers it."""
    return {
        "assistant_id": assistant_id_of(graph_id),
        "graph_id": graph_id,
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "name": graph_id,
        "created_at": STARTED_AT,
        "updated_at": STARTED_AT,
        "version": 1,
        "description": None,
    }


def graph_id_for(assistant_id: str) -> str | None:
    """The graph an assistant id (or a graph id, which clients may send instead) names."""
    for graph_id in GRAPH_IDS:
        if assistant_id.lower() in (graph_id, str(assistant_id_of(graph_id))):
            return graph_id
    return None


# What every thread with a checkpoint carries in its metadata: its graph and assistant.
IMPLIED_METADATA = {"graph_id": GRAPH_ID, "assistant_id": str(assistant_id_of(GRAPH_ID))}
