"""The client's error tree: what failed, where, and with how much weight of how much needed.

Every error the client raises on purpose is a `ClientError`, except the control plane's own
errors, which pass through unchanged because they already name the operation and the contract's
reason (`walruspy.chain.api`: `ChainRevertError`, `ChainRejectedError`, `ChainUnavailableError`,
`DeploymentError`). Node answers and transport failures (`walruspy.node_api.errors`) never escape
one by one: a fan-out collects them as values and the error that ends an operation carries the
fan-out's summary (which nodes failed and why, the weight reached of the weight needed).

    WalrusError
    └── ClientError
        ├── ConfigError                  the client configuration is missing, unreadable or invalid
        ├── InvalidArgumentError         an argument the network would refuse (epochs out of
        │                                range); also a ValueError
        ├── NoWalletError                a write needs a wallet key and the context has none
        ├── ClientClosedError            the synchronous `walruspy.Client` was used after close();
        │                                also a RuntimeError
        ├── InsufficientWalError         the wallet holds less WAL than a payment needs (which
        │                                account, how much it holds, how much is needed)
        ├── BlobTooLargeError            the blob exceeds the configured or the encoding's limit
        ├── BlobNotFoundError            a quorum of nodes does not know the blob (never stored,
        │   │                            expired or deleted: the message says which, from the
        │   │                            blob's events on chain)
        │   ├── BlobExpiredError         ... because its storage ended (`end_epoch`)
        │   └── BlobBlockedError         ... or a quorum refuses to serve it (451, blocklists)
        ├── BlobInvalidError             the blob ID was marked invalid on chain
        ├── NotAQuiltError               the blob is not a QuiltV1 (walruspy.client.quilts)
        ├── QuiltPatchNotFoundError      no such patch in the quilt (identifier or patch ID)
        ├── ObjectNotFoundError          no such blob object (or none of this account's)
        ├── BlobObjectStateError         the blob object cannot do that now (not deletable, not
        │                                certified, expired)
        ├── InconsistentBlobError        the decoded data fails its consistency check (also a
        │                                `walruspy.core.errors.InconsistentBlobError`)
        └── NotEnoughAnswersError        a fan-out did not reach its threshold; `fanouts` has them
            ├── NotEnoughConfirmationsError  store: no quorum of valid storage confirmations
            ├── NoMetadataReceivedError      read: no node served metadata that verifies
            ├── NotEnoughSliversError        read: too few verified slivers on either axis
            └── NoValidStatusError           blob status: no status with enough weight behind it
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from walruspy.core import errors as core_errors
from walruspy.core.errors import WalrusError
from walruspy.node_api.fanout import Fanout


class ClientError(WalrusError):
    """Root of the client's errors."""


class ConfigError(ClientError):
    """The client configuration is missing, unreadable, or has a bad field (named)."""


class InvalidArgumentError(ClientError, ValueError):
    """An argument the contracts or nodes would refuse, such as epochs beyond the maximum."""


class ClientClosedError(ClientError, RuntimeError):
    """The synchronous client (`walruspy.Client`) was used after `close()` (or while closing)."""


class NoWalletError(ClientError):
    """An operation that sends a transaction was asked of a client without a wallet key."""


class InsufficientWalError(ClientError):
    """The wallet `address` holds `balance` FROST of WAL, less than the `needed` FROST a payment
    takes (the contract refused it: "unpaid"). A wallet short of gas gets the chain's
    `InsufficientGasError` instead."""

    def __init__(self, address: str, needed: int, balance: int, operation: str = "") -> None:
        self.address = address
        self.needed = needed
        self.balance = balance
        self.operation = operation
        where = f"{operation}: " if operation else ""
        super().__init__(
            f"{where}account {address} cannot pay in WAL: it holds {balance} FROST, and the"
            f" payment needs {needed} FROST (1 WAL = 10^9 FROST)"
        )


class BlobTooLargeError(ClientError):
    """The blob is larger than `max_blob_bytes` or than the committee's encoding allows."""


class BlobNotFoundError(ClientError):
    """Nodes holding a quorum of shards answered that they do not know the blob.

    `denied_by` says which (e.g. "nodes of 8 of 10 shards"), when a read counted them.
    """

    def __init__(self, message: str, denied_by: str = "") -> None:
        super().__init__(message)
        self.denied_by = denied_by


class BlobExpiredError(BlobNotFoundError):
    """Nodes no longer hold the blob because its storage ended: `end_epoch` has begun."""

    def __init__(self, message: str, end_epoch: int, denied_by: str = "") -> None:
        super().__init__(message, denied_by)
        self.end_epoch = end_epoch


class BlobBlockedError(BlobNotFoundError):
    """Nodes holding a quorum of shards refuse to serve the blob (451 FORBIDDEN_BLOB)."""


class BlobInvalidError(ClientError):
    """The blob ID was marked invalid on chain (its encoding was proved inconsistent)."""


class NotAQuiltError(ClientError):
    """The blob exists but is not a QuiltV1: its bytes do not hold a quilt index."""


class QuiltPatchNotFoundError(ClientError):
    """The quilt has no patch with that identifier, or none in the columns a patch ID names."""


class ObjectNotFoundError(ClientError):
    """No blob object with that ID, or none owned by this client's account."""


class BlobObjectStateError(ClientError):
    """The blob object's state forbids the operation (not deletable, not certified, expired)."""


class RegistrationExpiredError(ClientError):
    """The blob's registration ended (an epoch change) before the store could certify it."""


class InconsistentBlobError(ClientError, core_errors.InconsistentBlobError):
    """The slivers verified, but the blob they decode to fails the consistency check.

    The writer encoded the blob inconsistently; its data is never returned.
    """


class NotEnoughAnswersError(ClientError):
    """A fan-out to the nodes ended without reaching its threshold.

    `fanouts` holds each fan-out that was tried, for callers that want the per-node details.
    """

    def __init__(self, message: str, fanouts: Sequence[Fanout[Any, Any]] = ()) -> None:
        super().__init__(message)
        self.fanouts = tuple(fanouts)


class NotEnoughConfirmationsError(NotEnoughAnswersError):
    """Storage confirmations from a quorum of shards could not be gathered."""


class NoMetadataReceivedError(NotEnoughAnswersError):
    """No node served metadata that verifies, and not enough said "not found" to conclude."""


class NotEnoughSliversError(NotEnoughAnswersError):
    """Too few verified slivers came back on either axis to decode the blob."""


class NoValidStatusError(NotEnoughAnswersError):
    """No blob status was reported by enough weight to be trusted."""
