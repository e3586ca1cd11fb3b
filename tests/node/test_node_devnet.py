"""Real node processes on the devchain: `python -m walruspy.node run --config FILE`.

Four nodes (3, 3, 2 and 2 of 10 shards) run as separate processes against the embedded EVM chain
(`walruspy chain serve`), deployed with their keys and addresses. A client registers blobs with
the EVM chain client, uploads through `NodeClient`, collects and verifies the confirmations,
aggregates them into a certificate and certifies on chain. Checked here: every node reports the
blob certified; a node killed with SIGKILL while a blob is certified recovers that blob's slivers
after it restarts, byte for byte, and its event progress neither skips nor repeats; bad requests
to a real process get their 4xx reasons; SIGTERM stops a node cleanly (exit status 0).
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.chain.backends import ChainProcess, start_devchain
from tests.node.cluster import blob_data
from walruspy.chain.deploy import Deployment, DeployParams, deploy
from walruspy.chain.evm import EvmChain, open_evm_chain
from walruspy.core.certificates import Certificate
from walruspy.core.committee import CommitteeMember
from walruspy.core.crypto import BlsPrivateKey
from walruspy.core.encoding import EncodedBlob, encode_blob
from walruspy.core.messages import ConfirmationMessage
from walruspy.core.types import ShardIndex, SliverPairIndex, SliverType, pair_of_shard
from walruspy.node.keys import keygen, load_protocol_key
from walruspy.node_api import errors
from walruspy.node_api.client import NodeClient
from walruspy.node_api.schemas import Permanent, StoredOnNodeStatus

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

N_SHARDS = 10
SHARD_COUNTS = (3, 3, 2, 2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class NodeProcess:
    index: int
    key: BlsPrivateKey
    shards: tuple[int, ...]
    port: int
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "walruspy.node", "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@dataclass
class Devnet:
    chain: ChainProcess
    deployment: Deployment
    writer: EvmChain
    nodes: list[NodeProcess]
    clients: list[NodeClient]
    members: dict[bytes, int] = field(default_factory=dict)  # public key -> committee index

    async def wait_serving(self, node: NodeProcess) -> None:
        client = self.clients[node.index]
        async with asyncio.timeout(60):
            while True:
                try:
                    await client.health()
                    return
                except errors.NodeConnectionError:
                    await asyncio.sleep(0.1)

    async def store(self, data: bytes, nodes: Sequence[NodeProcess]) -> EncodedBlob:
        """Register, upload to `nodes`, certify with their confirmations."""
        encoded = encode_blob(data, N_SHARDS)
        metadata = encoded.metadata
        registration = await self.writer.reserve_and_register(
            blob_id=metadata.blob_id,
            root_hash=metadata.metadata.root_hash(),
            unencoded_size=len(data),
            encoded_size=metadata.params.encoded_length(len(data)),
            epochs_ahead=3,
            deletable=False,
        )
        signed = []
        for node in nodes:
            client = self.clients[node.index]
            async with asyncio.timeout(30):  # until the node has seen the registration
                while True:
                    try:
                        await client.put_metadata(metadata)
                        break
                    except errors.NotRegisteredError:
                        await asyncio.sleep(0.05)
            for shard in node.shards:
                pair = SliverPairIndex(pair_of_shard(ShardIndex(shard), metadata.blob_id.raw, 10))
                for sliver_type in SliverType:
                    await client.put_sliver(
                        metadata.blob_id, pair, encoded.sliver(pair, sliver_type)
                    )
            confirmation = await client.get_confirmation(metadata.blob_id)
            public_key = node.key.public_key()
            confirmation.verify(public_key, ConfirmationMessage(1, metadata.blob_id.raw))
            signed.append((self.members[public_key.to_bytes()], confirmation))
        certificate = Certificate.from_signed_messages(sorted(signed, key=lambda s: s[0]))
        await self.writer.certify_blob(registration.blob.object_id, certificate)
        return encoded


@pytest.fixture
async def devnet(tmp_path: Path) -> AsyncIterator[Devnet]:
    chain = await asyncio.to_thread(start_devchain, tmp_path / "chain")
    nodes: list[NodeProcess] = []
    try:
        members, first = [], 0
        for index, count in enumerate(SHARD_COUNTS):
            keys = keygen(tmp_path / f"keys{index}")
            key = load_protocol_key(keys.protocol_key_path)
            port = free_port()
            shards = tuple(range(first, first + count))
            first += count
            node_id = hashlib.blake2b(b"devnet%d" % index, digest_size=32).digest()
            members.append(CommitteeMember(node_id, key.public_key(), f"127.0.0.1:{port}", shards))
            nodes.append(
                NodeProcess(
                    index, key, shards, port, tmp_path / f"node{index}.yaml",
                    tmp_path / f"node{index}.log",
                )
            )  # fmt: skip
        params = DeployParams(
            members=tuple(members),
            n_shards=N_SHARDS,
            epoch_duration_s=3600,
            max_epochs_ahead=53,
            total_capacity_size=1 << 40,
            storage_price_per_unit_size=1,
            write_price_per_unit_size=1,
        )
        deployment = await deploy(chain.url, chain.keys[0], params)
        deployment.save(tmp_path / "deployment.json")
        for node in nodes:
            config = {
                "storage_path": str(tmp_path / f"db{node.index}"),
                "rest_api_address": f"127.0.0.1:{node.port}",
                "protocol_key_path": str(tmp_path / f"keys{node.index}" / "protocol.key"),
                "wallet_key_path": str(tmp_path / f"keys{node.index}" / "wallet.key"),
                "chain": {
                    "rpc_url": chain.url,
                    "deployment_file": str(tmp_path / "deployment.json"),
                    "event_polling_interval_s": 0.05,
                },
                "blob_recovery": {
                    "live_upload_deferral_s": 0,
                    "retry_min_backoff_s": 0.1,
                    "retry_max_backoff_s": 0.5,
                },
                "epoch": {"drive_epoch_change": False},
            }
            node.config_path.write_text(yaml.safe_dump(config))
            node.start()
        async with (
            open_evm_chain(chain.url, deployment, chain.keys[0]) as writer,
            aiohttp.ClientSession() as session,
        ):
            committee = await writer.committee()
            net = Devnet(
                chain,
                deployment,
                writer,
                nodes,
                [NodeClient(f"http://127.0.0.1:{n.port}", session, timeout_s=30) for n in nodes],
                {m.public_key.to_bytes(): i for i, m in enumerate(committee.members)},
            )
            for node in nodes:
                await net.wait_serving(node)
            yield net
    finally:
        for node in nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.kill()
                node.process.wait(timeout=30)
        chain.stop()


async def test_devnet_store_kill_recover_and_stop(devnet: Devnet) -> None:
    first = await devnet.store(blob_data(1, 100_000), devnet.nodes)
    blob_id = first.metadata.blob_id
    async with asyncio.timeout(30):
        for client in devnet.clients:
            # Polling a remote process: there is no event to wait on.
            while not (isinstance(s := await client.blob_status(blob_id), Permanent)  # noqa: ASYNC110
                       and s.is_certified):  # fmt: skip
                await asyncio.sleep(0.05)

    # Bad input to a real process: 4xx with the reason, nothing stored.
    unregistered = encode_blob(b"never registered", N_SHARDS)
    with pytest.raises(errors.NotRegisteredError):
        await devnet.clients[0].put_metadata(unregistered.metadata)
    assert await devnet.clients[0].metadata_status(unregistered.metadata.blob_id) is (
        StoredOnNodeStatus.NONEXISTENT
    )

    # Node 3 is killed; a blob is certified without it; it recovers after a restart.
    down = devnet.nodes[3]
    down.kill()
    second = await devnet.store(blob_data(2, 300_000), devnet.nodes[:3])
    down.start()
    await devnet.wait_serving(down)
    client = devnet.clients[down.index]
    blob_id = second.metadata.blob_id
    async with asyncio.timeout(60):
        for shard in down.shards:
            pair = SliverPairIndex(pair_of_shard(ShardIndex(shard), blob_id.raw, N_SHARDS))
            for sliver_type in SliverType:
                while await client.sliver_status(blob_id, pair, sliver_type) is not (  # noqa: ASYNC110
                    StoredOnNodeStatus.STORED
                ):
                    await asyncio.sleep(0.05)
                got = await client.get_sliver(second.metadata, pair, sliver_type)
                assert got.sliver == second.sliver(pair, sliver_type).sliver
    # Its event progress matches the others': nothing skipped, nothing repeated.
    progress = {(await c.health()).event_progress.persisted for c in devnet.clients}
    assert len(progress) == 1, progress
    await client.get_confirmation(blob_id)

    # SIGTERM: a clean stop.
    assert [node.terminate() for node in devnet.nodes] == [0, 0, 0, 0]
