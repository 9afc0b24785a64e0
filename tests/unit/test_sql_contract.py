"""The contract between the checkpointer's Python and its stored functions, checked on the
source, with no database: every named-notation call names real parameters of real
functions (the statements `sql.py` builds with `FunctionCall` pass exactly their
parameters), every function is called, and each literal the two sides share is defined once
in Python and pinned here to its SQL uses."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from src.agent.memory import fencing, sql
from src.agent.memory.rows import EMPTY_BLOB_TYPE, RUN_STOP_CHANNELS
from src.agent.memory.seq_ranges import TRANSCRIPT_BLOB_TYPE

ROOT = Path(__file__).resolve().parents[2]
MEMORY = ROOT / "src" / "agent" / "memory"
FUNCTIONS = MEMORY / "functions"
_DEFINITION = re.compile(
    r"CREATE OR REPLACE FUNCTION (\w+)\((.*?)\)\s*(?:RETURNS|LANGUAGE)", re.DOTALL
)


@dataclass(frozen=True)
class Signature:
    inputs: dict[str, str]  # parameter name -> SQL type, lower case
    outputs: tuple[str, ...]


def signatures() -> dict[str, Signature]:
    found = {}
    for path in FUNCTIONS.glob("*.sql"):
        text = path.read_text(encoding="utf-8")
        match = _DEFINITION.search(text)
        assert match, path.name
        inputs, outputs = {}, []
        for param in " ".join(match[2].split()).split(", "):
            words = param.split(" ")
            if words[0] == "OUT":
                outputs.append(words[1])
            else:
                inputs[words[0]] = " ".join(words[1:]).lower()
        table = re.search(r"RETURNS TABLE \((.*?)\)", text, re.DOTALL)
        if table:
            outputs += [c.split()[0] for c in table[1].split(",")]
        found[match[1]] = Signature(inputs, tuple(outputs))
    return found


def sql_texts() -> dict[str, str]:
    """Every piece of SQL of the library: the function files and the string constants of
    its Python (a `FunctionCall`'s statement included)."""
    texts = {p.name: p.read_text(encoding="utf-8") for p in FUNCTIONS.glob("*.sql")}
    for path in MEMORY.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                texts[f"{path.name}:{node.lineno}"] = node.value
    for name in dir(sql):
        value = getattr(sql, name)
        if isinstance(value, sql.FunctionCall):
            texts[f"sql.{name}"] = value.text
    return texts


def calls_in(text: str) -> list[tuple[str, str]]:
    """(function, argument list) of each call of a `vera_` function in `text`."""
    found = []
    for match in re.finditer(r"\b(vera_\w+)\(", text):
        depth, end = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        found.append((match[1], text[match.end() : end - 1]))
    return found


def test_every_named_argument_is_a_parameter_of_the_function_called() -> None:
    known, checked = signatures(), 0
    for where, text in sql_texts().items():
        for function, args in calls_in(text):
            if re.search(rf"FUNCTION {function}\(", text):
                continue  # the definition itself
            assert function in known, f"{where} calls {function}, which functions/ lacks"
            for name in re.findall(r"\b(p_\w+)\s*=>", args):
                assert name in known[function].inputs, f"{where}: {function} has no {name}"
                checked += 1
    assert checked > 30  # the calls sql.py builds, and those between the functions


def test_the_python_calls_every_function_in_named_notation() -> None:
    for where, text in sql_texts().items():
        if where.endswith(".sql"):
            continue
        for function, args in calls_in(text):
            parts = re.split(r",(?![^(]*\))", args)
            positional = [p.strip() for p in parts if p.strip() and "=>" not in p]
            assert not positional, f"{where}: {function}({', '.join(positional)}) by position"


@pytest.mark.parametrize("name", ["PUT_CHECKPOINT", "PUT_WRITES", "LOCK_CONVERSATION"])
def test_a_function_call_passes_exactly_the_functions_parameters(name: str) -> None:
    call = getattr(sql, name)
    signature = signatures()[call.function]
    assert {f"p_{n}": t.lower() for n, t in call.params.items()} == signature.inputs
    returned = call.text.split(" FROM ", 1)[0].removeprefix("SELECT ").split(", ")
    assert set(returned) <= set(signature.outputs)


def test_a_call_refuses_a_missing_or_unknown_argument() -> None:
    with pytest.raises(TypeError, match=r"missing \['lock'\], unknown \['locked'\]"):
        sql.LOCK_CONVERSATION.args(session_id=None, locked=True)
    assert sql.LOCK_CONVERSATION.args(lock=True, session_id=1) == [1, True]
    assert sql.LOCK_CONVERSATION.text == (
        "SELECT conversation_id FROM vera_ensure_conversation("
        "p_session_id => $1::uuid, p_lock => $2::boolean)"
    )


def test_every_function_is_called() -> None:
    called = {f for text in sql_texts().values() for f, _ in calls_in(text)}
    called_outside = called | {"vera_transcript_seqs"}  # the app's session list reads it
    assert set(signatures()) <= called_outside


# Literals both sides know, each pinned to its one Python definition.
SHARED = {
    TRANSCRIPT_BLOB_TYPE: "the root transcript's blob type (seq_ranges.py)",
    EMPTY_BLOB_TYPE: "a version without a value (rows.py)",
    **{
        channel: "a write that stops the run (rows.RUN_STOP_CHANNELS)"
        for channel in RUN_STOP_CHANNELS
    },
    fencing.LEASE_LOST_SQLSTATE: "fencing.LeaseLostError",
    fencing.SESSION_LEASED_SQLSTATE: "fencing.SessionLeasedError",
    fencing.STALE_RUN_SQLSTATE: "fencing.StaleRunError",
}
# Literals of SQL itself, or of LangGraph's checkpoint format.
OWN = {"", "{}", "[]", "UTF8", "transaction_isolation", "read committed"} | set(empty_checkpoint())


def literals(text: str) -> set[str]:
    body = re.sub(r"--[^\n]*", "", text)
    body = re.sub(r"RAISE EXCEPTION\s*'(?:[^']|'')*'", "RAISE EXCEPTION", body)
    return {m.replace("''", "'") for m in re.findall(r"'((?:[^']|'')*)'", body)}


def test_the_functions_share_only_pinned_literals() -> None:
    used = set().union(*(literals(p.read_text()) for p in FUNCTIONS.glob("*.sql")))
    assert used - OWN <= set(SHARED), f"define these once in Python: {used - OWN - set(SHARED)}"
    assert set(SHARED) <= used, "a pinned literal the SQL no longer uses"


def test_the_run_stop_channels_and_the_sqlstates_match_one_for_one() -> None:
    text = "\n".join(p.read_text() for p in FUNCTIONS.glob("*.sql"))
    in_lists = re.findall(r"channel IN \(([^)]*)\)", text)
    assert [set(re.findall(r"'(\w+)'", lst)) for lst in in_lists] == [set(RUN_STOP_CHANNELS)]
    raised = set(re.findall(r"ERRCODE = '(\w+)'", text))
    assert raised == {
        fencing.LEASE_LOST_SQLSTATE,
        fencing.SESSION_LEASED_SQLSTATE,
        fencing.STALE_RUN_SQLSTATE,
    }


def _fencing_check(name: str) -> str:
    """The fencing check written out in write function `name`: from `IF p_lease IS NOT
    NULL THEN` to its own `END IF;`, whitespace folded."""
    text = (FUNCTIONS / f"{name}.sql").read_text(encoding="utf-8")
    start = text.index("IF p_lease IS NOT NULL THEN")
    depth, pos = 0, start
    for match in re.finditer(r"\bEND IF;|\bIF\b", text[start:]):
        depth += -1 if match[0] == "END IF;" else 1
        if depth == 0:
            pos = start + match.end()
            break
    return " ".join(text[start:pos].split())


def test_both_write_functions_fence_with_the_same_check() -> None:
    """The check is written out in each entry point (a nested call cost more than it ran,
    issue 28): a change to one must be made to the other."""
    checkpoint = _fencing_check("vera_put_checkpoint")
    assert "VR001" in checkpoint and "VR002" in checkpoint
    assert _fencing_check("vera_put_writes") == checkpoint
