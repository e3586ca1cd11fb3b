"""Resuming a stopped devnet, and restarting one of its nodes, from its state file.

Theory of operation. A devnet's durable parts outlive its processes: the devchain's state
(`DIR/chain`, durable across kill -9), every node's LMDB store, keys and configuration file,
the deployment, the funder's key and the client configuration. An external chain (`devnet up
--chain-rpc`) keeps its state itself, as long as it runs. Resuming is therefore starting the same
processes again on the same files and ports, as `DIR/devnet.json` recorded them:

1. the state file is read and checked: the devnet is where it was made (its configuration
   files name absolute paths), no recorded process runs, the options given with `devnet up`
   match the recorded ones, and every recorded port is free (else the error names the port and
   the process it belongs to);
2. the settings and node plans are rebuilt from the record (node IDs, URLs, ports) and the
   keys on disk (the protocol key; a TLS node is pinned to its network key);
3. `Devnet.resume` starts the chain on its state (or reconnects to the external chain, which
   must answer and still hold the devnet's contracts), the nodes (and lying proxies) on their
   data, waits until each is current with the chain, starts the daemon and writes the state
   file. The funder is the recorded one, so later nodes and `get-wal` pay from the same account.

`attach_devnet` gives handles on a running devnet without starting anything, for scripts and
tests that move its clock (`Devnet.start_epoch_change`) while the CLI's devnet runs.

Restarting one node (`restart_node`) attaches to the running devnet instead (`Devnet.attach`,
which starts nothing), stops the node and its lying proxy if they run, starts it again on its
data and port, waits until it is current with the chain, as `DevnetNode.restart` does, and
records its new pid. A node that does not become ready is stopped again, so that no process
runs that the state file does not name.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from eth_account import Account

from walruspy.chain.deploy import Deployment
from walruspy.devnet.errors import DevnetError, StateFileError
from walruspy.devnet.hosts import HostsNetwork, node_host
from walruspy.devnet.network import Devnet, process_record
from walruspy.devnet.processes import same_process, stop_pids
from walruspy.devnet.setup import (
    LOOPBACK,
    DevnetSettings,
    NodePlan,
    devchain_funder_key,
    node_directory,
    port_taken,
)
from walruspy.devnet.state import STATE_FILE, DevnetState, NodeRecord, ProcessRecord
from walruspy.node.keys import load_protocol_key
from walruspy.node_api.tls import NETWORK_KEY_FILE, load_network_key, public_key_bytes

__all__ = [
    "ResumeRequest",
    "advance_epoch",
    "attach_devnet",
    "check_ports_free",
    "check_request",
    "recorded_hosts",
    "recorded_plans",
    "recorded_ports",
    "recorded_settings",
    "restart_node",
    "resume_devnet",
    "running_processes",
]


@dataclass(frozen=True, slots=True)
class ResumeRequest:
    """The options given with `devnet up` on an existing devnet; None where not given."""

    n_nodes: int | None = None
    n_shards: int | None = None
    epoch_duration_s: int | None = None
    tls: bool | None = None
    hosts: bool | None = None
    #: `--chain-rpc`: the external chain's URL, which must be the recorded one.
    chain_rpc: str | None = None
    #: `--chain-key`: the funder's key, which must be the recorded funder's.
    funder_key: bytes | None = None


def check_request(state: DevnetState, request: ResumeRequest) -> None:
    """Refuse options that differ from the recorded devnet's, naming each."""
    wrong = []
    if request.n_nodes is not None and request.n_nodes != len(state.nodes):
        wrong.append(f"--nodes {request.n_nodes}, but it has {len(state.nodes)} nodes")
    if request.n_shards is not None and request.n_shards != state.n_shards:
        wrong.append(f"--shards {request.n_shards}, but it has {state.n_shards} shards")
    if request.epoch_duration_s is not None and request.epoch_duration_s != state.epoch_duration_s:
        wrong.append(
            f"--epoch-duration {request.epoch_duration_s}s, but its epochs last "
            f"{state.epoch_duration_s}s"
        )
    if request.tls is not None and request.tls != state.tls:
        given = "TLS" if request.tls else "--no-tls"
        wrong.append(f"{given}, but its nodes serve {'TLS' if state.tls else 'plain HTTP'}")
    if request.hosts is not None and request.hosts != (state.hosts is not None):
        wrong.append(
            "--hosts, but it runs on loopback"
            if request.hosts
            else "loopback, but it runs on --hosts"
        )
    if request.chain_rpc is not None and request.chain_rpc != _external_url(state):
        runs_on = _external_url(state) or "the embedded devchain"
        wrong.append(f"--chain-rpc {request.chain_rpc}, but it runs on {runs_on}")
    if request.funder_key is not None:
        given = str(Account.from_key(request.funder_key).address)
        recorded = str(Account.from_key(_recorded_funder(state)).address)
        if given != recorded:
            wrong.append(f"--chain-key of {given}, but its funder is {recorded}")
    if wrong:
        raise DevnetError(
            f"the devnet in {state.dir} exists and cannot change on resume: "
            + "; ".join(wrong)
            + ". Leave these options out to resume it as it was, or give another --dir for a "
            "new devnet"
        )


