"""What `walruspy devnet up|status|down` do: a detached devnet found again by its state file.

`devnet_up` starts a devnet whose processes run in sessions of their own, writes
`DIR/devnet.json` and returns, leaving them running. `devnet_status` reads the state file and
checks which recorded processes still run (same pid and same command line). `devnet_down`
stops them all: SIGTERM, then SIGKILL after a bound. The directory, with its logs and data,
stays.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from walruspy.devnet.network import launch_devnet
from walruspy.devnet.processes import same_process, stop_pids
from walruspy.devnet.setup import DevnetSettings
from walruspy.devnet.state import DevnetState, ProcessRecord

__all__ = ["devnet_down", "devnet_status", "devnet_up"]


async def devnet_up(directory: Path | str, settings: DevnetSettings) -> DevnetState:
    """Start a detached devnet in `directory`; return its state once every process is ready."""
    async with launch_devnet(directory, settings, detached=True) as devnet:
        return devnet.state()


def _process_json(record: ProcessRecord) -> dict[str, Any]:
    running = same_process(record.pid, record.command)
    return {"pid": record.pid, "running": running, "url": record.url, "log": record.log}


def devnet_status(directory: Path | str) -> dict[str, Any]:
    """The devnet's endpoints and nodes, and which of its processes run (JSON-ready)."""
    state = DevnetState.load(directory)
    nodes = []
    for node in state.nodes:
        entry = {
            "index": node.index,
            "nodeId": node.node_id,
            **_process_json(node.process),
            "url": node.url,
            "directUrl": node.process.url,
            "shards": list(node.shards),
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
        "chain": _process_json(state.chain),
        "daemon": _process_json(state.daemon),
        "nodes": nodes,
    }


async def devnet_down(directory: Path | str) -> list[str]:
    """Stop every process of the devnet; the names of those that were running."""
    state = DevnetState.load(directory)
    records = state.processes
    stopped = await asyncio.to_thread(
        stop_pids, [(record.pid, record.command) for record in records]
    )
    return [record.name for record in records if record.pid in stopped]
