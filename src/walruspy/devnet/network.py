"""`open_devnet`: a whole Walrus network on this machine, as real processes, for tests and demos.

Theory of operation (spec/walrus-system.md 1.2, 3, 4.3, 5; STYLE.md 6). `launch_devnet` starts,
in order, each step waiting for the previous one to be ready (polled with a bound, never slept
for):

1. the devchain, `walruspy chain serve` (ready when it answers `eth_chainId`), or, with
   `DevnetSettings.chain_rpc`, nothing: the devnet runs on that Ethereum node (e.g. anvil),
   which must answer within a few seconds;
2. keys, the committee and configuration files (`walruspy.devnet.setup`), the deployment, and
   the funding of every wallet from the funder (the devchain's first account, or the key the
   user gave for an external chain);
3. every storage node, `python -m walruspy.node run --config FILE`, each its own process on its
   own port, and a corrupting proxy in front of each lying node (ready when the node's health
   answers and it has applied every event the chain had when the wait began, so its view is
   current; a lying node's proxy must answer too);
4. the daemon, `walruspy daemon --context publisher` (ready when `/status` answers).

`DIR/client_config.yaml` is written in step 2, the state file `DIR/devnet.json` (pids, command
lines, URLs) once every process is ready and again whenever a node restarts. `open_devnet` wraps
it as an async context manager whose exit stops every process (SIGTERM, SIGKILL after a bound)
and leaves none behind; `walruspy devnet up` starts the same processes detached and leaves them
running. An external chain is never stopped: it is not the devnet's. Node handles kill
(SIGKILL), pause (SIGSTOP), resume (SIGCONT) and restart (same data directory, same port) their
node; `Devnet.advance_epoch` moves the chain clock to the end of the epoch, starts the next one
and waits until every running node has seen it.

The clock moves use only what the devchain (with `--dev-methods`), anvil and hardhat share:
`evm_increaseTime` (added to every later block's time) and `evm_mine`, checked against the
latest block's timestamp, which is what the contracts and the nodes' epoch drivers read. The
nodes themselves need no test method: they take epoch steps once a block's time says so.

A stopped devnet is started again by `Devnet.resume` (the chain on its state, then steps 3 and
4 on the recorded ports and the files as they are), and `Devnet.attach` gives handles on a
running detached one without starting anything; `walruspy.devnet.resume` builds both from the
state file.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Final

import aiohttp

from walruspy.chain.api import DeploymentError
from walruspy.chain.deploy import Deployment
from walruspy.chain.events import EventCursor
from walruspy.chain.evm import EvmChain, open_evm_chain
from walruspy.chain.evm_staking import EpochState
from walruspy.client import ClientConfig, load_config
from walruspy.core.committee import Committee
from walruspy.core.crypto import BlsPublicKey
from walruspy.core.errors import WalrusError
from walruspy.devnet.errors import DevnetError
from walruspy.devnet.hosts import (
    HOST_CHAIN,
    HOST_CLIENT,
    HOST_DAEMON,
    TUN_DEVICE,
    HostsNetwork,
    check_hosts_supported,
    enter_netns,
    node_host,
)
from walruspy.devnet.links import RELAY_READY_LINE
from walruspy.devnet.processes import POLL_INTERVAL_S, ManagedProcess, ProcessSpec
from walruspy.devnet.setup import (
    CLIENT_CONTEXT,
    LOOPBACK,
    PUBLISHER_CONTEXT,
    DevnetSettings,
    NodePlan,
    client_config,
    deploy_and_fund,
    ether_share,
    free_ports,
    fund_wallets,
    funder_key_path,
    new_wallet,
    node_config,
    plan_nodes,
    write_funder_key,
    write_yaml,
)
from walruspy.devnet.staking import (
    arrange_by_committee,
    deploy_staking_network,
    elect_first_committee,
    join_node,
    staking_of,
    update_registration,
)
from walruspy.devnet.state import DevnetState, NodeRecord, ProcessRecord
from walruspy.node.keys import load_wallet_key

__all__ = [
    "Devnet",
    "DevnetNode",
    "launch_devnet",
    "node_spec",
    "open_devnet",
    "process_record",
    "wait_until",
]

#: Start-up bounds on a loaded two-core machine: Python imports take seconds per process, and
#: ten nodes start at once.
CHAIN_READY_S: Final = 60.0
#: An external chain runs already: it answers at once, or something is wrong with it.
EXTERNAL_CHAIN_READY_S: Final = 10.0
NODES_READY_S: Final = 180.0
DAEMON_READY_S: Final = 60.0
#: Waiting for every node to see a new epoch: a poll interval of the nodes plus processing.
EPOCH_SEEN_S: Final = 60.0
#: Waiting for the new committee to report its shards: shard sync of a devnet's blobs, or
#: their recovery when a previous owner is gone, takes seconds to a minute or two.
EPOCH_CHANGE_DONE_S: Final = 240.0
#: One readiness probe; a node that takes longer to answer its health is not ready.
PROBE_TIMEOUT_S: Final = 5.0
#: Events read per page when counting them; the count is bounded by the pages read.
_EVENT_PAGE: Final = 1000
_MAX_EVENT_PAGES: Final = 10_000


#: Tries at scheduling and starting a challenge (each one step or one mined block).
_CHALLENGE_STEPS: Final = 10
#: Tries at moving the chain clock (`Devnet._move_clock_to`): one, or two after a burst of
#: blocks ran the chain's clock ahead of its offset.
_CLOCK_STEPS: Final = 5


@dataclass(eq=False)
class DevnetNode:
    """One storage node of a running devnet, with the handles tests use to fault it."""

    plan: NodePlan
    process: ManagedProcess
    proxy: ManagedProcess | None
    devnet: Devnet

    @property
    def index(self) -> int:
        """The node's position in the committee."""
        return self.plan.index

    @property
    def url(self) -> str:
        """The node's URL in the committee (its proxy's, if it lies)."""
        return self.plan.url

    @property
    def direct_url(self) -> str:
        """Where the node itself serves."""
        return self.plan.direct_url

    @property
    def shards(self) -> tuple[int, ...]:
        """The shards the node holds in the devnet's current committee (none if not a member)."""
        return self.devnet.shards_of(self.plan.public_key)

    @property
    def pid(self) -> int | None:
        """The node process's pid while it runs."""
        return self.process.pid if self.process.running else None

    async def kill(self) -> None:
        """SIGKILL the node (its proxy, if any, keeps running and answers 502)."""
        await self.process.kill()

    def pause(self) -> None:
        """SIGSTOP the node: it keeps its connections but answers nothing."""
        self.process.pause()

    def resume(self) -> None:
        """SIGCONT a paused node."""
        self.process.resume()

    async def stop(self) -> int | None:
        """Stop the node cleanly (SIGTERM); its exit status."""
        return await self.process.stop()

    async def restart(self) -> None:
        """Start a stopped or killed node again on its data and port, and wait until ready."""
        if self.process.running:
            await self.process.stop()
        self.process.start()
        await self.devnet.wait_node_ready(self)
        self.devnet.save_state()