def _external_url(state: DevnetState) -> str | None:
    return state.chain.url if state.chain_external else None


def _recorded_funder(state: DevnetState) -> bytes:
    key = state.funder_key()
    return key if key is not None else devchain_funder_key()


def running_processes(state: DevnetState) -> list[ProcessRecord]:
    """The recorded processes that still run (same pid, same command line)."""
    return [record for record in state.processes if same_process(record.pid, record.command)]


def _url_port(url: str, what: str) -> int:
    try:
        port = urlsplit(url).port
    except ValueError as exc:
        raise StateFileError(f"the URL {url!r} of {what} has no valid port: {exc}") from exc
    if port is None:
        raise StateFileError(f"the URL {url!r} of {what} has no port")
    return port


def _named_ports(state: DevnetState, nodes: Sequence[NodeRecord]) -> list[tuple[str, int]]:
    """The ports of `nodes` (and their proxies), each with the name of its process."""
    named = []
    for node in nodes:
        named.append((node.process.name, _url_port(node.process.url, node.process.name)))
        if node.proxy is not None:
            named.append((node.proxy.name, _url_port(node.proxy.url, node.proxy.name)))
    return named


def recorded_ports(state: DevnetState) -> list[int]:
    """The devnet's ports in `Devnet`'s order: chain, daemon, nodes, then lying nodes' proxies.

    An external chain's URL need not name a port, and the devnet does not listen on it: 0.
    """
    chain = 0 if state.chain_external else _url_port(state.chain.url, "the chain")
    daemon = _url_port(state.daemon.url, "the daemon")
    nodes = [_url_port(node.process.url, node.process.name) for node in state.nodes]
    proxies = [
        _url_port(node.proxy.url, node.proxy.name) for node in state.nodes if node.proxy is not None
    ]
    return [chain, daemon, *nodes, *proxies]


def check_ports_free(state: DevnetState, named_ports: Sequence[tuple[str, int]]) -> None:
    """Fail, naming the port and its process, if another process listens on a recorded port.

    The hosts of a `--hosts` devnet are its own namespaces, where no other process listens.
    """
    if state.hosts is not None:
        return
    for name, port in named_ports:
        taken = port_taken(port)
        if taken is not None:
            raise DevnetError(
                f"port {port} of {name} (recorded in {Path(state.dir) / STATE_FILE}) is "
                f"taken by another process ({taken.strerror}): stop that process, or start a "
                "new devnet in another --dir"
            ) from taken


