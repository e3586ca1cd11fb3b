"""Disk faults on a real devnet: rotten records on one node, a wiped disk on another, all healed.

The acceptance test of the store's integrity at rest (node/store_integrity.py, node/scrub.py).
Layout: 7 nodes over 70 shards, 10 shards each (equal stake), so f = (70 - 1) // 3 = 23 shards
may be faulty: the two faulty nodes together hold 20 shards, within f. Smaller even layouts are
not: 4 nodes of 25 (f = 33) or 5 of 10 (f = 16) or 6 of 10 (f = 19) put two nodes above f.

Scenario. Four blobs (300 KB to 3 MB) are stored and certified, and every node holds every sliver
of its shards. Then, with both nodes stopped:

- the *rotten* node's data file gets byte flips inside stored values: some records are rewritten
  with one bit flipped through LMDB (keeping the checksum it was sealed with, now stale), others
  by flipping a bit directly in `data.mdb` wherever the value's bytes appear (never in LMDB's
  B-tree pages, which would make the file unopenable rather than rotten: that case is the
  refusal at start and `--rebuild-store`); one blob's metadata record is rotten too;
- the *wiped* node's storage directory is deleted.

Both restart. Within `HEAL_S`, every node must report itself Active with no shard in transfer or
recovery, the rotten node's scrubber must have found every flipped record and blob sync stored it
again, and every node must serve every sliver of its shards, each verifying against the blob's
metadata and equal to the encoder's. Reads through the client return the exact bytes. The test
prints how long healing took and how many records were repaired (`pytest -s` shows it).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import lmdb
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from tests.devnet.conftest import TEST_EPOCH_S, blob_bytes, shards_of, wait_certified
from walruspy.client import WalrusClient
from walruspy.core.blob_id import BlobId
from walruspy.core.encoding import EncodedBlob, encode_blob
from walruspy.core.errors import WalrusError
from walruspy.core.types import ShardIndex, SliverType, pair_of_shard
from walruspy.devnet import Devnet, DevnetNode, open_devnet, wait_until
from walruspy.node.config import load_config
from walruspy.node.store import (
    DEFAULT_MAP_SIZE_BYTES,
    DEFAULT_MAX_SHARDS,
    NodeStore,
    StoreConfig,
    shard_database_name,
)
from walruspy.node.store_integrity import DATA_FILE, is_intact
from walruspy.node_api.schemas import StoredOnNodeStatus
from walruspy.node_api.tls import client_context

pytestmark = [
    pytest.mark.devnet,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(300),
]

N_NODES = 7
N_SHARDS = 70
F = (N_SHARDS - 1) // 3
ROTTEN, WIPED = 1, 5
SIZES = (300_000, 1_000_000, 2_000_000, 3_000_000)
#: Sliver records of the rotten node flipped per blob (half through LMDB, half in the file).
FLIPS_PER_BLOB = 2
#: The bound on healing after both nodes restart: the wiped node recovers a few MB of slivers
#: of 4 blobs from its peers, the scrubber passes every second (measured: 11-15 s, restarts
#: included); minutes would mean a stuck repair.
HEAL_S = 180.0
#: Every node holding every sliver after the stores (recovery of the last uploads).
SETTLE_S = 90.0
SEED = 20_240_611
LMDB_MAX_DBS = 2 * DEFAULT_MAX_SHARDS + 16
#: What a request to a node may fail with while it restarts or heals (anything else is a bug).
FAILURES = (WalrusError, aiohttp.ClientError, TimeoutError)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Devnet]:
    directory = tmp_path_factory.mktemp("disk_faults")
    async with open_devnet(
        directory, n_nodes=N_NODES, n_shards=N_SHARDS, epoch_duration_s=TEST_EPOCH_S,
        recovery_deferral_s=1.0,
        # A pass over a node's few MB takes milliseconds at this rate; one per second.
        scrub_bytes_per_second=64 << 20, scrub_pass_interval_s=1.0,
    ) as dn:  # fmt: skip
        yield dn


@dataclass(frozen=True, slots=True)
class Rot:
    """One record of the rotten node's store that was made to fail its check."""

    table: bytes
    key: bytes
    how: str  # "lmdb" (rewritten with a flipped bit) or "file" (flipped in data.mdb)


