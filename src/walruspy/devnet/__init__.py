"""A Walrus network on this machine: devchain, storage nodes and daemon as real processes.

`open_devnet(dir, n_nodes=4, n_shards=100, epoch_duration_s=60)` is an async context manager
yielding a `Devnet` (endpoints, node handles to kill, pause, resume and restart, epoch
advance); `walruspy devnet up|status|down` does the same from the shell with detached
processes (`walruspy.devnet.control`), and `up` on a stopped devnet resumes it
(`walruspy.devnet.resume`). With `DevnetSettings.chain_rpc` (`devnet up --chain-rpc URL`) the
devnet runs on an Ethereum node that runs already, such as anvil, instead of the devchain.
"""

from walruspy.devnet.errors import DevnetError, ProcessError, StateFileError
from walruspy.devnet.network import Devnet, DevnetNode, launch_devnet, open_devnet, wait_until
from walruspy.devnet.setup import DevnetSettings
from walruspy.devnet.state import DevnetState

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
