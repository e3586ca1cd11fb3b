"""Measure a storage node: sliver PUT/GET throughput, and what recovery downloads.

1. Throughput against one node *process* (tests/node/node_process.py: a `StorageNode` on a
   deterministic in-memory chain, owning all 10 shards): PUT then GET every sliver of several
   1 MiB blobs, 16 requests in flight, through `NodeClient` (PUT) and raw GETs; requests/s and
   MB/s. Each PUT is verified by the node (expansion + Merkle root) and fsynced before its 201.
2. Recovery cost: an in-process network of 10 nodes x 10 shards (n = 100, f = 33) stores a blob
   of 1, 16 and 64 MiB while one node is down; when it comes back it recovers its 10 sliver
   pairs from the others' recovery symbols. Printed: bytes it downloaded per recovered sliver
   pair, divided by the blob size. Red Stuff's promise is O(|blob|/n) per pair, so the ratio
   should be a small multiple of 1/n = 0.01, not 1.
3. Integrity at rest: the cost of the records' XXH3 checksum (node/store_integrity.py) on the sliver
   write path (`put_sliver_group`, one synced transaction per sliver, as uploads do) and read path
   (`get_sliver`, warm), and on GETs through an in-process node's API: the same operations with
   the checksum on and off (replaced by a constant), interleaved rounds in the same run, medians,
   ratio printed (target: under 5%). Then the scrubber's throughput: MB/s of records verified by
   `scrub_batch` with no rate limit.

4. Metadata per sliver: every sliver PUT is checked against its blob's stored metadata. What
   that costs with the metadata parsed and verified again for each sliver (as before
   `NodeStorage` kept the recent ones verified), against finding it kept (the stored bytes
   compared with the kept ones), at n = 100 and n = 1000, and so per node and blob when a node
   holds a tenth of the shards (two slivers a shard).

Usage: python bench/node.py [--sizes 1,16,64] [--blobs 8] [--only integrity|metadata]
(run from the repository root)
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.node.cluster import blob_data, open_cluster, upload_to  # noqa: E402

from walruspy.core.blob_id import BlobId  # noqa: E402
from walruspy.core.encoding import EncodedBlob, encode_blob  # noqa: E402
from walruspy.core.metadata import BlobMetadata, UnverifiedBlobMetadataWithId  # noqa: E402
from walruspy.core.types import SliverPairIndex, SliverType  # noqa: E402
from walruspy.node import store_integrity  # noqa: E402
from walruspy.node.store import NodeStore, StoreConfig  # noqa: E402
from walruspy.node_api.client import NodeClient  # noqa: E402
from walruspy.workers import encode  # noqa: E402

IN_FLIGHT = 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_node_process(state_dir: Path, port: int) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.node.node_process", str(state_dir), str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=REPO, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    while not (await process.stdout.readline()).startswith(b"READY"):
        pass
    return process


async def run_all(calls: list, in_flight: int = IN_FLIGHT) -> float:
    """Run the coroutine factories with `in_flight` at a time; seconds taken."""
    queue = list(reversed(calls))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(in_flight):
            group.create_task(worker())
    return time.perf_counter() - started


async def throughput(n_blobs: int) -> None:
    blobs = [encode(blob_data(i, 1 << 20), 10) for i in range(n_blobs)]
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        (state / "chain.json").write_text(json.dumps([b.metadata.blob_id.hex() for b in blobs]))
        port = free_port()
        process = await start_node_process(state, port)
        try:
            async with aiohttp.ClientSession() as session:
                client = NodeClient(f"http://127.0.0.1:{port}", session)
                for encoded in blobs:
                    await client.put_metadata(encoded.metadata)
                items = [
                    (encoded, SliverPairIndex(pair), sliver_type)
                    for encoded in blobs
                    for pair in range(10)
                    for sliver_type in SliverType
                ]
                size = sum(len(e.sliver(p, t).sliver.to_bcs()) for e, p, t in items)
                put = await run_all(
                    [
                        (lambda e=e, p=p, t=t: client.put_sliver(
                            e.metadata.blob_id, p, e.sliver(p, t)))
                        for e, p, t in items
                    ]
                )  # fmt: skip

                async def get(e: EncodedBlob, p: SliverPairIndex, t: SliverType) -> None:
                    path = f"/v1/blobs/{e.metadata.blob_id}/slivers/{p}/{t.value}"
                    async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                        assert response.status == 200
                        await response.read()

                got = await run_all([(lambda e=e, p=p, t=t: get(e, p, t)) for e, p, t in items])
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()
    n = len(items)
    average_kib = size / n / 1024
    print(f"one node process, {n} slivers of {average_kib:.0f} KiB average, {IN_FLIGHT} in flight")
    print(f"  PUT (verify + fsync): {n / put:7.0f} req/s  {size / put / 1e6:7.1f} MB/s")
    print(f"  GET:                  {n / got:7.0f} req/s  {size / got / 1e6:7.1f} MB/s")


async def recovery_cost(size_mib: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with open_cluster(Path(tmp), (10,) * 10) as cluster:
            data = blob_data(size_mib, size_mib << 20)
            down = cluster.nodes[0]
            await cluster.stop(down)
            started = time.perf_counter()
            await cluster.store_blob(data, nodes=cluster.nodes[1:])
            stored = time.perf_counter() - started
            started = time.perf_counter()
            await cluster.start(down)
            await cluster.wait_for_events()
            await cluster.wait_syncs_idle()
            recovered = time.perf_counter() - started
            assert down.node is not None and down.node.service is not None
            registry = down.node.service.metrics.registry
            downloaded = registry.get_sample_value("walrus_recovery_bytes_downloaded_total") or 0
            pairs = len(down.shards)
            ratio = downloaded / pairs / len(data)
            print(
                f"  {size_mib:3d} MiB: stored on 9 nodes in {stored:5.1f} s; recovered {pairs} "
                f"pairs in {recovered:5.1f} s; {downloaded / pairs / 1e6:7.2f} MB per pair = "
                f"{ratio:.4f} x blob (1/n = {1 / cluster.n_shards:.4f})"
            )


ROUNDS = 5
REAL = (store_integrity.checksum, store_integrity.is_intact)


def checksums(on: bool) -> None:
    """Turn the records' checksum on, or off: writes seal a constant, reads skip the check (same
    record format, same code path otherwise)."""
    if on:
        store_integrity.checksum, store_integrity.is_intact = REAL
    else:
        store_integrity.checksum = lambda key, payload: 0
        store_integrity.is_intact = lambda key, value: len(value) > store_integrity.CHECKSUM_BYTES


def median_ratio(timings: dict[bool, list[float]]) -> tuple[float, float, float]:
    on, off = statistics.median(timings[True]), statistics.median(timings[False])
    return on, off, on / off - 1


def store_cost(sliver_kib: int = 200, count: int = 64) -> None:
    values = [os.urandom(sliver_kib << 10) for _ in range(8)]
    writes: dict[bool, list[float]] = {True: [], False: []}
    reads: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp, NodeStore.open(StoreConfig(tmp)) as store:
        store.create_shard(0)
        for round_ in range(ROUNDS):
            for on in (True, False):
                checksums(on)
                keys = [os.urandom(32) for _ in range(count)]
                for key in keys:
                    store.put_metadata(key, b"m" * 64)
                started = time.perf_counter()
                for i, key in enumerate(keys):
                    store.put_sliver_group([(0, SliverType.PRIMARY, key, values[i % 8])])
                writes[on].append((time.perf_counter() - started) / count)
                started = time.perf_counter()
                for _ in range(4):
                    for key in keys:
                        assert store.get_sliver(0, SliverType.PRIMARY, key) is not None
                reads[on].append((time.perf_counter() - started) / count / 4)
            del round_
    checksums(True)
    print(f"checksum cost in the store, {sliver_kib} KiB slivers, median of {ROUNDS} rounds:")
    for name, timings in (("write (synced)", writes), ("read (warm)", reads)):
        on, off = median_ratio(timings)[:2]
        print(f"  {name:15s} {on * 1e6:8.1f} us with, {off * 1e6:8.1f} us without: "
              f"+{(on - off) * 1e6:.1f} us, ratio {on / off:.3f}")  # fmt: skip


async def api_cost(n_blobs: int) -> None:
    blobs = [encode(blob_data(100 + i, 1 << 20), 10) for i in range(n_blobs)]
    gets: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        async with open_cluster(Path(tmp), (10,)) as cluster:
            node = cluster.nodes[0]
            for encoded in blobs:
                cluster.chain.certify(cluster.chain.register(encoded.metadata.blob_id, 1 << 20, 5))
            await cluster.wait_for_events()
            for encoded in blobs:
                await upload_to(cluster.client(node), encoded, range(10))
            items = [
                (e, SliverPairIndex(p), t) for e in blobs for p in range(10) for t in SliverType
            ]
            size = sum(len(e.sliver(p, t).sliver.to_bcs()) for e, p, t in items)
            session = cluster.session

            async def get(e: EncodedBlob, p: SliverPairIndex, t: SliverType) -> None:
                path = f"/v1/blobs/{e.metadata.blob_id}/slivers/{p}/{t.value}"
                async with session.get(f"{node.url}{path}") as response:
                    assert response.status == 200
                    await response.read()

            for _ in range(ROUNDS):
                for on in (True, False):
                    checksums(on)
                    calls = [(lambda e=e, p=p, t=t: get(e, p, t)) for e, p, t in items]
                    gets[on].append(await run_all(calls))
    checksums(True)
    on, off, ratio = median_ratio(gets)
    print(f"checksum cost on GET through an in-process node, {len(items)} slivers, {IN_FLIGHT} "
          f"in flight: {size / on / 1e6:.1f} MB/s with, {size / off / 1e6:.1f} MB/s without, "
          f"ratio {1 + ratio:.3f}")  # fmt: skip


def scrub_throughput(mib: int = 256, sliver_kib: int = 256) -> None:
    value = os.urandom(sliver_kib << 10)
    with tempfile.TemporaryDirectory() as tmp, NodeStore.open(StoreConfig(tmp)) as store:
        for shard in range(4):
            store.create_shard(shard)
            count = mib * 1024 // sliver_kib // 4
            for start in range(0, count, 64):
                batch = [(os.urandom(32), value) for _ in range(min(64, count - start))]
                store.put_slivers(shard, SliverType.PRIMARY, batch)
        started, checked, records = time.perf_counter(), 0, 0
        for table in store.scrub_tables():
            start = None
            while True:
                batch_ = store.scrub_batch(table, start, 1000, 64 << 20)
                checked, records = checked + batch_.size_bytes, records + batch_.records
                if batch_.next_start is None:
                    break
                start = batch_.next_start
        seconds = time.perf_counter() - started
    print(f"scrubber, no rate limit: {records} records, {checked / 2**20:.0f} MiB verified in "
          f"{seconds:.2f} s = {checked / seconds / 1e6:.0f} MB/s (warm page cache)")  # fmt: skip


def _parse_and_verify(blob_id: BlobId, raw: bytes, n_shards: int) -> None:
    UnverifiedBlobMetadataWithId(blob_id, BlobMetadata.from_bcs(raw)).verify(n_shards)


def _same_bytes(kept: bytes, raw: bytes) -> None:
    assert kept == raw


def metadata_cost() -> None:
    """Section 4 of the module docstring."""
    for n_shards in (100, 1000):
        encoded = encode_blob(b"x" * 1024, n_shards)
        raw = encoded.metadata.metadata.to_bcs()
        kept = bytes(bytearray(raw))  # another object with the same bytes, as read from LMDB
        parse = functools.partial(_parse_and_verify, encoded.metadata.blob_id, raw, n_shards)
        compare = functools.partial(_same_bytes, kept, raw)
        rounds = 200 if n_shards == 100 else 20
        parse_s = min(timeit.repeat(parse, number=rounds, repeat=5)) / rounds
        kept_s = min(timeit.repeat(compare, number=1000, repeat=5)) / 1000
        slivers = 2 * n_shards // 10
        print(f"metadata per sliver, n = {n_shards} ({len(raw)} B): parsed and verified "
              f"{parse_s * 1000:.2f} ms, kept {kept_s * 1e6:.2f} us ({parse_s / kept_s:,.0f}x); "
              f"per node and blob ({slivers} slivers): {slivers * parse_s * 1000:.0f} ms parsed "
              f"each time, {parse_s * 1000:.2f} ms parsed once")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,16,64")
    parser.add_argument("--blobs", type=int, default=8)
    parser.add_argument("--only", choices=["integrity", "metadata"], default=None)
    args = parser.parse_args()
    metadata_cost()
    if args.only == "metadata":
        return
    store_cost()
    await api_cost(args.blobs)
    scrub_throughput()
    if args.only == "integrity":
        return
    await throughput(args.blobs)
    print("recovery, 10 nodes x 10 shards (n = 100), one node down while the blob is stored:")
    for size in (int(s) for s in args.sizes.split(",")):
        await recovery_cost(size)


if __name__ == "__main__":
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    asyncio.run(main())