def storage_path(node: DevnetNode) -> Path:
    """The node's store directory, as its configuration file names it."""
    return load_config(node.plan.config_path).storage_path


def owned_pairs(node: DevnetNode) -> list[tuple[int, SliverType]]:
    """(shard, sliver type) of every sliver of a blob the node must store."""
    return [(shard, t) for shard in node.shards for t in SliverType]


async def missing_slivers(
    devnet: Devnet, http: aiohttp.ClientSession, blobs: Sequence[EncodedBlob]
) -> list[str]:
    """Slivers some node should store and does not say it stores (presence only)."""

    async def check(node: DevnetNode, blob: EncodedBlob, shard: int, t: SliverType) -> str | None:
        api = node.plan.client(http, 10, direct=True)
        blob_id = blob.metadata.blob_id
        pair = pair_of_shard(ShardIndex(shard), blob_id.raw, N_SHARDS)
        try:
            status = await api.sliver_status(blob_id, pair, t)
        except FAILURES as exc:  # any failure means "not there yet"
            return f"node {node.index} shard {shard} {t.value}: {exc!r}"
        if status is not StoredOnNodeStatus.STORED:
            return f"node {node.index} shard {shard} {t.value}: {status}"
        return None

    results = await asyncio.gather(
        *(
            check(node, blob, shard, t)
            for node in devnet.nodes
            for blob in blobs
            for shard, t in owned_pairs(node)
        )
    )
    return [result for result in results if result is not None]


async def unverified_slivers(
    devnet: Devnet, http: aiohttp.ClientSession, blobs: Sequence[EncodedBlob]
) -> list[str]:
    """Slivers some node does not serve, or serves but they fail verification or differ."""

    async def check(node: DevnetNode, blob: EncodedBlob, shard: int, t: SliverType) -> str | None:
        api = node.plan.client(http, 30, direct=True)
        pair = pair_of_shard(ShardIndex(shard), blob.metadata.blob_id.raw, N_SHARDS)
        try:
            served = await api.get_sliver(blob.metadata, pair, t)  # verifies against metadata
        except FAILURES as exc:  # reported with the sliver it concerns
            return f"node {node.index} shard {shard} {t.value}: {exc!r}"
        if served.sliver != blob.sliver(pair, t).sliver:
            return f"node {node.index} shard {shard} {t.value}: differs from the encoder's"
        return None

    failures: list[str] = []
    for node in devnet.nodes:  # one node at a time: bounded load on two cores
        results = await asyncio.gather(
            *(check(node, blob, shard, t) for blob in blobs for shard, t in owned_pairs(node))
        )
        failures += [result for result in results if result is not None]
    return failures


async def metric_total(http: aiohttp.ClientSession, node: DevnetNode, name: str) -> float:
    """The sum of every sample of counter `name` (without `_total`) on the node's /metrics."""
    async with http.get(f"{node.direct_url}/metrics", ssl=client_context()) as response:
        response.raise_for_status()
        text = await response.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == name
        for sample in family.samples
        if sample.name == f"{name}_total"
    )


async def healthy(http: aiohttp.ClientSession, node: DevnetNode) -> str | None:
    """None if the node reports itself Active with every shard ready, else what it reports."""
    try:
        health = await node.plan.client(http, 10, direct=True).health()
    except FAILURES as exc:  # not answering is not healthy
        return f"node {node.index}: {exc!r}"
    owned = health.shard_summary.owned_shard_status
    if health.node_status != "Active" or owned.in_transfer or owned.in_recovery or owned.unknown:
        return f"node {node.index}: {health.node_status}, shards {owned}"
    return None


# --- the faults ----------------------------------------------------------------------------


def flip_bit(value: bytes, rng: random.Random) -> bytes:
    """`value` with one random bit flipped in its payload (before the 8-byte checksum)."""
    at = rng.randrange(len(value) - 8)
    return value[:at] + bytes([value[at] ^ (1 << rng.randrange(8))]) + value[at + 1 :]


