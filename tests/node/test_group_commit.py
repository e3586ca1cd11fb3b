"""Group commit of sliver writes: a burst shares commits, each write keeps its own outcome."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from walruspy import failpoints
from walruspy.core.types import SliverType
from walruspy.node.group_commit import SliverWriter
from walruspy.node.store import NodeStore, NoMetadataError, StoreConfig
from walruspy.node.store_records import StoreError


def bid(i: int) -> bytes:
    return hashlib.blake2b(i.to_bytes(4, "big"), digest_size=32).digest()


@pytest.fixture
def store(tmp_path: Path):
    with NodeStore.open(StoreConfig(tmp_path / "db", map_size_bytes=1 << 22)) as s:
        s.create_shard(0)
        for i in range(100):
            s.put_metadata(bid(i), b"metadata")
        yield s


async def test_a_burst_of_writes_shares_commits(store: NodeStore) -> None:
    writer = SliverWriter(store)
    outcomes = await asyncio.gather(
        *(writer.put(0, SliverType.PRIMARY, bid(i), b"s%d" % i) for i in range(100))
    )
    assert outcomes == [True] * 100
    assert writer.writes == 100 and writer.commits < 10, writer.commits
    assert all(store.get_sliver(0, SliverType.PRIMARY, bid(i)) == b"s%d" % i for i in range(100))
    # A lone write is committed at once, on its own.
    assert not await writer.put(0, SliverType.PRIMARY, bid(5), b"other")
    assert store.get_sliver(0, SliverType.PRIMARY, bid(5)) == b"s5"


async def test_each_write_gets_its_own_outcome(store: NodeStore) -> None:
    writer = SliverWriter(store)
    results = await asyncio.gather(
        writer.put(0, SliverType.SECONDARY, bid(1), b"ok"),
        writer.put(0, SliverType.SECONDARY, bid(1000), b"no metadata"),
        writer.put(3, SliverType.SECONDARY, bid(2), b"no shard"),
        return_exceptions=True,
    )
    assert results[0] is True
    assert isinstance(results[1], NoMetadataError)
    assert isinstance(results[2], ValueError) and "shard 3" in str(results[2])


async def test_a_failing_store_fails_its_group_and_the_writer_goes_on(
    store: NodeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = SliverWriter(store)
    honest = store.put_sliver_group

    def broken(items: object) -> object:
        raise StoreError("disk full")

    monkeypatch.setattr(store, "put_sliver_group", broken)
    with pytest.raises(StoreError, match="disk full"):
        await writer.put(0, SliverType.PRIMARY, bid(1), b"x")
    monkeypatch.setattr(store, "put_sliver_group", honest)
    assert await writer.put(0, SliverType.PRIMARY, bid(1), b"x")


async def test_a_crash_after_the_commit_reaches_every_waiting_writer(store: NodeStore) -> None:
    writer = SliverWriter(store)
    with failpoints.armed("node.after_sliver_write", failpoints.Crash()):
        results = await asyncio.gather(
            *(writer.put(0, SliverType.PRIMARY, bid(i), b"s%d" % i) for i in range(20)),
            return_exceptions=True,
        )
    assert all(isinstance(r, failpoints.FailPointCrash) for r in results), results
    # The first group was committed before the crash: durable, though nobody was told.
    assert store.get_sliver(0, SliverType.PRIMARY, bid(0)) == b"s0"
    assert await writer.put(0, SliverType.PRIMARY, bid(50), b"after")  # a new flush starts


async def test_an_error_after_the_commit_fails_the_group_that_is_stored(store: NodeStore) -> None:
    writer = SliverWriter(store)
    lost_ack = failpoints.Error(OSError("lost ack"))
    with (
        failpoints.armed("node.after_sliver_write", lost_ack),
        pytest.raises(OSError, match="lost ack"),
    ):
        await writer.put(0, SliverType.PRIMARY, bid(1), b"x")
    assert store.get_sliver(0, SliverType.PRIMARY, bid(1)) == b"x"
    assert not await writer.put(0, SliverType.PRIMARY, bid(1), b"x")  # already stored
