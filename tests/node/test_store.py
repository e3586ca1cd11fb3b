"""Tests of the node store (walruspy.node.store) and its records (walruspy.node.store_records).

The crash test runs a real child process that writes and prints each acknowledged write, kills it
with SIGKILL at a random moment, and checks that every acknowledged write survived and that the
event cursor and the blob-info records it guards moved together.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path

import lmdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walruspy.core.types import ShardIndex, SliverType
from walruspy.node.shard_plan import ShardSyncProgress
from walruspy.node.store import (
    MAX_LIST_LIMIT,
    EventOrderError,
    NodeStore,
    NoMetadataError,
    ShardNotSyncingError,
    StoreConfig,
    shard_database_name,
)
from walruspy.node.store_records import (
    RECORD_VERSION,
    ChallengeRecord,
    EventProgress,
    GcProgress,
    InvalidBlobInfo,
    NodeStatus,
    NodeStatusKind,
    PermanentBlobInfo,
    PerObjectBlobInfo,
    ShardStatus,
    StoreCorruptionError,
    StoreError,
    ValidBlobInfo,
    decode_blob_info,
    encode_blob_info,
)
from walruspy.node_api.schemas import (
    Deletable,
    DeletableCounts,
    EventId,
    Invalid,
    Nonexistent,
    Permanent,
)

PRIMARY = SliverType.PRIMARY
SECONDARY = SliverType.SECONDARY
U32 = (1 << 32) - 1
U64 = (1 << 64) - 1


def bid(i: int) -> bytes:
    """A deterministic 32-byte ID."""
    return hashlib.blake2b(i.to_bytes(8, "little"), digest_size=32).digest()


def event(i: int) -> EventId:
    return EventId(bid(10_000 + i), i)


@pytest.fixture
def store(tmp_path: Path):
    with NodeStore.open(StoreConfig(tmp_path / "db", map_size_bytes=1 << 20)) as s:
        yield s


# --- strategies -------------------------------------------------------------------------------

ids = st.binary(min_size=32, max_size=32)
u32s = st.integers(0, U32)
opt_u32s = st.none() | u32s
events = st.builds(EventId, ids, st.integers(0, U64))


@st.composite
def permanent_pairs(draw):
    """(permanent_total, permanent_certified) satisfying Walrus's invariants."""
    total = draw(st.none() | st.builds(PermanentBlobInfo, st.integers(1, U32), u32s, events))
    if total is None or draw(st.booleans()):
        return total, None
    cert = PermanentBlobInfo(
        draw(st.integers(1, total.count)), draw(st.integers(0, total.end_epoch)), draw(events)
    )
    return total, cert


@st.composite
def valid_blob_infos(draw):
    total, cert = draw(permanent_pairs())
    count_total = draw(u32s)
    count_cert = draw(st.integers(0, count_total))
    certified = count_cert > 0 or cert is not None
    registered_end = draw(opt_u32s)
    certified_end = (
        None if registered_end is None else draw(st.none() | st.integers(0, registered_end))
    )
    return ValidBlobInfo(
        is_metadata_stored=draw(st.booleans()),
        count_deletable_total=count_total,
        count_deletable_certified=count_cert,
        permanent_total=total,
        permanent_certified=cert,
        initial_certified_epoch=draw(u32s) if certified else None,
        latest_seen_deletable_registered_end_epoch=registered_end,
        latest_seen_deletable_certified_end_epoch=certified_end,
    )


blob_infos = valid_blob_infos() | st.builds(InvalidBlobInfo, u32s, events)


@st.composite
def per_object_infos(draw):
    registered = draw(u32s)
    return PerObjectBlobInfo(
        blob_id=draw(ids),
        registered_epoch=registered,
        certified_epoch=draw(st.none() | st.integers(registered, U32)),
        end_epoch=draw(u32s),
        deletable=draw(st.booleans()),
        event=draw(events),
        deleted=draw(st.booleans()),
    )


node_statuses = st.one_of(
    st.sampled_from(
        [
            NodeStatus(kind)
            for kind in NodeStatusKind
            if kind
            not in (
                NodeStatusKind.RECOVERY_IN_PROGRESS,
                NodeStatusKind.RECOVERY_CATCH_UP_WITH_INCOMPLETE_HISTORY,
            )
        ]
    ),
    st.builds(lambda e: NodeStatus(NodeStatusKind.RECOVERY_IN_PROGRESS, recovery_epoch=e), u32s),
    st.builds(
        lambda a, b: NodeStatus(
            NodeStatusKind.RECOVERY_CATCH_UP_WITH_INCOMPLETE_HISTORY,
            first_complete_epoch=a,
            epoch_at_start=b,
        ),
        u32s,
        u32s,
    ),
)
gc_progresses = st.just(GcProgress()) | st.integers(0, U32).flatmap(
    lambda started: st.builds(GcProgress, st.just(started), st.none() | st.integers(0, started))
)
cursors = st.builds(EventProgress, st.integers(0, U64), st.integers(0, U64), st.integers(1, U64))

# (strategy, encode, decode) for every record type
RECORD_KINDS = {
    "blob_info": (blob_infos, encode_blob_info, decode_blob_info),
    "per_object": (per_object_infos(), PerObjectBlobInfo.encode, PerObjectBlobInfo.decode),
    "cursor": (cursors, EventProgress.encode, EventProgress.decode),
    "node_status": (node_statuses, NodeStatus.encode, NodeStatus.decode),
    "gc": (gc_progresses, GcProgress.encode, GcProgress.decode),
    "shard_status": (st.sampled_from(list(ShardStatus)), ShardStatus.encode, ShardStatus.decode),
}