class Devnet:
    """A running devnet: its endpoints, its nodes and the processes behind them."""

    def __init__(
        self,
        directory: Path,
        settings: DevnetSettings,
        session: aiohttp.ClientSession,
        stack: contextlib.AsyncExitStack,
        *,
        detached: bool,
        ports: Sequence[int] | None = None,
        hosts: HostsNetwork | None = None,
    ) -> None:
        self.directory = directory
        self.settings = settings
        self.session = session
        self.detached = detached
        self._stack = stack
        # Chain, daemon, one per node, one per lying node's proxy: all at once, so no two
        # components are handed the same one. A resumed devnet passes the ports it recorded.
        if ports is None:
            ports = free_ports(2 + settings.n_nodes + len(settings.lying_nodes))
            if settings.daemon_port is not None:
                ports[1] = settings.daemon_port
        self._node_ports = ports[2:]
        #: The hosts of a `--hosts` devnet (a resumed one passes its recorded network).
        self.hosts = hosts
        if hosts is None and settings.hosts is not None:
            self.hosts = HostsNetwork.for_directory(directory, settings.hosts)
        if self.hosts is not None:
            for name in (HOST_CHAIN, HOST_CLIENT, HOST_DAEMON):
                self.hosts.allocate(name)
        self.daemon_port = ports[1]
        #: The devchain's process; None on an external chain (`settings.chain_rpc`), whose
        #: port in `ports` goes unused.
        self.chain_process: ManagedProcess | None = None
        if settings.chain_rpc is not None:
            self.chain_rpc = settings.chain_rpc
        else:
            self.chain_rpc = f"http://{self._address(HOST_CHAIN)}:{ports[0]}"
            self.chain_process = ManagedProcess(
                _spec(
                    directory,
                    "chain",
                    "-m walruspy.cli.main chain serve --host {host} --port {port}"
                    " --state {state} --dev-methods",
                    host=self._address(HOST_CHAIN),
                    port=ports[0],
                    state=directory / "chain",
                    netns=self._netns(HOST_CHAIN),
                ),
                detached=detached,
            )
        #: The delaying relay of a `--hosts` devnet whose links need one.
        self.relay_process: ManagedProcess | None = None
        self.daemon_process: ManagedProcess | None = None
        self.nodes: list[DevnetNode] = []
        self.deployment: Deployment | None = None
        self.deployer: EvmChain | None = None
        #: The committee of the current epoch, as the devnet last read it.
        self.committee: Committee | None = None

    # --- endpoints ------------------------------------------------------------------------

    @property
    def deployment_file(self) -> Path:
        """The deployment file the nodes and clients read."""
        return self.directory / "deployment.json"

    @property
    def client_config_path(self) -> Path:
        """`DIR/client_config.yaml`: contexts "devnet" (the default) and "publisher"."""
        return self.directory / "client_config.yaml"

    def _address(self, host: str) -> str:
        """Where the processes of `host` listen (loopback without `--hosts`)."""
        return LOOPBACK if self.hosts is None else self.hosts.address(host)

    def _netns(self, host: str) -> str | None:
        """The network namespace of `host` (None without `--hosts`)."""
        return None if self.hosts is None else self.hosts.netns(host)

    @property
    def publisher_url(self) -> str:
        """The publisher's base URL."""
        return f"http://{self._address(HOST_DAEMON)}:{self.daemon_port}"

    @property
    def aggregator_url(self) -> str:
        """The aggregator's base URL (the same daemon)."""
        return self.publisher_url

    def client_config(self) -> ClientConfig:
        """The client configuration of this devnet."""
        return load_config(self.client_config_path)

    # --- start ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Steps 1 to 4 of the module docstring (with `--hosts`, the hosts first)."""
        await self._open_hosts()
        await self._start_chain()
        settings = self.settings
        # Refuse a funder without ether before minutes of key generation and deployment.
        await ether_share(self.chain_rpc, settings.funder, settings.n_nodes + 2)
        write_funder_key(self.directory, settings.funder)
        addresses = None
        if self.hosts is not None:
            # Addresses are registered before the nodes' places in the committee are known:
            # a node's host takes its name from its place once it has one (`_place_nodes`).
            addresses = [self.hosts.allocate(f"pending{k}") for k in range(settings.n_nodes)]
        plans = await asyncio.to_thread(
            plan_nodes, self.directory, settings, self._node_ports, addresses
        )
        wallets = {
            CLIENT_CONTEXT: self.directory / "wallets" / "client.key",
            PUBLISHER_CONTEXT: self.directory / "wallets" / "publisher.key",
        }
        paying = [new_wallet(path) for path in wallets.values()]
        if settings.staking:
            plans = await self._elect(plans, paying, wallets[CLIENT_CONTEXT])
        else:
            self.deployment = await deploy_and_fund(self.chain_rpc, plans, settings, paying)
        plans = self._place_nodes(plans)
        assert self.deployment is not None
        self.deployment.save(self.deployment_file)
        write_yaml(
            self.client_config_path,
            client_config(self.chain_rpc, self.deployment_file, wallets, settings),
        )
        for plan in plans:
            write_yaml(
                plan.config_path,
                node_config(plan, self.chain_rpc, self.deployment_file, settings),
            )
        await self._open_chain(plans)
        await self._start_network()

    async def resume(self, plans: Sequence[NodePlan]) -> None:
        """Start a stopped devnet again (`walruspy.devnet.resume`): its hosts, the chain on
        its state, then steps 3 and 4 with the nodes' data and configuration files as they
        are."""
        await self._open_hosts()
        await self._start_chain()
        self.deployment = Deployment.load(self.deployment_file)
        try:
            await self._open_chain(plans)
        except DeploymentError as exc:
            if self.chain_process is not None:
                raise
            raise DevnetError(
                f"the chain at {self.chain_rpc} does not hold this devnet's contracts (a "
                f"restarted anvil starts empty unless it keeps its state with --state): {exc}"
            ) from exc
        await self._start_network()

    async def attach(self, plans: Sequence[NodePlan]) -> None:
        """Handles on a running detached devnet, starting nothing: its chain client, its
        committee and its nodes (whose `ManagedProcess`es have not started)."""
        if self.hosts is not None:
            enter_netns(self.hosts.netns(HOST_CLIENT))
        self.deployment = Deployment.load(self.deployment_file)
        await self._open_chain(plans)

    async def _open_hosts(self) -> None:
        """With `--hosts`: make the router and every allocated host's namespace (the nodes'
        come later, `_place_nodes`), start the relay if the links need it, and move this
        thread into the client host, from where the devnet is set up and watched."""
        if self.hosts is None:
            return
        check_hosts_supported()
        self.hosts.create()
        if self.hosts.relayed:
            shape = self.hosts.shape
            self.relay_process = ManagedProcess(
                _spec(
                    self.directory,
                    "relay",
                    "-m walruspy.devnet.links --tun {tun} --latency-ms {latency:g}"
                    " --jitter-ms {jitter:g} --loss {loss:g}",
                    tun=TUN_DEVICE,
                    latency=shape.latency_s * 1000,
                    jitter=shape.jitter_s * 1000,
                    loss=shape.loss,
                    netns=self.hosts.router,
                ),
                detached=self.detached,
            )
            self.relay_process.start()
            log = self.relay_process.spec.log_path

            async def relaying() -> bool:
                return RELAY_READY_LINE in log.read_text(errors="replace")

            await self.relay_process.wait_ready(relaying, CHAIN_READY_S)
        enter_netns(self.hosts.netns(HOST_CLIENT))

    def _place_nodes(self, plans: list[NodePlan]) -> list[NodePlan]:
        """With `--hosts`: name each node's host after its place in the committee, make the
        hosts' namespaces and say where each node runs."""
        if self.hosts is None:
            return plans
        hosts = self.hosts
        for plan in plans:
            hosts.rename(hosts.name_of(plan.host), node_host(plan.index))
        for plan in plans:
            hosts.create_host(node_host(plan.index))
        return [replace(plan, netns=hosts.netns(node_host(plan.index))) for plan in plans]

    async def _start_chain(self) -> None:
        """Start the devchain, or check that the external chain answers."""
        if self.chain_process is not None:
            self.chain_process.start()
            await self.chain_process.wait_ready(self._chain_answers, CHAIN_READY_S)
            return
        try:
            await wait_until(self._chain_answers, EXTERNAL_CHAIN_READY_S, "an answer")
        except DevnetError:
            raise DevnetError(
                f"the chain at {self.chain_rpc} does not answer (eth_chainId): start it, or "
                "give the URL of a running Ethereum node with --chain-rpc"
            ) from None

    async def _open_chain(self, plans: Sequence[NodePlan]) -> None:
        """The deployer's chain client, the committee, and a handle per node."""
        assert self.deployment is not None
        self.deployer = await self._stack.enter_async_context(
            open_evm_chain(self.chain_rpc, self.deployment, self.settings.funder)
        )
        self.committee = await self.deployer.committee()
        self.nodes = [self._node(plan, self.detached) for plan in plans]

    async def _start_network(self) -> None:
        """Steps 3 and 4 (after `_open_chain`), then the state file."""
        for node in self.nodes:
            if node.proxy is not None:
                node.proxy.start()
            node.process.start()
        try:
            async with asyncio.TaskGroup() as group:
                for node in self.nodes:
                    group.create_task(self.wait_node_ready(node))
        except ExceptionGroup as failed:
            # The first node that failed says why (its log's tail); the others were cancelled.
            raise failed.exceptions[0] from failed
        await self.wait_epoch_change_done()
        await self._start_daemon(self.detached)
        self.save_state()

    async def _elect(
        self, plans: list[NodePlan], paying: list[str], staker_wallet: Path
    ) -> list[NodePlan]:
        """Deploy with staking and elect the first committee (`walruspy.devnet.staking`)."""
        settings = self.settings
        self.deployment = await deploy_staking_network(self.chain_rpc, settings)
        receivers = [plan.wallet_address for plan in plans] + paying
        await fund_wallets(self.chain_rpc, self.deployment, receivers, funder_key=settings.funder)
        staker_key = load_wallet_key(staker_wallet)
        committee = await elect_first_committee(
            self.chain_rpc, self.deployment, plans, staker_key, settings.funder
        )
        registered_as = {plan.public_key: plan.directory.name for plan in plans}
        arranged = await asyncio.to_thread(
            arrange_by_committee, plans, committee, settings.lying_nodes
        )
        # A node registered as `nodeK` that now is node I of the committee is renamed, so that
        # names, directories and indices agree; a lying node's address becomes its proxy's.
        async with asyncio.TaskGroup() as group:
            for plan in arranged:
                renamed = registered_as[plan.public_key] != plan.directory.name
                lies = plan.proxy_port is not None
                if renamed or lies:
                    group.create_task(
                        update_registration(
                            self.chain_rpc, self.deployment, plan, address=lies, name=renamed
                        )
                    )
        return arranged

    def shards_of(self, public_key: BlsPublicKey) -> tuple[int, ...]:
        """The shards of the node with this key in the current committee."""
        if self.committee is None:
            return ()
        for member in self.committee.members:
            if member.public_key == public_key:
                return member.shards
        return ()

    def in_committee(self, node: DevnetNode) -> bool:
        """Whether `node` is a member of the current committee."""
        return bool(self.shards_of(node.plan.public_key))

    def _node(self, plan: NodePlan, detached: bool) -> DevnetNode:
        name = f"node{plan.index}"
        process = ManagedProcess(node_spec(self.directory, plan), detached=detached)
        proxy = None
        if plan.proxy_port is not None:
            proxy = ManagedProcess(
                _spec(
                    self.directory,
                    f"{name}-proxy",
                    "-m walruspy.devnet.proxy --listen {host}:{port} --target {target}"
                    + (" --network-key {key}" if plan.network_public_key else ""),
                    host=plan.host,
                    port=plan.proxy_port,
                    target=plan.direct_url,
                    key=plan.network_key_path,
                    netns=plan.netns,
                ),
                detached=detached,
            )
        return DevnetNode(plan, process, proxy, self)

    async def _start_daemon(self, detached: bool) -> None:
        self.daemon_process = ManagedProcess(
            _spec(
                self.directory,
                "daemon",
                "-m walruspy.cli.main daemon --bind-address {host}:{port} --config {config}"
                " --context {context} --max-body-size {kib}",
                host=self._address(HOST_DAEMON),
                port=self.daemon_port,
                config=self.client_config_path,
                context=PUBLISHER_CONTEXT,
                kib=-(-self.settings.max_body_bytes // 1024),
                netns=self._netns(HOST_DAEMON),
            ),
            detached=detached,
        )
        self.daemon_process.start()
        await self.daemon_process.wait_ready(
            lambda: self._get_ok(f"{self.publisher_url}/status"), DAEMON_READY_S
        )

    # --- readiness --------------------------------------------------------------------------

    async def _chain_answers(self) -> bool:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        try:
            async with self.session.post(
                self.chain_rpc, json=body, timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
            ) as response:
                return response.status == 200 and "result" in await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False

    async def _get_ok(self, url: str) -> bool:
        try:
            async with self.session.get(
                url, timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _node_answers(self, node: DevnetNode) -> bool:
        """Whether the node's committee address (its proxy) answers its health, as the node."""
        try:
            await node.plan.client(self.session, PROBE_TIMEOUT_S, direct=False).health()
        except (WalrusError, aiohttp.ClientError, TimeoutError):
            return False
        return True

    async def count_events(self) -> int:
        """System events on chain since the deployment (what a caught-up node has applied)."""
        assert self.deployer is not None and self.deployment is not None
        cursor, total = EventCursor(self.deployment.start_block), 0
        for _ in range(_MAX_EVENT_PAGES):
            page = await self.deployer.events(cursor, _EVENT_PAGE)
            total += len(page)
            if len(page) < _EVENT_PAGE:
                return total
            cursor = page[-1].event_id.cursor_after
        raise DevnetError(f"more than {_EVENT_PAGE * _MAX_EVENT_PAGES} events: not a devnet")

    async def _node_caught_up(self, node: DevnetNode, events: int, epoch: int | None) -> bool:
        client = node.plan.client(self.session, PROBE_TIMEOUT_S, direct=True)
        try:
            health = await client.health()
        except (WalrusError, aiohttp.ClientError, TimeoutError):  # not serving (yet)
            return False
        if health.event_progress.persisted < events:
            return False
        return epoch is None or health.epoch >= epoch

    async def wait_node_ready(self, node: DevnetNode, epoch: int | None = None) -> None:
        """Wait until the node serves, is current with the chain (and in `epoch`, if given)."""
        events = await self.count_events()
        await node.process.wait_ready(
            lambda: self._node_caught_up(node, events, epoch), NODES_READY_S
        )
        if node.proxy is not None:
            if not node.proxy.running:
                node.proxy.start()
            await node.proxy.wait_ready(lambda: self._node_answers(node), NODES_READY_S)

    # --- epochs -----------------------------------------------------------------------------

    async def rpc(self, method: str, *params: Any) -> Any:
        """One JSON-RPC call to the chain (evm_increaseTime and friends)."""
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        async with self.session.post(self.chain_rpc, json=body) as response:
            answer = await response.json(content_type=None)
        if "error" in answer:
            raise DevnetError(f"chain {method} at {self.chain_rpc}: {answer['error']}")
        return answer["result"]

    async def _latest_timestamp(self) -> int:
        block = await self.rpc("eth_getBlockByNumber", "latest", False)
        return int(block["timestamp"], 16)

    async def _move_clock_to(self, timestamp: int) -> None:
        """Mine a block stamped `timestamp` or later, so that the chain's time has reached it.

        A chain stamps a block with its clock (the wall clock plus the offset `evm_increaseTime`
        adds) but at least its parent's time plus one. Adding the distance from the latest
        block's time to the offset reaches `timestamp` unless a burst of blocks ran the chain
        ahead of its clock; then the block mined shows how far is left, and a second step
        covers it. Neither the wall clock here nor the answer of `evm_increaseTime` (the
        devchain's and anvil's total offset, hardhat's a string) is relied on.
        """
        for _ in range(_CLOCK_STEPS):
            remaining = timestamp - await self._latest_timestamp()
            if remaining <= 0:
                return
            await self.rpc("evm_increaseTime", hex(remaining))
            await self.rpc("evm_mine")
        raise DevnetError(f"the chain at {self.chain_rpc} did not reach time {timestamp}")

    async def advance_epoch(self) -> int:
        """End the current epoch now: move the chain clock, start the next epoch, wait for it.

        Under staking that is `voting_end` and `initiate_epoch_change`, each once the clock
        says it is due, after the previous epoch change completed. Returns the new epoch once
        every running node has applied its change (and, under staking, once the new committee
        reported its shards, if enough of its nodes run).
        """
        new_epoch = await self.start_epoch_change()
        async with asyncio.TaskGroup() as group:
            for node in self.nodes:
                if node.process.running and not node.process.paused:
                    group.create_task(self.wait_node_ready(node, new_epoch))
        if self.settings.staking and self._reporters_can_reach_a_quorum():
            await self.wait_epoch_change_done()
        self.save_state()
        return new_epoch

    async def start_challenge(self) -> int:
        """Start the current epoch's storage challenge now: move the chain clock to its window,
        schedule it and start it once its seed block is mined (a node's starter may take either
        step first). Returns the epoch; the nodes then prove and certify on their own."""
        deployer = self._need_deployer()
        epoch = (await deployer.system_info()).epoch
        challenge = await deployer.challenge_state(epoch)
        await self._move_clock_to(challenge.window_opens_at)
        for _ in range(_CHALLENGE_STEPS):
            challenge = await deployer.challenge_state(epoch)
            if challenge.started:
                return epoch
            if challenge.seed_block == 0:
                await deployer.schedule_challenge()
                # Every node withholds symbols once it applied ChallengeScheduled: let them all
                # apply it before the seed block exists (on a public chain, the block interval).
                await self.wait_nodes_caught_up()
            elif not await deployer.start_challenge():
                await self.rpc("evm_mine")  # the seed block must be in the past
        raise DevnetError(f"the storage challenge of epoch {epoch} did not start")

    async def wait_nodes_caught_up(self) -> None:
        """Wait until every running node has applied every event on chain so far."""
        events = await self.count_events()
        async with asyncio.TaskGroup() as group:
            for node in self.nodes:
                if node.process.running and not node.process.paused:
                    group.create_task(
                        node.process.wait_ready(
                            partial(self._node_caught_up, node, events, None), NODES_READY_S
                        )
                    )

    async def start_epoch_change(self) -> int:
        """Take the chain's epoch steps now and return the new epoch, without waiting for the
        nodes: its EpochChangeStart is on chain, the new committee has yet to sync its shards.
        """
        deployer = self._need_deployer()
        start_epoch = (await deployer.system_info()).epoch
        if self.settings.staking:
            await self.wait_epoch_change_done()
        for _ in range(2 if self.settings.staking else 1):
            due = await deployer.epoch_step_due_at()
            if due is None:
                break
            await self._move_clock_to(due)
            # A node's epoch driver may win the race: then this call finds the step taken.
            await deployer.advance_epoch()
        new_epoch = start_epoch + 1
        if (await deployer.system_info()).epoch < new_epoch:
            raise DevnetError(f"epoch {new_epoch} did not start")
        self.committee = await deployer.committee()
        return new_epoch

    def _reporters_can_reach_a_quorum(self) -> bool:
        """Whether the running members hold a quorum of shards (so the change can complete)."""
        weight = sum(
            len(node.shards)
            for node in self.nodes
            if node.process.running and not node.process.paused
        )
        return 3 * weight >= 2 * self.settings.n_shards + 1

    async def wait_epoch_change_done(self) -> None:
        """Under staking, wait until the current epoch's committee reported its shards (the
        next committee may be selected already: the nodes' drivers call `voting_end` once its
        time has come)."""
        if not self.settings.staking:
            return
        staking = staking_of(self._need_deployer())

        async def done() -> bool:
            return (await staking.state()).state is not EpochState.EPOCH_CHANGE_SYNC

        await wait_until(done, EPOCH_CHANGE_DONE_S, "the epoch change completing (EpochChangeDone)")

    def _need_deployer(self) -> EvmChain:
        if self.deployer is None:
            raise DevnetError("the devnet is not started")
        return self.deployer

    async def add_node(self, stake_frost: int | None = None) -> DevnetNode:
        """Start one more node, registered as a candidate; staked from the devnet's wallet.

        The node serves at once (outside the committee, it stores nothing new); it joins the
        committee at the next selection if its stake earns it shards. Staking devnets only.
        """
        if not self.settings.staking:
            raise DevnetError("only a staking devnet can add nodes")
        assert self.deployment is not None
        index = len(self.nodes)
        host = LOOPBACK
        if self.hosts is not None:
            host = self.hosts.allocate(node_host(index))
            self.hosts.create_host(node_host(index))
        plan = await join_node(
            self.chain_rpc,
            self.deployment,
            self.directory,
            index,
            settings=self.settings,
            stake_frost=stake_frost,
            host=host,
        )
        plan = replace(plan, netns=self._netns(node_host(index)))
        node = self._node(plan, self.detached)
        self.nodes.append(node)
        node.process.start()
        await self.wait_node_ready(node)
        self.save_state()
        return node

    # --- state and stop ---------------------------------------------------------------------

    def state(self) -> DevnetState:
        """The state file's content for the processes as they run now."""
        assert self.daemon_process is not None and self.deployment is not None
        # Devnets made before the funder's key was written have none: the devchain's account.
        key_file = funder_key_path(self.directory)
        return DevnetState(
            dir=str(self.directory),
            n_shards=self.settings.n_shards,
            epoch_duration_s=self.settings.epoch_duration_s,
            chain=(
                process_record(self.chain_process, self.chain_rpc)
                if self.chain_process is not None
                else ProcessRecord("chain", 0, (), "", self.chain_rpc)
            ),
            nodes=tuple(
                NodeRecord(
                    index=node.index,
                    process=process_record(node.process, node.direct_url),
                    url=node.url,
                    shards=node.shards,
                    node_id="0x" + node.plan.node_id.hex(),
                    proxy=process_record(node.proxy, node.url) if node.proxy is not None else None,
                    in_committee=self.in_committee(node),
                )
                for node in self.nodes
            ),
            daemon=process_record(self.daemon_process, self.publisher_url),
            client_config=str(self.client_config_path),
            deployment_file=str(self.deployment_file),
            tls=self.settings.uses_tls,
            max_body_bytes=self.settings.max_body_bytes,
            hosts=self.hosts.to_json() if self.hosts is not None else None,
            relay=(
                process_record(self.relay_process, "") if self.relay_process is not None else None
            ),
            chain_external=self.chain_process is None,
            funder_key_file=str(key_file) if key_file.exists() else "",
        )

    def save_state(self) -> None:
        """Write `DIR/devnet.json`."""
        self.state().save()

    async def stop(self) -> None:
        """Stop every process: daemon, nodes and proxies together, then the devchain (an
        external chain is not the devnet's to stop), and with `--hosts` the relay and the
        hosts."""
        async with asyncio.TaskGroup() as group:
            if self.daemon_process is not None:
                group.create_task(self.daemon_process.stop())
            for node in self.nodes:
                group.create_task(node.process.stop())
                if node.proxy is not None:
                    group.create_task(node.proxy.stop())
        if self.chain_process is not None:
            await self.chain_process.stop()
        if self.relay_process is not None:
            await self.relay_process.stop()
        if self.hosts is not None:
            self.hosts.destroy()


#: The storage nodes' `nice`. A devnet runs the devchain, the client and every node on one
#: machine, where a real network has the chain and each node on machines of their own: ten nodes
#: verifying an upload at equal priority starved the devchain of the transactions every store
#: waits for. Below it, they take what the chain and the client leave.
NODE_NICE = 5


def node_spec(directory: Path, plan: NodePlan) -> ProcessSpec:
    """The process of a devnet's storage node: `python -m walruspy.node run --config FILE`."""
    return _spec(
        directory,
        f"node{plan.index}",
        "-m walruspy.node run --config {config}",
        config=plan.config_path,
        netns=plan.netns,
        nice=NODE_NICE,
    )


def _spec(
    directory: Path,
    name: str,
    template: str,
    *,
    netns: str | None = None,
    nice: int = 0,
    **values: object,
) -> ProcessSpec:
    """A process named `name` running `python TEMPLATE`, its `{fields}` filled in, in the
    network namespace `netns` (a host of a `--hosts` devnet) if given.

    The template is split into arguments before the values go in, so a path with spaces stays
    one argument.
    """
    args = tuple(part.format(**values) for part in template.split())
    return ProcessSpec(name, args, directory / "logs" / f"{name}.log", netns, nice)


def process_record(process: ManagedProcess, url: str) -> ProcessRecord:
    """The state file's record of a running process."""
    return ProcessRecord(
        name=process.spec.name,
        pid=process.pid or 0,
        command=tuple(process.spec.command),
        log=str(process.spec.log_path),
        url=url,
    )


def _prepare_directory(directory: Path) -> Path:
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise DevnetError(f"{directory} is not empty: a devnet starts in a new directory")
    return directory


@contextlib.asynccontextmanager
async def launch_devnet(
    directory: Path | str, settings: DevnetSettings, *, detached: bool
) -> AsyncIterator[Devnet]:
    """Start a devnet in `directory` (new or empty); see the module docstring.

    Leaving the context stops every process unless `detached`, where only a failed start
    stops them (a detached devnet is stopped by `walruspy devnet down`).
    """
    directory = _prepare_directory(Path(directory))
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        devnet = Devnet(directory, settings, session, stack, detached=detached)
        started = False
        try:
            await devnet.start()
            started = True
            yield devnet
        finally:
            if not (detached and started):
                await devnet.stop()


@contextlib.asynccontextmanager
async def open_devnet(
    directory: Path | str,
    n_nodes: int = 4,
    n_shards: int = 100,
    epoch_duration_s: int = 60,
    **options: Any,
) -> AsyncIterator[Devnet]:
    """A devnet of `n_nodes` node processes, `n_shards` shards and epochs of that length.

    `options` are the other fields of `DevnetSettings` (`lying_nodes`, `max_body_bytes`,
    `recovery_deferral_s`, `max_epochs_ahead`, `request_timeout_s`, `scrub_bytes_per_second`,
    `scrub_pass_interval_s`, ...). Every process is stopped when the context exits.
    """
    settings = DevnetSettings(n_nodes, n_shards, epoch_duration_s, **options)
    async with launch_devnet(directory, settings, detached=False) as devnet:
        yield devnet


async def wait_until(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Poll `check` until True, at most `timeout_s` (for states of other processes)."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() >= deadline:
            raise DevnetError(f"{what} did not happen within {timeout_s:.0f} s")
        await asyncio.sleep(POLL_INTERVAL_S)  # another process's state: only polling tells
