"""Invalidation: a node holding an inconsistency proof gets the blob ID marked invalid on chain.

Theory of operation (spec/walrus-system.md 2.8 "Invalid blob flow", 3.4 step 3 and 2.7; Walrus
`blob_sync.rs` `sync_inconsistency_proof`, `committee/request_futures.rs`
`GetInvalidBlobCertificate`, `contract_service.rs` `invalidate_blob_id`). When blob sync decodes a
sliver that does not match the metadata, it hands the `InconsistencyProof` to `submit`. A fixed set
of workers takes blob IDs from a bounded queue (one flow per blob ID: a blob queued or running is
not queued again) and, for each:

1. stops if the node's record already says the blob is invalid (another node was first: a lost
   race) or no longer registered (the peers would have no metadata to check the proof against);
2. gathers signed INVALID_BLOB_ID attestations for the node's current epoch: its own, signed with
   its protocol key (it built the proof), then the other members', asked in decreasing weight
   order (fewest signatures, as Walrus) with `gather_weight` until the signers' shard weight
   reaches the validity threshold f+1 (3w >= n+1, what the contract requires; Walrus's node
   collects n-f, more than the contract needs, and keeps asking forever). Every answer is
   verified against the member's BLS key and the expected message; a member that fails, answers
   with an error or with a signature that does not verify is skipped and counted. Attestations
   carry over to the next round while the epoch stays the same; a round that falls short waits
   out a capped exponential backoff, for at most `max_attempts` rounds;
3. aggregates them with `Certificate.from_signed_messages`, checks the certificate against the
   committee as the contract will (an invariant: each signature was verified), and posts it with
   `ChainWriter.invalidate_blob_id`. An unreachable or refusing chain is retried with capped
   backoff a bounded number of times. A revert is a normal outcome: if the chain's epoch moved on,
   the node gathers again in the new epoch; otherwise the certificate is valid for this epoch, so
   the contract rejected it because the blob ID was invalidated first (a lost race, counted, not
   an error). (Our contract, like Walrus's Move, accepts a second certificate and emits the event
   again, which `blob_state` ignores; the node skips the post when it has already seen the event.)

The node's own event processor then applies the InvalidBlobID event (`blob_state`): the blob is
marked invalid for good, its data deleted and its syncs cancelled, and reads answer "invalid".
A flow that gives up is retried by the blob-sync scan: the blob is still certified with data
missing, so the sync runs again, finds the proof again and submits it.

The decision at the start of each round is pure (`decide_round`, the rules I1-I3 below, in the
style of `blob_state`); the flow acts on what it returns. Each flow ends with an
`InvalidationOutcome` (its value is the metric label).

Bounds: `MAX_CONCURRENT_INVALIDATIONS` flows, `MAX_PENDING_INVALIDATIONS` queued blob IDs (with
their proofs; `submit` waits when the queue is full, as the sync queue does), the blob sync's
`max_concurrent_requests` per fan-out and its sliver request timeout per member (checking a proof
decodes one sliver, as serving symbols does), `max_attempts` gathering rounds and
`MAX_CHAIN_ATTEMPTS` posts. Cancellation (the node stopping) ends the flows cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any

import aiohttp

from walruspy.chain.api import ChainError, ChainRevertError, ChainWriter
from walruspy.core.blob_id import BlobId
from walruspy.core.certificates import Certificate, verify_certificate
from walruspy.core.crypto import BlsPrivateKey
from walruspy.core.errors import VerificationError, WalrusError
from walruspy.core.inconsistency import InconsistencyProof
from walruspy.core.messages import InvalidBlobIdMessage, SignedMessage
from walruspy.logs import get_logger
from walruspy.node import blob_state
from walruspy.node.background import BackgroundWorkers
from walruspy.node.config import ChainConfig, RecoveryConfig
from walruspy.node.epoch import MAX_CHAIN_ATTEMPTS, retry_chain
from walruspy.node.metrics import NodeMetrics
from walruspy.node.peer_failures import PEER_FAILURES, PeerFailure, failure_kind
from walruspy.node.storage import NodeStorage
from walruspy.node.store_records import BlobInfo, InvalidBlobInfo
from walruspy.node.view import CommitteeView, NodeState
from walruspy.node_api.client import NodeClient
from walruspy.node_api.fanout import NodeFailure, NodeRequest, gather_weight

log = get_logger("walruspy.node.invalidation")

#: Flows run at once. Inconsistent blobs are rare (only a malicious writer makes one) and each
#: flow is one fan-out and one transaction from the node's single account: a few suffice.
MAX_CONCURRENT_INVALIDATIONS = 4
#: Blob IDs (with their proofs) waiting for a flow; as many as blob sync keeps proofs.
MAX_PENDING_INVALIDATIONS = 1000
#: After a revert because the epoch moved on, how long to wait for the node's own view of the new
#: epoch before gathering again: the event processor applies it within a poll or two; after this
#: the flow goes on anyway (and its attempts are bounded).
NEW_EPOCH_WAIT_S = 30.0


class InvalidationGaveUpError(WalrusError):
    """Not enough attestations, or no accepted post, within the bounded attempts."""


class InvalidationOutcome(StrEnum):
    """How one invalidation flow ended; the value is its metric label."""

    #: This node's certificate was accepted on chain.
    POSTED = "posted"
    #: Another node invalidated the blob while this flow ran.
    LOST_RACE = "lost_race"
    #: Known invalid before the flow began (a sync queued before the event was applied).
    ALREADY_INVALID = "already_invalid"
    #: The blob is no longer registered: the peers have no metadata to check the proof against.
    SKIPPED = "skipped"
    #: The attempts ran out, or the chain failed (the next sync scan retries).
    FAILED = "failed"
    #: The node is stopping.
    CANCELLED = "cancelled"


# --- pure: what a round does -------------------------------------------------------------------
#
# I1. The node's record says the blob is invalid: the flow ends, LOST_RACE if it had begun
#     gathering (another node was first while it ran), else ALREADY_INVALID.
# I2. The blob is not registered in the epoch of the node's view: the flow ends, SKIPPED.
# I3. Otherwise it gathers: in a new round if it has none yet or the view's epoch is not the
#     round's (attestations are signed for one epoch), else on in the round it has.


@dataclass(frozen=True, slots=True)
class EndFlow:
    """Stop the flow with `outcome` (rules I1 and I2)."""

    outcome: InvalidationOutcome


@dataclass(frozen=True, slots=True)
class GatherAttestations:
    """Gather attestations (rule I3): in a fresh round of the view's epoch if `new_round`."""

    new_round: bool


