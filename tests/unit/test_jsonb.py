"""JSONB escaping (`jsonb.py`): what JSONB refuses (NUL, lone surrogates) is stored with a
reversible escape, and everything else is stored as is."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from src.agent.memory.jsonb import dumps_jsonb, loads_jsonb, pg_decode, pg_encode

ESC = "\ue000"
# Any code point, lone surrogates included (hypothesis leaves them out by default).
ANY_TEXT = st.text(st.characters(exclude_categories=()))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


def storable(text: str) -> bool:
    """Whether PostgreSQL's JSONB takes this JSON text: valid UTF-8, no `\\u0000`."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\\u0000" not in text and "\x00" not in text


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("nul \x00 inside", f"nul {ESC}0 inside"),
        ("lone \udc80 surrogate", f"lone {ESC}sdc80 surrogate"),
        (f"the escape {ESC} itself", f"the escape {ESC}{ESC} itself"),
        ("\ud83d", f"{ESC}sd83d"),
    ],
)
def test_refused_characters_are_escaped_reversibly(text: str, stored: str) -> None:
    assert pg_encode(text) == stored
    assert pg_decode(stored) == text
    assert loads_jsonb(dumps_jsonb({"content": text})) == {"content": text}


def test_keys_and_nested_values_are_escaped_too() -> None:
    value = {"k\x00": ["a\x00", {"b": "\udc80"}], "plain": 1}
    assert storable(dumps_jsonb(value))
    assert loads_jsonb(dumps_jsonb(value)) == value


@pytest.mark.parametrize("text", ["plain", "emoji 🚀 and RTL مرحبا", "", "\\u0000 as text"])
def test_text_jsonb_takes_is_dumped_as_json_dumps_does(text: str) -> None:
    value = {"content": text, "n": [1, 2.5, None, True]}
    assert dumps_jsonb(value) == json.dumps(value, ensure_ascii=False)
    assert loads_jsonb(dumps_jsonb(value)) == value


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {1, 2}, b"bytes"])
def test_values_json_has_no_form_for_are_refused(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        dumps_jsonb({"x": bad})


def test_what_postgresql_prints_back_is_decoded() -> None:
    """PostgreSQL prints JSONB with the escape character as itself, and a client may send
    it as a `\\ue000` JSON escape: both decode."""
    assert loads_jsonb(json.dumps({"c": f"a{ESC}0b"}, ensure_ascii=False)) == {"c": "a\x00b"}
    assert loads_jsonb(json.dumps({"c": f"a{ESC}0b"})) == {"c": "a\x00b"}


@given(JSON_VALUES)
def test_every_value_is_stored_as_jsonb_takes_it_and_reads_back_unchanged(value) -> None:
    text = dumps_jsonb(value)
    assert storable(text)
    assert loads_jsonb(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "[-0, 0.0, -0.0, 1E+2, 1e-7, 5e-324, 1.7976931348623157e308, 0.1, 123.456]",
        "[9223372036854775807, -9223372036854775808, 18446744073709551615]",
        "[18446744073709551616, 123456789012345678901234567890, -99999999999999999999]",
        '{"n": 1' + "0" * 400 + ', "f": 0.' + "0" * 300 + "1}",  # as PostgreSQL prints 1e400
        '["NaN", NaN, Infinity, -Infinity]',  # json's literals: orjson refuses them
        '{"s": "\\ud800 lone", "t": "\\u00e9t\\u00e9", "u": "\\ue0000"}',
        '{"a": {"b": [true, false, null, "x", {"c": []}]}, "d": ""}',
        '"a digit run 12345678901234567890 inside a string"',
    ],
)
def test_loads_jsonb_reads_every_text_as_json_does(text: str) -> None:
    """The fast parser (orjson) is used only where it gives json's value exactly: big
    integers, literals and lone surrogates still read as `json.loads` reads them."""
    expected = pg_decode(json.loads(text))
    value = loads_jsonb(text)
    assert repr(value) == repr(expected)  # also int vs float, -0.0 vs 0.0


def test_loads_jsonb_refuses_what_json_refuses() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads_jsonb('{"a": ')


FLOATS = st.floats(allow_nan=False, allow_infinity=False)


@given(st.recursive(JSON_VALUES | FLOATS, lambda i: st.lists(i, max_size=4), max_leaves=12))
def test_loads_jsonb_equals_json_on_any_value(value: object) -> None:
    text = json.dumps(value)
    assert repr(loads_jsonb(text)) == repr(pg_decode(json.loads(text)))