# --- records: round trips and fuzzing ------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(RECORD_KINDS))
@settings(max_examples=300)
@given(data=st.data())
def test_record_round_trip(kind: str, data: st.DataObject) -> None:
    strategy, encode, decode = RECORD_KINDS[kind]
    record = data.draw(strategy)
    raw = encode(record)
    assert raw[0] == RECORD_VERSION
    assert decode(raw) == record
    assert encode(decode(raw)) == raw  # one encoding per value


@pytest.mark.parametrize("kind", sorted(RECORD_KINDS))
@settings(max_examples=200)
@given(data=st.data())
def test_record_truncated_extended_or_versioned_is_corruption(
    kind: str, data: st.DataObject
) -> None:
    strategy, encode, decode = RECORD_KINDS[kind]
    raw = encode(data.draw(strategy))
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(StoreCorruptionError):
        decode(raw[:cut])
    with pytest.raises(StoreCorruptionError):
        decode(raw + data.draw(st.binary(min_size=1, max_size=8)))
    with pytest.raises(StoreCorruptionError, match="version"):
        decode(
            bytes([data.draw(st.integers(0, 255).filter(lambda v: v != RECORD_VERSION))]) + raw[1:]
        )


@pytest.mark.parametrize("kind", sorted(RECORD_KINDS))
@settings(max_examples=500)
@given(raw=st.binary(max_size=200))
def test_record_decoders_never_raise_anything_else(kind: str, raw: bytes) -> None:
    _, encode, decode = RECORD_KINDS[kind]
    try:
        record = decode(raw)
    except StoreCorruptionError:
        return
    assert encode(record) == raw  # anything accepted is canonical


