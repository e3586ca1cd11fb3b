"""Unit tests of the node's smaller pieces: symbol planning, waiters, the decoding-symbol wire
form, event de-duplication, garbage collection on a bare store, and the API's body limits."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from tests.node.cluster import open_cluster
from walruspy.chain.events import BlobRegistered, EventId
from walruspy.core.bcs import Writer
from walruspy.core.blob_id import BlobId
from walruspy.core.errors import DecodeError
from walruspy.core.params import MAX_SYMBOL_SIZE
from walruspy.core.types import ShardIndex, SliverIndex, SliverType, pair_of_shard
from walruspy.node import blob_state
from walruspy.node.gc import GarbageCollector, successor
from walruspy.node.metrics import NodeMetrics
from walruspy.node.store import NodeStore, StoreConfig
from walruspy.node.store_records import EventProgress, GcProgress, PerObjectBlobInfo
from walruspy.node.symbols import plan_symbols, symbol_ids_for
from walruspy.node.view import RegistrationWaiters
from walruspy.node_api import errors
from walruspy.node_api.decoding_symbols import (
    DecodingSymbol,
    decoding_symbols_from_bcs,
    decoding_symbols_to_bcs,
)
from walruspy.node_api.paths import RecoverySymbolsByIds, RecoverySymbolsForSliver, SymbolId

N = 10
BLOB = hashlib.blake2b(b"unit", digest_size=32).digest()


def bid(i: int) -> bytes:
    return hashlib.blake2b(i.to_bytes(4, "little"), digest_size=32).digest()


# --- symbol planning -------------------------------------------------------------------------


def test_plan_prefers_a_secondary_target_and_honours_the_proof_axis() -> None:
    shard = ShardIndex(3)
    pair = pair_of_shard(shard, BLOB, N)
    owned = frozenset({shard})
    symbol = SymbolId(SliverIndex(pair), SliverIndex(N - 1 - pair))  # both slivers of the pair
    (plan,) = plan_symbols([symbol], None, BLOB, owned, N)
    assert [c[0] for c in plan.candidates] == [SliverType.PRIMARY, SliverType.SECONDARY]
    (plan,) = plan_symbols([symbol], SliverType.SECONDARY, BLOB, owned, N)
    assert [c[0] for c in plan.candidates] == [SliverType.SECONDARY]  # for a primary target
    assert plan.candidates[0][2] == pair  # position = the primary index


def test_plan_names_what_cannot_be_served() -> None:
    owned = frozenset({ShardIndex(0)})
    foreign = next(p for p in range(N) if p != pair_of_shard(ShardIndex(0), BLOB, N))
    other = SymbolId(SliverIndex(foreign), SliverIndex(N - 1 - foreign))
    far = SymbolId(SliverIndex(N), SliverIndex(0))
    plans = plan_symbols([other, far], None, BLOB, owned, N)
    assert isinstance(plans[0].error, errors.SymbolNotPresentAtShardsError)
    assert isinstance(plans[1].error, errors.IndexOutOfRangeError)


def test_target_form_asks_one_symbol_per_owned_shard() -> None:
    owned = [ShardIndex(1), ShardIndex(4)]
    ids = symbol_ids_for(
        RecoverySymbolsForSliver(SliverIndex(2), SliverType.PRIMARY), BLOB, owned, N
    )
    assert [i.primary for i in ids] == [2, 2]
    pairs = [pair_of_shard(s, BLOB, N) for s in owned]
    assert [i.secondary for i in ids] == [N - 1 - p for p in pairs]
    by_ids = RecoverySymbolsByIds((SymbolId(SliverIndex(1), SliverIndex(2)),))
    assert symbol_ids_for(by_ids, BLOB, owned, N) == list(by_ids.ids)


# --- registration waiters ---------------------------------------------------------------------


async def test_waiters_wake_time_out_and_stay_bounded() -> None:
    waiters = RegistrationWaiters(max_waiters=2)
    task = asyncio.create_task(waiters.wait(BLOB, 5))
    await asyncio.sleep(0)
    waiters.notify(BLOB)
    assert await task
    assert not await waiters.wait(BLOB, 0.01)  # nobody notifies: timeout
    first = asyncio.create_task(waiters.wait(b"a" * 32, 5))
    second = asyncio.create_task(waiters.wait(b"b" * 32, 5))
    await asyncio.sleep(0)
    assert not waiters.has_room()
    assert not await waiters.wait(b"c" * 32, 5)  # full: answers at once
    waiters.notify(b"a" * 32)
    waiters.notify(b"b" * 32)
    assert await first and await second
    assert waiters.has_room() and not waiters._events


# --- decoding symbols on the wire -------------------------------------------------------------


def test_decoding_symbols_round_trip_and_strictness() -> None:
    symbols = {
        0: [DecodingSymbol(SliverType.PRIMARY, SliverIndex(5), b"ab")],
        3: [
            DecodingSymbol(SliverType.PRIMARY, SliverIndex(1), b"cd"),
            DecodingSymbol(SliverType.PRIMARY, SliverIndex(2), b"ef"),
        ],
    }
    wire = decoding_symbols_to_bcs(symbols)
    assert decoding_symbols_from_bcs(wire) == symbols
    with pytest.raises(DecodeError):
        decoding_symbols_from_bcs(wire + b"\x00")
    unsorted = Writer().uleb128(2).u16(3).uleb128(0).u16(1).uleb128(0).finish()
    with pytest.raises(DecodeError, match="strictly increasing"):
        decoding_symbols_from_bcs(unsorted)
    huge = Writer().uleb128(1).u16(0).uleb128(1).uleb128(0).u16(0)
    huge.uleb128(MAX_SYMBOL_SIZE + 1)
    with pytest.raises(DecodeError):
        decoding_symbols_from_bcs(huge.finish())


# --- event de-duplication -------------------------------------------------------------------


async def test_an_event_at_or_before_the_cursor_is_skipped(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, (10,)) as cluster:
        node = cluster.nodes[0].node
        assert node is not None and node.processor is not None and node.store is not None
        before = node.processor.events_applied
        stale = BlobRegistered(
            EventId(1, 0, b"\x01" * 32), 1, BlobId(BLOB), 10, 1, 5, False, b"\x02" * 32
        )
        await node.processor.apply(stale)
        assert node.processor.events_applied == before
        assert node.store.get_blob_info(BLOB) is None


async def test_chain_events_are_applied_once_in_order(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, (10,)) as cluster:
        for i in range(5):
            cluster.chain.register(BlobId(bid(i)), 10, 3)
        await cluster.wait_for_events()
        node = cluster.nodes[0].node
        assert node is not None and node.store is not None
        cursor = node.store.event_cursor()
        assert cursor is not None and cursor.events_applied == cluster.chain.event_count
        last = cluster.chain.events_log[-1].event_id
        assert cursor.position == (last.block_number, last.log_index)
        assert len(node.store.list_per_object_blob_infos()) == 5


# --- garbage collection on a bare store -------------------------------------------------------


def test_gc_phases_and_idempotence(tmp_path: Path) -> None:
    with NodeStore.open(StoreConfig(tmp_path / "db", map_size_bytes=1 << 24)) as store:
        store.create_shard(0)
        progress = None
        for i, end in enumerate((2, 5)):
            event = BlobRegistered(
                EventId(i + 1, 0, bid(100 + i)), 1, BlobId(bid(i)), 10, 1, end, False, bid(50 + i)
            )
            t = blob_state.decide(event, None, None, 1)
            progress = EventProgress.after(progress, i + 1, 0)
            store.apply_event(progress, t.blob_infos, t.per_object_blob_infos)
            store.put_metadata(bid(i), b"metadata")
        gc = GarbageCollector(store, NodeMetrics(), enable_data_deletion=True)
        assert gc.needs(3)
        asyncio.run(gc.collect(3))
        assert not gc.needs(3)
        assert store.gc_progress() == GcProgress(3, 3)
        assert not store.has_metadata(bid(0)) and store.has_metadata(bid(1))
        assert store.get_blob_info(bid(0)) is None
        assert [k for k, _ in store.list_per_object_blob_infos()] == [bid(51)]
        record = store.get_per_object_blob_info(bid(51))
        assert isinstance(record, PerObjectBlobInfo) and record.end_epoch == 5
        asyncio.run(gc.collect(3))  # again: nothing changes
        assert store.has_metadata(bid(1))


def test_successor() -> None:
    assert successor(b"\x00\x01") == b"\x00\x02"
    assert successor(b"\x00\xff") == b"\x01\x00"
    assert successor(b"\xff\xff") is None


# --- body limits --------------------------------------------------------------------------------


async def test_body_limits_follow_the_shard_count(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, (10,)) as cluster:
        node = cluster.nodes[0].node
        assert node is not None and node.api is not None
        api = node.api
        # n = 10: s = 7, p = 4 symbols of at most 65,534 bytes, plus framing and headroom.
        assert api.sliver_limit(SliverType.PRIMARY) == 5 + 7 * MAX_SYMBOL_SIZE + 4 + 128
        assert api.sliver_limit(SliverType.SECONDARY) == 5 + 4 * MAX_SYMBOL_SIZE + 4 + 128
        assert api.metadata_limit() == 13 + 66 * 10 + 128
        assert api.proof_limit() > 7 * MAX_SYMBOL_SIZE
