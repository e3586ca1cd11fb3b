"""The walruspy client: store and read blobs on a Walrus network (async).

`open_client(config)` yields a `WalrusClient`; `load_config()` reads the client configuration
(see `walruspy.client.config`); errors are in `walruspy.client.errors`. Synchronous code (the
CLI, scripts, notebooks) drives it through `walruspy.Client` (`walruspy.client.sync`), which
runs it on an event-loop thread of its own.
"""

from walruspy.client.client import WalrusClient, open_client
from walruspy.client.config import ClientConfig, ContextConfig, load_config
from walruspy.client.results import (
    DeleteResult,
    ExtendResult,
    NetworkInfo,
    ProgressEvent,
    StoreResult,
    VerifiedStatus,
)

__all__ = [
    "ClientConfig",
    "ContextConfig",
    "DeleteResult",
    "ExtendResult",
    "NetworkInfo",
    "ProgressEvent",
    "StoreResult",
    "VerifiedStatus",
    "WalrusClient",
    "load_config",
    "open_client",
]
