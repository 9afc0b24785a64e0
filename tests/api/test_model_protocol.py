"""A misbehaving model, found with a faithful OpenAI-protocol server in front of the real
`ChatOpenAI`: invalid tool-call arguments, streams cut short, slow and stalled streams,
and a provider that rejects the request (issue "Turns that survive anything", point 5)."""

from __future__ import annotations

import time
import uuid

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from src.agent.graph import build_graph
from src.agent.memory import ConversationCheckpointer
from tests.api_harness import chat, settings_for
from tests.fake_openai import FakeOpenAI, Reply, answer, names, transcript, vera
from tests.fakes import FakeModel

# -- a) tool-call arguments that are not valid JSON -----------------------------------


@pytest.mark.parametrize("arguments", ['{"city": "Mont', '{"city": Montevideo}'])
async def test_invalid_tool_arguments_fail_the_turn_and_the_session_recovers(
    database_dsn: str, arguments: str
) -> None:
    fake = FakeOpenAI(
        Reply(tool_calls=[("call_bad", "get_weather", arguments)], pieces=3),
        Reply(text="Hello! How can I help?"),
    )
    async with vera(database_dsn, fake) as client:
        sid = str(uuid.uuid4())
        first = await chat(client, sid, "Weather in Montevideo?")
        assert names(first) == ["session", "error"]  # no tool ran on broken arguments
        assert first[-1].data["code"] == "llm_invalid_output"
        second = await chat(client, sid, "Hello")
        assert names(second) == ["session", "done"], second[-1].data
        assert answer(second) == "Hello! How can I help?"
        assert fake.rejected == []  # the provider never saw an unanswered tool call
        roles = [m["role"] for m in await transcript(client, sid)]
        assert roles == ["user", "user", "assistant"]  # the invalid reply was not kept


async def test_a_stored_invalid_tool_call_is_answered_by_a_stand_in(
    database_dsn: str, saver: ConversationCheckpointer
) -> None:
    # A session stored before this fix (or edited in Studio): an assistant message whose
    # only tool call has arguments that are not JSON, and no result for it.
    sid = str(uuid.uuid4())
    bad = {"name": "get_weather", "args": '{"city": Mont', "id": "call_old", "error": "bad"}
    graph = build_graph(settings_for(database_dsn), model=FakeModel(), checkpointer=saver)
    history = [HumanMessage("Weather in Montevideo?"), AIMessage("", invalid_tool_calls=[bad])]
    await graph.aupdate_state(
        {"configurable": {"thread_id": sid}}, {"messages": history}, as_node="model"
    )
    fake = FakeOpenAI(Reply(text="Sorry about that. Hello!"))
    async with vera(database_dsn, fake) as client:
        events = await chat(client, sid, "Hello")
        assert names(events) == ["session", "done"], events[-1].data
        assert fake.rejected == []
        [stand_in] = fake.tool_results(0)
        assert stand_in["tool_call_id"] == "call_old" and "invalid" in stand_in["content"]


# -- b) a stream that ends before finish_reason / [DONE] ------------------------------

CUT_SHORT = {
    "text ends cleanly": Reply(text="The answer is forty-two", pieces=4, cut_after=3),
    "tool arguments cut": Reply(
        tool_calls=[("call_cut", "get_weather", '{"city": "Montevideo"}')], pieces=4, cut_after=4
    ),
    "connection dropped": Reply(text="The answer is forty-two", pieces=4, break_after=3),
}


@pytest.mark.parametrize("reply", CUT_SHORT.values(), ids=CUT_SHORT.keys())
async def test_a_stream_cut_short_is_a_failed_turn_and_a_resend_retries_it(
    database_dsn: str, reply: Reply
) -> None:
    fake = FakeOpenAI(reply, Reply(text="Complete answer."))
    async with vera(database_dsn, fake) as client:
        sid = str(uuid.uuid4())
        first = await chat(client, sid, "Tell me")
        assert names(first) == ["session", "error"]  # no tool_call: nothing was run
        assert first[-1].data["code"] == "llm_incomplete"
        assert [m["role"] for m in await transcript(client, sid)] == ["user"]
        retried = await chat(client, sid, "Tell me")
        assert names(retried) == ["session", "done"] and answer(retried) == "Complete answer."
        stored = [(m["role"], m["content"]) for m in await transcript(client, sid)]
        assert stored == [("user", "Tell me"), ("assistant", "Complete answer.")]
        assert retried[-1].data["usage"]["total_tokens"] == 18


