"""`rows.run_goes_on`: whether a checkpoint's run provably has a node left to run, so that
the transcript may wait for the run's end (see the storage model); and the writes that stop
a run."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from src.agent.memory.rows import RUN_STOP_CHANNELS, encode_writes, run_goes_on


def checkpoint(values: dict[str, Any], versions: dict[str, Any], seen: dict[str, Any]) -> Any:
    return {
        "v": 4,
        "id": "1",
        "ts": "",
        "channel_values": values,
        "channel_versions": versions,
        "versions_seen": seen,
    }


def test_a_trigger_its_node_has_not_seen_means_the_run_goes_on() -> None:
    cp = checkpoint(
        {"messages": [], "branch:to:tools": None},
        {"messages": "3", "branch:to:tools": "3"},
        {"tools": {"branch:to:tools": "1"}},
    )
    assert run_goes_on(cp, {"source": "loop"}) is True


def test_a_trigger_the_node_has_seen_means_nothing_is_left() -> None:
    cp = checkpoint(
        {"messages": [], "branch:to:model": None},
        {"messages": "4", "branch:to:model": "3"},
        {"model": {"branch:to:model": "3"}},
    )
    assert run_goes_on(cp, {"source": "loop"}) is False


def test_a_node_that_never_ran_has_seen_nothing() -> None:
    cp = checkpoint({"branch:to:model": None}, {"branch:to:model": "2"}, {})
    assert run_goes_on(cp, {"source": "loop"}) is True


def test_the_input_checkpoint_goes_on_to_start() -> None:
    cp = checkpoint({"__start__": {"messages": []}}, {"__start__": "1"}, {})
    assert run_goes_on(cp, {"source": "input"}) is True


@pytest.mark.parametrize("source", ["update", "fork", None])
def test_state_edits_and_forks_are_shown_at_once(source: str | None) -> None:
    cp = checkpoint({"branch:to:model": None}, {"branch:to:model": "2"}, {})
    assert run_goes_on(cp, {"source": source}) is False


def test_a_graph_without_trigger_channels_is_shown_at_once() -> None:
    """`Send` tasks, functional API: nothing here proves a node is left."""
    cp = checkpoint({"messages": [], "results": [1]}, {"messages": "2", "results": "2"}, {})
    assert run_goes_on(cp, {"source": "loop"}) is False


def test_versions_of_different_types_are_not_compared() -> None:
    cp = checkpoint(
        {"branch:to:model": None}, {"branch:to:model": 3}, {"model": {"branch:to:model": "2"}}
    )
    assert run_goes_on(cp, {"source": "loop"}) is False


def test_errors_and_interrupts_stop_the_run_and_replace_earlier_writes() -> None:
    serde = JsonPlusSerializer()
    assert {"__error__", "__interrupt__"} == RUN_STOP_CHANNELS
    stop = encode_writes([("__error__", ValueError("boom"))], serde)
    assert stop.run_stops and stop.replace and stop.idxs == [-1]
    plain = encode_writes([("messages", []), ("branch:to:model", None)], serde)
    assert not plain.run_stops and not plain.replace and plain.idxs == [0, 1]
