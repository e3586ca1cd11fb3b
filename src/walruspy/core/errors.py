"""The error tree of `walruspy.core`.

    WalrusError                      root of every error walruspy raises on purpose
    ├── InvalidInputError            the peer (or the user) sent something invalid
    │   ├── DecodeError              bytes that do not parse: truncated, trailing, bad tag
    │   ├── BlobIdError              a blob ID in text or bytes form that is not one
    │   ├── DataTooLargeError        a blob over the maximum size for the shard count
    │   ├── VerificationError        a value that parses but fails its cryptographic check
    │   │   └── ChallengeVerificationError  a storage-challenge answer that is wrong: missing,
    │   │                                extra or misplaced symbols, a bad symbol or proof
    │   └── InvalidParametersError   encoding parameters that cannot work (n_shards < 4, ...)
    ├── NotEnoughSymbolsError        too few slivers or symbols to decode or recover
    └── InconsistentBlobError        the blob was encoded inconsistently: never returned as data

`InvalidInputError` and its children mean "someone sent us something wrong" and map to 4xx
answers at the HTTP boundary. Programming mistakes in our own code raise the built-in
`ValueError`/`TypeError`/`AssertionError` instead, so the two are never confused.
"""

from __future__ import annotations


class WalrusError(Exception):
    """Root of the errors walruspy raises on purpose."""


class InvalidInputError(WalrusError):
    """The input (from a peer or a user) is invalid."""


class DecodeError(InvalidInputError):
    """Bytes that do not parse as the expected BCS value."""


class BlobIdError(InvalidInputError):
    """A string or byte string that is not a valid blob ID."""


class DataTooLargeError(InvalidInputError):
    """A blob larger than the maximum blob size for the shard count."""


class VerificationError(InvalidInputError):
    """A value that parses but fails its hash, Merkle or signature check."""


class ChallengeVerificationError(VerificationError):
    """A challenged node's answer fails: the node did not prove it stores its slivers.

    Raised by `walruspy.core.challenge.verify_challenge_answer` for an answer for another blob,
    missing, extra or misplaced symbols, or a symbol or Merkle proof that does not verify against
    the metadata. A symbol that verifies but differs from the checker's own copy is not the
    challenged node's fault and raises `InconsistentBlobError` instead.
    """


class InvalidParametersError(InvalidInputError):
    """Encoding parameters that cannot work (for example fewer than 4 shards)."""


class NotEnoughSymbolsError(WalrusError):
    """Too few distinct slivers or symbols were given to decode or recover."""


class InconsistentBlobError(WalrusError):
    """The blob's slivers do not agree with its metadata: it was encoded inconsistently."""
