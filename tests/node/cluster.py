"""In-process storage nodes over the fake chain: one or many, restartable, optionally lying.

Each node gets its own LMDB store under the test's tmp dir and a socket bound on 127.0.0.1:0
before the committee is built (so the committee can name the real addresses); the node's API then
serves on that socket. `restart` cancels a node's `run()` and starts a new `StorageNode` on the
same store and port, like a process restart; `wipe` also deletes its store first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import shutil
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from tests.node.fakes import FakeChain
from walruspy.core.blob_id import BlobId
from walruspy.core.committee import CommitteeMember
from walruspy.core.crypto import BlsPrivateKey
from walruspy.core.encoding import EncodedBlob, encode_blob
from walruspy.core.symbols import symbols_from_bcs, symbols_to_bcs
from walruspy.core.types import ShardIndex, SliverPairIndex, SliverType, pair_of_shard
from walruspy.node.config import ChainConfig, EpochConfig, NodeConfig, RecoveryConfig
from walruspy.node.node import StorageNode
from walruspy.node.symbols import SymbolService
from walruspy.node_api.client import NodeClient
from walruspy.node_api.paths import RecoverySymbolsFilter


def node_config(storage_path: Path, **overrides: object) -> NodeConfig:
    """A node configuration with test-speed timings (no deferral, short backoff)."""
    config = NodeConfig(
        storage_path=storage_path,
        protocol_key_path=storage_path / "unused-protocol.key",
        wallet_key_path=storage_path / "unused-wallet.key",
        chain=ChainConfig(
            rpc_url="http://127.0.0.1:1",
            deployment_file=storage_path / "unused-deployment.json",
            event_polling_interval_s=0.01,
            retry_min_backoff_s=0.01,
            retry_max_backoff_s=0.05,
        ),
        blob_recovery=RecoveryConfig(
            live_upload_deferral_s=0.0,
            retry_min_backoff_s=0.02,
            retry_max_backoff_s=0.1,
            metadata_request_timeout_s=5.0,
            sliver_request_timeout_s=5.0,
            max_attempts=20,
            rescan_interval_s=3600.0,
        ),
        epoch=EpochConfig(drive_epoch_change=False),
    )
    return replace(config, **overrides)  # type: ignore[arg-type]


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _rebind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class LyingSymbolService(SymbolService):
    """Answers recovery-symbol requests with every symbol's first byte flipped."""

    async def recovery_symbols(
        self, blob_id: BlobId, symbols_filter: RecoverySymbolsFilter
    ) -> bytes:
        honest = symbols_from_bcs(await super().recovery_symbols(blob_id, symbols_filter))
        corrupted = [replace(s, data=bytes([s.data[0] ^ 0xFF]) + s.data[1:]) for s in honest]
        return symbols_to_bcs(corrupted)


@dataclass
class ClusterNode:
    """One node of the cluster and how to reach it."""

    index: int
    key: BlsPrivateKey
    member: CommitteeMember
    port: int
    storage_path: Path
    config: NodeConfig
    node: StorageNode | None = None
    task: asyncio.Task[None] | None = None
    lying: bool = False
    rng: random.Random | None = None
    rebuild_store: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def shards(self) -> tuple[int, ...]:
        return self.member.shards


@dataclass
class Cluster:
    """A fake chain and in-process nodes; `session` is shared by the test's clients."""

    chain: FakeChain
    nodes: list[ClusterNode]
    session: aiohttp.ClientSession
    sockets: dict[int, socket.socket] = field(default_factory=dict)

    @property
    def n_shards(self) -> int:
        return self.chain.n_shards

    def client(self, node: ClusterNode, timeout_s: float = 30.0) -> NodeClient:
        return NodeClient(node.url, self.session, timeout_s=timeout_s)

    async def start(self, node: ClusterNode, sock: socket.socket | None = None) -> None:
        sock = sock or _rebind(node.port)
        rng = node.rng or random.Random(node.index)
        chain = self.chain.for_node(node.member.network_address)
        node.node = StorageNode(
            node.config, chain, node.key, sock=sock, rng=rng, rebuild_store=node.rebuild_store
        )
        # A plain task, awaited by stop(): a node that crashes fails the test there.
        node.task = asyncio.create_task(node.node.run())
        async with asyncio.timeout(30):
            ready = asyncio.create_task(node.node.wait_ready())
            await asyncio.wait([ready, node.task], return_when=asyncio.FIRST_COMPLETED)
            if node.task.done():
                ready.cancel()
                node.task.result()  # raises the node's failure
            await ready
        if node.lying:
            api = node.node.api
            assert api is not None and node.node.service is not None
            api.symbols = LyingSymbolService(node.node.service, 16)

    async def stop(self, node: ClusterNode) -> None:
        if node.task is not None:
            node.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await node.task
        node.task = None

    async def restart(self, node: ClusterNode, wipe: bool = False) -> None:
        await self.stop(node)
        if wipe:
            shutil.rmtree(node.storage_path)
        await self.start(node)

    async def wait_for_events(self, nodes: Sequence[ClusterNode] | None = None) -> None:
        """Wait until the running nodes have applied every event emitted so far."""
        count = self.chain.event_count
        async with asyncio.timeout(30):
            for node in nodes or self.nodes:
                if node.task is not None and node.node is not None:
                    assert node.node.processor is not None
                    await node.node.processor.wait_for_events(count)

    async def wait_syncs_idle(self) -> None:
        async with asyncio.timeout(60):
            for node in self.nodes:
                if node.task is not None and node.node is not None:
                    assert node.node.syncer is not None
                    await node.node.syncer.wait_idle()

    async def store_blob(
        self,
        data: bytes,
        *,
        nodes: Sequence[ClusterNode] | None = None,
        deletable: bool = False,
        certify: bool = True,
        epochs_ahead: int = 5,
    ) -> tuple[EncodedBlob, bytes]:
        """Encode, register, upload to `nodes` (default: all running), certify; return both."""
        encoded = encode_blob(data, self.n_shards)
        blob_id = encoded.metadata.blob_id
        object_id = self.chain.register(blob_id, len(data), epochs_ahead, deletable)
        await self.wait_for_events()
        targets = [n for n in (nodes or self.nodes) if n.task is not None]
        owners = {m.network_address: m.shards for m in self.chain.members}
        for node in targets:
            shards = owners.get(node.member.network_address, ())
            if shards:
                await upload_to(self.client(node), encoded, shards)
        if certify:
            self.chain.certify(object_id)
            await self.wait_for_events()
        return encoded, object_id


