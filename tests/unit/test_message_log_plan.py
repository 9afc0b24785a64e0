"""The plan of a checkpoint's transcript (`session_log.plan_transcript`: which stored seqs
its messages are, and which are new; each message is stored once, in a session's log of
every branch), and the cache taking in what a committed write stored."""

from __future__ import annotations

import uuid

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from src.agent.memory.message_log import MessageLogCache
from src.agent.memory.session_log import SessionLog, TranscriptPlan, plan_transcript
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


SID, ROW, OTHER_ROW = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def written(messages: list[BaseMessage], row: uuid.UUID = ROW) -> SessionLog:
    """The copy of a log after one committed plan of `messages` (seqs 0, 1, ...)."""
    log = SessionLog(row)
    log.record(plan_transcript(None, messages, SERDE))
    return log


def test_an_unchanged_transcript_plans_no_new_message() -> None:
    messages = [HumanMessage("hi", id="h1")]
    plan = plan_transcript(written(messages), messages, SERDE)
    assert (plan.seqs, plan.new_elements, plan.new_messages) == ([0], [], None)


def test_the_copy_takes_in_a_committed_plan() -> None:
    first = [HumanMessage("hi", id="h1")]
    log = written(first)
    plan = plan_transcript(log, [*first, AIMessage("yo", id="a1")], SERDE)
    assert log.record(plan)
    assert len(log.messages) == 2 and log.last_seqs == [0, 1]
    assert log.seq_of(AIMessage("yo", id="a1"), None) == 1
    assert log.nbytes > 0


def test_a_plan_that_starts_past_the_copy_changes_nothing() -> None:
    log = written([HumanMessage("hi", id="h1")])
    ahead = TranscriptPlan(ROW, 5, [5], [{"role": "user"}], [], "[]")
    assert not log.record(ahead)
    assert len(log.messages) == 1


def test_the_cache_takes_in_writes_of_its_conversation_only() -> None:
    cache = MessageLogCache(SERDE)
    first = plan_transcript(None, [HumanMessage("hi", id="h1")], SERDE)
    cache.record_stored(SID, ROW, first)  # a new conversation: cached from seq 0
    log = cache.peek(SID)
    assert log is not None and log.conversation_id == ROW and len(log.messages) == 1

    plan = cache.plan(SID, [HumanMessage("hi", id="h1"), AIMessage("yo", id="a1")])
    assert (plan.conversation_id, plan.next_seq, plan.seqs) == (ROW, 1, [0, 1])
    cache.record_stored(SID, OTHER_ROW, plan)  # the session was recreated meanwhile
    assert cache.peek(SID) is log and len(log.messages) == 1  # left for a read to refresh
    cache.record_stored(SID, ROW, plan)
    assert len(log.messages) == 2


def test_a_write_past_an_uncached_session_caches_nothing() -> None:
    cache = MessageLogCache(SERDE)
    plan = TranscriptPlan(ROW, 3, [0, 1, 2, 3], [{"role": "user"}], [], "[{}]")
    cache.record_stored(SID, ROW, plan)
    assert cache.peek(SID) is None and len(cache) == 0
