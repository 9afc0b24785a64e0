"""The root transcript's `checkpoint_blobs` value: the seqs of a checkpoint's messages
(see `message_log.py`) as `[start, end)` ranges in JSON, usually one range."""

from __future__ import annotations

import json

TRANSCRIPT_BLOB_TYPE = "vera.transcript_ranges"

Ranges = list[list[int]]


def to_ranges(positions: list[int]) -> Ranges:
    """Compress log positions into `[start, end)` runs: [0,1,2,5] -> [[0,3],[5,6]]."""
    ranges: Ranges = []
    for pos in positions:
        if ranges and ranges[-1][1] == pos:
            ranges[-1][1] = pos + 1
        else:
            ranges.append([pos, pos + 1])
    return ranges


def encode_ranges(positions: list[int]) -> bytes:
    return json.dumps(to_ranges(positions), separators=(",", ":")).encode()


def decode_ranges(blob: bytes) -> Ranges:
    ranges: Ranges = json.loads(blob)
    return ranges


def ranges_end(blob: bytes) -> int:
    """How many log elements a ranges blob needs (one past its highest position)."""
    return max((end for _, end in decode_ranges(blob)), default=0)
