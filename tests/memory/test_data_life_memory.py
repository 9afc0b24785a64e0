"""The checkpointer's part of a session's life (issue 27): `delete_sessions` deletes
threads whole in one call and says what their rows took; `branches` reads the tip of every
branch a fork leaves, with its transcript."""

from __future__ import annotations

import json
import uuid

from langchain_core.messages import HumanMessage

from src.agent.memory import ConversationCheckpointer, session_id_for
from src.agent.memory.sql import SESSION_TABLES
from tests.support import cfg, chat_graph, run_turns


async def _rows(saver: ConversationCheckpointer, sids: list[uuid.UUID]) -> dict[str, int]:
    return {
        table: await saver.store.pool.fetchval(
            f"SELECT count(*) FROM {table} WHERE session_id = ANY($1::uuid[])", sids
        )
        for table in SESSION_TABLES
    }


async def test_delete_sessions_removes_every_row_and_measures_them(saver) -> None:
    graph = chat_graph(saver)
    threads = [str(uuid.uuid4()) for _ in range(3)]
    for thread in threads:
        await run_turns(graph, thread, 2)
    await graph.aupdate_state(cfg(threads[0]), {"messages": [HumanMessage("a note")]})
    kept = str(uuid.uuid4())
    await run_turns(graph, kept, 1)
    gone = [session_id_for(t) for t in threads[:2]]
    size = await saver.store.pool.fetchval(
        "SELECT "
        + " + ".join(
            f"(SELECT COALESCE(sum(pg_column_size(t.*)), 0) FROM {table} t "
            "WHERE t.session_id = ANY($1::uuid[]))"
            for table in SESSION_TABLES
        ),
        gone,
    )
    unknown = str(uuid.uuid4())

    deleted = await saver.delete_sessions([threads[0], threads[1], threads[1], unknown])

    assert sorted(deleted.session_ids) == sorted(gone)  # once each; the unknown one: none
    assert deleted.bytes == size > 0
    assert set((await _rows(saver, gone)).values()) == {0}
    assert (await _rows(saver, [session_id_for(kept)]))["conversations"] == 1
    assert (await saver.delete_sessions([])).session_ids == []
    # The cache went with the rows: the same thread id starts afresh.
    await run_turns(graph, threads[0], 1)
    state = await graph.aget_state(cfg(threads[0]))
    assert len(state.values["messages"]) == 2


async def test_branches_are_the_tips_of_a_forked_thread(saver) -> None:
    graph = chat_graph(saver)
    thread = str(uuid.uuid4())
    await run_turns(graph, thread, 3)
    first = [s async for s in graph.aget_state_history(cfg(thread)) if not s.next][-1]
    before = json.loads(
        await saver.store.pool.fetchval(
            "SELECT messages::text FROM conversations WHERE session_id = $1",
            session_id_for(thread),
        )
    )
    await graph.aupdate_state(first.config, {"messages": [HumanMessage("take two")]})
    await graph.ainvoke(None, cfg(thread))  # nothing to run: the fork stays the head

    tips = await saver.branches(thread)

    assert [t.shown for t in tips] == [True, False]
    shown = await saver.store.get_messages(session_id_for(thread))
    assert tips[0].messages == shown and shown[-1]["content"] == "take two"
    assert tips[1].messages == before  # the three turns the fork left
    assert tips[0].created_at >= tips[1].created_at
    assert await saver.branches(str(uuid.uuid4())) == []
