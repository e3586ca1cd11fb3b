"""Real node processes on the devchain, and the node-API suite's view of a node under test.

`open_node_devnet` starts the embedded EVM chain (`walruspy chain serve`), deploys the contracts
with one committee member per entry of `shard_counts` (consecutive shard ranges, keys made with
`keygen`), and runs each member as `python -m walruspy.node run --config FILE`. `Devnet` drives it
through the EVM chain client: it registers, uploads, and certifies with certificates signed by
the nodes' BLS keys, which the test holds.

`NodeTarget` is what tests/node/test_node_api.py talks to: a node's client and handle, the other
nodes of its committee, and the chain operations the suite needs (register, certify, delete,
invalidate, next epoch, event count, settle). `ProcessTarget` implements it on a `Devnet`; the
in-process target (a `StorageNode` on the fake chain) lives with the suite.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import yaml
from eth_account import Account

from tests.chain.backends import ChainProcess, start_devchain
from tests.node.cluster import upload_to
from walruspy.chain.deploy import Deployment, DeployParams, deploy, sign_deployment_pop
from walruspy.chain.events import EventCursor
from walruspy.chain.evm import EvmChain, open_evm_chain
from walruspy.core.blob_id import BlobId
from walruspy.core.certificates import Certificate
from walruspy.core.committee import CommitteeMember
from walruspy.core.crypto import BlsPrivateKey
from walruspy.core.encoding import EncodedBlob, encode_blob
from walruspy.core.messages import (
    BlobPersistence,
    ConfirmationMessage,
    InvalidBlobIdMessage,
    ProtocolMessage,
    SignedMessage,
)
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.types import ShardIndex, SliverPairIndex, SliverType, pair_of_shard
from walruspy.node.keys import keygen, load_protocol_key
from walruspy.node_api import errors
from walruspy.node_api.client import NodeClient

N_SHARDS = 10
SETTLE_TIMEOUT_S = 30.0
MAX_EVENTS = 1_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- node processes on the devchain -------------------------------------------------------------


@dataclass
class NodeProcess:
    index: int
    key: BlsPrivateKey
    shards: tuple[int, ...]
    port: int
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
    session: aiohttp.ClientSession
    members: dict[bytes, int] = field(default_factory=dict)  # public key -> committee index

    async def wait_serving(self, node: NodeProcess) -> None:
        client = self.clients[node.index]
        async with asyncio.timeout(60):
            while True:
                try:
                    await client.health()
                    return
                except (errors.NodeConnectionError, errors.UnavailableError):  # not up, or
                    # still waiting for its chain (503)
                    if node.process is not None and node.process.poll() is not None:
                        tail = node.log_path.read_text(errors="replace")[-2000:]
                        raise AssertionError(f"node {node.index} exited: {tail}") from None
                    await asyncio.sleep(0.1)

    async def epoch(self) -> int:
        return (await self.writer.system_info()).epoch

    async def event_count(self) -> int:
        """Events the System contract emitted so far (what a node applies, one by one)."""
        return len(await self.writer.events(EventCursor(), MAX_EVENTS))

    async def settle(self, nodes: Sequence[NodeProcess] | None = None) -> None:
        """Wait until the running `nodes` (default: all) applied every event emitted so far."""
        count = await self.event_count()
        async with asyncio.timeout(SETTLE_TIMEOUT_S):
            for node in nodes or self.nodes:
                if node.process is None or node.process.poll() is not None:
                    continue
                client = self.clients[node.index]
                # Polling a remote process: there is no event to wait on.
                while (await client.health()).event_progress.persisted < count:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)

    def certificate(
        self, message: ProtocolMessage, nodes: Sequence[NodeProcess] | None = None
    ) -> Certificate:
        """`message` signed with the (test-held) keys of `nodes`, default all members."""
        signed = [
            (self.members[node.key.public_key().to_bytes()], SignedMessage.sign(node.key, message))
            for node in nodes or self.nodes
        ]
        return Certificate.from_signed_messages(sorted(signed, key=lambda s: s[0]))

    async def register(
        self,
        metadata: VerifiedBlobMetadataWithId,
        unencoded_size: int,
        *,
        deletable: bool = False,
        epochs_ahead: int = 3,
    ) -> bytes:
        """Reserve storage and register the blob of `metadata`; returns the object ID."""
        registration = await self.writer.reserve_and_register(
            blob_id=metadata.blob_id,
            root_hash=metadata.metadata.root_hash(),
            unencoded_size=unencoded_size,
            encoded_size=metadata.params.encoded_length(unencoded_size),
            epochs_ahead=epochs_ahead,
            deletable=deletable,
        )
        return registration.blob.object_id

    async def certify(self, object_id: bytes) -> None:
        """Certify a registered blob with a certificate signed by every member."""
        blob = await self.writer.get_blob(object_id)
        assert blob is not None, object_id.hex()
        persistence = (
            BlobPersistence.deletable(object_id) if blob.deletable else BlobPersistence.PERMANENT
        )
        message = ConfirmationMessage(await self.epoch(), blob.blob_id.raw, persistence)
        await self.writer.certify_blob(object_id, self.certificate(message))

    async def invalidate(self, blob_id: BlobId) -> None:
        message = InvalidBlobIdMessage(await self.epoch(), blob_id.raw)
        await self.writer.invalidate_blob_id(self.certificate(message))

    async def next_epoch(self) -> None:
        """Mine a block at the end of the epoch and start the next one."""
        info = await self.writer.system_info()
        end = info.epoch_started_at + info.epoch_duration_s
        # After a burst of transactions the devchain clock runs ahead of the wall clock, so
        # mine a block at an explicit timestamp rather than increasing the offset.
        timestamp = max(end, await self.writer.chain_time() + 1)
        await asyncio.to_thread(self.chain.rpc, "evm_mine", timestamp)
        assert await self.writer.advance_epoch()

    async def store(self, data: bytes, nodes: Sequence[NodeProcess]) -> EncodedBlob:
        """Register, upload to `nodes`, certify with their confirmations."""
        encoded = encode_blob(data, N_SHARDS)
        metadata = encoded.metadata
        object_id = await self.register(metadata, len(data))
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
        await self.writer.certify_blob(object_id, certificate)
        return encoded


@contextlib.asynccontextmanager
async def open_node_devnet(
    directory: Path, shard_counts: Sequence[int], extra_config: Mapping[str, Any] | None = None
) -> AsyncIterator[Devnet]:
    """A devchain, a deployment, and one running node process per entry of `shard_counts`.

    `extra_config` adds top-level sections to every node's configuration file.
    """
    chain = await asyncio.to_thread(start_devchain, directory / "chain")
    nodes: list[NodeProcess] = []
    try:
        members, first = [], 0
        for index, count in enumerate(shard_counts):
            keys = keygen(directory / f"keys{index}")
            key = load_protocol_key(keys.protocol_key_path)
            port = free_port()
            shards = tuple(range(first, first + count))
            first += count
            node_id = hashlib.blake2b(b"devnet%d" % index, digest_size=32).digest()
            members.append(CommitteeMember(node_id, key.public_key(), f"127.0.0.1:{port}", shards))
            nodes.append(
                NodeProcess(
                    index, key, shards, port, directory / f"node{index}.yaml",
                    directory / f"node{index}.log",
                )
            )  # fmt: skip
        deployer = str(Account.from_key(chain.keys[0]).address)
        params = DeployParams(
            members=tuple(members),
            proofs_of_possession=tuple(sign_deployment_pop(n.key, deployer) for n in nodes),
            n_shards=first,
            epoch_duration_s=3600,
            max_epochs_ahead=53,
            total_capacity_size=1 << 40,
            storage_price_per_unit_size=1,
            write_price_per_unit_size=1,
        )
        deployment = await deploy(chain.url, chain.keys[0], params)
        deployment.save(directory / "deployment.json")
        for node in nodes:
            config = {
                "storage_path": str(directory / f"db{node.index}"),
                "rest_api_address": f"127.0.0.1:{node.port}",
                "protocol_key_path": str(directory / f"keys{node.index}" / "protocol.key"),
                "wallet_key_path": str(directory / f"keys{node.index}" / "wallet.key"),
                "chain": {
                    "rpc_url": chain.url,
                    "deployment_file": str(directory / "deployment.json"),
                    "event_polling_interval_s": 0.05,
                },
                "blob_recovery": {
                    "live_upload_deferral_s": 0,
                    "retry_min_backoff_s": 0.1,
                    "retry_max_backoff_s": 0.5,
                },
                "epoch": {"drive_epoch_change": False},
                **(extra_config or {}),
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
                [NodeClient(n.url, session, timeout_s=30) for n in nodes],
                session,
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


# --- the node under test, as the node-API suite sees it -----------------------------------------


class NodeHandle(Protocol):
    """How a test reaches one node: its URL, its protocol key, its shards."""

    @property
    def url(self) -> str: ...

    @property
    def key(self) -> BlsPrivateKey: ...

    @property
    def shards(self) -> tuple[int, ...]: ...


class NodeTarget(abc.ABC):
    """A node under test (`node`, reached with `client`), its committee and the chain."""

    client: NodeClient
    node: NodeHandle
    nodes: Sequence[NodeHandle]
    session: aiohttp.ClientSession

    def client_for(self, node: NodeHandle) -> NodeClient:
        """A client of another node of the committee."""
        return NodeClient(node.url, self.session, timeout_s=30)

    @abc.abstractmethod
    async def epoch(self) -> int:
        """The chain's current epoch."""

    @abc.abstractmethod
    async def event_count(self) -> int:
        """Events the chain emitted so far."""

    @abc.abstractmethod
    async def settle(self) -> None:
        """Wait (bounded) until the nodes applied every event emitted so far."""

    @abc.abstractmethod
    async def register_blob(
        self,
        metadata: VerifiedBlobMetadataWithId,
        unencoded_size: int,
        *,
        deletable: bool = False,
        epochs_ahead: int = 5,
    ) -> bytes:
        """Register the blob of `metadata` on chain (not settled); returns its object ID."""

    @abc.abstractmethod
    async def certify(self, object_id: bytes) -> None:
        """Certify a registered blob object with a quorum certificate."""

    @abc.abstractmethod
    async def delete(self, object_id: bytes) -> None:
        """Delete a deletable blob object."""

    @abc.abstractmethod
    async def invalidate(self, blob_id: BlobId) -> None:
        """Mark `blob_id` invalid with a validity certificate."""

    @abc.abstractmethod
    async def next_epoch(self) -> None:
        """End the current epoch and start the next one."""

    @property
    def shards(self) -> tuple[int, ...]:
        return self.node.shards

    def pairs(self, blob_id: BlobId) -> list[SliverPairIndex]:
        return [pair_of_shard(ShardIndex(s), blob_id.raw, N_SHARDS) for s in self.shards]

    async def register(
        self, data: bytes, *, deletable: bool = False, epochs_ahead: int = 5
    ) -> tuple[EncodedBlob, bytes]:
        """Encode and register `data`, and wait until the nodes saw it."""
        encoded = encode_blob(data, N_SHARDS)
        object_id = await self.register_blob(
            encoded.metadata, len(data), deletable=deletable, epochs_ahead=epochs_ahead
        )
        await self.settle()
        return encoded, object_id

    async def upload(self, encoded: EncodedBlob) -> None:
        await upload_to(self.client, encoded, self.shards)


