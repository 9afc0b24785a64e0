"""Plain transcript elements are rebuilt without pydantic's validation
(`plain_messages.py`): the message must be the very instance validation builds."""

from __future__ import annotations

import itertools

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import model_validator

from src.agent.memory import transcript
from src.agent.memory.plain_messages import BUILDERS, PlainBuilder, _checked, same_instance
from src.agent.memory.transcript import element_to_message, message_to_element

SERDE = JsonPlusSerializer()
CONTENTS = ["", "hi", "été ✓ 漢字", '{"tool_calls": [{"name": "f"}]}', "long " * 2000]


def slow(element: dict[str, object]) -> BaseMessage:
    """The message as validation builds it (no plain builders)."""
    saved = dict(transcript.BUILDERS)
    transcript.BUILDERS.clear()
    try:
        return element_to_message(element, SERDE)
    finally:
        transcript.BUILDERS.update(saved)


def messages() -> list[BaseMessage]:
    out: list[BaseMessage] = []
    for content, msg_id, name in itertools.product(CONTENTS, [None, "m-1"], [None, "bob"]):
        out += [
            HumanMessage(content, id=msg_id, name=name),
            AIMessage(content, id=msg_id, name=name),
            SystemMessage(content, id=msg_id, name=name),
            ToolMessage(content, tool_call_id="call-1", id=msg_id, name=name),
        ]
    return out


def test_the_installed_message_classes_all_have_a_builder() -> None:
    """The fast path is in use for the four common classes (the import-time check passed)."""
    assert set(BUILDERS) == {AIMessage, HumanMessage, SystemMessage, ToolMessage}


@pytest.mark.parametrize("message", messages(), ids=repr)
def test_a_plain_element_rebuilds_the_instance_validation_builds(message: BaseMessage) -> None:
    element = message_to_element(message, SERDE)
    fast = element_to_message(element, SERDE)
    expected = slow(element)
    assert same_instance(fast, expected)
    assert fast == message and fast.model_fields_set == expected.model_fields_set
    assert fast.model_dump() == expected.model_dump()
    assert fast.model_dump(exclude_unset=True) == expected.model_dump(exclude_unset=True)
    assert SERDE.dumps_typed(fast) == SERDE.dumps_typed(expected)


def test_each_message_gets_its_own_empty_values() -> None:
    element = message_to_element(AIMessage("a", id="a1"), SERDE)
    one, two = element_to_message(element, SERDE), element_to_message(element, SERDE)
    assert isinstance(one, AIMessage) and isinstance(two, AIMessage)
    one.additional_kwargs["x"] = 1
    one.tool_calls.append({"name": "f", "args": {}, "id": "c", "type": "tool_call"})
    assert two.additional_kwargs == {} and two.tool_calls == []
    assert BUILDERS[AIMessage].defaults["additional_kwargs"] == {}


def test_elements_that_are_not_plain_are_validated() -> None:
    """Other fields, a non-string value, an extra key or a missing required one: the
    slow path's answer (extras kept as extras, a refusal as a refusal)."""
    rich = AIMessage(
        "a",
        id="a1",
        tool_calls=[{"name": "f", "args": {"x": 1}, "id": "c1", "type": "tool_call"}],
        usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
    )
    assert element_to_message(message_to_element(rich, SERDE), SERDE) == rich
    listed = HumanMessage(["a", {"type": "text", "text": "b"}], id="h1")
    assert element_to_message(message_to_element(listed, SERDE), SERDE) == listed
    extra = {"type": "human", "content": "hi", "tool_call_id": "c1", "id": "h1"}
    assert same_instance(element_to_message(extra, SERDE), slow(extra))
    assert element_to_message(extra, SERDE).__pydantic_extra__ == {"tool_call_id": "c1"}
    missing = {"type": "tool", "content": "r", "tool_call_id": None}
    with pytest.raises(Exception) as refused:
        slow(missing)
    with pytest.raises(type(refused.value)):
        element_to_message(missing, SERDE)
    numeric = {"type": "tool", "content": "r", "tool_call_id": 7}
    assert same_instance(element_to_message(numeric, SERDE), slow(numeric))


def test_a_class_whose_validation_changes_the_values_gets_no_builder() -> None:
    """The import-time check refuses a class the builder would not reproduce."""

    class Shouting(HumanMessage):
        @model_validator(mode="after")
        def shout(self) -> Shouting:
            if isinstance(self.content, str):
                self.content = self.content.upper()
            return self

    assert _checked(Shouting) is None
    assert isinstance(_checked(HumanMessage), PlainBuilder)
