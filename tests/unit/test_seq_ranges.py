"""The ranges blob (`seq_ranges.py`): a checkpoint's message seqs as `[start, end)` runs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from src.agent.memory.seq_ranges import decode_ranges, encode_ranges, ranges_end, to_ranges


def expand(ranges: list[list[int]]) -> list[int]:
    return [pos for start, end in ranges for pos in range(start, end)]


@pytest.mark.parametrize(
    ("positions", "ranges"),
    [
        ([], []),
        ([0], [[0, 1]]),
        ([0, 1, 2, 5], [[0, 3], [5, 6]]),
        ([0, 1, 2, 3, 4, 5, 6, 7], [[0, 8]]),  # a linear conversation: one range
        ([4, 5, 0, 1], [[4, 6], [0, 2]]),  # order is kept: a fork's messages after its base
        ([3, 3], [[3, 4], [3, 4]]),  # a repeated seq is not merged away
    ],
)
def test_positions_compress_to_runs(positions: list[int], ranges: list[list[int]]) -> None:
    assert to_ranges(positions) == ranges


def test_the_blob_is_compact_json() -> None:
    assert encode_ranges([0, 1, 2, 5]) == b"[[0,3],[5,6]]"
    assert decode_ranges(b"[[0,3],[5,6]]") == [[0, 3], [5, 6]]


@pytest.mark.parametrize(("blob", "end"), [(b"[]", 0), (b"[[0,3]]", 3), (b"[[7,9],[0,2]]", 9)])
def test_ranges_end_is_one_past_the_highest_position(blob: bytes, end: int) -> None:
    assert ranges_end(blob) == end


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=200))
def test_any_positions_round_trip_exactly(positions: list[int]) -> None:
    blob = encode_ranges(positions)
    assert expand(decode_ranges(blob)) == positions
    assert ranges_end(blob) == max(positions, default=-1) + 1
    assert len(decode_ranges(blob)) <= len(positions)
