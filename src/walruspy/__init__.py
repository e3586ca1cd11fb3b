"""walruspy: a Python implementation of Walrus, the decentralized blob-storage network.

`walruspy.Client` is the synchronous client for scripts and notebooks
(`walruspy.client.sync`); `walruspy.client.open_client` is the async one. Both are imported on
first use: `import walruspy` stays light, as the CLI needs it to be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from walruspy.client.sync import Client

__all__ = ["Client", "__version__"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The client pulls in web3, aiohttp and numpy (about a second): only its users pay for it.
    if name == "Client":
        from walruspy.client.sync import Client

        return Client
    raise AttributeError(f"module 'walruspy' has no attribute {name!r}")
