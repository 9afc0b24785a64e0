"""The array types our statements use, made known to each new connection without asking
the server.

asyncpg knows only `oid[]` and `text[]` of the array types up front; for any other it
meets in a statement's parameters or columns (`record[]` of a checkpoint's blobs,
`integer[]` of its seqs, `bytea[]` and `uuid[]` of writes and deletes), it introspects
the server first: a recursive catalogue query, plus two `jit` settings round trips when
JIT is available, once per type set and per connection. A new process's first read paid
that twice (~10-15 ms) before its first row. These are PostgreSQL's built-in types,
whose OIDs are fixed in `pg_catalog`, so the answer the introspection would give is
written here and registered when the pool opens a connection (no round trip).
"""

from __future__ import annotations

from typing import Any

import asyncpg

# (array oid, array name, element oid, element name) of built-in pg_catalog types.
_ARRAYS = (
    (1000, "_bool", 16, "boolean"),
    (1001, "_bytea", 17, "bytea"),
    (1007, "_int4", 23, "integer"),
    (1016, "_int8", 20, "bigint"),
    (2951, "_uuid", 2950, "uuid"),
    (3807, "_jsonb", 3802, "jsonb"),
    (2287, "_record", 2249, "record"),
)


def _type_info(oid: int, name: str, elem: int, elem_name: str) -> dict[str, Any]:
    """The row asyncpg's introspection query returns for a built-in array type."""
    return {
        "oid": oid,
        "ns": "pg_catalog",
        "name": name,
        "kind": b"p" if elem == 2249 else b"b",
        "basetype": None,
        "elemtype": elem,
        "elemdelim": b",",
        "range_subtype": None,
        "attrtypoids": None,
        "attrnames": None,
        "basetype_name": None,
        "elemtype_name": elem_name,
        "range_subtype_name": None,
    }


BUILTIN_ARRAY_TYPES = tuple(_type_info(*spec) for spec in _ARRAYS)


def register_builtin_arrays(conn: asyncpg.Connection) -> None:
    """Give `conn` the codecs of `BUILTIN_ARRAY_TYPES` (as its introspection would)."""
    conn.get_settings().register_data_types(BUILTIN_ARRAY_TYPES)
