"""A storage node in a process of its own, on a deterministic fake chain, for kill -9 tests.

    python -m tests.node.node_process STATE_DIR PORT

`STATE_DIR/chain.json` lists the blob IDs (hex) to register (and certify) on the fake chain at
start, so every incarnation of the process sees the same chain. The node stores its data in
`STATE_DIR/db`, serves on 127.0.0.1:PORT, prints "READY <events applied> <events processed>" once
ready, and runs until killed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from pathlib import Path

from tests.node.cluster import node_config
from tests.node.fakes import FakeChain
from walruspy.core.blob_id import BlobId
from walruspy.core.committee import CommitteeMember
from walruspy.core.crypto import BlsPrivateKey

N_SHARDS = 10


def node_key() -> BlsPrivateKey:
    return BlsPrivateKey.from_seed(hashlib.blake2b(b"process-node", digest_size=32).digest())


def build_chain(state_dir: Path, port: int) -> FakeChain:
    member = CommitteeMember(
        hashlib.blake2b(b"process-node-id", digest_size=32).digest(),
        node_key().public_key(),
        f"127.0.0.1:{port}",
        tuple(range(N_SHARDS)),
    )
    chain = FakeChain([member], N_SHARDS)
    for blob_hex in json.loads((state_dir / "chain.json").read_text()):
        chain.certify(chain.register(BlobId.from_hex(blob_hex), epochs_ahead=50))
    return chain


async def main(state_dir: Path, port: int) -> None:
    from walruspy.node.node import StorageNode

    chain = build_chain(state_dir, port)
    config = node_config(state_dir / "db", rest_api_port=port)
    node = StorageNode(config, chain, node_key())
    task = asyncio.create_task(node.run())
    await node.wait_ready()
    assert node.processor is not None and node.service is not None
    registry = node.service.metrics.registry
    processed = sum(
        sample.value
        for family in registry.collect()
        if family.name == "walrus_events_processed"
        for sample in family.samples
        if sample.name.endswith("_total")
    )
    print(f"READY {node.processor.events_applied} {int(processed)}", flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
