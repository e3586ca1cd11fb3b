"""Small value types shared by the whole core: index types, sliver types and shard mapping.

Theory of operation (spec/encoding.md sections 5 and 7): sliver pair `i` holds primary sliver
`i` and secondary sliver `n-1-i`, and is stored on shard `(i + offset) mod n`, where the
offset is the blob ID read as a big-endian integer, mod n. The three index kinds are distinct
types for the type checker (they are plain ints at run time, because they sit on hot paths), so
mypy rejects a `ShardIndex` where a `SliverPairIndex` is meant.
"""

from __future__ import annotations

import enum
from typing import NewType

from walruspy.core.errors import InvalidInputError

#: Index of a sliver pair, 0..n-1 (what metadata is indexed by and what node URLs name).
SliverPairIndex = NewType("SliverPairIndex", int)
#: Index of a sliver within its axis, 0..n-1 (the `index` field of `SliverData`).
SliverIndex = NewType("SliverIndex", int)
#: Index of a shard of the committee, 0..n-1.
ShardIndex = NewType("ShardIndex", int)


class SliverType(enum.Enum):
    """The axis of a sliver. The value is the spelling used in node URLs."""

    PRIMARY = "primary"
    SECONDARY = "secondary"

    @property
    def orthogonal(self) -> SliverType:
        """The other axis."""
        return SliverType.SECONDARY if self is SliverType.PRIMARY else SliverType.PRIMARY

    @classmethod
    def parse(cls, text: str) -> SliverType:
        """Parse `primary` or `secondary`, with a clear error for anything else."""
        try:
            return cls(text)
        except ValueError:
            raise InvalidInputError(
                f"invalid sliver type {text!r}: expected 'primary' or 'secondary'"
            ) from None


def sliver_index_of_pair(
    pair: SliverPairIndex, sliver_type: SliverType, n_shards: int
) -> SliverIndex:
    """The index of the `sliver_type` sliver held in `pair` (n-1-pair for secondary)."""
    _check_index(pair, n_shards, "sliver pair index")
    if sliver_type is SliverType.PRIMARY:
        return SliverIndex(pair)
    return SliverIndex(n_shards - 1 - pair)


def pair_index_of_sliver(
    index: SliverIndex, sliver_type: SliverType, n_shards: int
) -> SliverPairIndex:
    """The pair holding sliver `index` of `sliver_type` (the inverse of `sliver_index_of_pair`)."""
    _check_index(index, n_shards, "sliver index")
    if sliver_type is SliverType.PRIMARY:
        return SliverPairIndex(index)
    return SliverPairIndex(n_shards - 1 - index)


def rotation_offset(blob_id: bytes, n_shards: int) -> int:
    """The shard rotation of a blob: its ID as a big-endian integer, mod n."""
    return int.from_bytes(blob_id, "big") % n_shards


def shard_of_pair(pair: SliverPairIndex, blob_id: bytes, n_shards: int) -> ShardIndex:
    """The shard that stores sliver pair `pair` of the blob `blob_id`."""
    _check_index(pair, n_shards, "sliver pair index")
    return ShardIndex((pair + rotation_offset(blob_id, n_shards)) % n_shards)


def pair_of_shard(shard: ShardIndex, blob_id: bytes, n_shards: int) -> SliverPairIndex:
    """The sliver pair of the blob `blob_id` that shard `shard` stores."""
    _check_index(shard, n_shards, "shard index")
    return SliverPairIndex((shard - rotation_offset(blob_id, n_shards)) % n_shards)


def _check_index(index: int, n_shards: int, what: str) -> None:
    if not 0 <= index < n_shards:
        raise InvalidInputError(f"{what} {index} out of range for {n_shards} shards")
