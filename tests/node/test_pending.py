"""The pending upload cache's bounds (node/pending.py): count, bytes, sliver size, age."""

from __future__ import annotations

import pytest

from tests.node.cluster import blob_data
from walruspy.core.encoding import EncodedBlob, encode_blob
from walruspy.core.types import SliverPairIndex, SliverType
from walruspy.node.pending import PendingLimits, PendingSliver, PendingUploads
from walruspy.node_api import errors

N_SHARDS = 10


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def held(encoded: EncodedBlob, pairs: range, kind: SliverType) -> list[PendingSliver]:
    slivers = [encoded.sliver(SliverPairIndex(p), kind) for p in pairs]
    return [PendingSliver(s.sliver.pair_index(N_SHARDS), s, s.sliver.to_bcs()) for s in slivers]


def test_slivers_wait_with_their_metadata_and_are_taken_once() -> None:
    cache = PendingUploads(PendingLimits(), Clock())
    encoded = encode_blob(blob_data(1, 2000), N_SHARDS)
    blob_id = encoded.metadata.blob_id
    with pytest.raises(errors.MissingMetadataError):
        cache.add_slivers(blob_id, held(encoded, range(2), SliverType.PRIMARY))
    assert cache.add_metadata(encoded.metadata) and not cache.add_metadata(encoded.metadata)
    assert cache.add_slivers(blob_id, held(encoded, range(3), SliverType.PRIMARY)) == 3
    assert cache.add_slivers(blob_id, held(encoded, range(4), SliverType.PRIMARY)) == 1
    assert cache.sliver_count == 4 and cache.nbytes > 0
    metadata, slivers = cache.take(blob_id)
    assert metadata == encoded.metadata and len(slivers) == 4
    assert cache.take(blob_id) == (None, [])
    assert cache.sliver_count == 0 and cache.nbytes == 0 and not cache.has(blob_id)


def test_the_bounds_refuse_what_does_not_fit_and_keep_the_rest() -> None:
    encoded = encode_blob(blob_data(2, 2000), N_SHARDS)
    blob_id = encoded.metadata.blob_id
    one = held(encoded, range(1), SliverType.PRIMARY)
    size = len(one[0].bcs)
    cache = PendingUploads(PendingLimits(max_slivers=3, max_bytes=100 * size), Clock())
    cache.add_metadata(encoded.metadata)
    with pytest.raises(errors.CacheSaturatedError):  # all or none
        cache.add_slivers(blob_id, held(encoded, range(4), SliverType.PRIMARY))
    assert cache.sliver_count == 0
    assert cache.add_slivers(blob_id, held(encoded, range(3), SliverType.PRIMARY)) == 3
    by_bytes = PendingUploads(PendingLimits(max_bytes=2 * size), Clock())
    by_bytes.add_metadata(encoded.metadata)
    with pytest.raises(errors.CacheSaturatedError):
        by_bytes.add_slivers(blob_id, held(encoded, range(3), SliverType.PRIMARY))
    small = PendingUploads(PendingLimits(max_sliver_bytes=size - 1), Clock())
    small.add_metadata(encoded.metadata)
    with pytest.raises(errors.SliverTooLargeError):
        small.add_slivers(blob_id, one)
    few = PendingUploads(PendingLimits(max_metadata=1), Clock())
    few.add_metadata(encoded.metadata)
    with pytest.raises(errors.CacheSaturatedError):
        few.add_metadata(encode_blob(blob_data(3, 2000), N_SHARDS).metadata)


def test_a_blob_left_alone_for_the_ttl_is_dropped() -> None:
    clock = Clock()
    cache = PendingUploads(PendingLimits(ttl_s=60), clock)
    encoded = encode_blob(blob_data(4, 2000), N_SHARDS)
    blob_id = encoded.metadata.blob_id
    cache.add_metadata(encoded.metadata)
    clock.now += 50
    cache.add_slivers(blob_id, held(encoded, range(2), SliverType.SECONDARY))  # touches it
    clock.now += 50
    assert cache.metadata(blob_id) == encoded.metadata
    clock.now += 11
    assert cache.metadata(blob_id) is None and not cache.has(blob_id)
    assert cache.sliver_count == 0 and cache.nbytes == 0
    assert cache.add_metadata(encoded.metadata)  # room again
