"""The message cache's accounting of one message (`session_log.element_bytes`): pure logic."""

from __future__ import annotations

from src.agent.memory.session_log import (
    CONTAINER_BYTES,
    ITEM_BYTES,
    MESSAGE_BYTES,
    element_bytes,
    structure_bytes,
    text_bytes,
)


def test_structure_bytes_counts_every_nested_dict_and_list_and_their_items() -> None:
    assert structure_bytes("text") == structure_bytes(7) == structure_bytes(None) == 0
    assert structure_bytes({}) == CONTAINER_BYTES
    assert structure_bytes({"a": 1, "b": [1, 2]}) == 2 * CONTAINER_BYTES + 4 * ITEM_BYTES


def test_a_plain_message_costs_its_fixed_part_and_a_share_of_its_text() -> None:
    element = {"role": "user", "content": "hi", "tool_calls": None, "type": "human"}
    assert element_bytes(element, 0) == MESSAGE_BYTES
    assert element_bytes(element, 1000) == MESSAGE_BYTES + 1000


def test_metadata_tool_calls_and_content_blocks_cost_their_structure() -> None:
    plain = {"role": "assistant", "content": "ok", "type": "ai"}
    rich = {
        **plain,
        "content": [{"type": "text", "text": "ok"}],
        "tool_calls": [{"name": "f", "args": {"x": 1}, "id": "c1"}],
        "data": {"usage_metadata": {"input_tokens": 1, "output_tokens": 2}},
    }
    nested = sum(structure_bytes(rich[k]) for k in ("content", "tool_calls", "data"))
    assert element_bytes(rich, 100) == element_bytes(plain, 100) + nested
    assert nested == 7 * CONTAINER_BYTES + 11 * ITEM_BYTES


def test_text_bytes_is_the_memory_of_the_string_by_its_widest_character() -> None:
    assert text_bytes(None) == text_bytes("") == 0
    ascii_text, wide = "a" * 1000, "日" * 1000
    assert 1000 < text_bytes(ascii_text) < 1100
    assert 2000 < text_bytes(wide) < 2100  # two bytes per character
    assert text_bytes("😀" * 1000) > 4000
