"""Preparing a devnet: ports, keys, the committee, configuration files, deployment and funding.

Theory of operation (spec/walrus-system.md 2.1-2.3, 3.9, 3.10, 4.2). Everything a devnet's
processes read is written under its directory before they start:

    DIR/chain/                 the devchain's state (genesis and journal)
    DIR/deployment.json        the contracts' addresses (`walruspy chain deploy`'s file)
    DIR/nodes/nodeI/keys/      protocol.key (BLS) and wallet.key (EVM), as `walruspy node keygen`
    DIR/nodes/nodeI/config.yaml, DIR/nodes/nodeI/db/
    DIR/wallets/client.key, DIR/wallets/publisher.key
    DIR/wallets/funder.key     the account that deploys and funds (below)
    DIR/client_config.yaml     contexts "devnet" (client wallet) and "publisher" (the daemon's)
    DIR/logs/*.log             one log per process

Node IDs are the blake2b-256 of the node's BLS public key; the committee is the nodes sorted by
node ID (Walrus's committee order) and shards are dealt contiguously in that order. Ports are
taken from the kernel (bind to port 0) all at once before any process starts, since the
committee on chain must name the nodes' addresses before the nodes run.

The deployer, or funder, is the devchain's first prefunded account, or on an external chain
(`DevnetSettings.chain_rpc`, e.g. anvil) the account whose key the user gave, since only the
user knows which account holds ether there. Every node's protocol key signs its proof of
possession for the deployer's address (the Committee contract checks it), and the deployer sends
every wallet (each node's, the client's and the publisher's) ether for gas and WAL. Its key is
copied to `DIR/wallets/funder.key` so that every later command finds the same account: `devnet
add-node` and resume through the state file, `get-wal` (which sees only a client configuration)
beside the context's wallet key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import yaml
from eth_account import Account

from walruspy.chain.deploy import (
    Deployment,
    DeployParams,
    assign_shards,
    deploy,
    sign_deployment_pop,
)
from walruspy.chain.devchain import dev_account_keys
from walruspy.chain.evm import open_evm_chain
from walruspy.chain.evm_rpc import ConnectorFactory, TransactionSender, open_web3, rpc_errors
from walruspy.client.wallet import create_wallet_key
from walruspy.core.committee import CommitteeMember
from walruspy.core.crypto import BlsPublicKey
from walruspy.devnet.errors import DevnetError
from walruspy.devnet.links import LinkShape
from walruspy.node.config import ScrubConfig
from walruspy.node.keys import keygen, load_protocol_key, load_wallet_key
from walruspy.node_api.client import NodeClient
from walruspy.node_api.tls import NETWORK_KEY_FILE

__all__ = [
    "CLIENT_CONTEXT",
    "FUNDER_KEY_FILE",
    "LOOPBACK",
    "PUBLISHER_CONTEXT",
    "DevnetSettings",
    "NodePlan",
    "add_node_plan",
    "client_config",
    "deploy_and_fund",
    "devchain_funder_key",
    "ether_share",
    "free_ports",
    "fund_wallets",
    "funder_key_path",
    "new_wallet",
    "node_config",
    "plan_nodes",
    "port_taken",
    "write_funder_key",
    "write_yaml",
]

#: The client configuration's contexts: the user's wallet and the publisher's.
CLIENT_CONTEXT: Final = "devnet"
PUBLISHER_CONTEXT: Final = "publisher"
#: Ether sent to every wallet: gas for thousands of transactions at devchain prices.
FUND_ETH_WEI: Final = 1_000 * 10**18
#: WAL sent to every wallet: a million WAL (of the billion minted), enough for ~10^5 stores of
#: 100 MiB for one epoch at Walrus Mainnet's example prices.
FUND_WAL_FROST: Final = 10**6 * 10**9
#: The least ether a wallet is sent: gas for hundreds of transactions even at a public test
#: chain's prices. A funder holding too little for that many wallets is refused up front.
MIN_FUND_ETH_WEI: Final = 10**18
#: The funder's key file in a devnet's `wallets` directory (module docstring).
FUNDER_KEY_FILE: Final = "funder.key"
#: Gas of a plain ether transfer.
_ETH_TRANSFER_GAS: Final = 21_000
#: Where every devnet process listens.
LOOPBACK: Final = "127.0.0.1"
#: The node's own scrubber defaults, which a devnet keeps unless a test asks for a faster one.
_SCRUB: Final = ScrubConfig()


@dataclass(frozen=True, slots=True)
class DevnetSettings:
    """What kind of devnet to start; every field has a default that suits tests."""

    n_nodes: int = 4
    n_shards: int = 100
    epoch_duration_s: int = 60
    #: Nodes (by index in committee order) that serve corrupted slivers through a proxy.
    lying_nodes: tuple[int, ...] = ()
    #: The publisher's body limit (Walrus: 10 MiB).
    max_body_bytes: int = 10 << 20
    #: Seconds a node waits after a certification before recovering missing slivers; short so
    #: that self-healing shows within a test, long enough for the client's last uploads.
    recovery_deferral_s: float = 5.0
    #: How long a gained shard's previous owner may fail to answer before the shard is
    #: recovered blob by blob instead (Walrus: 12 hours).
    shard_sync_retry_window_s: float = 10.0
    #: Slivers a node asks a previous owner for per shard-sync request (Walrus: 1000).
    shard_sync_batch_size: int = 1000
    #: Epochs ahead storage can be bought (Walrus: 53).
    max_epochs_ahead: int = 53
    #: The client's bound on one request to a node: local nodes answer in well under a second,
    #: so a paused node is given up on within this, not Walrus's 300 s.
    request_timeout_s: float = 30.0
    #: Elect the committee by staking (`walruspy.devnet.staking`), as Walrus does; False
    #: deploys a fixed committee (`walruspy chain deploy`'s way).
    staking: bool = True
    #: Nodes serve TLS with certificates for their network keys, which clients pin to the keys
    #: registered on chain (`walruspy.node_api.tls`). Only a staking deployment records network
    #: keys: a fixed committee always speaks plain HTTP.
    tls: bool = True
    #: The nodes' scrubber (`ScrubConfig`): bytes checked per second and the pause between
    #: passes. The node's defaults take hours per pass on a full disk; a disk-fault test sets
    #: a fast rate and a short pause so that rot is found within seconds.
    scrub_bytes_per_second: int = _SCRUB.bytes_per_second
    scrub_pass_interval_s: float = _SCRUB.pass_interval_s
    #: The publisher's port; None: one the kernel says is free (`walruspy devnet up` asks for
    #: Walrus's 31415 when it is free, so that the README's URLs hold).
    daemon_port: int | None = None
    #: Run every process on a host of its own, linked as this says (`walruspy.devnet.hosts`);
    #: None: everything on this machine's loopback.
    hosts: LinkShape | None = None
    #: An Ethereum node to run on (e.g. anvil) instead of starting the embedded devchain; None
    #: starts the devchain.
    chain_rpc: str | None = None
    #: The account that deploys and funds (module docstring); None: the devchain's first dev
    #: account, which holds ether only on the devchain. Kept out of repr, as any private key.
    funder_key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.n_nodes < 1 or self.n_shards < self.n_nodes:
            raise ValueError(
                f"a devnet needs at least one node and one shard per node, got "
                f"{self.n_nodes} nodes and {self.n_shards} shards"
            )
        if not 1 <= self.n_shards <= 1000:
            raise ValueError(f"n_shards must be between 1 and 1000, got {self.n_shards}")
        if self.epoch_duration_s < 1:
            raise ValueError("epoch_duration_s must be at least 1")
        for index in self.lying_nodes:
            if not 0 <= index < self.n_nodes:
                raise ValueError(f"lying node {index} is not one of the {self.n_nodes} nodes")
        if self.scrub_bytes_per_second < 0 or self.scrub_pass_interval_s <= 0:
            raise ValueError("scrub_bytes_per_second must be >= 0, scrub_pass_interval_s > 0")
        if self.hosts is not None and self.chain_rpc is not None:
            raise ValueError(
                "--hosts runs its own chain on a host of the devnet, which has no route out: "
                "it cannot use an external --chain-rpc"
            )
        if self.funder_key is not None and len(self.funder_key) != 32:
            raise ValueError(f"the funder key has {len(self.funder_key)} bytes, not 32")

    @property
    def funder(self) -> bytes:
        """The private key of the account that deploys and funds."""
        return self.funder_key if self.funder_key is not None else devchain_funder_key()

    @property
    def uses_tls(self) -> bool:
        """Whether nodes serve TLS: asked for, and the chain can hold their network keys."""
        return self.tls and self.staking


@dataclass(frozen=True, slots=True)
class NodePlan:
    """One node before it starts: where its files are, its identity, address and port.

    `shards` are the shards a fixed committee deals it; under staking the chain decides.
    """

    index: int
    directory: Path
    node_id: bytes
    public_key: BlsPublicKey
    #: "host:port" in the committee: the node's own port, or its proxy's if it lies.
    network_address: str
    port: int
    proxy_port: int | None
    shards: tuple[int, ...] = ()
    #: The network key's public half when the node serves TLS (registered on chain, pinned by
    #: clients); empty for plain HTTP.
    network_public_key: bytes = b""
    #: The address the node (and its proxy) listen on: its host's on a `--hosts` devnet.
    host: str = LOOPBACK
    #: The network namespace of its host on a `--hosts` devnet.
    netns: str | None = None

    @property
    def member(self) -> CommitteeMember:
        """The node as a member of a fixed committee."""
        return CommitteeMember(self.node_id, self.public_key, self.network_address, self.shards)

    @property
    def config_path(self) -> Path:
        """The node's configuration file."""
        return self.directory / "config.yaml"

    @property
    def scheme(self) -> str:
        """`https` when the node serves TLS, else `http`."""
        return "https" if self.network_public_key else "http"

    @property
    def network_key_path(self) -> Path:
        """The node's P-256 network key (its TLS identity)."""
        return self.directory / "keys" / NETWORK_KEY_FILE

    @property
    def direct_url(self) -> str:
        """Where the node itself serves."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL of the node's committee address (its proxy's, if it lies)."""
        return f"{self.scheme}://{self.network_address}"

    def client(
        self, session: aiohttp.ClientSession, timeout_s: float, *, direct: bool
    ) -> NodeClient:
        """A client of the node (at its own port if `direct`, else its committee address),
        pinned to its network key when it serves TLS."""
        return NodeClient(
            self.direct_url if direct else self.url,
            session,
            timeout_s=timeout_s,
            network_public_key=self.network_public_key,
        )

    @property
    def wallet_address(self) -> str:
        """The node's EVM account."""
        return str(
            Account.from_key(load_wallet_key(self.directory / "keys" / "wallet.key")).address
        )