def test_blob_info_golden_bytes() -> None:
    # version 1, variant 0 (invalid), epoch 7 as u32 LE, tx hash, log index as u64 LE
    info = InvalidBlobInfo(7, EventId(b"\xab" * 32, 2))
    assert encode_blob_info(info) == b"\x01\x00\x07\x00\x00\x00" + b"\xab" * 32 + (2).to_bytes(
        8, "little"
    )
    empty = ValidBlobInfo()
    assert encode_blob_info(empty) == b"\x01\x01\x00" + bytes(8) + b"\x00\x00\x00\x00\x00"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {
                "count_deletable_total": 1,
                "count_deletable_certified": 2,
                "initial_certified_epoch": 1,
            },
            "more certified",
        ),
        ({"initial_certified_epoch": 3}, "initial_certified_epoch"),
        ({"count_deletable_total": 1, "count_deletable_certified": 1}, "initial_certified_epoch"),
        (
            {
                "permanent_certified": PermanentBlobInfo(1, 5, event(1)),
                "initial_certified_epoch": 1,
            },
            "without registered",
        ),
        (
            {
                "permanent_total": PermanentBlobInfo(1, 5, event(1)),
                "permanent_certified": PermanentBlobInfo(2, 5, event(1)),
                "initial_certified_epoch": 1,
            },
            "exceeds permanent_total",
        ),
        (
            {
                "permanent_total": PermanentBlobInfo(2, 4, event(1)),
                "permanent_certified": PermanentBlobInfo(1, 5, event(1)),
                "initial_certified_epoch": 1,
            },
            "exceeds permanent_total",
        ),
        ({"latest_seen_deletable_certified_end_epoch": 3}, "latest certified"),
        (
            {
                "latest_seen_deletable_registered_end_epoch": 2,
                "latest_seen_deletable_certified_end_epoch": 3,
            },
            "latest certified",
        ),
        ({"count_deletable_total": U32 + 1}, "u32"),
    ],
)
def test_valid_blob_info_rejects_broken_invariants(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ValidBlobInfo(**fields)


def test_other_record_invariants() -> None:
    with pytest.raises(ValueError, match="at least one"):
        PermanentBlobInfo(0, 1, event(1))
    with pytest.raises(ValueError, match="before it is registered"):
        PerObjectBlobInfo(bid(1), 5, 4, 9, False, event(1), False)
    with pytest.raises(ValueError, match="32 bytes"):
        PerObjectBlobInfo(b"short", 5, None, 9, False, event(1), False)
    with pytest.raises(ValueError, match="recovery_epoch"):
        NodeStatus(NodeStatusKind.ACTIVE, recovery_epoch=1)
    with pytest.raises(ValueError, match="recovery_epoch"):
        NodeStatus(NodeStatusKind.RECOVERY_IN_PROGRESS)
    with pytest.raises(ValueError, match="incomplete history"):
        NodeStatus(NodeStatusKind.RECOVERY_CATCH_UP_WITH_INCOMPLETE_HISTORY, first_complete_epoch=1)
    with pytest.raises(ValueError, match="complete before"):
        GcProgress(last_started_epoch=2, last_completed_epoch=3)
    with pytest.raises(ValueError, match="complete before"):
        GcProgress(last_completed_epoch=3)
    with pytest.raises(ValueError, match="once an event"):
        EventProgress(1, 1, 0)


def test_node_status_display_matches_walrus() -> None:
    assert str(NodeStatus(NodeStatusKind.STANDBY)) == "Standby"
    assert str(NodeStatus(NodeStatusKind.ACTIVE)) == "Active"
    assert str(NodeStatus(NodeStatusKind.RECOVER_METADATA)) == "RecoverMetadata"
    assert str(NodeStatus(NodeStatusKind.RECOVERY_CATCH_UP)) == "RecoveryCatchUp"
    assert str(NodeStatus(NodeStatusKind.RECOVERY_IN_PROGRESS, recovery_epoch=3)) == (
        "RecoveryInProgress (3)"
    )
    incomplete = NodeStatus(
        NodeStatusKind.RECOVERY_CATCH_UP_WITH_INCOMPLETE_HISTORY,
        first_complete_epoch=4,
        epoch_at_start=9,
    )
    assert str(incomplete) == (
        "RecoveryCatchUpWithIncompleteHistory (first complete epoch: 4, epoch at start: 9)"
    )


def test_event_cursor_after() -> None:
    first = EventProgress.after(None, 10, 3)
    assert first == EventProgress(10, 3, 1)
    second = EventProgress.after(first, 10, 4)
    assert second.events_applied == 2
    assert EventProgress.after(second, 11, 0).position == (11, 0)
    with pytest.raises(ValueError, match="does not follow"):
        EventProgress.after(second, 10, 4)
    with pytest.raises(ValueError, match="does not follow"):
        EventProgress.after(second, 9, 99)


def test_blob_status_of_blob_info() -> None:
    perm = PermanentBlobInfo(2, 10, event(1))
    cert = PermanentBlobInfo(1, 8, event(2))
    info = ValidBlobInfo(
        count_deletable_total=3,
        count_deletable_certified=1,
        permanent_total=perm,
        permanent_certified=cert,
        initial_certified_epoch=2,
        latest_seen_deletable_registered_end_epoch=6,
        latest_seen_deletable_certified_end_epoch=5,
    )
    counts = DeletableCounts(3, 1)
    assert info.blob_status(4) == Permanent(8, True, event(2), counts, 2)
    # the certified permanent object expired at 8; the registered one lives until 10
    assert info.blob_status(8) == Permanent(10, False, event(1), DeletableCounts(0, 0), 2)
    assert info.blob_status(5) == Permanent(8, True, event(2), DeletableCounts(3, 0), 2)
    assert info.blob_status(10) == Nonexistent()
    deletable = ValidBlobInfo(count_deletable_total=1, latest_seen_deletable_registered_end_epoch=3)
    assert deletable.blob_status(2) == Deletable(None, DeletableCounts(1, 0))
    assert deletable.blob_status(3) == Nonexistent()
    assert InvalidBlobInfo(1, event(3)).blob_status(99) == Invalid(event(3))
    assert ValidBlobInfo().has_no_objects()
    assert not deletable.has_no_objects()


# --- the store ----------------------------------------------------------------------------------


def sliver(i: int, size: int = 1000) -> bytes:
    return hashlib.shake_256(i.to_bytes(8, "little")).digest(size)


def test_metadata_put_get_idempotent(store: NodeStore) -> None:
    assert store.get_metadata(bid(1)) is None
    assert not store.has_metadata(bid(1))
    assert store.put_metadata(bid(1), b"meta-1")
    assert not store.put_metadata(bid(1), b"other")  # already stored: kept as is
    assert store.get_metadata(bid(1)) == b"meta-1"
    assert store.has_metadata(bid(1))
    for i in range(2, 6):
        store.put_metadata(bid(i), b"m")
    assert store.list_metadata_blob_ids() == sorted(bid(i) for i in range(1, 6))


def test_slivers_need_a_shard(store: NodeStore) -> None:
    with pytest.raises(ValueError, match="create_shard"):
        store.put_sliver(1, PRIMARY, bid(1), b"x")
    assert store.get_sliver(1, PRIMARY, bid(1)) is None
    assert store.list_blob_ids(1, PRIMARY) == []
    assert store.shards() == {}
    store.create_shard(1, ShardStatus.ACTIVE_SYNC)
    assert store.shards() == {1: ShardStatus.ACTIVE_SYNC}
    store.set_shard_status(1, ShardStatus.ACTIVE)
    assert store.shard_status(1) is ShardStatus.ACTIVE
    assert store.shard_status(2) is None
    with pytest.raises(ValueError, match="create_shard"):
        store.set_shard_status(2, ShardStatus.ACTIVE)


def test_a_sliver_group_is_one_commit_with_an_outcome_per_sliver(store: NodeStore) -> None:
    store.create_shard(0)
    store.create_shard(1)
    store.put_metadata(bid(1), b"metadata")
    store.put_sliver(1, SECONDARY, bid(1), sliver(7))
    outcomes = store.put_sliver_group(
        [
            (0, PRIMARY, bid(1), sliver(1)),  # new
            (1, SECONDARY, bid(1), sliver(2)),  # stored already: kept as it was
            (0, PRIMARY, bid(2), sliver(3)),  # no metadata (never stored, or collected)
            (5, PRIMARY, bid(1), sliver(4)),  # a shard without storage here
        ]
    )
    assert outcomes[:2] == [True, False]
    assert isinstance(outcomes[2], NoMetadataError) and "no stored metadata" in str(outcomes[2])
    assert isinstance(outcomes[3], ValueError) and "shard 5" in str(outcomes[3])
    assert store.get_sliver(0, PRIMARY, bid(1)) == sliver(1)
    assert store.get_sliver(1, SECONDARY, bid(1)) == sliver(7)
    assert not store.has_sliver(0, PRIMARY, bid(2))
    store.delete_blob_data([bid(1)])  # GC: metadata and slivers go together
    (after_gc,) = store.put_sliver_group([(0, PRIMARY, bid(1), sliver(1))])
    assert isinstance(after_gc, NoMetadataError) and not store.has_sliver(0, PRIMARY, bid(1))


def test_slivers_put_get_list(store: NodeStore) -> None:
    store.create_shard(0)
    store.create_shard(7)
    for i in range(50):
        assert store.put_sliver(0, PRIMARY, bid(i), sliver(i))
    assert not store.put_sliver(0, PRIMARY, bid(3), sliver(99))
    assert store.get_sliver(0, PRIMARY, bid(3)) == sliver(3)
    assert store.get_sliver(0, SECONDARY, bid(3)) is None
    assert store.get_sliver(7, PRIMARY, bid(3)) is None
    assert store.has_sliver(0, PRIMARY, bid(3))
    assert not store.has_sliver(7, PRIMARY, bid(3))
    ordered = sorted(bid(i) for i in range(50))
    assert store.list_blob_ids(0, PRIMARY, limit=MAX_LIST_LIMIT) == ordered
    assert store.list_blob_ids(0, PRIMARY, limit=10) == ordered[:10]
    assert store.list_blob_ids(0, PRIMARY, start=ordered[10], limit=5) == ordered[10:15]
    # a start key that is not stored begins at the next stored one
    after_19 = (int.from_bytes(ordered[19], "big") + 1).to_bytes(32, "big")
    assert store.list_blob_ids(0, PRIMARY, start=after_19, limit=1) == [ordered[20]]
    pairs = store.list_slivers(0, PRIMARY, start=ordered[40], limit=100)
    assert [key for key, _ in pairs] == ordered[40:]
    index_of = {bid(i): i for i in range(50)}
    assert all(value == sliver(index_of[key]) for key, value in pairs)


def test_list_slivers_bounds_bytes(store: NodeStore) -> None:
    store.create_shard(2)
    assert store.put_slivers(2, SECONDARY, [(bid(i), sliver(i, 1000)) for i in range(20)]) == 20
    assert store.put_slivers(2, SECONDARY, [(bid(i), sliver(i, 1000)) for i in range(25)]) == 5
    assert len(store.list_slivers(2, SECONDARY, limit=100, max_total_bytes=3500)) == 4
    assert len(store.list_slivers(2, SECONDARY, limit=100, max_total_bytes=1)) == 1


def test_argument_checks(store: NodeStore) -> None:
    store.create_shard(0)
    with pytest.raises(ValueError, match="32 bytes"):
        store.put_sliver(0, PRIMARY, b"short", b"x")
    with pytest.raises(ValueError, match="32 bytes"):
        store.get_metadata(bid(1) + b"x")
    with pytest.raises(ValueError, match="bytes, limit"):
        store.put_sliver(0, PRIMARY, bid(1), b"")
    with pytest.raises(ValueError, match="shard index"):
        store.get_sliver(70_000, PRIMARY, bid(1))
    with pytest.raises(ValueError, match="limit"):
        store.list_blob_ids(0, PRIMARY, limit=0)
    with pytest.raises(ValueError, match="metadata of 0"):
        store.put_metadata(bid(1), b"")


def test_sliver_size_limit(tmp_path: Path) -> None:
    with NodeStore.open(StoreConfig(tmp_path / "db", max_sliver_bytes=100)) as store:
        store.create_shard(0)
        store.put_sliver(0, PRIMARY, bid(1), b"x" * 100)
        with pytest.raises(ValueError, match="limit 100"):
            store.put_sliver(0, PRIMARY, bid(2), b"x" * 101)


def test_delete_blob_data_across_shards(store: NodeStore) -> None:
    for shard in (0, 1, 2):
        store.create_shard(shard)
        for sliver_type in SliverType:
            for i in range(3):
                store.put_sliver(shard, sliver_type, bid(i), sliver(i))
    for i in range(3):
        store.put_metadata(bid(i), b"meta")
    store.update_blob_infos({bid(1): InvalidBlobInfo(1, event(1))})
    assert store.delete_blob_data([bid(1), bid(2)]) == 2 * (1 + 3 * 2)
    assert store.delete_blob_data([bid(1)]) == 0
    assert store.get_metadata(bid(1)) is None
    assert store.get_metadata(bid(0)) == b"meta"
    for shard in (0, 1, 2):
        for sliver_type in SliverType:
            assert store.list_blob_ids(shard, sliver_type) == [bid(0)]
    assert store.get_blob_info(bid(1)) == InvalidBlobInfo(1, event(1))  # the record stays


def test_drop_shard_and_stats(store: NodeStore) -> None:
    store.create_shard(4)
    store.create_shard(5)
    store.put_slivers(4, PRIMARY, [(bid(i), sliver(i, 5000)) for i in range(10)])
    store.put_slivers(4, SECONDARY, [(bid(i), sliver(i, 5000)) for i in range(6)])
    store.put_slivers(5, PRIMARY, [(bid(i), sliver(i, 5000)) for i in range(3)])
    store.put_metadata(bid(1), b"m")
    stats = store.stats()
    assert (stats.metadata_entries, stats.primary_slivers, stats.secondary_slivers) == (1, 13, 6)
    assert stats.sliver_disk_bytes >= 19 * 5000
    assert stats.used_bytes >= stats.sliver_disk_bytes
    shard4 = store.shard_stats(4)
    assert (shard4.primary_slivers, shard4.secondary_slivers) == (10, 6)
    assert store.drop_shard(4) == 16
    assert store.shards() == {5: ShardStatus.ACTIVE}
    assert store.list_blob_ids(4, PRIMARY) == []
    assert store.shard_stats(4).primary_slivers == 0
    assert store.stats().primary_slivers == 3
    with pytest.raises(ValueError, match="create_shard"):
        store.put_sliver(4, PRIMARY, bid(1), b"x")
    store.create_shard(4)  # the shard can come back, empty
    assert store.put_sliver(4, PRIMARY, bid(1), b"x")


def test_apply_event_orders_and_is_atomic(store: NodeStore) -> None:
    assert store.event_cursor() is None
    info = ValidBlobInfo(count_deletable_total=1, latest_seen_deletable_registered_end_epoch=5)
    obj = PerObjectBlobInfo(bid(1), 1, None, 5, True, event(1), False)
    first = EventProgress.after(None, 100, 0)
    store.apply_event(first, {bid(1): info}, {bid(50): obj})
    assert store.event_cursor() == first
    assert store.get_blob_info(bid(1)) == info
    assert store.get_per_object_blob_info(bid(50)) == obj
    # a repeated, skipped, or backwards event is refused and changes nothing
    for bad in (first, EventProgress(100, 1, 3), EventProgress(99, 0, 2), EventProgress(100, 0, 2)):
        with pytest.raises(EventOrderError):
            store.apply_event(bad, {bid(1): None})
    assert store.get_blob_info(bid(1)) == info
    second = EventProgress.after(first, 100, 1)
    store.apply_event(second, {bid(1): None}, {bid(50): None}, delete_data_of=[bid(1)])
    assert store.get_blob_info(bid(1)) is None
    assert store.get_per_object_blob_info(bid(50)) is None
    assert store.event_cursor() == second
    # an event with no blob-info effect still advances the cursor
    store.apply_event(EventProgress.after(second, 101, 0))
    assert store.event_cursor() == EventProgress(101, 0, 3)
    # a bad record key fails before the transaction: nothing moves
    with pytest.raises(ValueError, match="32 bytes"):
        store.apply_event(EventProgress.after(store.event_cursor(), 102, 0), {b"bad": info})
    assert store.event_cursor() == EventProgress(101, 0, 3)


def test_apply_event_deletes_data(store: NodeStore) -> None:
    store.create_shard(0)
    store.put_sliver(0, PRIMARY, bid(9), sliver(9))
    store.put_metadata(bid(9), b"m")
    store.apply_event(
        EventProgress.after(None, 1, 0), {bid(9): InvalidBlobInfo(3, event(9))}, None, [bid(9)]
    )
    assert store.get_sliver(0, PRIMARY, bid(9)) is None
    assert store.get_metadata(bid(9)) is None
    assert store.get_blob_info(bid(9)) == InvalidBlobInfo(3, event(9))


def block_hash(block: int, fork: int = 0) -> bytes:
    return hashlib.blake2b(b"%d/%d" % (fork, block), digest_size=32).digest()


def test_undo_takes_back_the_newest_block_and_restores_records(store: NodeStore) -> None:
    assert store.undo_last_block() is None  # nothing applied
    registered = ValidBlobInfo(
        count_deletable_total=1, latest_seen_deletable_registered_end_epoch=5
    )
    certified = replace(
        registered,
        count_deletable_certified=1,
        latest_seen_deletable_certified_end_epoch=5,
        initial_certified_epoch=1,
    )
    obj = PerObjectBlobInfo(bid(1), 1, None, 5, True, event(1), False)
    first = EventProgress.after(None, 10, 0)
    store.apply_event(first, {bid(1): registered}, {bid(50): obj}, block_hash=block_hash(10))
    assert store.event_block_hash() == block_hash(10)
    # Block 11 holds two events: the certification, then a second registration.
    second = EventProgress.after(first, 11, 0)
    store.apply_event(second, {bid(1): certified}, block_hash=block_hash(11), undo_window_blocks=8)
    third = EventProgress.after(second, 11, 1)
    store.apply_event(
        third, {bid(2): registered}, {bid(51): obj}, block_hash=block_hash(11), undo_window_blocks=8
    )
    undone = store.undo_last_block()
    assert undone is not None
    assert (undone.block_number, undone.progress, undone.events) == (11, first, 2)
    assert undone.block_hash == block_hash(10)
    assert sorted(undone.blob_ids) == sorted([bid(1), bid(2)])
    assert store.event_cursor() == first
    assert store.get_blob_info(bid(1)) == registered  # the certification is taken back
    assert store.get_blob_info(bid(2)) is None  # the second registration too
    assert store.get_per_object_blob_info(bid(51)) is None
    assert store.get_per_object_blob_info(bid(50)) == obj
    # The other chain's events apply on top, at the same heights.
    store.apply_event(
        EventProgress.after(first, 11, 0),
        {bid(3): registered},
        block_hash=block_hash(11, 1),
        undo_window_blocks=8,
    )
    assert store.event_block_hash() == block_hash(11, 1)
    assert store.undo_last_block() is not None
    undone = store.undo_last_block()
    assert undone is not None and undone.progress is None and undone.block_hash == b""
    assert store.event_cursor() is None and store.get_blob_info(bid(1)) is None
    assert store.get_per_object_blob_info(bid(50)) is None


def test_undo_records_older_than_the_window_are_pruned(tmp_path: Path) -> None:
    config = StoreConfig(tmp_path / "db", map_size_bytes=1 << 20)
    info = InvalidBlobInfo(1, event(1))
    with NodeStore.open(config) as store:
        progress = None
        for block in range(1, 21):
            progress = EventProgress.after(progress, block, 0)
            store.apply_event(
                progress, {bid(block): info}, block_hash=block_hash(block), undo_window_blocks=3
            )
    with NodeStore.open(config) as store:  # the records survive a restart
        assert store.event_block_hash() == block_hash(20)
        undone = [store.undo_last_block() for _ in range(4)]
        assert [u.block_number for u in undone if u is not None] == [20, 19, 18, 17]
        assert store.undo_last_block() is None  # block 16 is past the window
        assert store.event_cursor() == EventProgress(16, 0, 16)
        assert store.event_block_hash() == block_hash(16)  # a reorganisation stays detectable
        assert store.get_blob_info(bid(16)) == info and store.get_blob_info(bid(17)) is None


def test_a_challenge_is_written_with_its_event_and_replaces_older_ones(tmp_path: Path) -> None:
    config = StoreConfig(tmp_path / "db", map_size_bytes=1 << 20)
    first = ChallengeRecord(3, bid(1), ((bid(10), (bid(20), bid(21))), (bid(11), ())))
    with NodeStore.open(config) as store:
        assert store.challenge(3) is None
        store.apply_event(EventProgress.after(None, 5, 0), challenge=first)
        assert store.challenge(3) == first
        later = ChallengeRecord(4, bid(2), ((bid(10), (bid(22),)),))
        store.apply_event(EventProgress.after(store.event_cursor(), 9, 0), challenge=later)
    with NodeStore.open(config) as store:
        assert store.challenge(3) is None and store.challenge(4) == later
        assert later.sample_of(bid(10)) == (bid(22),) and later.sample_of(bid(11)) is None
        assert first.challenged_blobs() == {bid(20), bid(21)}
    with pytest.raises(ValueError, match="seed"):
        ChallengeRecord(1, b"short", ())
    with pytest.raises(StoreCorruptionError):
        ChallengeRecord.decode(first.encode()[:-1])


def test_list_blob_infos(store: NodeStore) -> None:
    infos = {bid(i): InvalidBlobInfo(i, event(i)) for i in range(5)}
    objects = {
        bid(100 + i): PerObjectBlobInfo(bid(i), 1, 2, 3, False, event(i), False) for i in range(4)
    }
    store.update_blob_infos(infos, objects)
    assert store.list_blob_infos(limit=100) == sorted(infos.items())
    assert store.list_per_object_blob_infos(limit=2) == sorted(objects.items())[:2]


def test_state_survives_reopen(tmp_path: Path) -> None:
    config = StoreConfig(tmp_path / "db", map_size_bytes=1 << 16)
    with NodeStore.open(config) as store:
        assert store.node_status() is None
        assert store.gc_progress() == GcProgress()
        store.set_node_status(NodeStatus(NodeStatusKind.RECOVERY_IN_PROGRESS, recovery_epoch=4))
        store.set_gc_progress(GcProgress(5, 4))
        store.create_shard(9)
        store.put_sliver(9, SECONDARY, bid(1), sliver(1, 300_000))  # grows the 64 KiB map
        store.apply_event(EventProgress.after(None, 3, 1))
        grown = store.map_size_bytes
        assert grown > 1 << 16
    with NodeStore.open(config) as store:
        assert store.node_status() == NodeStatus(
            NodeStatusKind.RECOVERY_IN_PROGRESS, recovery_epoch=4
        )
        assert store.gc_progress() == GcProgress(5, 4)
        assert store.shards() == {9: ShardStatus.ACTIVE}
        assert store.get_sliver(9, SECONDARY, bid(1)) == sliver(1, 300_000)
        assert store.event_cursor() == EventProgress(3, 1, 1)


def test_map_growth_stops_at_the_cap(tmp_path: Path) -> None:
    config = StoreConfig(tmp_path / "db", map_size_bytes=1 << 16, max_map_size_bytes=1 << 20)
    with NodeStore.open(config) as store:
        store.create_shard(0)

        def fill() -> None:
            for i in range(100):
                store.put_sliver(0, PRIMARY, bid(i), sliver(i, 100_000))

        with pytest.raises(StoreError, match="reached its cap"):
            fill()
        assert store.map_size_bytes == 1 << 20
        assert store.get_sliver(0, PRIMARY, bid(0)) == sliver(0, 100_000)  # still readable


def test_concurrent_writers_and_readers_across_growth(tmp_path: Path) -> None:
    config = StoreConfig(tmp_path / "db", map_size_bytes=1 << 16)
    with NodeStore.open(config) as store:
        for shard in range(4):
            store.create_shard(shard)
        errors: list[BaseException] = []

        def writer(shard: int) -> None:
            try:
                for i in range(40):
                    store.put_sliver(shard, PRIMARY, bid(i), sliver(shard * 1000 + i, 20_000))
                    assert store.get_sliver(shard, PRIMARY, bid(i)) == sliver(
                        shard * 1000 + i, 20_000
                    )
                    store.stats()
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(shard,)) for shard in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        assert store.map_size_bytes > 1 << 16
        assert store.stats().primary_slivers == 160


