"""The saver's branches as a chat product shows them (issue 25, point 2): a fork from the
checkpoint before a message (`afork_point`) makes the new branch the transcript, the
alternatives at each position are listed (`branch_points`), and `aswitch_branch` shows
another branch again; every message is stored once throughout."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from src.agent.memory import ConversationCheckpointer, session_id_for
from src.agent.memory.branch_ops import BranchPoint, Tip, branch_points, pick_fork_point
from tests.support import cfg, chat_graph, run_turns


def test_branch_points_of_a_regenerated_answer_and_an_edited_question() -> None:
    shown = [0, 1, 2, 5]  # 5 regenerated the answer 3; 6 edited the first question
    tips = [Tip("c9", [6, 7]), Tip("c8", shown), Tip("c4", [0, 1, 2, 3]), Tip("c1", [0])]
    assert branch_points("c8", shown, tips) == [
        BranchPoint(0, 0, ["c8", "c9"]),
        BranchPoint(3, 1, ["c4", "c8"]),
    ]
    assert branch_points("c8", shown, [Tip("c8", shown)]) == []


def test_the_fork_point_is_the_oldest_checkpoint_holding_exactly_the_prefix() -> None:
    chain: list[tuple[str, list[int] | None]] = [
        ("c5", [0, 1, 2, 3]),
        ("c4", [0, 1, 2]),
        ("c3", [0, 1]),
        ("c2", [0, 1]),
        ("c1", [0]),
        ("c0", []),
    ]
    assert pick_fork_point(chain, [0, 1]) == "c2"
    assert pick_fork_point(chain, []) == "c0"
    assert pick_fork_point(chain, [0, 1, 2, 3]) == "c5"
    assert pick_fork_point(chain, [0, 9]) is None


async def _stored(saver: ConversationCheckpointer, thread: str) -> tuple[list[Any], int]:
    """The transcript's (role, content, id), and how many messages the session stores."""
    sid = session_id_for(thread)
    shown = await saver.store.get_messages(sid) or []
    others = await saver.store.pool.fetchval(
        "SELECT count(*) FROM conversation_messages WHERE session_id = $1", sid
    )
    return [(m["role"], m["content"], m["id"]) for m in shown], len(shown) + others


async def _fork(graph: Any, saver: Any, thread: str, position: int, message: Any) -> None:
    point = await saver.afork_point(thread, position)
    assert point is not None
    config = {"configurable": {"thread_id": thread, "checkpoint_id": point}}
    await graph.ainvoke({"messages": [message]}, config)


async def test_regenerate_edit_and_switch_back_store_each_message_once(saver) -> None:
    graph = chat_graph(saver)
    thread = str(uuid.uuid4())
    await run_turns(graph, thread, 2)
    first, stored = await _stored(saver, thread)
    assert stored == 4 and await saver.branch_points(thread) == []

    # Regenerate the last answer: the same question (the same message) from before it.
    question = (await graph.aget_state(cfg(thread))).values["messages"][2]
    await _fork(graph, saver, thread, 2, question)
    regenerated, stored = await _stored(saver, thread)
    assert regenerated[:3] == first[:3] and regenerated[3] != first[3]
    assert stored == 5  # only the new answer
    [point] = await saver.branch_points(thread)
    assert (point.position, point.index, point.count) == (3, 1, 2)

    # Edit the first question: a new branch from the session's first checkpoint.
    await _fork(graph, saver, thread, 0, HumanMessage("edited"))
    edited, stored = await _stored(saver, thread)
    assert edited[0][:2] == ("user", "edited") and len(edited) == 2 and stored == 7
    [point] = await saver.branch_points(thread)
    assert (point.position, point.index, point.count) == (0, 1, 2)

    # Back to the first question's branch (its newest tip: the regenerated answer), then to
    # the first answer.
    await saver.aswitch_branch(thread, point.tips[0])
    assert (await _stored(saver, thread)) == (regenerated, 7)
    points = await saver.branch_points(thread)
    assert [(p.position, p.index, p.count) for p in points] == [(0, 0, 2), (3, 1, 2)]
    await saver.aswitch_branch(thread, points[1].tips[0])
    assert (await _stored(saver, thread)) == (first, 7)
    points = await saver.branch_points(thread)
    assert [(p.position, p.index, p.count) for p in points] == [(0, 0, 2), (3, 0, 2)]

    # The next turn goes on from the branch shown.
    await graph.ainvoke({"messages": [HumanMessage("and then?")]}, cfg(thread))
    after, stored = await _stored(saver, thread)
    assert after[:4] == first and after[4][:2] == ("user", "and then?") and stored == 9


async def test_switching_to_an_unknown_checkpoint_is_refused(saver) -> None:
    thread = str(uuid.uuid4())
    await run_turns(chat_graph(saver), thread, 1)
    with pytest.raises(KeyError):
        await saver.aswitch_branch(thread, "1ef00000-0000-6000-8000-000000000000")
    assert await saver.afork_point(thread, 5) is None
    assert await saver.afork_point(str(uuid.uuid4()), 0) is None
