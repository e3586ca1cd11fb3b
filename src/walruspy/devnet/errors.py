"""The devnet's errors.

    WalrusError
    └── DevnetError              a devnet could not be started, found or stopped
        ├── ProcessError         a process did not start, did not become ready, or died
        └── StateFileError       DIR/devnet.json is missing, unreadable or not a devnet's

Errors of the components (the chain client's `ChainError`, the client's `ClientError`) pass
through unchanged: they already say what failed.
"""

from __future__ import annotations

from walruspy.core.errors import WalrusError

__all__ = ["DevnetError", "ProcessError", "StateFileError"]


class DevnetError(WalrusError):
    """A devnet could not be started, found or stopped."""


class ProcessError(DevnetError):
    """A devnet process did not start, did not become ready, or died."""


class StateFileError(DevnetError):
    """The state file is missing, unreadable or not a devnet's."""