def test_corrupt_records_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with NodeStore.open(StoreConfig(path)) as store:
        store.create_shard(0)
    env = lmdb.open(str(path), max_dbs=16)
    with env.begin(write=True) as txn:
        txn.put(bid(1), b"\x01\x01garbage", db=env.open_db(b"aggregate_blob_info", txn=txn))
        txn.put(b"cursor", b"\x02" + bytes(24), db=env.open_db(b"event_cursor", txn=txn))
        txn.put(b"short", b"x", db=env.open_db(shard_database_name(0, PRIMARY), txn=txn))
    env.close()
    with NodeStore.open(StoreConfig(path)) as store:
        with pytest.raises(StoreCorruptionError, match="blob info"):
            store.get_blob_info(bid(1))
        with pytest.raises(StoreCorruptionError, match="version"):
            store.event_cursor()
        with pytest.raises(StoreCorruptionError, match="key of 5 bytes"):
            store.list_blob_ids(0, PRIMARY)


def test_config_limits() -> None:
    with pytest.raises(ValueError, match="map_size"):
        StoreConfig("x", map_size_bytes=10)
    with pytest.raises(ValueError, match="max_shards"):
        StoreConfig("x", max_shards=0)
    with pytest.raises(ValueError, match="max_sliver_bytes"):
        StoreConfig("x", max_sliver_bytes=1 << 32)


