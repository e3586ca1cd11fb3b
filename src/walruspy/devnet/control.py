"""What `walruspy devnet up|status|add-node|restart-node|down` do: a detached devnet found by
its state file.

`devnet_up` starts a devnet whose processes run in sessions of their own, writes
`DIR/devnet.json` and returns, leaving them running; on a stopped devnet (its state file
exists, none of its processes runs) `devnet_resume` starts the same processes again on their
data, configuration files and ports, and `devnet_restart_node` (re)starts one node of a running
devnet (`walruspy.devnet.resume`). `devnet_status` reads the state file and
checks which recorded processes still run (same pid and same command line); with the committee
`live_committee` reads from the chain, it also says which node is in the current committee.
`devnet_add_node` prepares, registers (and stakes for) one more node of a staking devnet,
starts it detached and records it. `devnet_down` stops them all: SIGTERM, then SIGKILL after a
bound. The directory, with its logs and data, stays.

On a `--hosts` devnet (`walruspy.devnet.hosts`) every command that talks to the devnet first
moves into its client host (`enter_client_host`); `devnet_down` also deletes the hosts'
namespaces, which a resume makes again. `devnet_add_host` adds an empty host (an operator's
server), and `exec_argv` is the command line of `walruspy devnet exec`, which runs a command
on one of the hosts.

On an external chain (`devnet up --chain-rpc`) the chain is no process of the devnet's: `down`
leaves it running, `status` says whether it answers instead of whether a pid runs, and every
command that needs the chain talks to its URL.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.request
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from walruspy.chain.api import ChainError
from walruspy.chain.deploy import Deployment
from walruspy.chain.evm import open_evm_chain
from walruspy.core.errors import WalrusError
from walruspy.devnet.errors import DevnetError
from walruspy.devnet.hosts import HOST_CLIENT, HostsNetwork, enter_netns, node_host
from walruspy.devnet.network import (
    NODES_READY_S,
    PROBE_TIMEOUT_S,
    launch_devnet,
    node_spec,
    process_record,
)
from walruspy.devnet.processes import ManagedProcess, same_process, stop_pids
from walruspy.devnet.resume import (
    ResumeRequest,
    recorded_hosts,
    recorded_settings,
    restart_node,
    resume_devnet,
)
from walruspy.devnet.setup import LOOPBACK, DevnetSettings, fault_file, node_directory
from walruspy.devnet.staking import join_node
from walruspy.devnet.state import DevnetState, NodeRecord, ProcessRecord
from walruspy.node.faults import FaultMode, read_fault, write_fault

__all__ = [
    "devnet_add_host",
    "devnet_add_node",
    "devnet_down",
    "devnet_fault",
    "devnet_restart_node",
    "devnet_resume",
    "devnet_status",
    "devnet_up",
    "enter_client_host",
    "exec_argv",
    "live_committee",
]


def enter_client_host(state: DevnetState) -> HostsNetwork | None:
    """On a `--hosts` devnet, move this thread into its client host; its network."""
    if state.hosts is None:
        return None
    hosts = recorded_hosts(state)
    enter_netns(hosts.netns(HOST_CLIENT))
    return hosts


def exec_argv(directory: Path | str, host: str, command: Sequence[str]) -> list[str]:
    """The command line running `command` on `host` of the devnet in `directory`.

    On a `--hosts` devnet that is `ip netns exec` into the host; a devnet on loopback is one
    host, so the command runs as it is.
    """
    if not command:
        raise DevnetError("no command to run: give it after --, as in `-- walruspy info`")
    state = DevnetState.load(directory)
    if state.hosts is None:
        if host != HOST_CLIENT:
            raise DevnetError(
                f"the devnet in {state.dir} runs on this machine's loopback, one host: "
                f"there is no host {host!r} (start it with --hosts for separate hosts)"
            )
        return list(command)
    netns = recorded_hosts(state).netns(host)
    if not (Path("/run/netns") / netns).exists():
        raise DevnetError(
            f"host {host!r} of the devnet in {state.dir} does not exist now: the devnet is "
            f"stopped (`walruspy devnet up --dir {state.dir}` resumes it)"
        )
    ip = shutil.which("ip") or "ip"
    return [ip, "netns", "exec", netns, *command]


def devnet_add_host(directory: Path | str, name: str) -> dict[str, Any]:
    """Add an empty host `name` to the running `--hosts` devnet in `directory`: its address."""
    state = DevnetState.load(directory)
    if state.hosts is None:
        raise DevnetError(f"the devnet in {state.dir} was not started with --hosts")
    if not same_process(state.chain.pid, state.chain.command):
        raise DevnetError(f"the devnet in {state.dir} is not running (its chain is stopped)")
    hosts = recorded_hosts(state)
    if name in hosts.hosts:
        raise DevnetError(f"the devnet already has a host {name!r}")
    if not name.replace("-", "").isalnum() or len(name) > 32:
        raise DevnetError(f"host name {name!r}: letters, digits and dashes, at most 32")
    address = hosts.allocate(name)
    hosts.create_host(name)
    latest = DevnetState.load(directory)  # as it is now: another command may have saved it
    replace(latest, hosts=hosts.to_json()).save()
    return {"host": name, "address": address, "netns": hosts.netns(name)}


async def devnet_up(directory: Path | str, settings: DevnetSettings) -> DevnetState:
    """Start a detached devnet in `directory`; return its state once every process is ready."""
    async with launch_devnet(directory, settings, detached=True) as devnet:
        return devnet.state()


async def devnet_resume(directory: Path | str, request: ResumeRequest) -> DevnetState:
    """Start the stopped devnet in `directory` again as it was; its state once ready.

    `request` holds the options given with `devnet up`, which must match the recorded ones.
    """
    return await resume_devnet(directory, request)


async def devnet_restart_node(directory: Path | str, index: int) -> dict[str, Any]:
    """(Re)start node `index` on its data and port, once ready: its index, nodeId, pid, URLs."""
    record = await restart_node(directory, index)
    return {
        "index": record.index,
        "nodeId": record.node_id,
        **_process_json(record.process),
        "url": record.url,
        "directUrl": record.process.url,
    }


def _process_json(record: ProcessRecord) -> dict[str, Any]:
    running = same_process(record.pid, record.command)
    return {"pid": record.pid, "running": running, "url": record.url, "log": record.log}


#: How long `status` waits for an external chain's answer.
_CHAIN_PROBE_S = 5.0


def _chain_answers(url: str) -> bool:
    """Whether the Ethereum node at `url` answers `eth_chainId` (an external chain's liveness)."""
    if not url.startswith(("http://", "https://")):  # what urllib could also open: files
        return False
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    request = urllib.request.Request(  # noqa: S310 - an http(s) URL, checked above
        url, body.encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=_CHAIN_PROBE_S) as response:  # noqa: S310
            return "result" in json.loads(response.read())
    except (OSError, ValueError):
        return False


def _chain_runs(state: DevnetState) -> bool:
    """The devchain process runs, or the external chain answers."""
    if state.chain_external:
        return _chain_answers(state.chain.url)
    return same_process(state.chain.pid, state.chain.command)


def _chain_json(state: DevnetState) -> dict[str, Any]:
    if not state.chain_external:
        return {**_process_json(state.chain), "external": False}
    running = _chain_answers(state.chain.url)
    return {"pid": None, "running": running, "url": state.chain.url, "log": None, "external": True}


async def live_committee(directory: Path | str) -> dict[str, tuple[int, ...]] | None:
    """Node ID (0x hex) -> shards of the chain's current committee; None if unreadable."""
    state = DevnetState.load(directory)
    # An external chain that does not answer fails to open (ChainUnavailableError).
    if not state.chain_external and not same_process(state.chain.pid, state.chain.command):
        return None
    enter_client_host(state)
    try:
        deployment = Deployment.load(state.deployment_file)
        async with open_evm_chain(state.chain.url, deployment) as reader:
            committee = await reader.committee()
    except ChainError:
        return None
    return {"0x" + m.node_id.hex(): m.shards for m in committee.members}


def devnet_status(
    directory: Path | str, committee: dict[str, tuple[int, ...]] | None = None
) -> dict[str, Any]:
    """The devnet's endpoints and nodes, and which of its processes run (JSON-ready).

    With `committee` (`live_committee`), each node's shards and `inCommittee` are the chain's
    now; without, as the state file last recorded them.
    """
    state = DevnetState.load(directory)
    nodes = []
    for node in state.nodes:
        shards = node.shards if committee is None else committee.get(node.node_id, ())
        in_committee = node.in_committee if committee is None else node.node_id in committee
        entry = {
            "index": node.index,
            "host": node_host(node.index) if state.hosts is not None else None,
            "nodeId": node.node_id,
            **_process_json(node.process),
            "url": node.url,
            "directUrl": node.process.url,
            "shards": list(shards),
            "inCommittee": in_committee,
            "fault": _fault_of(Path(state.dir), node.index),
        }
        if node.proxy is not None:
            entry["proxy"] = _process_json(node.proxy)
        nodes.append(entry)
    return {
        "dir": state.dir,
        "chain_rpc": state.chain.url,
        "publisher": state.daemon.url,
        "aggregator": state.daemon.url,
        "client_config": state.client_config,
        "deployment_file": state.deployment_file,
        "n_shards": state.n_shards,
        "epoch_duration_s": state.epoch_duration_s,
        "chain": _chain_json(state),
        "daemon": _process_json(state.daemon),
        "nodes": nodes,
        **_hosts_json(state),
    }


def _hosts_json(state: DevnetState) -> dict[str, Any]:
    """A `--hosts` devnet's hosts (name, address, namespace) and links; nothing on loopback."""
    if state.hosts is None:
        return {}
    hosts = recorded_hosts(state)
    shape = hosts.shape
    return {
        "hosts": [
            {"name": name, "address": hosts.address(name), "netns": hosts.netns(name)}
            for name in hosts.hosts
        ],
        "links": {
            "latency_ms": shape.latency_s * 1000,
            "jitter_ms": shape.jitter_s * 1000,
            "loss": shape.loss,
            "bandwidth_bps": shape.bandwidth_bps,
            "emulation": "netem" if hosts.netem else ("relay" if hosts.relayed else "none"),
        },
    }


def _fault_of(directory: Path, index: int) -> str:
    try:
        return read_fault(fault_file(node_directory(directory, index))).value
    except ValueError as exc:
        return f"unreadable: {exc}"


def devnet_fault(directory: Path | str, index: int, mode: FaultMode) -> dict[str, Any]:
    """Make node `index` misbehave as `mode` says (or stop, with `none`): node/faults.py."""
    state = DevnetState.load(directory)
    if not any(node.index == index for node in state.nodes):
        raise DevnetError(f"the devnet has no node {index} (nodes 0..{len(state.nodes) - 1})")
    write_fault(fault_file(node_directory(Path(state.dir), index)), mode)
    return {"index": index, "fault": mode.value}


async def devnet_down(directory: Path | str) -> list[str]:
    """Stop every process of the devnet (and delete a `--hosts` devnet's namespaces); the names
    of those that were running."""
    state = DevnetState.load(directory)
    records = state.processes
    stopped = await asyncio.to_thread(
        stop_pids, [(record.pid, record.command) for record in records]
    )
    if state.hosts is not None:
        await asyncio.to_thread(recorded_hosts(state).destroy)
    return [record.name for record in records if record.pid in stopped]


async def devnet_add_node(directory: Path | str, stake_frost: int | None) -> dict[str, Any]:
    """Start one more node of a running staking devnet (detached); its nodeId, pid and url."""
    state = DevnetState.load(directory)
    if not await asyncio.to_thread(_chain_runs, state):
        where = (
            f"the chain at {state.chain.url} does not answer"
            if state.chain_external
            else ("its chain is stopped")
        )
        raise DevnetError(f"the devnet in {state.dir} is not running ({where})")
    deployment = Deployment.load(state.deployment_file)
    if deployment.staking is None:
        raise DevnetError("this devnet has a fixed committee: nodes join only by staking")
    # As recorded: its epochs, TLS, and the chain and funder that pay for the new node.
    settings = recorded_settings(state, deployment)
    index = len(state.nodes)
    hosts = enter_client_host(state)
    host = LOOPBACK
    if hosts is not None:
        host = hosts.allocate(node_host(index))
        hosts.create_host(node_host(index))
    plan = await join_node(
        state.chain.url,
        deployment,
        Path(state.dir),
        index,
        settings=settings,
        stake_frost=stake_frost,
        host=host,
    )
    if hosts is not None:
        plan = replace(plan, netns=hosts.netns(node_host(index)))
    process = ManagedProcess(node_spec(Path(state.dir), plan), detached=True)
    process.start()
    async with aiohttp.ClientSession() as session:
        health = plan.client(session, PROBE_TIMEOUT_S, direct=True)

        async def serving() -> bool:
            try:
                await health.health()
            except (WalrusError, aiohttp.ClientError, TimeoutError):
                return False
            return True

        await process.wait_ready(serving, NODES_READY_S)
    record = NodeRecord(
        index=plan.index,
        process=process_record(process, plan.direct_url),
        url=plan.url,
        shards=(),
        node_id="0x" + plan.node_id.hex(),
        in_committee=False,
    )
    latest = DevnetState.load(directory)
    replace(
        latest,
        nodes=(*latest.nodes, record),
        hosts=hosts.to_json() if hosts is not None else latest.hosts,
    ).save()
    return {"nodeId": record.node_id, "pid": process.pid, "url": plan.url, "index": plan.index}
