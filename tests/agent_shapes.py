"""The shape of an Agent Server API answer, to compare Vera's with `langgraph dev`'s: key
sets and JSON types, ignoring ids, times and the free-form parts (metadata, state values,
configs, JSON schemas), whose keys are the graph's and the caller's, not the protocol's."""

from __future__ import annotations

from typing import Any

# Keys whose values are free-form: compared by JSON type only.
FREE_FORM = frozenset(
    {
        "metadata",
        "values",
        "config",
        "context",
        "result",
        "configurable",
        "checkpoint_map",
        "input_schema",
        "output_schema",
        "state_schema",
        "config_schema",
        "context_schema",
        "data",
        "flags",
        "host",
        "services",
    }
)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string"}.get(
        type(value), "object" if isinstance(value, dict) else "array"
    )


def _merge(a: Any, b: Any) -> Any:
    """One shape for two list elements: dicts by the union of their keys."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _merge(a[k], b[k]) if k in a and k in b else a.get(k, b.get(k)) for k in a | b}
    return a if a != "null" else b


def shape(value: Any) -> Any:
    """`value`'s shape: a dict's keys with their shapes, a list's elements' shapes merged
    into one (dicts: the union of their keys), a scalar's JSON type."""
    if isinstance(value, dict):
        return {
            key: json_type(item) if key in FREE_FORM else shape(item)
            for key, item in sorted(value.items())
        }
    if isinstance(value, list):
        merged: Any = None
        for item in value:
            merged = shape(item) if merged is None else _merge(merged, shape(item))
        return [] if merged is None else [merged]
    return json_type(value)


def differences(ours: Any, theirs: Any, path: str = "$") -> list[str]:
    """Where two answers' shapes differ, one line each (an empty list on either side, or
    null against a type, is not a difference)."""
    return _diff(shape(ours), shape(theirs), path)


def _diff(a: Any, b: Any, path: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = [f"{path}.{k}: only Vera's" for k in sorted(a.keys() - b.keys())]
        found += [f"{path}.{k}: only langgraph dev's" for k in sorted(b.keys() - a.keys())]
        for key in sorted(a.keys() & b.keys()):
            found += _diff(a[key], b[key], f"{path}.{key}")
        return found
    if isinstance(a, list) and isinstance(b, list):
        return _diff(a[0], b[0], f"{path}[]") if a and b else []
    if a != b and "null" not in (a, b):
        return [f"{path}: Vera's {a!r}, langgraph dev's {b!r}"]
    return []