async def test_complete_reports_an_incomplete_stream_as_502(database_dsn: str) -> None:
    fake = FakeOpenAI(Reply(text="Half an ans", pieces=4, cut_after=2))
    async with vera(database_dsn, fake) as client:
        body = {"session_id": str(uuid.uuid4()), "message": "Tell me"}
        response = await client.post("/chat/complete", json=body)
        assert response.status_code == 502 and response.json()["code"] == "llm_incomplete"


# -- c) idle timeout and whole-call cap -----------------------------------------------


async def test_a_slow_but_steady_stream_outlives_the_idle_timeout(database_dsn: str) -> None:
    text = "one two three four five six seven eight nine ten eleven twelve"
    fake = FakeOpenAI(Reply(text=text, pieces=12, every=0.2))  # ~3 s, a chunk per 0.2 s
    async with vera(
        database_dsn, fake, agent_timeout_seconds=1.0, agent_call_timeout_seconds=30
    ) as client:
        started = time.monotonic()
        events = await chat(client, str(uuid.uuid4()), "Count")
        assert names(events) == ["session", "done"], events[-1].data
        assert answer(events) == text
        assert time.monotonic() - started > 2.0  # longer than twice the idle timeout


async def test_a_stalled_stream_times_out_after_the_idle_timeout(database_dsn: str) -> None:
    fake = FakeOpenAI(Reply(text="I am thinking about it", pieces=4, stall_after=2))
    async with vera(
        database_dsn, fake, agent_timeout_seconds=0.5, agent_call_timeout_seconds=60
    ) as client:
        started = time.monotonic()
        events = await chat(client, str(uuid.uuid4()), "Think")
        assert names(events) == ["session", "error"]
        assert events[-1].data["code"] == "llm_timeout"
        assert time.monotonic() - started < 20  # the idle timeout, far from the 60 s cap


async def test_a_steady_stream_is_cut_at_the_whole_call_cap(database_dsn: str) -> None:
    fake = FakeOpenAI(Reply(text="word " * 100, pieces=100, every=0.1))  # ~10 s
    async with vera(
        database_dsn, fake, agent_timeout_seconds=2.0, agent_call_timeout_seconds=1.5
    ) as client:
        started = time.monotonic()
        events = await chat(client, str(uuid.uuid4()), "Talk")
        assert names(events) == ["session", "error"]
        assert events[-1].data["code"] == "llm_timeout"
        assert time.monotonic() - started < 8


# -- d) the provider rejects the request ----------------------------------------------

REJECTIONS = {
    "bad key (401)": ({"openai_api_key": "sk-wrong-secret-value"}, None),
    "unknown model (404)": ({"agent_model": "gpt-nope"}, None),
    "bad request (400)": ({}, Reply(status=400)),
}


@pytest.mark.parametrize(("overrides", "reply"), REJECTIONS.values(), ids=REJECTIONS.keys())
async def test_provider_rejections_are_llm_rejected(
    database_dsn: str, overrides: dict, reply: Reply | None
) -> None:
    fake = FakeOpenAI(*([reply, reply] if reply else []))
    async with vera(database_dsn, fake, **overrides) as client:
        sid = str(uuid.uuid4())
        events = await chat(client, sid, "Hello")
        assert names(events) == ["session", "error"]
        error = events[-1].data
        assert error["code"] == "llm_rejected"
        assert "sk-" not in error["message"] and "again to retry" not in error["message"]
        response = await client.post("/chat/complete", json={"session_id": sid, "message": "Hi"})
        assert response.status_code == 502 and response.json()["code"] == "llm_rejected"
        assert "sk-" not in response.text


async def test_health_shows_the_model_rejected_until_a_call_succeeds(database_dsn: str) -> None:
    fake = FakeOpenAI()
    async with vera(database_dsn, fake, openai_api_key="sk-revoked-key-123") as client:
        before = (await client.get("/health")).json()
        assert before["model_status"] == "unknown"
        events = await chat(client, str(uuid.uuid4()), "Hello")
        assert events[-1].data["code"] == "llm_rejected"
        health = await client.get("/health")
        assert health.status_code == 200  # the database is fine; the body tells the rest
        report = health.json()
        assert report["model_status"] == "rejected" and report["model_status_since"]
        assert "401" in report["model_error"] and "sk-" not in health.text
        await fake_accepts(fake, "sk-revoked-key-123")
        assert (await chat(client, str(uuid.uuid4()), "Hello"))[-1].event == "done"
        report = (await client.get("/health")).json()
        assert report["model_status"] == "ok" and report["model_error"] is None


async def fake_accepts(fake: FakeOpenAI, key: str) -> None:
    """The provider now accepts `key` (the operator fixed the account)."""
    fake.key = key
