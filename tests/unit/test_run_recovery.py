"""`run_recovery`'s pure decisions: how a run whose worker died goes on (`recovery_of`), and
what it runs again, from what its row recorded (`spec_of`)."""

from __future__ import annotations

import pytest
from langgraph.types import Command

from src.api.agent_server.run_recovery import (
    MAX_ATTEMPTS,
    Recovery,
    paused_at,
    recovery_of,
    spec_of,
)


@pytest.mark.parametrize(
    ("ran", "latest", "unfinished", "expected"),
    [
        (False, False, False, Recovery("rerun")),  # killed before its first checkpoint
        (True, True, True, Recovery("resume")),  # killed mid-run: on from its checkpoint
        (True, True, False, Recovery("ended", "success")),  # done, its end not recorded
        (True, False, False, Recovery("ended", "success")),
        (True, False, True, Recovery("ended", "error")),  # another turn wrote on top of it
    ],
)
def test_a_taken_over_run_goes_on_from_what_it_stored(
    ran: bool, latest: bool, unfinished: bool, expected: Recovery
) -> None:
    assert recovery_of(2, ran, latest, unfinished) == expected


def test_a_run_that_stopped_for_the_user_ends_interrupted_instead_of_going_past_the_stop() -> None:
    assert recovery_of(2, True, True, True, paused=True) == Recovery("ended", "interrupted")
    assert recovery_of(2, True, False, True, paused=True) == Recovery("ended", "error")


@pytest.mark.parametrize(
    ("before", "after", "next_nodes", "step", "asked", "expected"),
    [
        (None, None, ["model"], 1, True, True),  # an interrupt() asked the user
        (None, None, ["model"], 1, False, False),  # killed mid-run
        (["tools"], None, ["tools"], 2, False, True),
        (["tools"], None, ["model"], 2, False, False),
        ("*", None, ["model"], 0, False, True),
        (None, "*", ["model"], 0, False, True),
        (None, "*", ["__start__"], -1, False, False),  # only its input stored yet
        ("*", None, [], 3, False, False),
    ],
)
def test_a_breakpoint_or_an_interrupt_is_where_a_run_stopped_for_the_user(
    before: object, after: object, next_nodes: list[str], step: int, asked: bool, expected: bool
) -> None:
    kwargs = {"interrupt_before": before, "interrupt_after": after}
    assert paused_at(kwargs, next_nodes, step, asked) is expected


def test_past_the_attempts_langgraph_api_allows_a_run_ends_error() -> None:
    assert MAX_ATTEMPTS == 3  # langgraph-api's BG_JOB_MAX_RETRIES default
    assert recovery_of(MAX_ATTEMPTS, True, True, True).how == "resume"
    assert recovery_of(MAX_ATTEMPTS + 1, True, True, True).how == "exceeded"
    assert recovery_of(MAX_ATTEMPTS + 1, False, False, False).how == "exceeded"


KWARGS = {
    "input": {"messages": [{"role": "user", "content": "Hi"}]},
    "command": None,
    "config": {
        "configurable": {
            "run_id": "r",
            "thread_id": "t",
            "graph_id": "vera",
            "assistant_id": "a",
            "checkpoint_id": "c1",
            "checkpoint_ns": "",
            "user_key": 1,
        },
        "metadata": {"graph_id": "vera", "run_id": "r"},
        "tags": ["x"],
    },
    "context": {},
    "stream_mode": ["values", "updates"],
    "interrupt_before": ["tools"],
    "interrupt_after": None,
    "subgraphs": True,
}


def test_a_rerun_runs_the_recorded_request_again() -> None:
    spec = spec_of(KWARGS, resume=False)
    assert spec.graph_input == KWARGS["input"]
    assert spec.config["configurable"] == {
        "checkpoint_id": "c1",
        "checkpoint_ns": "",
        "user_key": 1,
    }
    assert spec.config["metadata"] == {"graph_id": "vera", "run_id": "r"}
    assert spec.config["tags"] == ["x"]
    assert (list(spec.stream_modes), spec.subgraphs) == (["values", "updates"], True)
    assert spec.astream_kwargs == {"interrupt_before": ["tools"]}


def test_a_resume_goes_on_from_the_last_checkpoint_without_input() -> None:
    spec = spec_of(KWARGS, resume=True)
    assert spec.graph_input is None
    assert spec.config["configurable"] == {"user_key": 1}  # not the fork's checkpoint again


def test_a_recorded_command_is_langgraphs_command() -> None:
    kwargs = {**KWARGS, "input": None, "command": {"resume": {"ok": True}, "goto": "model"}}
    spec = spec_of(kwargs, resume=False)
    assert isinstance(spec.graph_input, Command)
    assert (spec.graph_input.resume, spec.graph_input.goto) == ({"ok": True}, "model")