def decide_round(
    info: BlobInfo | None, view_epoch: int, round_epoch: int | None
) -> EndFlow | GatherAttestations:
    """What the flow does next, from the blob's record, the view's epoch and the round's
    epoch (None before the first round)."""
    if isinstance(info, InvalidBlobInfo):
        began = round_epoch is not None
        return EndFlow(
            InvalidationOutcome.LOST_RACE if began else InvalidationOutcome.ALREADY_INVALID
        )
    if not blob_state.is_registered(info, view_epoch):
        return EndFlow(InvalidationOutcome.SKIPPED)
    return GatherAttestations(new_round=round_epoch != view_epoch)


@dataclass(frozen=True, slots=True)
class _Round:
    """One epoch's attempt: its committee view, the message to sign, the attestations so far."""

    view: CommitteeView
    expected: InvalidBlobIdMessage
    attestations: dict[int, SignedMessage]

    @property
    def weight(self) -> int:
        """The shard weight of the members that attested."""
        return self.view.committee.weight_of(self.attestations)

    @property
    def reached(self) -> bool:
        """Whether the attestations pass the contract's validity test."""
        return self.view.committee.is_above_validity(self.weight)


class Invalidator(BackgroundWorkers):
    """The invalidation workers of one node, with their queue. See the module docstring."""

    def __init__(
        self,
        storage: NodeStorage,
        state: NodeState,
        metrics: NodeMetrics,
        protocol_key: BlsPrivateKey,
        chain: ChainWriter,
        *,
        config: RecoveryConfig,
        chain_config: ChainConfig,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(metrics.invalidation_backlog, session)
        self.storage = storage
        self.state = state
        self.metrics = metrics
        self._key = protocol_key
        self.chain = chain
        self.config = config
        self.chain_config = chain_config
        # Jittering backoff needs no cryptographic randomness.
        self._rng = rng or random.Random()  # noqa: S311
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(MAX_PENDING_INVALIDATIONS)
        self._pending: dict[bytes, InconsistencyProof] = {}
        self._running: set[bytes] = set()

    @property
    def backlog(self) -> int:
        """Flows queued or running."""
        return len(self._pending) + len(self._running)

    async def submit(self, blob_id: BlobId, proof: InconsistencyProof) -> bool:
        """Queue the invalidation of `blob_id`; False if one is already queued or running.

        Waits while the queue is full; cancelling the wait leaves nothing queued.
        """
        key = blob_id.raw
        if key in self._pending or key in self._running:
            return False
        self._pending[key] = proof
        self._update_backlog()
        try:
            await self._queue.put(key)
        except BaseException:
            self._pending.pop(key, None)
            self._update_backlog()
            raise
        return True

    def tasks(self) -> Iterable[Coroutine[Any, Any, None]]:
        """The workers (`run` runs them until cancelled)."""
        return (self._worker() for _ in range(MAX_CONCURRENT_INVALIDATIONS))

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            proof = self._pending.pop(key, None)
            if proof is None:
                continue
            self._running.add(key)
            try:
                await self._invalidate_logged(BlobId(key), proof)
            finally:
                self._running.discard(key)
                self._update_backlog()

    async def _invalidate_logged(self, blob_id: BlobId, proof: InconsistencyProof) -> None:
        bound = log.bind(blob_id=str(blob_id), epoch=self.state.epoch)
        try:
            outcome = await self.invalidate(blob_id, proof)
        except asyncio.CancelledError:
            self.metrics.invalidations.labels(InvalidationOutcome.CANCELLED).inc()
            raise
        except WalrusError as exc:
            bound.warning("blob invalidation failed; the next sync scan retries", error=str(exc))
            outcome = InvalidationOutcome.FAILED
        self.metrics.invalidations.labels(outcome).inc()
        bound.info("blob invalidation finished", outcome=outcome.value)

    # --- one flow -----------------------------------------------------------------------------

    async def invalidate(self, blob_id: BlobId, proof: InconsistencyProof) -> InvalidationOutcome:
        """Get `blob_id` marked invalid on chain; how the flow ended (POSTED, LOST_RACE,
        ALREADY_INVALID or SKIPPED: `InvalidationOutcome`).

        Raises `InvalidationGaveUpError` (or the chain's error) when the attempts run out.
        """
        current: _Round | None = None
        for attempt in range(self.config.max_attempts):
            info = await self.storage.blob_info(blob_id)
            view = self.state.view
            decision = decide_round(
                info, view.epoch, None if current is None else current.view.epoch
            )
            if isinstance(decision, EndFlow):
                return decision.outcome
            if current is None or decision.new_round:
                expected = InvalidBlobIdMessage(view.epoch, blob_id.raw)
                current = _Round(view, expected, {})
            await self._gather(blob_id, proof, current)
            if current.reached:
                outcome = await self._post(blob_id, current)
                if outcome is not None:
                    return outcome
            await self._backoff(attempt)
        weight = 0 if current is None else current.weight
        raise InvalidationGaveUpError(
            f"attestations of weight {weight} for invalid blob {blob_id} after "
            f"{self.config.max_attempts} rounds (or no accepted post)"
        )

    async def _gather(self, blob_id: BlobId, proof: InconsistencyProof, current: _Round) -> None:
        """Add attestations to `current` until it reaches the validity threshold (one round)."""
        view, attestations = current.view, current.attestations
        own = view.member_index
        if own is not None and own not in attestations:
            attestations[own] = await asyncio.to_thread(
                SignedMessage.sign, self._key, current.expected
            )
        if current.reached:
            return
        committee = view.committee
        # The heaviest members first: the fewest attestations reach the threshold (Walrus).
        candidates = sorted(
            (i for i in range(committee.n_members) if i not in attestations),
            key=lambda i: -committee.members[i].weight,
        )
        timeout_s = self.config.sliver_request_timeout_s

        async def ask(index: int) -> SignedMessage:
            member = committee.members[index]
            client = NodeClient.for_member(member, self._session, timeout_s=timeout_s)
            signed = await client.inconsistency_proof(blob_id, proof)
            await asyncio.to_thread(signed.verify, member.public_key, current.expected)
            return signed

        outcome = await gather_weight(
            [NodeRequest(i, committee.members[i].weight, partial(ask, i)) for i in candidates],
            committee.validity_weight - current.weight,
            max_concurrency=self.config.max_concurrent_requests,
            # In the worst case the members are asked one after the other.
            timeout_s=max(len(candidates), 1) * timeout_s + 1.0,
            bound_in_flight=True,
            failures=PEER_FAILURES,
        )
        for success in outcome.successes:
            attestations[success.key] = success.value
        self._count_failures(view, outcome.failures)
        if not current.reached:
            log.info(
                "too few invalid-blob attestations this round",
                blob_id=str(blob_id),
                summary=outcome.summary(),
            )

    async def _post(self, blob_id: BlobId, current: _Round) -> InvalidationOutcome | None:
        """Post the certificate: POSTED or LOST_RACE; None if the epoch moved on."""
        certificate = Certificate.from_signed_messages(sorted(current.attestations.items()))
        try:
            await asyncio.to_thread(
                verify_certificate, current.view.committee, certificate, "validity"
            )
        except VerificationError as exc:
            # Every attestation was verified on arrival, so this is our bug, not a peer's fault;
            # it fails this flow, never the node.
            log.error("the invalid-blob certificate does not verify", error=str(exc))
            raise InvalidationGaveUpError(f"invalid-blob certificate of {blob_id}: {exc}") from exc
        backoff = self.chain_config.backoff
        last_error: ChainError | None = None
        for attempt in range(MAX_CHAIN_ATTEMPTS):
            if attempt > 0:
                delay = backoff.delay_s(attempt - 1)
                log.warning(
                    "posting the invalid-blob certificate failed; retrying",
                    blob_id=str(blob_id),
                    error=str(last_error),
                    delay_s=delay,
                )
                await asyncio.sleep(delay)
            if isinstance(await self.storage.blob_info(blob_id), InvalidBlobInfo):
                # Our event processor saw another node's invalidation.
                return InvalidationOutcome.LOST_RACE
            try:
                await self.chain.invalidate_blob_id(
                    certificate, n_members=current.view.committee.n_members
                )
            except ChainRevertError as exc:
                return await self._after_revert(blob_id, current, exc)
            except ChainError as exc:  # unreachable or refusing (nonce, funds): retried
                last_error = exc
                continue
            log.info(
                "posted the invalid-blob certificate",
                blob_id=str(blob_id),
                epoch=current.view.epoch,
                signers=len(certificate.signers),
                weight=current.weight,
            )
            return InvalidationOutcome.POSTED
        raise InvalidationGaveUpError(
            f"posting the invalid-blob certificate of {blob_id} failed {MAX_CHAIN_ATTEMPTS} "
            f"times: {last_error}"
        ) from last_error

    async def _after_revert(
        self, blob_id: BlobId, current: _Round, error: ChainRevertError
    ) -> InvalidationOutcome | None:
        """A revert: None if the epoch moved on (gather again), else a lost race."""
        info = await retry_chain(
            self.chain.system_info, self.chain_config.backoff, what="system_info"
        )
        if info.epoch != current.view.epoch:
            log.info(
                "the epoch moved on before the invalid-blob certificate landed; gathering again",
                blob_id=str(blob_id),
                certificate_epoch=current.view.epoch,
                chain_epoch=info.epoch,
            )
            # Gather for the new epoch only once this node applied its start: the same
            # certificate posted again would only revert again.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(NEW_EPOCH_WAIT_S):
                    await self.state.views.wait_for_epoch(info.epoch)
            return None
        # The certificate verifies against this epoch's committee, so the contract refused it
        # because the blob ID is already invalid: another node was first.
        log.info(
            "the blob ID was invalidated first by another node",
            blob_id=str(blob_id),
            reason=error.reason,
        )
        return InvalidationOutcome.LOST_RACE

    async def _backoff(self, attempt: int) -> None:
        await asyncio.sleep(self.config.backoff.jittered_s(attempt, self._rng))

    def _count_failures(self, view: CommitteeView, failures: list[NodeFailure[int]]) -> None:
        for failure in failures:
            kind = failure_kind(failure.error)
            if kind is None:
                continue
            self.metrics.invalidity_attestation_failures.labels(kind).inc()
            if kind is PeerFailure.INVALID:
                log.warning(
                    "member sent an invalid-blob attestation that fails verification",
                    peer=view.committee.members[failure.key].network_address,
                    error=str(failure.error)[:200],
                )