async def upload_to(client: NodeClient, encoded: EncodedBlob, shards: Sequence[int]) -> None:
    """Upload the metadata and the slivers of `shards` to one node."""
    blob_id = encoded.metadata.blob_id
    await client.put_metadata(encoded.metadata)
    for shard in shards:
        pair = pair_of_shard(ShardIndex(shard), blob_id.raw, encoded.n_shards)
        for sliver_type in SliverType:
            await client.put_sliver(
                blob_id, pair, encoded.sliver(SliverPairIndex(pair), sliver_type)
            )


def make_members(
    shard_counts: Sequence[int], ports: Sequence[int]
) -> tuple[list[BlsPrivateKey], list[CommitteeMember]]:
    """Keys and committee members holding consecutive shard ranges."""
    keys, members, next_shard = [], [], 0
    for i, (count, port) in enumerate(zip(shard_counts, ports, strict=True)):
        key = BlsPrivateKey.from_seed(hashlib.blake2b(b"node%d" % i, digest_size=32).digest())
        node_id = hashlib.blake2b(b"node-id%d" % i, digest_size=32).digest()
        shards = tuple(range(next_shard, next_shard + count))
        next_shard += count
        keys.append(key)
        members.append(CommitteeMember(node_id, key.public_key(), f"127.0.0.1:{port}", shards))
    return keys, members


@contextlib.asynccontextmanager
async def open_cluster(
    tmp_path: Path,
    shard_counts: Sequence[int] = (10,),
    *,
    liars: Sequence[int] = (),
    start: bool = True,
    **config_overrides: object,
) -> AsyncIterator[Cluster]:
    """A fake chain and one node per entry of `shard_counts`, started unless `start` is False."""
    sockets = [_bind() for _ in shard_counts]
    ports = [s.getsockname()[1] for s in sockets]
    keys, members = make_members(shard_counts, ports)
    chain = FakeChain(members, sum(shard_counts))
    nodes = [
        ClusterNode(
            index=i,
            key=keys[i],
            member=members[i],
            port=ports[i],
            storage_path=tmp_path / f"node{i}",
            config=node_config(tmp_path / f"node{i}", **config_overrides),
            lying=i in liars,
        )
        for i in range(len(shard_counts))
    ]
    async with aiohttp.ClientSession() as session:
        cluster = Cluster(chain, nodes, session)
        try:
            if start:
                for node, sock in zip(nodes, sockets, strict=True):
                    await cluster.start(node, sock)
            else:
                for sock in sockets:
                    sock.close()
            yield cluster
        finally:
            for node in nodes:
                await cluster.stop(node)


def blob_data(seed: int, size: int) -> bytes:
    """Deterministic pseudo-random bytes."""
    return random.Random(seed).randbytes(size)


def reassign(cluster: Cluster, layout: Sequence[Sequence[int]]) -> list[CommitteeMember]:
    """Members holding `layout[i]` for node i (nodes with no shards are left out)."""
    return [
        CommitteeMember(
            node.member.node_id, node.member.public_key, node.member.network_address, tuple(shards)
        )
        for node, shards in zip(cluster.nodes, layout, strict=True)
        if shards
    ]


def runs(node: ClusterNode) -> Any:
    """The running `StorageNode` of `node`."""
    assert node.node is not None
    return node.node


def metric(node: ClusterNode, name: str, **labels: str) -> float:
    """The node's counter `walrus_{name}_total` with `labels` (0 before it was counted)."""
    registry = runs(node).service.metrics.registry
    value = registry.get_sample_value(f"walrus_{name}_total", labels or None)
    return 0.0 if value is None else float(value)
