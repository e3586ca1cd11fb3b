"""What a peer's failed request was: the node's one classification of other nodes' failures.

Theory of operation (spec/walrus-system.md 5, fault handling; Walrus `committee/
request_futures.rs`). Blob sync asks peers for metadata and recovery symbols, invalidation asks
them for attestations; both fan out with `gather_weight` and count each peer that failed, by
kind, in a metric (`walrus_recovery_faulty_responses_total`,
`walrus_invalidity_attestation_failures_total`). This module is the rule both use:

- `PEER_FAILURES` is what a request may fail with and still be "a peer's failure" (our errors
  and timeouts); anything else is a bug and propagates from the fan-out, so it is never
  silently counted as a peer's fault;
- `failure_kind` names the kind of a failure (`PeerFailure`, a `StrEnum` whose values are the
  metric labels, byte for byte), or None for a request the fan-out cut short once enough had
  arrived: not a fault.

It is pure (no I/O) and depends on no other part of the node, so that the workers that count
failures do not depend on each other for it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from walruspy.core.errors import DecodeError, VerificationError, WalrusError
from walruspy.node_api.errors import NodeApiError, NodeConnectionError
from walruspy.node_api.fanout import UnfinishedRequestError
from walruspy.node_api.tls import NodeIdentityError

#: What a peer's request may fail with and still be "a peer's failure": our errors and timeouts.
#: Anything else is a bug and propagates, so it is never silently counted as a peer's failure.
PEER_FAILURES: Final[tuple[type[BaseException], ...]] = (WalrusError, TimeoutError)


class PeerFailure(StrEnum):
    """The kind of a peer's failure; the value is its metric label."""

    #: The answer failed verification or did not decode: the peer sent bad data.
    INVALID = "invalid"
    #: The peer answered with an error (the node API's error body).
    ERROR_ANSWER = "error_answer"
    #: The peer's TLS key is not its key on chain.
    IDENTITY = "identity"
    #: No connection, or no answer in time.
    UNREACHABLE = "unreachable"
    #: Any other of our errors.
    OTHER = "other"


def failure_kind(error: BaseException) -> PeerFailure | None:
    """A peer's failure by kind; None for a request cut short once enough arrived."""
    if isinstance(error, UnfinishedRequestError):
        return None  # cancelled once enough arrived (or at the timeout): not a fault
    if isinstance(error, VerificationError | DecodeError):
        return PeerFailure.INVALID
    if isinstance(error, NodeApiError):
        return PeerFailure.ERROR_ANSWER
    if isinstance(error, NodeIdentityError):
        return PeerFailure.IDENTITY
    if isinstance(error, NodeConnectionError | TimeoutError):
        return PeerFailure.UNREACHABLE
    return PeerFailure.OTHER