def pick_records(
    store_dir: Path, shards: Sequence[int], blobs: Sequence[EncodedBlob], rng: random.Random
) -> list[tuple[bytes, bytes]]:
    """(table, key) of the records to rot: `FLIPS_PER_BLOB` slivers of each blob, found through
    the project's own store, then one blob's metadata."""
    picked: list[tuple[bytes, bytes]] = []
    with NodeStore.open(StoreConfig(store_dir)) as store:
        for blob in blobs:
            key = blob.metadata.blob_id.raw
            stored = [
                (shard, t)
                for shard in shards
                for t in SliverType
                if store.get_sliver(shard, t, key) is not None  # present and intact
            ]
            assert len(stored) == 2 * len(shards), "the rotten node misses slivers already"
            for shard, t in rng.sample(stored, FLIPS_PER_BLOB):
                picked.append((shard_database_name(shard, t), key))
        assert store.get_metadata(blobs[0].metadata.blob_id.raw) is not None
    return [*picked, (b"metadata", blobs[0].metadata.blob_id.raw)]


def open_raw(store_dir: Path, *, readonly: bool) -> lmdb.Environment:
    """The store's LMDB environment, opened directly (the node is stopped)."""
    return lmdb.open(
        str(store_dir),
        map_size=DEFAULT_MAP_SIZE_BYTES,
        max_dbs=LMDB_MAX_DBS,
        readonly=readonly,
        lock=not readonly,
        subdir=True,
    )


def rot_through_lmdb(store_dir: Path, table: bytes, key: bytes, rng: random.Random) -> None:
    """Rewrite the record with one bit of its value flipped; its checksum is left as it was."""
    with open_raw(store_dir, readonly=False) as env:
        db = env.open_db(table, create=False)
        with env.begin(write=True, db=db) as txn:
            value = txn.get(key)
            assert value is not None
            txn.put(key, flip_bit(value, rng))


def rot_in_file(store_dir: Path, table: bytes, key: bytes, rng: random.Random) -> int:
    """Flip a bit of the record's value in data.mdb itself, wherever its bytes appear (old
    copies in free pages included, so the live one is hit); how many places were flipped."""
    with open_raw(store_dir, readonly=True) as env:
        db = env.open_db(table, create=False)
        with env.begin(db=db) as txn:
            value = txn.get(key)
    assert value is not None and len(value) > 200
    middle = len(value) // 2
    probe = value[middle : middle + 64]  # incompressible blob data: unique in the file
    path = store_dir / DATA_FILE
    content = path.read_bytes()
    places = 0
    with path.open("r+b") as handle:
        at = content.find(probe)
        while at >= 0:
            offset = at + rng.randrange(len(probe))
            handle.seek(offset)
            handle.write(bytes([content[offset] ^ (1 << rng.randrange(8))]))
            places += 1
            at = content.find(probe, at + len(probe))
    return places


def still_intact(store_dir: Path, rots: Sequence[Rot]) -> list[Rot]:
    """The rotted records that nevertheless pass their check (should be none)."""
    intact = []
    with open_raw(store_dir, readonly=True) as env:
        for rot in rots:
            db = env.open_db(rot.table, create=False)
            with env.begin(db=db) as txn:
                value = txn.get(rot.key)
            if value is None or is_intact(rot.key, value):
                intact.append(rot)
    return intact


def rot_store(
    store_dir: Path, shards: Sequence[int], blobs: Sequence[EncodedBlob], rng: random.Random
) -> list[Rot]:
    """Rot the chosen records of a stopped node's store, alternating the two ways."""
    rots = []
    for number, (table, key) in enumerate(pick_records(store_dir, shards, blobs, rng)):
        if number % 2 == 0 or table == b"metadata":
            rot_through_lmdb(store_dir, table, key, rng)
            rots.append(Rot(table, key, "lmdb"))
        else:
            assert rot_in_file(store_dir, table, key, rng) >= 1
            rots.append(Rot(table, key, "file"))
    assert still_intact(store_dir, rots) == []
    return rots


# --- the test ------------------------------------------------------------------------------