def devchain_funder_key() -> bytes:
    """The devchain's first prefunded account: the funder unless the user names another."""
    return dev_account_keys(1)[0]


def funder_key_path(directory: Path) -> Path:
    """Where a devnet in `directory` keeps its funder's key."""
    return directory / "wallets" / FUNDER_KEY_FILE


def write_funder_key(directory: Path, key: bytes) -> Path:
    """Write the funder's key to `DIR/wallets/funder.key` (mode 0600, a new file); its path."""
    path = funder_key_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex() + "\n")
    return path


def port_taken(port: int) -> OSError | None:
    """Why `port` of 127.0.0.1 cannot be listened on now, or None if it can.

    The probe binds as the servers do (SO_REUSEADDR), so a port whose last connections linger
    in TIME_WAIT counts as free; only a listener or a bound socket makes it taken.
    """
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError as exc:
            return exc
    return None


def free_ports(count: int) -> list[int]:
    """`count` distinct ports the kernel says are free on 127.0.0.1 right now."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def plan_nodes(
    directory: Path,
    settings: DevnetSettings,
    ports: Sequence[int],
    hosts: Sequence[str] | None = None,
    *,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> list[NodePlan]:
    """Make every node's keys and place the nodes in committee order with their shards.

    `ports` holds one port per node, then one per lying node (its proxy); `hosts` one address
    per node, in committee order (default: all on loopback). `random_bytes` draws the keys
    (`keygen`; the simulator's is seeded).
    """
    staged = []
    for index in range(settings.n_nodes):
        keys_dir = directory / "nodes" / f".keygen{index}"
        keys = keygen(keys_dir, random_bytes=random_bytes)
        public_key = load_protocol_key(keys.protocol_key_path).public_key()
        node_id = hashlib.blake2b(public_key.to_bytes(), digest_size=32).digest()
        network_key = bytes.fromhex(keys.network_public_key_hex) if settings.uses_tls else b""
        staged.append((node_id, public_key, keys_dir, network_key))
    staged.sort(key=lambda entry: entry[0])
    shards = assign_shards(settings.n_nodes, settings.n_shards, "contiguous")
    proxy_ports = iter(ports[settings.n_nodes :])
    plans = []
    for index, ((node_id, public_key, keys_dir, network_key), owned) in enumerate(
        zip(staged, shards, strict=True)
    ):
        node_dir = node_directory(directory, index)
        node_dir.mkdir(parents=True)
        keys_dir.rename(node_dir / "keys")  # node I holds the keys of committee member I
        port = ports[index]
        host = LOOPBACK if hosts is None else hosts[index]
        proxy_port = next(proxy_ports) if index in settings.lying_nodes else None
        address = f"{host}:{proxy_port if proxy_port is not None else port}"
        plans.append(
            NodePlan(
                index=index,
                directory=node_dir,
                node_id=node_id,
                public_key=public_key,
                network_address=address,
                port=port,
                proxy_port=proxy_port,
                shards=owned,
                network_public_key=network_key,
                host=host,
            )
        )
    return plans


def add_node_plan(
    directory: Path, index: int, port: int, *, tls: bool, host: str = LOOPBACK
) -> NodePlan:
    """Keys and a place for one more node, `DIR/nodes/nodeI`, outside any committee so far."""
    node_dir = node_directory(directory, index)
    keys = keygen(node_dir / "keys")
    public_key = load_protocol_key(keys.protocol_key_path).public_key()
    node_id = hashlib.blake2b(public_key.to_bytes(), digest_size=32).digest()
    network_key = bytes.fromhex(keys.network_public_key_hex) if tls else b""
    return NodePlan(
        index,
        node_dir,
        node_id,
        public_key,
        f"{host}:{port}",
        port,
        None,
        network_public_key=network_key,
        host=host,
    )


def node_directory(directory: Path, index: int) -> Path:
    """Where node `index` of the devnet in `directory` keeps its keys, store and fault file."""
    return directory / "nodes" / f"node{index}"


def fault_file(node_dir: Path) -> Path:
    """The node's fault-injection file (node/faults.py; `walruspy devnet fault` writes it)."""
    return node_dir / "fault.json"


def node_config(
    plan: NodePlan, rpc_url: str, deployment_file: Path, settings: DevnetSettings
) -> dict[str, Any]:
    """The node's configuration (see node_config_example.yaml), tuned for a local devnet."""
    return {
        "name": f"node{plan.index}",
        "storage_path": str(plan.directory / "db"),
        "rest_api_address": f"{plan.host}:{plan.port}",
        "public_url": plan.url,
        "protocol_key_path": str(plan.directory / "keys" / "protocol.key"),
        "wallet_key_path": str(plan.directory / "keys" / "wallet.key"),
        "network_key_path": str(plan.network_key_path),
        "tls": {"disable_tls": not plan.network_public_key},
        "fault_file": str(fault_file(plan.directory)),
        "chain": {
            "rpc_url": rpc_url,
            "deployment_file": str(deployment_file),
            # Walrus's pace. A node polls at once when a request starts waiting for a
            # registration it has not seen, so stores do not wait for the next poll; at 10 Hz
            # ten idle nodes and the devchain spent a third of a core answering polls (measured:
            # 1 KiB stores 0.276 s at 10 Hz, 0.261 s at 2.5 Hz; 1 MiB reads 0.070 s, 0.051 s).
            "event_polling_interval_s": 0.4,
            "retry_min_backoff_s": 0.2,
            "retry_max_backoff_s": 5.0,
        },
        "blob_recovery": {
            "live_upload_deferral_s": settings.recovery_deferral_s,
            "retry_min_backoff_s": 0.2,
            "retry_max_backoff_s": 5.0,
        },
        # Epochs of a devnet last seconds to minutes: look at the chain clock every second.
        "epoch": {"drive_epoch_change": True, "check_interval_s": 1.0, "max_jitter_s": 1.0},
        # A previous owner that does not answer for a few seconds (killed, wiped, gone) is
        # replaced by recovery blob by blob, instead of after Walrus's 12 hours.
        "shard_sync": {
            "retry_min_backoff_s": 0.5,
            "retry_max_backoff_s": 2.0,
            "retry_window_s": settings.shard_sync_retry_window_s,
            "batch_size": settings.shard_sync_batch_size,
        },
        "scrub": {
            "bytes_per_second": settings.scrub_bytes_per_second,
            "pass_interval_s": settings.scrub_pass_interval_s,
        },
        # A metadata upload, or a confirmation request, that arrives before the node has seen
        # the registration waits for the event instead of answering NOT_REGISTERED into the
        # client's backoff (the confirmation long poll follows the client's pending uploads).
        "limits": {"upload_registration_wait_ms": 2000, "confirmation_long_poll_max_ms": 2000},
    }


def client_config(
    rpc_url: str, deployment_file: Path, wallets: dict[str, Path], settings: DevnetSettings
) -> dict[str, Any]:
    """The client configuration: one context per wallet (see client_config_example.yaml)."""
    communication = {
        "request_timeout_s": settings.request_timeout_s,
        # Local nodes see a registration within one 0.1 s poll: retry NOT_REGISTERED from
        # 50 ms, capped at 0.5 s, for about 20 s in all (a node restarting and catching up).
        "backoff": {"min_backoff_s": 0.05, "max_backoff_s": 0.5, "max_retries": 45},
    }
    return {
        "contexts": {
            name: {
                "rpc_urls": [rpc_url],
                "deployment": str(deployment_file),
                "wallet_key_path": str(wallet),
                "communication": communication,
            }
            for name, wallet in wallets.items()
        },
        "default_context": CLIENT_CONTEXT,
    }


def write_yaml(path: Path, content: dict[str, Any]) -> None:
    """Write a configuration file (creating its directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content, sort_keys=False))


def new_wallet(path: Path) -> str:
    """Create an EVM key file (mode 0600) and return its address."""
    return create_wallet_key(path)


async def deploy_and_fund(
    rpc_url: str,
    plans: Sequence[NodePlan],
    settings: DevnetSettings,
    paying_wallets: Sequence[str],
    *,
    connector: ConnectorFactory | None = None,
) -> Deployment:
    """Deploy the contracts with the nodes as committee from the funder; fund every wallet.

    `connector` makes the JSON-RPC sessions' connectors (the simulator's network).
    """
    deployer_key = settings.funder
    deployer = str(Account.from_key(deployer_key).address)
    params = DeployParams(
        members=tuple(plan.member for plan in plans),
        proofs_of_possession=tuple(
            sign_deployment_pop(
                load_protocol_key(plan.directory / "keys" / "protocol.key"), deployer
            )
            for plan in plans
        ),
        n_shards=settings.n_shards,
        epoch_duration_s=settings.epoch_duration_s,
        max_epochs_ahead=settings.max_epochs_ahead,
        total_capacity_size=1 << 40,  # 1 TiB of encoded data per epoch: never the limit here
        storage_price_per_unit_size=100_000,  # Walrus Mainnet's example prices (FROST per MiB)
        write_price_per_unit_size=20_000,
    )
    deployment = await deploy(rpc_url, deployer_key, params, connector=connector)
    receivers = [plan.wallet_address for plan in plans] + list(paying_wallets)
    await fund_wallets(rpc_url, deployment, receivers, funder_key=deployer_key, connector=connector)
    return deployment


async def ether_share(
    rpc_url: str,
    funder_key: bytes,
    n_wallets: int,
    eth_wei: int = FUND_ETH_WEI,
    *,
    connector: ConnectorFactory | None = None,
) -> int:
    """The ether the funder can send each of `n_wallets` wallets (`fund_wallets`); DevnetError
    naming the account if that is under `MIN_FUND_ETH_WEI`."""
    funder = str(Account.from_key(funder_key).address)
    w3 = open_web3(rpc_url, connector=connector)
    try:
        with rpc_errors(rpc_url, "read the funder's balance"):
            balance = int(await w3.eth.get_balance(w3.to_checksum_address(funder)))
    finally:
        await w3.provider.disconnect()
    share = min(eth_wei, balance // (2 * max(n_wallets, 1)))
    if share < MIN_FUND_ETH_WEI:
        raise DevnetError(
            f"the devnet's funder {funder} holds {balance / 10**18:g} ether on {rpc_url}: too "
            f"little to give {n_wallets} wallets 1 ether each (on an external chain, give the "
            "key of a funded account with `devnet up --chain-key`)"
        )
    return share


async def fund_wallets(
    rpc_url: str,
    deployment: Deployment,
    receivers: Sequence[str],
    *,
    funder_key: bytes,
    eth_wei: int = FUND_ETH_WEI,
    wal_frost: int = FUND_WAL_FROST,
    connector: ConnectorFactory | None = None,
) -> int:
    """Send every wallet ether for gas and WAL from the funder (an amount of 0 is not sent);
    returns the ether sent to each.

    The ether is `eth_wei`, or, from a funder holding less than twice that per wallet, an
    equal share of half its balance: an anvil account's 10,000 ether cannot give ten nodes
    1,000 each, and the funder keeps the other half to pay for later nodes and `get-wal`. Less
    than `MIN_FUND_ETH_WEI` each is refused, naming the account (`ether_share`). `connector`:
    as `deploy_and_fund`'s.
    """
    if eth_wei and receivers:
        eth_wei = await ether_share(
            rpc_url, funder_key, len(receivers), eth_wei, connector=connector
        )
    w3 = open_web3(rpc_url, connector=connector)
    try:
        sender = TransactionSender(w3, rpc_url, funder_key, deployment.chain_id)
        async with asyncio.TaskGroup() as group:
            for address in receivers if eth_wei else ():
                group.create_task(
                    sender.send(
                        "fund with ether",
                        to=address,
                        data=b"",
                        gas=_ETH_TRANSFER_GAS,
                        value=eth_wei,
                    )
                )
    finally:
        await w3.provider.disconnect()
    async with (
        open_evm_chain(rpc_url, deployment, funder_key, connector=connector) as chain,
        asyncio.TaskGroup() as group,
    ):
        for address in receivers if wal_frost else ():
            group.create_task(chain.transfer_wal(address, wal_frost))
    return eth_wei