def recorded_settings(state: DevnetState, deployment: Deployment) -> DevnetSettings:
    """The settings a resumed devnet runs with: what its state file and deployment say.

    The others (recovery, shard sync, scrubbing, the client's timeouts) live in the
    configuration files, which are kept as they are.
    """
    staking = deployment.staking is not None
    if state.tls and not staking:
        raise StateFileError(
            f"{state.dir}: the state file says the nodes serve TLS, but the deployment has a "
            "fixed committee, which records no network keys"
        )
    try:
        return DevnetSettings(
            n_nodes=len(state.nodes),
            n_shards=state.n_shards,
            epoch_duration_s=state.epoch_duration_s,
            lying_nodes=tuple(node.index for node in state.nodes if node.proxy is not None),
            max_body_bytes=state.max_body_bytes,
            staking=staking,
            tls=state.tls,
            hosts=recorded_hosts(state).shape if state.hosts is not None else None,
            chain_rpc=_external_url(state),
            funder_key=state.funder_key(),
        )
    except ValueError as exc:
        raise StateFileError(f"{state.dir}: the recorded devnet is not a valid one: {exc}") from exc


def recorded_hosts(state: DevnetState) -> HostsNetwork:
    """The recorded network of a `--hosts` devnet."""
    if state.hosts is None:
        raise StateFileError(f"{state.dir}: the devnet runs on loopback, not on --hosts")
    try:
        return HostsNetwork.from_json(state.hosts)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StateFileError(f"{state.dir}: its hosts are not recorded properly: {exc}") from exc


def _node_plan(directory: Path, record: NodeRecord, hosts: HostsNetwork | None) -> NodePlan:
    node_dir = node_directory(directory, record.index)
    public_key = load_protocol_key(node_dir / "keys" / "protocol.key").public_key()
    try:
        # The chain's ID of the node (under staking not derived from its key).
        node_id = bytes.fromhex(record.node_id.removeprefix("0x"))
    except ValueError as exc:
        raise StateFileError(f"node {record.index}'s ID {record.node_id!r} is not hex") from exc
    url = urlsplit(record.url)
    network_key = b""
    if url.scheme == "https":
        try:
            network_key = public_key_bytes(load_network_key(node_dir / "keys" / NETWORK_KEY_FILE))
        except (OSError, ValueError) as exc:
            raise DevnetError(
                f"node {record.index} serves TLS but has no network key: {exc}"
            ) from exc
    return NodePlan(
        index=record.index,
        directory=node_dir,
        node_id=node_id,
        public_key=public_key,
        network_address=url.netloc,
        port=_url_port(record.process.url, record.process.name),
        proxy_port=_url_port(record.proxy.url, record.proxy.name) if record.proxy else None,
        shards=record.shards,
        network_public_key=network_key,
        host=urlsplit(record.process.url).hostname or LOOPBACK,
        netns=hosts.netns(node_host(record.index)) if hosts is not None else None,
    )


def recorded_plans(state: DevnetState) -> list[NodePlan]:
    """Every node's plan, rebuilt from its record and the keys in its directory."""
    hosts = recorded_hosts(state) if state.hosts is not None else None
    plans = [_node_plan(Path(state.dir), record, hosts) for record in state.nodes]
    if [plan.index for plan in plans] != list(range(len(plans))):
        raise StateFileError(f"{state.dir}: the nodes are not numbered 0..{len(plans) - 1}")
    return plans


def _load_here(directory: Path | str) -> DevnetState:
    """The state file, refused if the devnet was made elsewhere (its files name that place)."""
    state = DevnetState.load(directory)
    here = Path(directory).resolve()
    if Path(state.dir) != here:
        raise DevnetError(
            f"the devnet in {here} was made in {state.dir}, and its configuration files name "
            "paths there: move it back to resume it"
        )
    return state


@contextlib.asynccontextmanager
async def _open_recorded(state: DevnetState, settings: DevnetSettings) -> AsyncIterator[Devnet]:
    """A `Devnet` of the recorded devnet, detached, on its recorded ports; nothing started."""
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        yield Devnet(
            Path(state.dir),
            settings,
            session,
            stack,
            detached=True,
            ports=recorded_ports(state),
            hosts=recorded_hosts(state) if state.hosts is not None else None,
        )


@contextlib.asynccontextmanager
async def attach_devnet(directory: Path | str) -> AsyncIterator[Devnet]:
    """A `Devnet` of the running devnet in `directory`: its chain client (the funder's), its
    committee and node handles, whose processes it neither started nor stops."""
    state = _load_here(directory)
    settings = recorded_settings(state, Deployment.load(state.deployment_file))
    plans = await asyncio.to_thread(recorded_plans, state)
    async with _open_recorded(state, settings) as devnet:
        await devnet.attach(plans)
        yield devnet


