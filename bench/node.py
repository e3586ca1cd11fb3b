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

Usage: python bench/node.py [--sizes 1,16,64] [--blobs 8]   (run from the repository root)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.node.cluster import blob_data, open_cluster  # noqa: E402

from walruspy.core.encoding import EncodedBlob  # noqa: E402
from walruspy.core.types import SliverPairIndex, SliverType  # noqa: E402
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


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,16,64")
    parser.add_argument("--blobs", type=int, default=8)
    args = parser.parse_args()
    await throughput(args.blobs)
    print("recovery, 10 nodes x 10 shards (n = 100), one node down while the blob is stored:")
    for size in (int(s) for s in args.sizes.split(",")):
        await recovery_cost(size)


if __name__ == "__main__":
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    asyncio.run(main())
