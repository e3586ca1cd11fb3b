"""Measure a storage challenge on a devnet: traffic per node against its stored bytes, time, CPU.

A devnet of real node processes (devchain, staking, `--nodes` nodes over `--shards` shards) stores
N blobs of `--size` bytes for each N of `--blobs`, then starts one storage challenge
(`Devnet.start_challenge`, node/challenges.py) and waits until every member has its certificate
on chain. Printed per N:

* the time from ChallengeStart (the helper returns once it is on chain) to the last certificate;
* per node, the bytes of proofs it sent its verifiers (metric
  `walrus_challenge_proof_bytes_total`) as a fraction of the sliver bytes it stores (its shards'
  share of the blobs' encoded size); the target is under 1%;
* per node, the CPU seconds its process used during the challenge (utime + stime from /proc), the
  baseline being the same process's CPU over an idle interval of the same length before it.

Every verifier checks a fixed number of symbols with their Merkle proofs, in proportion to its
shards (`core.challenge.checks_per_verifier`: 1,669 each with 4 nodes of 25 shards), whatever N,
so the fraction falls as the node stores more; at small N every crossing of the sample is checked.

Usage: python bench/challenge.py [--blobs 100,1000] [--size 65536] [--nodes 4] [--shards 100]
(from the repository root)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from walruspy.client import open_client  # noqa: E402
from walruspy.core.params import EncodingParams  # noqa: E402
from walruspy.devnet import Devnet, open_devnet  # noqa: E402
from walruspy.node_api.tls import client_context  # noqa: E402

#: Stores in flight at once while filling the network (the publisher's default).
STORE_CONCURRENCY = 8


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def proof_bytes(session: aiohttp.ClientSession, url: str) -> float:
    """The node's `walrus_challenge_proof_bytes_total`."""
    # The node's own port, over its TLS (this is the bench's devnet: no pin needed).
    async with session.get(f"{url}/metrics", ssl=client_context()) as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("walrus_challenge_proof_bytes_total"):
            return float(line.split()[-1])
    return 0.0


async def fill(devnet: Devnet, count: int, size: int) -> None:
    slots = asyncio.Semaphore(STORE_CONCURRENCY)
    async with open_client(devnet.client_config()) as client:

        async def store(i: int) -> None:
            async with slots:
                data = i.to_bytes(8, "little") + os.urandom(size - 8)
                await client.store(data, 5, deletable=False)

        async with asyncio.TaskGroup() as group:
            for i in range(count):
                group.create_task(store(i))


async def measure(count: int, size: int, n_nodes: int, n_shards: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            open_devnet(Path(tmp), n_nodes=n_nodes, n_shards=n_shards, epoch_duration_s=3600)
            as devnet,
            aiohttp.ClientSession() as session,
        ):  # fmt: skip
            started = time.monotonic()
            await fill(devnet, count, size)
            fill_s = time.monotonic() - started
            pids = {node.index: node.pid for node in devnet.nodes}
            deployer = devnet._need_deployer()
            before = {n.index: await proof_bytes(session, n.direct_url) for n in devnet.nodes}
            cpu_before = {i: cpu_seconds(pid) for i, pid in pids.items() if pid}
            epoch = await devnet.start_challenge()
            started = time.monotonic()
            members = len((await deployer.committee()).members)
            while len((await deployer.challenge_state(epoch)).passed) < members:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            challenge_s = time.monotonic() - started
            cpu_after = {i: cpu_seconds(pid) for i, pid in pids.items() if pid}
            after = {n.index: await proof_bytes(session, n.direct_url) for n in devnet.nodes}
            await asyncio.sleep(challenge_s)  # the same length, idle, for the baseline
            idle_to = {i: cpu_seconds(pid) for i, pid in pids.items() if pid}
            encoded = EncodingParams(n_shards).encoded_length(size)
            nodes = []
            for node in devnet.nodes:
                stored = count * encoded * len(node.shards) / n_shards
                sent = after[node.index] - before[node.index]
                nodes.append(
                    {
                        "node": node.index,
                        "shards": len(node.shards),
                        "storedBytes": int(stored),
                        "proofBytesSent": int(sent),
                        "fractionOfStored": sent / stored if stored else 0.0,
                        "cpuS": cpu_after[node.index] - cpu_before[node.index],
                        "idleCpuS": idle_to[node.index] - cpu_after[node.index],
                    }
                )
            return {
                "blobs": count,
                "blobSize": size,
                "fillS": fill_s,
                "challengeS": challenge_s,
                "nodes": nodes,
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blobs", default="100,1000")
    parser.add_argument("--size", type=int, default=64 << 10)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--shards", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    for count in (int(x) for x in args.blobs.split(",")):
        result = asyncio.run(measure(count, args.size, args.nodes, args.shards))
        results.append(result)
        if not args.json:
            print(
                f"{count} blobs of {args.size} B ({result['fillS']:.0f} s to store): challenge"
                f" from start to the last certificate {result['challengeS']:.2f} s"
            )
            for node in result["nodes"]:
                print(
                    f"  node {node['node']} ({node['shards']} shards): sent"
                    f" {node['proofBytesSent'] / 1e6:.2f} MB of proofs ="
                    f" {100 * node['fractionOfStored']:.2f}% of the {node['storedBytes'] / 1e6:.1f}"
                    f" MB it stores; CPU {node['cpuS']:.2f} s (idle baseline"
                    f" {node['idleCpuS']:.2f} s)"
                )
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
