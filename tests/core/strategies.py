"""Hypothesis strategies and helpers shared by the core tests."""

from __future__ import annotations

from functools import lru_cache

from hypothesis import strategies as st

from walruspy.core.encoding import EncodedBlob, encode_blob

#: Small committees keep each example to milliseconds; the vectors cover n = 100 and 1000.
shard_counts = st.sampled_from([4, 5, 7, 10, 13])
blobs = st.binary(min_size=0, max_size=3000)


@lru_cache(maxsize=64)
def encoded(blob: bytes, n_shards: int) -> EncodedBlob:
    """Encode once per (blob, n) within a test run."""
    return encode_blob(blob, n_shards)


def flip_bit(data: bytes, bit: int) -> bytes:
    """`data` with bit `bit` (mod its length in bits) flipped."""
    position = bit % (len(data) * 8)
    out = bytearray(data)
    out[position // 8] ^= 1 << (position % 8)
    return bytes(out)
