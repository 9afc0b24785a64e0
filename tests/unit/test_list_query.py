"""List cursors: `sql.list_query` (the WHERE clause of one page of `alist` and its
parameters, from `sql.ListPage.of` an `alist` call's arguments, in the style of the
official saver's tests of its own query building) and the cursors of `GET /sessions`."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from src.agent.memory.jsonb import dumps_jsonb
from src.agent.memory.sql import ListPage, list_query
from src.agent.memory.threads import session_id_for
from src.api.session_directory import decode_cursor, encode_cursor

THREAD = "5b0c4d52-8d1b-4b51-9a35-0f3c1f9b8a11"


def where(query: str) -> str:
    """The WHERE clause of the inner select (empty without one)."""
    inner = query.split("SELECT * FROM checkpoints c", 1)[1].split("ORDER BY", 1)[0]
    return inner.strip()


def build(config=None, filter=None, before=None, cursor=None, page=10):
    return list_query(replace(ListPage.of(config, filter, before, page), cursor=cursor))


def test_no_condition_lists_everything_newest_first() -> None:
    query, args = build()
    assert where(query) == ""
    assert (
        "ORDER BY c.checkpoint_id DESC, c.session_id DESC, c.checkpoint_ns DESC LIMIT $1" in query
    )
    assert args == [10]


def test_a_thread_becomes_its_session_id() -> None:
    query, args = build({"configurable": {"thread_id": THREAD.upper()}})
    assert where(query) == "WHERE c.session_id = $1"
    assert args == [uuid.UUID(THREAD), 10]


def test_a_non_uuid_thread_id_maps_to_its_stable_session_id() -> None:
    _, args = build({"configurable": {"thread_id": "1"}})
    assert args[0] == session_id_for("1") and args[0].version == 5


def test_namespace_checkpoint_and_before() -> None:
    config = {"configurable": {"thread_id": THREAD, "checkpoint_ns": "", "checkpoint_id": "c9"}}
    query, args = build(config, before={"configurable": {"checkpoint_id": "c5"}})
    assert where(query) == (
        "WHERE c.session_id = $1 AND c.checkpoint_ns = $2 AND c.checkpoint_id = $3 "
        "AND c.checkpoint_id < $4"
    )
    assert args == [uuid.UUID(THREAD), "", "c9", "c5", 10]


def test_no_namespace_means_every_namespace() -> None:
    query, _ = build({"configurable": {"thread_id": THREAD}})
    assert "checkpoint_ns" not in where(query)


def test_a_metadata_filter_is_one_jsonb_containment_parameter() -> None:
    query, args = build(filter={"source": "loop", "text": "nul \x00"})
    assert where(query) == "WHERE c.metadata @> $1::jsonb"
    assert args[0] == dumps_jsonb({"source": "loop", "text": "nul \x00"})
    assert "\\u0000" not in args[0]  # stored escaped, so the filter is escaped alike


def test_the_cursor_resumes_strictly_after_the_last_row_of_the_page() -> None:
    sid = uuid.uuid4()
    query, args = build(cursor=("c3", sid, "ns"), page=2)
    assert where(query) == "WHERE (c.checkpoint_id, c.session_id, c.checkpoint_ns) < ($1, $2, $3)"
    assert args == ["c3", sid, "ns", 2]


def test_values_are_parameters_never_sql_text() -> None:
    hostile = "x'; DROP TABLE checkpoints; --"
    query, args = build(
        {"configurable": {"thread_id": hostile, "checkpoint_ns": hostile}},
        filter={hostile: hostile},
    )
    assert hostile not in query and "DROP" not in query
    assert hostile in args


def test_session_list_cursors_round_trip_and_refuse_anything_else() -> None:
    sid = uuid.uuid4()
    at = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at, sid)) == (at, sid)
    for bad in ("", "null", "12-xyz", f"1-{sid.hex}-2", f"-1-{sid.hex}"):
        with pytest.raises(ValueError, match="not a cursor"):
            decode_cursor(bad)


def test_the_root_namespace_is_a_condition_and_an_empty_id_or_before_is_none() -> None:
    config = {"configurable": {"thread_id": THREAD, "checkpoint_ns": "", "checkpoint_id": ""}}
    query, args = build(config, before={"configurable": {"checkpoint_id": ""}})
    assert where(query) == "WHERE c.session_id = $1 AND c.checkpoint_ns = $2"
    assert args == [uuid.UUID(THREAD), "", 10]
