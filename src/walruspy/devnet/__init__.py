"""A Walrus network on this machine: devchain, storage nodes and daemon as real processes.

`open_devnet(dir, n_nodes=4, n_shards=100, epoch_duration_s=60)` is an async context manager
yielding a `Devnet` (endpoints, node handles to kill, pause, resume and restart, epoch
advance); `walruspy devnet up|status|down` does the same from the shell with detached
processes (`walruspy.devnet.control`), and `up` on a stopped devnet resumes it
(`walruspy.devnet.resume`). With `DevnetSettings.chain_rpc` (`devnet up --chain-rpc URL`) the
devnet runs on an Ethereum node that runs already, such as anvil, instead of the devchain.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from walruspy.devnet.errors import DevnetError, ProcessError, StateFileError
    from walruspy.devnet.network import (
        Devnet,
        DevnetNode,
        launch_devnet,
        open_devnet,
        wait_until,
    )
    from walruspy.devnet.setup import DevnetSettings
    from walruspy.devnet.state import DevnetState

#: Each name of the package, and its module. They are imported on first use (PEP 562): the
#: command line imports `walruspy.devnet.hosts` for its option parsers, and every command would
#: otherwise pay for the chain client, the deployer and web3 (seconds on a busy machine).
_LAZY = {
    "Devnet": "network",
    "DevnetError": "errors",
    "DevnetNode": "network",
    "DevnetSettings": "setup",
    "DevnetState": "state",
    "ProcessError": "errors",
    "StateFileError": "errors",
    "launch_devnet": "network",
    "open_devnet": "network",
    "wait_until": "network",
}

__all__ = [
    "Devnet",
    "DevnetError",
    "DevnetNode",
    "DevnetSettings",
    "DevnetState",
    "ProcessError",
    "StateFileError",
    "launch_devnet",
    "open_devnet",
    "wait_until",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