async def test_rotten_and_wiped_disks_heal(
    devnet: Devnet, client: WalrusClient, http: aiohttp.ClientSession
) -> None:
    rng = random.Random(SEED)
    datas = [blob_bytes(100 + i, size) for i, size in enumerate(SIZES)]
    blob_ids: list[BlobId] = []
    for data in datas:
        result = await client.store(data, 5, deletable=False)
        await wait_certified(client, result.blob_id)
        blob_ids.append(result.blob_id)
    blobs = [await asyncio.to_thread(encode_blob, data, N_SHARDS) for data in datas]
    assert [blob.metadata.blob_id for blob in blobs] == blob_ids

    async def settled() -> bool:
        return not await missing_slivers(devnet, http, blobs)

    await wait_until(settled, SETTLE_S, "every node storing every sliver of its shards")

    rotten, wiped = devnet.nodes[ROTTEN], devnet.nodes[WIPED]
    assert shards_of([rotten, wiped]) <= F  # within the fault model
    await rotten.stop()
    await wiped.kill()
    rotten_dir, wiped_dir = storage_path(rotten), storage_path(wiped)
    rots = await asyncio.to_thread(rot_store, rotten_dir, rotten.shards, blobs, rng)
    await asyncio.to_thread(shutil.rmtree, wiped_dir)

    started = time.monotonic()
    async with asyncio.TaskGroup() as group:
        group.create_task(rotten.restart())
        group.create_task(wiped.restart())
    restarted_s = time.monotonic() - started
    deadline = started + HEAL_S
    last: list[str] = []

    async def all_healthy() -> bool:
        last[:] = [r for r in await asyncio.gather(*(healthy(http, n) for n in devnet.nodes)) if r]
        return not last

    async def rot_repaired() -> bool:
        found = await metric_total(http, rotten, "walrus_scrub_corrupt_records")
        repaired = await metric_total(http, rotten, "walrus_scrub_repaired")
        last[:] = [f"rotten node: {found:.0f} corrupt records found, {repaired:.0f} repaired"]
        return found >= len(rots) and repaired >= len(rots)

    async def all_stored() -> bool:
        last[:] = await missing_slivers(devnet, http, blobs)
        return not last

    async def all_verified() -> bool:
        last[:] = await unverified_slivers(devnet, http, blobs)
        return not last

    for check, what in (
        (all_healthy, "every node reporting itself Active"),
        (rot_repaired, "the rotten node finding and repairing every flipped record"),
        (all_stored, "every node storing every sliver of its shards"),
        (all_verified, "every sliver served and verifying on every node"),
    ):
        try:
            await wait_until(check, max(1.0, deadline - time.monotonic()), what)
        except Exception as exc:
            raise AssertionError(f"{exc}; last seen: {last[:10]}") from exc
    healed_s = time.monotonic() - started

    corrupt = await metric_total(http, rotten, "walrus_scrub_corrupt_records")
    repaired = await metric_total(http, rotten, "walrus_scrub_repaired")
    recovered = await metric_total(http, wiped, "walrus_slivers_recovered")
    recovered += await metric_total(http, wiped, "walrus_shard_sync_slivers")
    synced = await metric_total(http, wiped, "walrus_recover_blob")
    passes = await metric_total(http, rotten, "walrus_scrub_passes")
    print(
        f"\ndisk faults healed in {healed_s:.1f} s ({restarted_s:.1f} s of it restarting): "
        f"node {ROTTEN} ({len(rots)} records rotted: "
        f"{sum(r.how == 'lmdb' for r in rots)} through LMDB, "
        f"{sum(r.how == 'file' for r in rots)} in data.mdb) found {corrupt:.0f} corrupt and had "
        f"{repaired:.0f} repaired by blob sync after {passes:.0f} scrub passes; wiped node "
        f"{WIPED} recovered {recovered:.0f} slivers ({synced:.0f} blob syncs); "
        f"{repaired + recovered:.0f} records repaired in all"
    )
    assert repaired >= len(rots)
    assert recovered >= len(blobs) * 2 * len(wiped.shards)
    for blob_id, data in zip(blob_ids, datas, strict=True):
        assert await client.read(blob_id) == data