async def advance_epoch(directory: Path | str) -> tuple[int, dict[str, tuple[int, ...]]]:
    """End the running devnet's current epoch now (`Devnet.start_epoch_change`), and wait until
    the new committee has reported its shards. The new epoch, and the committee's shards by
    node ID (0x hex)."""
    async with attach_devnet(directory) as devnet:
        epoch = await devnet.start_epoch_change()
        await devnet.wait_epoch_change_done()
        assert devnet.committee is not None
        return epoch, {"0x" + m.node_id.hex(): m.shards for m in devnet.committee.members}


async def resume_devnet(directory: Path | str, request: ResumeRequest) -> DevnetState:
    """Start the stopped devnet in `directory` again (module docstring); its new state.

    Refused if any of its processes runs: a running devnet is not started twice, and a node
    that stopped is brought back by `restart_node`.
    """
    state = _load_here(directory)
    running = running_processes(state)
    if running:
        names = ", ".join(record.name for record in running)
        whole = len(running) == len(state.processes)
        raise DevnetError(
            f"the devnet in {state.dir} is running ({'every process' if whole else names}): "
            "`walruspy devnet restart-node` restarts a stopped node; `walruspy devnet down` "
            "stops it, and `walruspy devnet up` then resumes it"
        )
    check_request(state, request)
    named = [
        *([] if state.chain_external else [("the chain", _url_port(state.chain.url, "the chain"))]),
        ("the daemon", _url_port(state.daemon.url, "the daemon")),
        *_named_ports(state, state.nodes),
    ]
    check_ports_free(state, named)
    deployment = Deployment.load(state.deployment_file)
    settings = recorded_settings(state, deployment)
    plans = await asyncio.to_thread(recorded_plans, state)
    async with _open_recorded(state, settings) as devnet:
        try:
            await devnet.resume(plans)
        except BaseException:
            await devnet.stop()  # only what this call started
            raise
        return devnet.state()


async def restart_node(directory: Path | str, index: int) -> NodeRecord:
    """(Re)start node `index` of the running devnet in `directory` on its data and port.

    Whether it runs, crashed or was stopped: it is stopped if it runs, started, and waited for
    until it serves and is current with the chain. Returns its new record, also saved.
    """
    state = _load_here(directory)
    record = next((node for node in state.nodes if node.index == index), None)
    if record is None:
        raise DevnetError(f"the devnet has no node {index} (nodes 0..{len(state.nodes) - 1})")
    if not state.chain_external and not same_process(state.chain.pid, state.chain.command):
        raise DevnetError(
            f"the devnet in {state.dir} is stopped (its chain does not run): "
            f"`walruspy devnet up --dir {state.dir}` resumes it with every node"
        )
    processes = [record.process] + ([record.proxy] if record.proxy is not None else [])
    await asyncio.to_thread(stop_pids, [(p.pid, p.command) for p in processes])
    check_ports_free(state, _named_ports(state, [record]))
    settings = recorded_settings(state, Deployment.load(state.deployment_file))
    plans = await asyncio.to_thread(recorded_plans, state)
    async with _open_recorded(state, settings) as devnet:
        await devnet.attach(plans)
        node = devnet.nodes[index]
        node.process.start()
        try:
            await devnet.wait_node_ready(node)  # starts the lying proxy too
        except BaseException:
            await node.process.stop()
            if node.proxy is not None:
                await node.proxy.stop()
            raise
        restarted = replace(
            record,
            process=process_record(node.process, node.direct_url),
            proxy=process_record(node.proxy, node.url) if node.proxy is not None else None,
        )
    # The file as it is now: another command may have recorded a node meanwhile.
    latest = DevnetState.load(state.dir)
    nodes = tuple(restarted if node.index == index else node for node in latest.nodes)
    replace(latest, nodes=nodes).save()
    return restarted
