"""`open_cluster`: a whole Walrus network on one event loop and one simulated network.

Theory of operation (issue #16). Under `walruspy.sim.loop.run` (virtual time), one
`SimNetwork(seed)` joins every party by host name:

- `chain:8545`: the devchain (the real contracts on py-evm) running inline on the loop
  (`open_devchain(inline=True)`), its block timestamps read from `walruspy.clock.wall`, which is
  virtual here;
- `nodeI:9185`: storage node I, a real `StorageNode` on a store in the run's directory, serving
  through `StorageNode(listen=)` and calling its peers and the chain from host `nodeI`;
- `client`: a `WalrusClient` (`open_client`, no encoder processes: small blobs encode inline)
  whose chain client and node sessions start at host `client`;
- `publisher:31415`: a daemon (`walruspy.daemon.app`, publisher and aggregator) over that
  client, which users reach from host `user` (`SimCluster.user_session`);
- `funder`: the devchain's first account, which deploys and funds.

The set-up is the devnet's, reused: `plan_nodes` makes the nodes' keys and places them in
committee order, `deploy_and_fund` deploys a fixed committee and funds every wallet, and
`node_config`/`client_config` write the configurations a devnet's processes would read (TLS
off: the network carries plain HTTP). What differs is only where bytes travel.

With `SimSettings.staking` the committee is elected instead, as a staking devnet's is
(`walruspy.devnet.staking`, spec/walrus-system.md 2.2, 2.3): the staking contracts are deployed,
every wallet funded, the first `n_nodes` nodes register and a staker wallet (`staker`, apart
from the client's so that their transactions never share a nonce) stakes with each, then epoch
1 starts. `standby_nodes` more are planned and funded but neither registered nor started: the
churn profile (`walruspy.sim.churn`) registers, stakes and starts them later.

Determinism. Everything that decides anything draws from the seed: the network's generator
(`SimNetwork(seed)`), every key (`plan_nodes(random_bytes=)`, the client's wallet), each node's
generator (jitter, peer order) and the client's. `_rng(seed, name)` derives an independent
generator per purpose from a string, so adding a draw for one purpose does not shift another's.
Time is the loop's. Store directories live in a temporary directory whose name never reaches
the trace.

Faults on nodes: `crash` resets the node's connections (`SimNetwork.crash`) and cancels its
task, which closes its store: every write it acknowledged was committed before, and a write in
flight is lost with its unanswered request. `restart` starts a new `StorageNode` on the same
store; `wipe` deletes the store first, so the node recovers everything from its peers.
`start_lying` puts the devnet's lying proxy (`walruspy.devnet.proxy`) in front of a node: a
Byzantine node that, to clients and peers alike, serves corrupted slivers and recovery symbols,
signs its confirmations and attestations with a key that is not its own, or turns its blob
statuses around, as the lies chosen say (`Lie`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import shutil
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import aiohttp
from eth_account import Account
from web3 import AsyncWeb3

from walruspy.chain.contracts import load_contract
from walruspy.chain.deploy import Deployment
from walruspy.chain.devchain import open_devchain
from walruspy.chain.evm import EvmChain, open_evm_chain
from walruspy.chain.evm_rpc import open_web3
from walruspy.client.client import WalrusClient, open_client
from walruspy.client.config import parse_config as parse_client_config
from walruspy.clock import wall
from walruspy.daemon.app import DaemonMode, make_app
from walruspy.devnet.proxy import Lie, make_proxy_app
from walruspy.devnet.setup import (
    CLIENT_CONTEXT,
    DevnetSettings,
    NodePlan,
    client_config,
    deploy_and_fund,
    devchain_funder_key,
    fund_wallets,
    node_config,
    plan_nodes,
)
from walruspy.devnet.staking import deploy_staking_network, elect_first_committee
from walruspy.node.config import NodeConfig
from walruspy.node.config import parse_config as parse_node_config
from walruspy.node.keys import load_protocol_key, load_wallet_key
from walruspy.node.node import StorageNode
from walruspy.sim.network import LinkConfig, SimNetwork
from walruspy.sim.transport import TraceEvent
from walruspy.workers import EncoderPool

__all__ = ["NODE_PORT", "SimCluster", "SimNode", "SimSettings", "derive_rng", "open_cluster"]

#: Every node serves on this port of its own host.
NODE_PORT: Final = 9185
#: Where a lying node itself serves, behind the proxy that answers at `NODE_PORT`.
LYING_PORT: Final = 9186
CHAIN_HOST: Final = "chain"
CHAIN_PORT: Final = 8545
CLIENT_HOST: Final = "client"
#: The publisher and aggregator (one daemon over the client), and the host its users call from.
PUBLISHER_HOST: Final = "publisher"
PUBLISHER_PORT: Final = 31415
USER_HOST: Final = "user"
FUNDER_HOST: Final = "funder"
#: The host of the staker wallet (staking only), which stakes with the nodes and withdraws.
STAKER_HOST: Final = "staker"
#: How long a node may take to start and catch up (virtual seconds): far above the few seconds
#: it takes, so only a hang trips it.
START_TIMEOUT_S: Final = 600.0


def derive_rng(seed: int, purpose: str) -> random.Random:
    """An independent generator for `purpose` under `seed` (a string seed hashes with SHA-512,
    the same in every process, unlike `hash()`)."""
    return random.Random(f"{seed}/{purpose}")  # noqa: S311 - simulation, seeded


@dataclass(frozen=True, slots=True)
class SimSettings:
    """The shape of a simulated network; the defaults are small and quick."""

    n_nodes: int = 4
    n_shards: int = 16
    #: Virtual seconds per epoch: short, so that a few virtual hours see many epoch changes.
    epoch_duration_s: int = 600
    #: Every link's latency and jitter unless a fault profile changes one (LAN-like).
    link: LinkConfig = field(default_factory=lambda: LinkConfig(latency_s=0.002, jitter_s=0.004))
    #: The client's bound on one request to a node (virtual seconds).
    request_timeout_s: float = 10.0
    #: Seconds after certification before nodes recover missing slivers.
    recovery_deferral_s: float = 5.0
    #: How often a node polls the chain for events and looks at the epoch clock (virtual
    #: seconds). A devnet polls at 10 Hz; here every poll is a JSON-RPC round trip simulated
    #: byte by byte and a py-evm query, which would dominate the run's real time, and a store's
    #: registration is seen within a second anyway.
    event_polling_interval_s: float = 1.0
    epoch_check_interval_s: float = 30.0
    #: Elect the committee by staking (module doc) instead of deploying a fixed one.
    staking: bool = False
    #: Nodes planned and funded beyond `n_nodes`, started only when they join (staking only).
    standby_nodes: int = 0

    @property
    def max_faulty(self) -> int:
        """f: the nodes (of equal shares) that may fail while every invariant must hold."""
        return (self.n_nodes - 1) // 3


@dataclass(slots=True)
class SimNode:
    """One storage node of the cluster: its plan and configuration, and its current run."""

    index: int
    plan: NodePlan
    config: NodeConfig
    host: str
    #: Bumped at each start: the node's generator is derived from it, so a restart is not a
    #: replay of the first run's draws.
    incarnation: int = 0
    node: StorageNode | None = None
    task: asyncio.Task[None] | None = None
    stack: contextlib.AsyncExitStack | None = None

    @property
    def running(self) -> bool:
        """Whether the node has a live task."""
        return self.task is not None and not self.task.done()


class SimCluster:
    """The network of `open_cluster`: chain, nodes and client, and the faults on them."""

    def __init__(  # noqa: PLR0917 - made in one place, by `_set_up`
        self,
        seed: int,
        settings: SimSettings,
        net: SimNetwork,
        rpc_url: str,
        deployment: Deployment,
        nodes: list[SimNode],
        group: asyncio.TaskGroup,
    ) -> None:
        self.seed = seed
        self.settings = settings
        self.net = net
        self.rpc_url = rpc_url
        self.deployment = deployment
        self.nodes = nodes
        #: Planned nodes not started yet (`SimSettings.standby_nodes`); one that joins moves
        #: to `nodes`.
        self.standby: list[SimNode] = []
        #: The staker wallet's key (staking only).
        self.staker_key: bytes | None = None
        self._group = group
        self.client: WalrusClient | None = None
        #: Users of the publisher and aggregator at `publisher_url`, from host `user`.
        self.user_session: aiohttp.ClientSession | None = None
        self.publisher_url = f"http://{PUBLISHER_HOST}:{PUBLISHER_PORT}"
        self.client_chain: EvmChain | None = None
        #: The client configuration a devnet would write (`client_config`).
        self.client_config: dict[str, Any] = {}
        #: Every account that may hold WAL (wallets and contracts), for the supply check.
        self.wal_holders: list[str] = []
        #: Called with the node and the exception when a node's task dies on its own.
        self.on_node_died: Callable[[SimNode, BaseException], None] | None = None

    @property
    def rpc_connector(self) -> Callable[..., aiohttp.BaseConnector]:
        """Connectors from the client's host (for reads the invariants make)."""
        return functools.partial(self.net.connector, CLIENT_HOST)

    async def start(self, node: SimNode, *, port: int = NODE_PORT) -> None:
        """Start `node` (a new `StorageNode` on its store, serving at `port` of its host) and
        wait until it is ready."""
        assert not node.running, f"node{node.index} is running"
        node.incarnation += 1
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            session = await stack.enter_async_context(
                aiohttp.ClientSession(connector=self.net.connector(node.host))
            )
            wallet_key = load_wallet_key(node.config.wallet_key_path)
            chain = await stack.enter_async_context(
                open_evm_chain(
                    self.rpc_url,
                    self.deployment,
                    wallet_key,
                    connector=functools.partial(self.net.connector, node.host),
                )
            )
            storage_node = StorageNode(
                node.config,
                chain,
                load_protocol_key(node.config.protocol_key_path),
                rng=derive_rng(self.seed, f"node{node.index}/{node.incarnation}"),
                listen=functools.partial(self.net.serve, node.host, port),
                session=session,
            )
        except BaseException:
            await stack.aclose()
            raise
        node.stack = stack
        node.node = storage_node
        node.task = self._group.create_task(self._run(node, storage_node))
        async with asyncio.timeout(START_TIMEOUT_S):
            await storage_node.wait_ready()

    async def _run(self, node: SimNode, storage_node: StorageNode) -> None:
        try:
            await storage_node.run()
        except Exception as exc:  # a node that dies on its own is a finding, not a crash
            if self.on_node_died is not None:
                self.on_node_died(node, exc)
            self.net.crash(node.host)

    async def stop(self, node: SimNode, *, crash: bool = True) -> None:
        """Stop `node`: with `crash`, its connections are reset first (a power cut); else it
        shuts down as on SIGTERM. Either way its store is closed by the task's cancellation."""
        if crash:
            self.net.crash(node.host)
        task, node.task, node.node = node.task, None, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if node.stack is not None:
            stack, node.stack = node.stack, None
            await stack.aclose()
        if not crash:
            await self.net.stop(node.host, NODE_PORT)

    async def start_lying(self, node: SimNode, lies: Collection[Lie] = (Lie.SLIVERS,)) -> None:
        """Start a stopped `node` behind the devnet's lying proxy (`walruspy.devnet.proxy`):
        the proxy serves its committee address and tells `lies` (by default it flips a byte of
        every sliver and recovery symbol it returns), the node itself serves at `LYING_PORT`."""
        assert not node.running
        target = f"http://{node.host}:{LYING_PORT}"
        connector = functools.partial(self.net.connector, node.host)
        # The wrong key the proxy signs with, drawn from the seed (the next start's differs).
        keys = derive_rng(self.seed, f"liar{node.index}/{node.incarnation + 1}")
        app = make_proxy_app(target, connector, lies=lies, random_bytes=keys.randbytes)
        await self.net.serve(node.host, NODE_PORT, app)
        await self.start(node, port=LYING_PORT)

    async def stop_lying(self, node: SimNode) -> None:
        """Crash a lying node and take its proxy away; `start` brings it back honest."""
        await self.net.stop(node.host, NODE_PORT)
        await self.stop(node, crash=True)

    async def wipe(self, node: SimNode) -> None:
        """Delete the store of a stopped node (a disk replaced): it restarts empty."""
        assert not node.running
        await asyncio.to_thread(shutil.rmtree, node.config.storage_path, True)

    async def close(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            if node.running or node.stack is not None:
                await self.stop(node, crash=False)

    async def wal_supply(self) -> tuple[int, int]:
        """(WAL total supply, the sum of the balances of every known holder)."""
        w3 = open_web3(self.rpc_url, connector=self.rpc_connector)
        try:
            abi = load_contract("Wal")[0]
            wal = w3.eth.contract(AsyncWeb3.to_checksum_address(self.deployment.wal), abi=abi)
            supply = int(await wal.functions.totalSupply().call())
            held = 0
            for holder in self.wal_holders:
                held += int(
                    await wal.functions.balanceOf(AsyncWeb3.to_checksum_address(holder)).call()
                )
        finally:
            await w3.provider.disconnect()
        return supply, held


def _write_key(path: Path, key: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key.hex() + "\n")
    path.chmod(0o600)


def _devnet_settings(settings: SimSettings) -> DevnetSettings:
    return DevnetSettings(
        n_nodes=settings.n_nodes,
        n_shards=settings.n_shards,
        epoch_duration_s=settings.epoch_duration_s,
        recovery_deferral_s=settings.recovery_deferral_s,
        request_timeout_s=settings.request_timeout_s,
        staking=settings.staking,
        tls=False,
    )


def _contract_addresses(deployment: Deployment) -> list[str]:
    names = ("wal", "system", "committee", "challenges", "attributes", "shared_blobs")
    found: list[Any] = [getattr(deployment, name) for name in names]
    found += [a for a in (deployment.staking, deployment.pools) if a is not None]
    return [str(a) for a in found]


@contextlib.asynccontextmanager
async def open_cluster(
    directory: Path,
    seed: int,
    settings: SimSettings | None = None,
    *,
    trace: Callable[[TraceEvent], None] | None = None,
) -> AsyncIterator[SimCluster]:
    """The chain, `settings.n_nodes` started nodes and a client, all on one `SimNetwork(seed)`
    (module doc); run it under `walruspy.sim.loop.run`. Everything is stopped on exit."""
    settings = settings or SimSettings()
    net = SimNetwork(seed, default_link=settings.link, trace=trace)
    try:
        async with (
            open_devchain(
                directory / "chain",
                inline=True,
                clock=wall,
                listen=functools.partial(net.serve, CHAIN_HOST, CHAIN_PORT),
            ) as devchain,
            asyncio.TaskGroup() as group,
        ):
            cluster = await _set_up(directory, seed, settings, net, devchain.url, group)
            try:
                await asyncio.gather(*(cluster.start(node) for node in cluster.nodes))
                async with (
                    _open_client(directory, cluster) as client,
                    aiohttp.ClientSession(connector=net.connector(USER_HOST)) as users,
                ):
                    cluster.client = client
                    cluster.user_session = users
                    app = make_app(client, DaemonMode.DAEMON, clock=wall)
                    await net.serve(PUBLISHER_HOST, PUBLISHER_PORT, app)
                    try:
                        yield cluster
                    finally:
                        await net.stop(PUBLISHER_HOST, PUBLISHER_PORT)
            finally:
                await cluster.close()
    finally:
        await net.close()


async def _set_up(  # noqa: PLR0917 - the one caller is `open_cluster`
    directory: Path,
    seed: int,
    settings: SimSettings,
    net: SimNetwork,
    rpc_url: str,
    group: asyncio.TaskGroup,
) -> SimCluster:
    devnet = _devnet_settings(settings)
    keys = derive_rng(seed, "keys")
    n_planned = settings.n_nodes + settings.standby_nodes
    hosts = [f"node{i}" for i in range(n_planned)]
    plans = await asyncio.to_thread(
        functools.partial(
            plan_nodes,
            directory,
            replace(devnet, n_nodes=n_planned),
            [NODE_PORT] * n_planned,
            hosts,
            random_bytes=keys.randbytes,
        )
    )
    client_key = keys.randbytes(32)
    client_key_path = directory / "wallets" / "client.key"
    _write_key(client_key_path, client_key)
    client_address = str(Account.from_key(client_key).address)
    connector = functools.partial(net.connector, FUNDER_HOST)
    staker_key = None
    if settings.staking:
        staker_key = keys.randbytes(32)
        plans, deployment = await _elect(rpc_url, plans, devnet, client_address, staker_key, net)
    else:
        deployment = await deploy_and_fund(
            rpc_url, plans, devnet, [client_address], connector=connector
        )
    deployment_file = directory / "deployment.json"
    deployment.save(deployment_file)
    nodes = []
    for plan in plans:
        raw = node_config(plan, rpc_url, deployment_file, devnet)
        config = parse_node_config(raw, plan.directory)
        config = replace(
            config,
            chain=replace(config.chain, event_polling_interval_s=settings.event_polling_interval_s),
            epoch=replace(config.epoch, check_interval_s=settings.epoch_check_interval_s),
        )
        nodes.append(SimNode(plan.index, plan, config, plan.host))
    client_raw = client_config(rpc_url, deployment_file, {CLIENT_CONTEXT: client_key_path}, devnet)
    cluster = SimCluster(seed, settings, net, rpc_url, deployment, nodes[: settings.n_nodes], group)
    cluster.standby = nodes[settings.n_nodes :]
    cluster.staker_key = staker_key
    cluster.wal_holders = [
        str(Account.from_key(devchain_funder_key()).address),
        client_address,
        *(plan.wallet_address for plan in plans),
        *_contract_addresses(deployment),
    ]
    if staker_key is not None:
        cluster.wal_holders.append(str(Account.from_key(staker_key).address))
    cluster.client_config = client_raw
    return cluster


async def _elect(  # noqa: PLR0917 - the one caller is `_set_up`
    rpc_url: str,
    plans: list[NodePlan],
    devnet: DevnetSettings,
    client_address: str,
    staker_key: bytes,
    net: SimNetwork,
) -> tuple[list[NodePlan], Deployment]:
    """A staking deployment whose first committee is the first `n_nodes` of `plans` (module
    doc); the plans with the node IDs the chain gave them (the standby ones keep theirs until
    they register)."""
    connector = functools.partial(net.connector, FUNDER_HOST)
    deployment = await deploy_staking_network(rpc_url, devnet, connector=connector)
    staker = str(Account.from_key(staker_key).address)
    receivers = [plan.wallet_address for plan in plans] + [client_address, staker]
    await fund_wallets(
        rpc_url, deployment, receivers, funder_key=devnet.funder, connector=connector
    )
    members = plans[: devnet.n_nodes]
    committee = await elect_first_committee(
        rpc_url, deployment, members, staker_key, devnet.funder, connector=connector
    )
    node_ids = {member.public_key: member.node_id for member in committee.members}
    return [replace(p, node_id=node_ids.get(p.public_key, p.node_id)) for p in plans], deployment


@contextlib.asynccontextmanager
async def _open_client(directory: Path, cluster: SimCluster) -> AsyncIterator[WalrusClient]:
    context = parse_client_config(cluster.client_config, directory).context(CLIENT_CONTEXT)
    context = replace(context, encoder_workers=0)
    key = context.read_wallet_key()
    assert key is not None
    connector = functools.partial(cluster.net.connector, CLIENT_HOST)
    async with (
        open_evm_chain(cluster.rpc_url, cluster.deployment, key, connector=connector) as chain,
        aiohttp.ClientSession(
            connector=cluster.net.connector(
                CLIENT_HOST, limit=0, limit_per_host=context.communication.max_node_connections
            )
        ) as session,
        open_client(
            context,
            chain=chain,
            session=session,
            encoder=EncoderPool(0),
            rng=derive_rng(cluster.seed, "client"),
        ) as client,
    ):
        cluster.client_chain = chain
        yield client