# --- crash safety: kill -9 a real writer ---------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import hashlib, sys
    from walruspy.core.types import SliverType
    from walruspy.node.store import NodeStore, StoreConfig
    from walruspy.node.store_records import EventProgress, PerObjectBlobInfo
    from walruspy.node_api.schemas import EventId

    def bid(i):
        return hashlib.blake2b(i.to_bytes(8, "little"), digest_size=32).digest()

    def value(i):
        return hashlib.shake_256(i.to_bytes(8, "little")).digest(1 + i * 7919 % 300_000)

    path, first = sys.argv[1], int(sys.argv[2])
    store = NodeStore.open(StoreConfig(path, map_size_bytes=1 << 20))  # grows mid-stream too
    store.create_shard(0)
    cursor = store.event_cursor()
    i = first
    while True:
        if i % 2:
            store.put_sliver(0, SliverType.PRIMARY, bid(i), value(i))
            print(f"S {i}", flush=True)
        else:
            cursor = EventProgress.after(cursor, i, 0)
            record = PerObjectBlobInfo(bid(i), 1, None, 9, False, EventId(bid(i), 0), False)
            store.apply_event(cursor, per_object_blob_infos={bid(i): record})
            print(f"E {cursor.events_applied} {i}", flush=True)
        i += 1
    """
)


def value(i: int) -> bytes:
    return hashlib.shake_256(i.to_bytes(8, "little")).digest(1 + i * 7919 % 300_000)


def run_and_kill(
    path: Path, first: int, rng: random.Random
) -> tuple[list[int], list[tuple[int, int]]]:
    """Run the writer, SIGKILL it after a random number of acknowledged writes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(first)],
        stdout=subprocess.PIPE,
        text=True,
    )
    slivers: list[int] = []
    events: list[tuple[int, int]] = []
    assert proc.stdout is not None
    try:
        for _ in range(rng.randint(5, 120)):
            line = proc.stdout.readline()
            assert line, "the writer exited before it was killed"
            kind, *numbers = line.split()
            if kind == "S":
                slivers.append(int(numbers[0]))
            else:
                events.append((int(numbers[0]), int(numbers[1])))
        time.sleep(rng.uniform(0, 0.004))  # land anywhere in the child's next writes
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: the child keeps writing until now
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return slivers, events


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    rng = random.Random(20261108)
    path = tmp_path / "db"
    all_slivers: list[int] = []
    all_events: dict[int, int] = {}
    for round_ in range(8):
        slivers, events = run_and_kill(path, first=round_ * 1_000_000, rng=rng)
        all_slivers += slivers
        all_events.update(events)
        with NodeStore.open(StoreConfig(path)) as store:
            for i in all_slivers:
                assert store.get_sliver(0, PRIMARY, bid(i)) == value(i), f"lost sliver {i}"
            cursor = store.event_cursor()
            assert cursor is not None
            # every acknowledged event is covered by the cursor ...
            assert max(all_events, default=0) <= cursor.events_applied
            # ... and the cursor moved exactly with the records it guards: one record per event,
            # none beyond the cursor, and the cursor names the last of them
            records = store.list_per_object_blob_infos(limit=MAX_LIST_LIMIT)
            assert len(records) == cursor.events_applied
            assert any(key == bid(cursor.block_number) for key, _ in records)
            for count, i in all_events.items():
                assert store.get_per_object_blob_info(bid(i)) is not None, f"lost event {count}"