class ProcessTarget(NodeTarget):
    """Node `index` of a `Devnet` of real processes, driven through the EVM chain client."""

    def __init__(self, devnet: Devnet, index: int = 0) -> None:
        self.devnet = devnet
        self.node = devnet.nodes[index]
        self.nodes = devnet.nodes
        self.client = devnet.clients[index]
        self.session = devnet.session

    async def epoch(self) -> int:
        return await self.devnet.epoch()

    async def event_count(self) -> int:
        return await self.devnet.event_count()

    async def settle(self) -> None:
        await self.devnet.settle()

    async def register_blob(
        self,
        metadata: VerifiedBlobMetadataWithId,
        unencoded_size: int,
        *,
        deletable: bool = False,
        epochs_ahead: int = 5,
    ) -> bytes:
        return await self.devnet.register(
            metadata, unencoded_size, deletable=deletable, epochs_ahead=epochs_ahead
        )

    async def certify(self, object_id: bytes) -> None:
        await self.devnet.certify(object_id)

    async def delete(self, object_id: bytes) -> None:
        await self.devnet.writer.delete_blob(object_id)

    async def invalidate(self, blob_id: BlobId) -> None:
        await self.devnet.invalidate(blob_id)

    async def next_epoch(self) -> None:
        await self.devnet.next_epoch()
