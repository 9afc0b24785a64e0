"""`session_log.plan_transcript`: which stored seqs a checkpoint's messages are, and which
are new (each message is stored once, in a session's log of every branch)."""

from __future__ import annotations

import uuid

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from src.agent.memory.session_log import SessionLog, plan_transcript
from src.agent.memory.transcript import MessageSnapshot, message_to_element

SERDE = JsonPlusSerializer()


def plan(
    log: SessionLog | None, messages: list[BaseMessage]
) -> tuple[list[int], list[dict[str, object]], list[MessageSnapshot]]:
    """The plan's seqs, new elements and their messages' snapshots."""
    made = plan_transcript(log, messages, SERDE)
    return made.seqs, made.new_elements, made.new_snapshots


def stored(*messages: BaseMessage, last: list[int] | None = None) -> SessionLog:
    """A session log holding `messages` as seqs 0, 1, ... (`last`: the last checkpoint's)."""
    log = SessionLog(uuid.uuid4())
    for message in messages:
        log.add(message_to_element(message, SERDE), MessageSnapshot(message), 100)
    log.last_seqs = last if last is not None else list(range(len(messages)))
    return log


def test_a_new_session_numbers_every_message_from_zero() -> None:
    messages = [HumanMessage("hi", id="h1"), AIMessage("hello", id="a1")]
    seqs, elements, copies = plan(None, messages)
    assert seqs == [0, 1]
    assert [e["content"] for e in elements] == ["hi", "hello"]
    assert [c == m for c, m in zip(copies, messages, strict=True)] == [True, True]


def test_messages_already_stored_are_not_stored_again() -> None:
    h1, a1 = HumanMessage("hi", id="h1"), AIMessage("hello", id="a1")
    log = stored(h1, a1)
    h2 = HumanMessage("more", id="h2")
    seqs, elements, _ = plan(log, [h1, a1, h2])
    assert seqs == [0, 1, 2]
    assert [e["content"] for e in elements] == ["more"]


def test_id_less_messages_match_by_position_in_the_last_checkpoint() -> None:
    """A plain list of messages without ids is not stored again at every step."""
    log = stored(HumanMessage("hi"), AIMessage("hello"))
    seqs, elements, _ = plan(log, [HumanMessage("hi"), AIMessage("hello")])
    assert seqs == [0, 1] and elements == []


def test_a_replaced_message_gets_a_new_seq() -> None:
    """Studio's "edit message": the same id, other content, is a new stored message."""
    log = stored(HumanMessage("hi", id="h1"), AIMessage("hello", id="a1"))
    edited = HumanMessage("hi, I am Ana", id="h1")
    seqs, elements, _ = plan(log, [edited])
    assert seqs == [2]
    assert [e["content"] for e in elements] == ["hi, I am Ana"]


def test_a_fork_from_an_older_checkpoint_reuses_the_seqs_of_its_branch() -> None:
    """The log holds every branch: a checkpoint of the first branch maps back onto it."""
    h1, a1 = HumanMessage("hi", id="h1"), AIMessage("hello", id="a1")
    other = HumanMessage("another question", id="h9")
    log = stored(h1, a1, other, last=[0, 2])  # the latest checkpoint is another branch
    seqs, elements, _ = plan(log, [h1, a1])
    assert seqs == [0, 1] and elements == []


def test_the_same_message_twice_in_one_plan_is_stored_twice() -> None:
    """Each new message gets its own seq, even when equal to another new one."""
    seqs, elements, _ = plan(None, [HumanMessage("a"), HumanMessage("a")])
    assert seqs == [0, 1] and len(elements) == 2
