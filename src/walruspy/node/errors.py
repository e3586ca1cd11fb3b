"""The error tree of `walruspy.node`.

    WalrusError                          (walruspy.core.errors)
    ├── NodeError                        root of the errors the node raises on purpose
    │   ├── ConfigError                  the configuration file is invalid; names the field
    │   ├── KeyFileError                 a key file is missing, unreadable, malformed or exists
    │   └── NotInCommitteeError          the node's protocol key is not in the chain's committee
    ├── StoreError                       (walruspy.node.store_records) the LMDB store failed
    │   └── StoreCorruptionError         a record on disk does not decode
    └── NodeApiError                     (walruspy.node_api.errors) an answer to a bad request

Request handling raises only `NodeApiError`s (each carries its HTTP status and reason, and the API
layer renders it as AIP-193); anything else escaping a handler is a bug or a store failure and is
answered with a detail-free 500. Chain failures stay `ChainError`s (walruspy.chain.api): the event
processor and the epoch driver retry them with backoff instead of failing the node.
"""

from __future__ import annotations

from walruspy.core.errors import WalrusError


class NodeError(WalrusError):
    """Root of the errors of the storage node itself."""


class ConfigError(NodeError):
    """The node configuration is invalid; the message names the field and what is wrong."""


class KeyFileError(NodeError):
    """A key file is missing, unreadable, malformed, or would be overwritten."""


class NotInCommitteeError(NodeError):
    """The node's protocol public key is not a member of the chain's current committee."""