# --- failures and limits ------------------------------------------------------------------------


def test_open_failure_and_use_after_close(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(b"x")
    with pytest.raises((StoreError, OSError)):
        NodeStore.open(StoreConfig(not_a_dir / "db"))
    store = NodeStore.open(StoreConfig(tmp_path / "db"))
    store.close()
    with pytest.raises(StoreError):
        store.get_metadata(bid(1))
    with pytest.raises(StoreError):
        store.put_metadata(bid(1), b"m")


def test_batch_limits(store: NodeStore) -> None:
    store.create_shard(0)
    big = b"x" * (64 << 20)  # one object referenced five times: 320 MiB, refused before writing
    with pytest.raises(ValueError, match="batch of"):
        store.put_slivers(0, PRIMARY, [(bid(i), big) for i in range(5)])
    with pytest.raises(ValueError, match="batch limit"):
        store.delete_blob_data([bid(i) for i in range(2001)])
    with pytest.raises(ValueError, match="exceed 2000"):
        store.apply_event(EventProgress(1, 0, 1), delete_data_of=[bid(i) for i in range(2001)])
    with pytest.raises(ValueError, match="record updates"):
        store.update_blob_infos({bid(i): None for i in range(10_001)})
    assert store.event_cursor() is None


def test_missing_shards_read_as_empty(store: NodeStore) -> None:
    assert not store.has_sliver(3, PRIMARY, bid(1))
    assert store.list_slivers(3, PRIMARY) == []
    assert store.shard_stats(3).primary_slivers == 0
    assert store.drop_shard(3) == 0


def test_corrupt_values_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with NodeStore.open(StoreConfig(path)) as store:
        store.create_shard(0)
    env = lmdb.open(str(path), max_dbs=16)
    with env.begin(write=True) as txn:
        txn.put(bid(1), b"", db=env.open_db(shard_database_name(0, PRIMARY), txn=txn))
        txn.put(bid(2), b"", db=env.open_db(b"metadata", txn=txn))
    env.close()
    with NodeStore.open(StoreConfig(path)) as store:
        # Too short to carry a checksum: corrupt, so read as missing, deleted and reported.
        assert store.list_slivers(0, PRIMARY) == []
        assert store.get_sliver(0, PRIMARY, bid(1)) is None
        assert store.get_metadata(bid(2)) is None
        reported = {(r.kind.value, r.blob_id) for r in store.corruption.drain()}
        assert reported == {("primary", bid(1)), ("metadata", bid(2))}
        assert not store.has_sliver(0, PRIMARY, bid(1))


def test_per_object_registration_window() -> None:
    record = PerObjectBlobInfo(bid(1), 2, 3, 6, True, event(1), deleted=False)
    assert record.is_registered(5)
    assert not record.is_registered(6)  # the end epoch is exclusive
    deleted = PerObjectBlobInfo(bid(1), 2, 3, 6, True, event(1), deleted=True)
    assert not deleted.is_registered(2)
    with pytest.raises(ValueError, match="u64"):
        EventProgress(-1, 0, 1)


# --- shard changes and shard sync (spec 3.5) ------------------------------------------------


def _sync_progress(shard: int, last: int | None) -> ShardSyncProgress:
    blob = None if last is None else last.to_bytes(32, "big")
    return ShardSyncProgress(ShardIndex(shard), 3, PRIMARY, blob)


def test_shard_changes_create_set_and_delete_in_one_write(store: NodeStore) -> None:
    store.apply_shard_changes(
        {ShardIndex(1): ShardStatus.ACTIVE_SYNC, ShardIndex(2): ShardStatus.ACTIVE},
        {ShardIndex(1): _sync_progress(1, None)},
    )
    assert store.shards() == {1: ShardStatus.ACTIVE_SYNC, 2: ShardStatus.ACTIVE}
    assert store.sync_progress() == {1: _sync_progress(1, None)}
    store.put_metadata(b"\x01" * 32, b"meta")
    store.put_sliver(2, PRIMARY, b"\x01" * 32, b"sliver")
    # Deleting a shard drops its slivers and its progress; a kept shard keeps its data.
    store.apply_shard_changes({ShardIndex(1): None, ShardIndex(2): ShardStatus.LOCKED_TO_MOVE}, {})
    assert store.shards() == {2: ShardStatus.LOCKED_TO_MOVE}
    assert store.sync_progress() == {}
    assert store.get_sliver(2, PRIMARY, b"\x01" * 32) == b"sliver"


def test_a_synced_batch_lands_with_its_progress_or_not_at_all(store: NodeStore) -> None:
    store.apply_shard_changes({ShardIndex(4): ShardStatus.ACTIVE_SYNC}, {})
    first, second = b"\x01" * 32, b"\x02" * 32
    store.put_metadata(first, b"meta")  # the second blob has no metadata: skipped
    skipped = store.put_synced_slivers(
        4, PRIMARY, [(first, b"s1"), (second, b"s2")], _sync_progress(4, 2)
    )
    assert skipped == [second]
    assert store.get_sliver(4, PRIMARY, first) == b"s1"
    assert store.get_sliver(4, PRIMARY, second) is None
    assert store.sync_progress() == {4: _sync_progress(4, 2)}
    # Once the shard is locked (lost again), a late batch is refused whole.
    store.apply_shard_changes({ShardIndex(4): ShardStatus.LOCKED_TO_MOVE}, {ShardIndex(4): None})
    with pytest.raises(ShardNotSyncingError):
        store.put_synced_slivers(4, PRIMARY, [(first, b"other")], _sync_progress(4, 3))
    assert store.sync_progress() == {}
    assert store.get_sliver(4, PRIMARY, first) == b"s1"
    with pytest.raises(ValueError, match="progress of shard 5"):
        store.put_synced_slivers(4, PRIMARY, [], _sync_progress(5, None))
