"""Tests of integrity at rest (walruspy.node.store_integrity) and the scrubber's pure parts.

Sealed records: any flipped bit, a truncation or a wrong key fails the check. The store: a record
that fails is read as missing, deleted and reported once; `scrub_batch` finds rot without reads; a
store written before checksums is migrated in place (also after a crash mid-way); a newer format
is refused; a truncated or garbled data file is refused before LMDB maps it.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import lmdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from walruspy.core.encoding import encode_blob
from walruspy.core.metadata import BlobMetadata
from walruspy.core.types import SliverType
from walruspy.node import storage as storage_module
from walruspy.node import store_integrity as integrity
from walruspy.node.metrics import NodeMetrics
from walruspy.node.scrub import ScrubPosition, advance
from walruspy.node.storage import NodeStorage, StoreOutcome
from walruspy.node.store import NodeStore, ScrubBatch, StoreConfig, shard_database_name
from walruspy.node.store_integrity import (
    ChecksumMismatchError,
    RecordKind,
    StoreDamagedError,
    check_data_file,
    move_aside,
    seal,
    unseal,
)
from walruspy.node.store_records import StoreCorruptionError, StoreError
from walruspy.node.view import NodeState

PRIMARY = SliverType.PRIMARY


def bid(i: int) -> bytes:
    return i.to_bytes(32, "big")


@given(key=st.binary(min_size=32, max_size=32), payload=st.binary(min_size=1, max_size=300))
def test_seal_round_trips(key: bytes, payload: bytes) -> None:
    assert unseal(key, seal(key, payload)) == payload


@given(payload=st.binary(min_size=1, max_size=300), data=st.data())
def test_any_flipped_bit_truncation_or_other_key_fails(payload: bytes, data: st.DataObject) -> None:
    sealed = bytearray(seal(bid(1), payload))
    bit = data.draw(st.integers(0, 8 * len(sealed) - 1))
    sealed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ChecksumMismatchError):
        unseal(bid(1), bytes(sealed))
    good = seal(bid(1), payload)
    assert not integrity.is_intact(bid(1), good[: data.draw(st.integers(0, len(good) - 1))])
    assert not integrity.is_intact(bid(2), good)


def raw_put(path: Path, table: bytes, key: bytes, value: bytes) -> None:
    env = lmdb.open(str(path), max_dbs=64)
    with env.begin(write=True) as txn:
        txn.put(key, value, db=env.open_db(table, txn=txn))
    env.close()


def test_rot_is_read_as_missing_discarded_and_reported_once(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with NodeStore.open(StoreConfig(path)) as store:
        store.create_shard(0)
        store.put_metadata(bid(1), b"meta")
        store.put_slivers(0, PRIMARY, [(bid(1), b"a" * 1000), (bid(2), b"b" * 1000)])
    rotten = bytearray(seal(bid(1), b"a" * 1000))
    rotten[10] ^= 0x01
    raw_put(path, shard_database_name(0, PRIMARY), bid(1), bytes(rotten))
    with NodeStore.open(StoreConfig(path)) as store:
        assert store.has_sliver(0, PRIMARY, bid(1))  # presence alone reads no bytes
        assert not store.check_sliver(0, PRIMARY, bid(1))
        assert store.get_sliver(0, PRIMARY, bid(1)) is None
        reports = store.corruption.drain()
        assert [(r.kind, r.blob_id, r.shard) for r in reports] == [(RecordKind.PRIMARY, bid(1), 0)]
        assert store.get_sliver(0, PRIMARY, bid(2)) == b"b" * 1000
        assert store.get_metadata(bid(1)) == b"meta"
        # Once repaired (stored again), it is served.
        store.put_slivers(0, PRIMARY, [(bid(1), b"a" * 1000)])
        assert store.get_sliver(0, PRIMARY, bid(1)) == b"a" * 1000


def test_scrub_batch_finds_rot_without_a_read(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with NodeStore.open(StoreConfig(path)) as store:
        store.create_shard(3)
        store.put_metadata(bid(5), b"meta")
        store.put_slivers(3, PRIMARY, [(bid(i), bytes([i]) * 100) for i in range(1, 11)])
    raw_put(path, shard_database_name(3, PRIMARY), bid(4), b"rotten")
    raw_put(path, b"metadata", bid(5), b"rotten!")
    with NodeStore.open(StoreConfig(path)) as store:
        assert store.scrub_tables() == [b"metadata", b"shard-3/primary", b"shard-3/secondary"]
        first = store.scrub_batch(b"shard-3/primary", None, 3, 1 << 20)
        assert (first.records, first.corrupt, first.next_start) == (3, [], bid(4))
        second = store.scrub_batch(b"shard-3/primary", first.next_start, 100, 1 << 20)
        assert second.records == 7 and second.next_start is None
        assert [(r.kind, r.blob_id) for r in second.corrupt] == [(RecordKind.PRIMARY, bid(4))]
        meta = store.scrub_batch(b"metadata", None, 100, 1 << 20)
        assert [(r.kind, r.shard) for r in meta.corrupt] == [(RecordKind.METADATA, None)]
        assert len(store.corruption.drain()) == 2
        assert not store.has_sliver(3, PRIMARY, bid(4))
        assert store.scrub_batch(b"shard-9/primary", None, 10, 10).records == 0


def test_scrub_position_and_advance() -> None:
    position = ScrubPosition(7, b"shard-3/primary", bid(9))
    assert ScrubPosition.decode(position.encode()) == position
    assert ScrubPosition.decode(ScrubPosition(0, b"metadata", None).encode()).start is None
    with pytest.raises(StoreCorruptionError):
        ScrubPosition.decode(b"\x00\x01")
    tables = [b"metadata", b"shard-3/primary", b"shard-3/secondary"]
    more = ScrubBatch(10, 100, [], bid(10))
    done = ScrubBatch(10, 100, [], None)
    start = ScrubPosition(0, b"metadata", None)
    assert advance(tables, start, more) == ScrubPosition(0, b"metadata", bid(10))
    assert advance(tables, start, done) == ScrubPosition(0, b"shard-3/primary", None)
    last = ScrubPosition(0, b"shard-3/secondary", bid(3))
    assert advance(tables, last, done) == ScrubPosition(1, b"metadata", None)
    gone = ScrubPosition(0, b"shard-2/secondary", None)  # a dropped shard
    assert advance(tables, gone, done) == ScrubPosition(0, b"shard-3/primary", None)


def unsealed_store(path: Path, blobs: int) -> None:
    """A store as the release before checksums left it: data and no format record."""
    with NodeStore.open(StoreConfig(path)) as store:
        store.create_shard(0)
        store.create_shard(1)
    env = lmdb.open(str(path), max_dbs=64)
    with env.begin(write=True) as txn:
        txn.drop(env.open_db(b"store_info", txn=txn), delete=False)
        for i in range(blobs):
            txn.put(bid(i), b"meta%d" % i, db=env.open_db(b"metadata", txn=txn))
            for shard in (0, 1):
                db = env.open_db(shard_database_name(shard, PRIMARY), txn=txn)
                txn.put(bid(i), b"sliver%d" % i, db=db)
    env.close()


def test_a_store_without_checksums_is_migrated_in_place(tmp_path: Path) -> None:
    unsealed_store(tmp_path / "db", 25)
    with NodeStore.open(StoreConfig(tmp_path / "db")) as store:
        for i in range(25):
            assert store.get_metadata(bid(i)) == b"meta%d" % i
            assert store.get_sliver(1, PRIMARY, bid(i)) == b"sliver%d" % i
        assert store.corruption.drain() == []
    with NodeStore.open(StoreConfig(tmp_path / "db")) as store:  # no second migration
        assert store.get_sliver(0, PRIMARY, bid(3)) == b"sliver3"


def test_a_migration_cut_short_resumes_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unsealed_store(tmp_path / "db", 25)
    monkeypatch.setattr(integrity, "MIGRATION_BATCH_RECORDS", 4)
    steps = 0
    real_step = integrity.migrate_step

    def crash_after_five(*args: object) -> bool:
        nonlocal steps
        steps += 1
        if steps > 5:
            raise StoreError("power cut")
        return real_step(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(integrity, "migrate_step", crash_after_five)
    with pytest.raises(StoreError, match="power cut"):
        NodeStore.open(StoreConfig(tmp_path / "db"))
    monkeypatch.setattr(integrity, "migrate_step", real_step)
    with NodeStore.open(StoreConfig(tmp_path / "db")) as store:
        for i in range(25):
            assert store.get_metadata(bid(i)) == b"meta%d" % i
            assert store.get_sliver(0, PRIMARY, bid(i)) == b"sliver%d" % i
        assert store.corruption.drain() == []


def test_a_newer_format_is_refused(tmp_path: Path) -> None:
    NodeStore.open(StoreConfig(tmp_path / "db")).close()
    raw_put(tmp_path / "db", b"store_info", b"format", integrity.encode_format(3))
    with pytest.raises(StoreError, match="format 3, newer"):
        NodeStore.open(StoreConfig(tmp_path / "db"))


def filled_store(path: Path) -> Path:
    with NodeStore.open(StoreConfig(path)) as store:
        store.create_shard(0)
        store.put_slivers(0, PRIMARY, [(bid(i), bytes(20_000)) for i in range(20)])
    return path / "data.mdb"


def test_a_truncated_data_file_is_refused_before_it_is_mapped(tmp_path: Path) -> None:
    data_file = filled_store(tmp_path / "db")
    check_data_file(tmp_path / "db")  # intact
    os.truncate(data_file, data_file.stat().st_size - 4096 * 5)
    with pytest.raises(StoreDamagedError, match=r"data\.mdb is truncated to .* bytes"):
        NodeStore.open(StoreConfig(tmp_path / "db"))
    os.truncate(data_file, 100)
    with pytest.raises(StoreDamagedError, match="less than a meta page"):
        check_data_file(tmp_path / "db")


def test_a_garbled_data_file_is_refused(tmp_path: Path) -> None:
    data_file = filled_store(tmp_path / "db")
    with data_file.open("r+b") as handle:
        handle.seek(16)
        handle.write(b"\x00" * 8)
    with pytest.raises(StoreDamagedError, match="does not start with an LMDB meta page"):
        check_data_file(tmp_path / "db")
    check_data_file(tmp_path / "absent")  # a new store is not damaged


def test_move_aside_keeps_the_damaged_store(tmp_path: Path) -> None:
    filled_store(tmp_path / "db")
    first = move_aside(tmp_path / "db", clock=lambda: 0.0)
    assert first.name == "db.damaged-19700101T000000Z" and (first / "data.mdb").exists()
    filled_store(tmp_path / "db")
    second = move_aside(tmp_path / "db", clock=lambda: 0.0)
    assert second.name == "db.damaged-19700101T000000Z-1"
    assert not (tmp_path / "db").exists()


# --- verified metadata kept parsed (storage.NodeStorage) --------------------------------------


async def test_verified_metadata_is_kept_parsed_and_checked_against_the_stored_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses = 0
    real_from_bcs = BlobMetadata.from_bcs

    def counted(raw: bytes) -> BlobMetadata:
        nonlocal parses
        parses += 1
        return real_from_bcs(raw)

    monkeypatch.setattr(storage_module.BlobMetadata, "from_bcs", staticmethod(counted))
    encoded = [encode_blob(bytes([seed]) * 5000, 10) for seed in (1, 2)]
    state = cast(NodeState, SimpleNamespace(n_shards=10))
    with NodeStore.open(StoreConfig(tmp_path / "db", map_size_bytes=1 << 22)) as store:
        storage = NodeStorage(store, state, NodeMetrics())
        first = encoded[0].metadata
        assert await storage.store_metadata(first) is StoreOutcome.STORED
        for _ in range(3):  # the slivers of an upload: verified on its way in, not parsed again
            assert await storage.metadata(first.blob_id) == first
        assert parses == 0
        fresh = NodeStorage(store, state, NodeMetrics())  # a restarted node: parsed once
        for _ in range(3):
            assert await fresh.metadata(first.blob_id) == first
        assert parses == 1
        # Other bytes under the same ID, sealed as if by a bug: verified afresh and discarded.
        store.discard_metadata(first.blob_id.raw)
        assert store.put_metadata(first.blob_id.raw, encoded[1].metadata.metadata.to_bcs())
        assert await fresh.metadata(first.blob_id) is None
        assert parses == 2
        assert not store.has_metadata(first.blob_id.raw)
