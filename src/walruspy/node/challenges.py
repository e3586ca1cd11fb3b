"""Storage challenges on the node: derive the samples, prove our slivers, verify the others'.

Theory of operation (the Walrus paper, arXiv 2505.05370, section 4.6, the lightweight variant with
a shared random coin; spec/walrus-system.md 3.6, which notes that Walrus's code has none; the
sampling in walruspy.core.challenge, the contract in chain/contracts/Challenges.vy):

1. Start (`derive_record`, pure). Once per epoch the chain emits ChallengeStart(epoch, seed). The
   event processor, before it writes that event, lists the certified, unexpired blobs it knows:
   every node has applied the same events up to this one, so every node lists the same set. From
   the seed it derives each committee member's sample of `sample_size(N)` blobs
   (`core.challenge.challenge_sample`), and writes the `ChallengeRecord` with the event, in one
   transaction (node/events.py).
2. Positions (`core.challenge.challenge_positions`). What a verifier B checks of a challenged
   node A: the symbols at crossings of A's slivers with B's over A's sample (the symbol of A's
   primary sliver of pair i on B's secondary sliver of pair j, and the other way round), all of
   them if there are at most B's share of the checks (`checks_per_verifier`: in proportion to
   B's shards, so that any honest verifiers whose attestations a certificate needs hold at
   least K checks between them), else that many drawn from the seed, A and B. A node missing 1%
   of its slivers then gets a certificate with probability below 10^-9 (the calculation is in
   core.challenge). Sending every shared symbol of every sampled blob would cost each verifier
   about a blob per blob.
3. Refuse. From the moment the challenge is scheduled (ChallengeScheduled, a block before its
   seed exists) until it starts (for `WITHHOLD_BEFORE_START_S` at most, in case no block
   comes), this node refuses every recovery and decoding symbol; then,
   while the challenge of the current epoch is open (until the epoch ends or every member is
   certified), those of challenged blobs, to anyone (503): a node that dropped its slivers
   cannot rebuild them from its peers' symbols in time, even if it learns the seed before its
   peers have seen ChallengeStart (it can only learn it after they applied ChallengeScheduled,
   given a poll interval between the two blocks: `Devnet.start_challenge` waits for it).
   Slivers are still served, so client reads keep working: within the paper's model a
   cheater could then download whole blobs as a client, which costs it n - 2f slivers (the whole
   blob) for every sampled blob every epoch where storing it costs its share only, so the
   challenge makes cheating dearer than storing rather than impossible. A challenged node's
   proof endpoint gives each verifier the symbols of its positions only: spread over the whole
   sample, far fewer per target sliver than the n - 2f a rebuild needs.
4. Prove (`Challenges.proof_page`). A verifier pulls its positions page by page
   (`GET /v1/challenges/{epoch}/proof/{verifier}`, node_api/challenge_proofs.py); the node
   answers from its stored slivers with `core.challenge.challenge_answer` (each source sliver
   expanded once), one `ChallengeProof` per blob. A sliver it lacks is answered 404: the
   verifier counts that as a failed proof.
5. Verify (`ChallengeWorker._verify`). For every other member A, the node fetches A's pages
   (transport failures are retried with capped backoff until the epoch ends: the protocol is
   asynchronous, no deadline decides) and checks each blob's answer with
   `core.challenge.verify_challenge_answer` against the metadata and its own slivers. If all
   hold it signs ChallengeAttestationMessage(epoch, A, seed, |sample|), served at
   `GET /v1/challenges/{epoch}/attestation/{A}`. A failed check is final for the epoch; a
   verifier that lacks its own sliver or the metadata gives no verdict at all.
6. Certify (`ChallengeWorker._certify_self`). The node attests itself once it finds every
   sliver of its own sample in its store, polls the others for their attestations, and once
   nodes holding a quorum of shards (2f+1) have signed, aggregates them and posts the
   certificate on chain (`certify_challenge`); a node without one gets no reward for the epoch
   (Challenges.vy). The starter (`ChallengeStarter`) takes the two permissionless steps that
   start each epoch's challenge, as the epoch driver takes the epoch's.

Faults for tests and devnets (node/faults.py) hook in here: a node that discards data fails its
proof, one that fetches at challenge time finds the symbols refused.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Final

import aiohttp

from walruspy.backoff import Backoff
from walruspy.chain.api import ChainError, ChainRevertError, ChainWriter
from walruspy.clock import now, wall
from walruspy.core.blob_id import BlobId
from walruspy.core.certificates import Certificate
from walruspy.core.challenge import (
    ChallengeProof,
    SharedSymbolId,
    challenge_answer,
    challenge_positions,
    challenge_sample,
    checks_per_verifier,
    sample_size,
    verify_challenge_answer,
)
from walruspy.core.committee import Committee, CommitteeMember
from walruspy.core.errors import (
    ChallengeVerificationError,
    DecodeError,
    InconsistentBlobError,
    WalrusError,
)
from walruspy.core.messages import ChallengeAttestationMessage, SignedMessage
from walruspy.core.slivers import SliverData
from walruspy.core.types import (
    SliverPairIndex,
    SliverType,
    shard_of_pair,
)
from walruspy.logs import get_logger
from walruspy.node.metrics import NodeMetrics
from walruspy.node.storage import NodeStorage
from walruspy.node.store_records import ChallengeRecord
from walruspy.node.view import NodeState
from walruspy.node_api import errors as api_errors
from walruspy.node_api.challenge_proofs import MAX_PROOF_PAGE, proof_page_to_bcs
from walruspy.node_api.client import NodeClient

log = get_logger("walruspy.node.challenges")

#: Retrying a peer that does not answer: the first pause and the longest.
RETRY_BACKOFF: Final = Backoff(0.5, 15.0)
#: Verifications of other nodes run at once: each reads pages of symbols and checks proofs.
MAX_CONCURRENT_VERIFICATIONS: Final = 4
#: Longest time every symbol is withheld between a challenge's scheduling and its start. The
#: starters of all nodes start it within seconds of its seed block; a chain that mines no block
#: (an idle devchain mines only on transactions) must not stop recovery for the epoch's rest.
WITHHOLD_BEFORE_START_S: Final = 30.0
#: Proof pages computed at once for verifiers (each expands slivers: CPU-bound).
MAX_CONCURRENT_PROOF_PAGES: Final = 2


# --- pure: the record and the positions -------------------------------------------------------


def derive_record(
    epoch: int, seed: bytes, committee: Committee, certified_blob_ids: Iterable[bytes]
) -> ChallengeRecord:
    """Every member's sample of the certified blobs, from the seed (module doc, 1)."""
    blob_ids = sorted(set(certified_blob_ids))
    size = sample_size(len(blob_ids))
    samples = tuple(
        (member.node_id, tuple(challenge_sample(seed, member.node_id, blob_ids, size)))
        for member in committee.members
    )
    return ChallengeRecord(epoch, seed, samples)


def attestation_message(record: ChallengeRecord, node_id: bytes) -> ChallengeAttestationMessage:
    """The message verifiers sign for `node_id` in `record`'s challenge."""
    sample = record.sample_of(node_id)
    return ChallengeAttestationMessage(record.epoch, node_id, record.seed, len(sample or ()))


# --- the node's part -------------------------------------------------------------------------


class ChallengeFailedError(WalrusError):
    """A challenged node's proof failed a check (final for the epoch)."""


class ChallengeUnverifiableError(WalrusError):
    """This node cannot check a proof: it lacks its own sliver or the metadata (no verdict)."""


#: One check: a blob and one symbol the two nodes share.
Position = tuple[bytes, SharedSymbolId]
SliverKey = tuple[SliverPairIndex, SliverType]


def by_blob(positions: Sequence[Position]) -> list[tuple[bytes, list[SharedSymbolId]]]:
    """Consecutive positions of one blob, grouped (positions come sorted by blob)."""
    groups: list[tuple[bytes, list[SharedSymbolId]]] = []
    for blob_id, symbol_id in positions:
        if not groups or groups[-1][0] != blob_id:
            groups.append((blob_id, []))
        groups[-1][1].append(symbol_id)
    return groups


class Challenges:
    """The node's challenge state and its REST answers (proof pages, attestations)."""

    def __init__(self, storage: NodeStorage, state: NodeState, metrics: NodeMetrics) -> None:
        self.storage = storage
        self.state = state
        self.metrics = metrics
        self.record: ChallengeRecord | None = None
        #: The epoch whose challenge was last scheduled (ChallengeScheduled).
        self._scheduled_epoch: int | None = None
        self._scheduled_at = 0.0
        self._challenged: frozenset[bytes] = frozenset()
        #: Members certified on chain in the record's epoch (ChallengeCertified events).
        self.certified: set[bytes] = set()
        #: Attestations this node gave in the record's epoch, by challenged node ID.
        self.attestations: dict[bytes, SignedMessage] = {}
        #: Nodes this node refused to attest in the record's epoch, with why.
        self.failures: dict[bytes, str] = {}
        self.started = asyncio.Event()
        self._proof_slots = asyncio.Semaphore(MAX_CONCURRENT_PROOF_PAGES)

    # --- events --------------------------------------------------------------------------------

    def begin(self, record: ChallengeRecord) -> None:
        """A challenge starts (after its ChallengeStart event is written)."""
        self.record = record
        self._challenged = record.challenged_blobs()
        self.certified = set()
        self.attestations = {}
        self.failures = {}
        self.started.set()
        self.started = asyncio.Event()
        log.info(
            "storage challenge started",
            epoch=record.epoch,
            blobs=len(self._challenged),
            members=len(record.samples),
        )

    def scheduled(self, epoch: int) -> None:
        """The challenge of `epoch` is scheduled: its seed will be known a block later."""
        self._scheduled_epoch = epoch
        self._scheduled_at = now()

    def certified_on_chain(self, epoch: int, node_id: bytes) -> None:
        """A member's certificate reached the chain (ChallengeCertified)."""
        if self.record is not None and self.record.epoch == epoch:
            self.certified.add(node_id)

    # --- the gate ------------------------------------------------------------------------------

    def is_open(self) -> bool:
        """Whether the current epoch's challenge is underway (module doc, 3)."""
        record = self.record
        if record is None or record.epoch != self.state.view.epoch:
            return False
        return not all(node_id in self.certified for node_id, _ in record.samples)

    def refuses_symbols(self, blob_id: bytes) -> bool:
        """Whether symbols of `blob_id` are withheld now: every blob's from the challenge's
        scheduling until it starts (the sample is not known yet, and a node that learns the
        seed first must not be able to fetch its sample before the others withhold it), then
        the challenged blobs' while the challenge is open."""
        epoch = self.state.view.epoch
        record = self.record
        waiting = now() - self._scheduled_at < WITHHOLD_BEFORE_START_S
        if self._scheduled_epoch == epoch and (record is None or record.epoch != epoch):
            return waiting
        return blob_id in self._challenged and self.is_open()

    # --- answers -------------------------------------------------------------------------------

    def _current(self, epoch: int) -> ChallengeRecord:
        record = self.record
        if record is None or record.epoch != epoch:
            raise api_errors.InvalidEpochError(
                f"this node has no storage challenge of epoch {epoch}", {"epoch": epoch}
            )
        return record

    def positions_for(
        self, record: ChallengeRecord, challenged: bytes, verifier: bytes
    ) -> list[Position]:
        """The shared symbols `verifier` checks of `challenged` in the current committee."""
        committee = self.state.view.committee
        by_id = {m.node_id: m for m in committee.members}
        sample = record.sample_of(challenged)
        if sample is None or challenged not in by_id or verifier not in by_id:
            return []
        return challenge_positions(
            record.seed,
            challenged,
            verifier,
            sample=sample,
            shards_challenged=by_id[challenged].shards,
            shards_verifier=by_id[verifier].shards,
            n_shards=committee.n_shards,
            count=checks_per_verifier(
                by_id[verifier].weight,
                n_shards=committee.n_shards,
                n_verifiers=committee.n_members - 1,
            ),
        )

    async def proof_page(self, epoch: int, verifier: bytes, start: int, count: int) -> bytes:
        """This node's answer to positions `start`.. of `verifier`'s checks (module doc, 4)."""
        record = self._current(epoch)
        own = self.state.view.node_id
        if own is None or record.sample_of(own) is None:
            raise api_errors.InvalidEpochError("this node is not challenged in this epoch")
        positions = self.positions_for(record, own, verifier)
        if not positions and verifier not in {m.node_id for m in self.state.view.committee.members}:
            raise api_errors.InvalidRequestError("the verifier is not a committee member")
        page = positions[start : start + min(count, MAX_PROOF_PAGE)]
        async with self._proof_slots:
            proofs = [await self._answer(blob_id, ids) for blob_id, ids in by_blob(page)]
        body = proof_page_to_bcs(proofs)
        self.metrics.challenge_proof_pages.inc()
        self.metrics.challenge_proof_bytes.inc(len(body))
        return body

    async def _answer(self, blob_id: bytes, ids: Sequence[SharedSymbolId]) -> ChallengeProof:
        metadata = await self.storage.metadata(BlobId(blob_id))
        if metadata is None:
            raise api_errors.MetadataNotFoundError(
                f"this node does not hold the metadata of {BlobId(blob_id)}"
            )
        keys = {(i.source_pair, i.source_axis) for i in ids}
        slivers = await asyncio.to_thread(self.stored_slivers, blob_id, keys)
        try:
            return await asyncio.to_thread(challenge_answer, metadata, slivers, ids)
        except ValueError as exc:  # a sliver of the sample is not here
            raise api_errors.SliverNotFoundError(f"{BlobId(blob_id)}: {exc}") from exc

    def stored_slivers(
        self, blob_id: bytes, keys: Iterable[SliverKey]
    ) -> dict[SliverKey, SliverData]:
        """This node's stored slivers of `blob_id` for `keys` (those it holds)."""
        n_shards = self.state.view.committee.n_shards
        found = {}
        for pair, axis in keys:
            shard = shard_of_pair(pair, blob_id, n_shards)
            raw = self.storage.store.get_sliver(shard, axis, blob_id)
            if raw is not None:
                found[(pair, axis)] = SliverData.from_bcs(raw, axis)
        return found

    def attestation(self, epoch: int, node_id: bytes) -> SignedMessage:
        """The attestation this node gave `node_id`, or an error saying why there is none."""
        self._current(epoch)
        signed = self.attestations.get(node_id)
        if signed is not None:
            return signed
        reason = self.failures.get(node_id)
        if reason is not None:
            raise api_errors.InvalidRequestError(f"the challenge proof failed: {reason}")
        raise api_errors.UnavailableError("not verified yet; ask again later")


class ChallengeWorker:
    """Runs this node's side of each challenge: verify the others, certify itself."""

    def __init__(
        self,
        challenges: Challenges,
        chain: ChainWriter,
        sign: Callable[[ChallengeAttestationMessage], Awaitable[SignedMessage]],
        *,
        session: aiohttp.ClientSession | None = None,
        request_timeout_s: float = 30.0,
        backoff: Backoff = RETRY_BACKOFF,
    ) -> None:
        self.challenges = challenges
        self.chain = chain
        self._session = session
        self.sign = sign
        self.request_timeout_s = request_timeout_s
        self.backoff = backoff

    def _client(self, member: CommitteeMember) -> NodeClient:
        assert self._session is not None
        return NodeClient.for_member(member, self._session, timeout_s=self.request_timeout_s)

    async def run(self) -> None:
        """Take part in every challenge (until cancelled)."""
        if self._session is None:
            async with aiohttp.ClientSession() as session:
                self._session = session
                try:
                    await self._run()
                finally:
                    self._session = None
        else:
            await self._run()

    async def _run(self) -> None:
        while True:
            record = self.challenges.record
            if record is None or record.epoch != self.challenges.state.view.epoch:
                await self.challenges.started.wait()
                continue
            try:
                await self.take_part(record)
            except Exception:  # a defect costs this node the epoch's challenge, not its life
                log.exception("storage challenge round failed", epoch=record.epoch)
            await self.challenges.started.wait()

    async def take_part(self, record: ChallengeRecord) -> None:
        """Verify every other member and get this node certified, until the epoch ends."""
        view = self.challenges.state.view
        own = view.node_id
        members = [m for m in view.committee.members if m.node_id != own]
        epoch_over = asyncio.create_task(view_epoch_after(self.challenges.state, record.epoch))
        try:
            async with asyncio.TaskGroup() as group:
                slots = asyncio.Semaphore(MAX_CONCURRENT_VERIFICATIONS)
                for member in members:
                    group.create_task(self._verify_guarded(record, member, slots))
                if own is not None and record.sample_of(own) is not None:
                    group.create_task(self._certify_self_guarded(record, own))
                group.create_task(_cancel_group_when(epoch_over))
        except* _EpochOverError:
            log.info("storage challenge over with its epoch", epoch=record.epoch)
        finally:
            epoch_over.cancel()

    async def _verify_guarded(
        self, record: ChallengeRecord, member: CommitteeMember, slots: asyncio.Semaphore
    ) -> None:
        async with slots:
            started = now()
            try:
                await self._verify(record, member)
            except ChallengeUnverifiableError as exc:
                log.warning(
                    "cannot verify a challenged node without its own data; no attestation",
                    node_id=member.node_id.hex(),
                    reason=str(exc),
                )
                return
            except ChallengeFailedError as exc:
                self.challenges.failures[member.node_id] = str(exc)
                self.challenges.metrics.challenge_attestations.labels("refused").inc()
                log.warning(
                    "challenged node failed its proof",
                    node_id=member.node_id.hex(),
                    epoch=record.epoch,
                    reason=str(exc),
                )
                return
            self.challenges.metrics.challenge_attestations.labels("given").inc()
            log.info(
                "challenged node verified",
                node_id=member.node_id.hex(),
                epoch=record.epoch,
                seconds=round(now() - started, 3),
            )

    async def _verify(self, record: ChallengeRecord, member: CommitteeMember) -> None:
        own = self.challenges.state.view.node_id
        if own is None or record.sample_of(member.node_id) is None:
            return
        positions = self.challenges.positions_for(record, member.node_id, own)
        client = self._client(member)
        for start in range(0, len(positions), MAX_PROOF_PAGE):
            page = positions[start : start + MAX_PROOF_PAGE]
            proofs = await self._fetch_page(client, record.epoch, own, start, len(page))
            groups = by_blob(page)
            if len(proofs) != len(groups):
                raise ChallengeFailedError(
                    f"{len(proofs)} blob answers to the {len(groups)} blobs of positions"
                    f" {start}..{start + len(page) - 1}"
                )
            for (blob_id, ids), proof in zip(groups, proofs, strict=True):
                await self._check(blob_id, ids, proof)
        self.challenges.attestations[member.node_id] = await self.sign(
            attestation_message(record, member.node_id)
        )

    async def _fetch_page(
        self, client: NodeClient, epoch: int, own: bytes, start: int, count: int
    ) -> list[ChallengeProof]:
        failures = 0
        while True:
            try:
                return await client.challenge_proof(epoch, own, start, count)
            except (api_errors.SliverNotFoundError, api_errors.MetadataNotFoundError) as exc:
                raise ChallengeFailedError(f"the node cannot answer: {exc}") from exc
            except DecodeError as exc:
                raise ChallengeFailedError(f"malformed proof page: {exc}") from exc
            except (api_errors.NodeConnectionError, api_errors.NodeApiError) as exc:
                failures += 1
                delay = self.backoff.delay_s(failures)
                log.debug("challenge proof not available; retrying", error=str(exc), delay_s=delay)
                await asyncio.sleep(delay)

    async def _check(
        self, blob_id: bytes, ids: Sequence[SharedSymbolId], proof: ChallengeProof
    ) -> None:
        storage = self.challenges.storage
        metadata = await storage.metadata(BlobId(blob_id))
        if metadata is None:
            raise ChallengeUnverifiableError(f"this verifier lacks the metadata of {blob_id.hex()}")
        keys = {(i.target_pair, i.target_axis) for i in ids}
        own_slivers = await asyncio.to_thread(self.challenges.stored_slivers, blob_id, keys)
        try:
            await asyncio.to_thread(verify_challenge_answer, metadata, proof, ids, own_slivers)
        except ChallengeVerificationError as exc:
            raise ChallengeFailedError(str(exc)) from exc
        except InconsistentBlobError as exc:
            # The blob, not the challenged node, is at fault at this crossing.
            log.warning("challenged blob is inconsistent", blob_id=blob_id.hex(), error=str(exc))
        except ValueError as exc:  # this verifier lacks or lost its own sliver
            raise ChallengeUnverifiableError(str(exc)) from exc

    async def _certify_self_guarded(self, record: ChallengeRecord, own: bytes) -> None:
        """`_certify_self`; a defect there costs this node its own certificate, not the
        attestations it owes the other members (their verifications run on)."""
        try:
            await self._certify_self(record, own)
        except Exception:
            log.exception("getting this node's challenge certificate failed", epoch=record.epoch)

    async def _certify_self(self, record: ChallengeRecord, own: bytes) -> None:
        view = self.challenges.state.view
        committee = view.committee
        index = view.member_index
        sample = record.sample_of(own) or ()
        if index is None or not await self._holds(sample):
            log.warning("this node lacks slivers of its own challenge sample", epoch=record.epoch)
        else:
            self.challenges.attestations[own] = await self.sign(attestation_message(record, own))
        expected = attestation_message(record, own)
        gathered: dict[int, SignedMessage] = {}
        if index is not None and own in self.challenges.attestations:
            gathered[index] = self.challenges.attestations[own]
        failures = 0
        while not committee.is_quorum(sum(committee.members[i].weight for i in gathered)):
            for i, member in enumerate(committee.members):
                if i in gathered or member.node_id == own:
                    continue
                try:
                    signed = await self._client(member).challenge_attestation(record.epoch, own)
                    signed.verify(member.public_key, expected)
                except (WalrusError, aiohttp.ClientError, TimeoutError) as exc:
                    log.debug("no attestation yet", member=i, error=str(exc))
                    continue
                gathered[i] = signed
            if committee.is_quorum(sum(committee.members[i].weight for i in gathered)):
                break
            failures += 1
            await asyncio.sleep(self.backoff.delay_s(failures))
        certificate = Certificate.from_signed_messages(sorted(gathered.items()))
        await self._post(record, own, len(sample), certificate, committee.n_members)

    async def _holds(self, sample: Sequence[bytes]) -> bool:
        shards = self.challenges.state.view.owned_shards
        for blob_id in sample:
            missing = await self.challenges.storage.missing_parts(
                BlobId(blob_id), shards, check_metadata=True
            )
            if missing:
                return False
        return True

    async def _post(
        self,
        record: ChallengeRecord,
        own: bytes,
        blobs_checked: int,
        certificate: Certificate,
        n_members: int,
    ) -> None:
        failures = 0
        while own not in self.challenges.certified:
            try:
                await self.chain.certify_challenge(
                    own, blobs_checked, certificate, n_members=n_members
                )
            except ChainRevertError as exc:
                if "already certified" in exc.reason:
                    break
                # Refused for good (the epoch moved on before it landed: "challenge not
                # started" for the new one): this epoch is lost for the node, which goes on.
                log.warning(
                    "the challenge certificate was refused", epoch=record.epoch, reason=exc.reason
                )
                return
            except ChainError as exc:
                failures += 1
                delay = self.backoff.delay_s(failures)
                log.warning("cannot post the challenge certificate", error=str(exc), delay_s=delay)
                await asyncio.sleep(delay)
                continue
            break
        self.challenges.certified.add(own)
        self.challenges.metrics.challenges_passed.inc()
        log.info("storage challenge passed", epoch=record.epoch, blobs_checked=blobs_checked)


class _EpochOverError(Exception):
    """The challenge's epoch ended: stop taking part."""


async def view_epoch_after(state: NodeState, epoch: int) -> None:
    """Return once the node's view is of an epoch after `epoch`."""
    await state.views.wait_for_epoch(epoch + 1)


async def _cancel_group_when(done: asyncio.Task[None]) -> None:
    await done
    raise _EpochOverError


class ChallengeStarter:
    """Takes the two permissionless steps that start each epoch's challenge (module doc, 1):
    `schedule_challenge` once the window opens, then `start_challenge` once the seed block is
    mined. Every node runs it, with jitter; losing the race to another node is normal."""

    def __init__(
        self,
        chain: ChainWriter,
        state: NodeState,
        *,
        check_interval_s: float,
        max_jitter_s: float,
        rng: random.Random,
        clock: Callable[[], float] = wall,
        backoff: Backoff = RETRY_BACKOFF,
    ) -> None:
        self.chain = chain
        self.state = state
        self.check_interval_s = check_interval_s
        self.max_jitter_s = max_jitter_s
        self.rng = rng
        self.clock = clock
        self.backoff = backoff
        #: When the challenge window of the epoch last read opens (chain seconds).
        self._window: dict[int, int] = {}

    async def run(self) -> None:
        """Start every epoch's challenge (until cancelled)."""
        failures = 0
        while True:
            try:
                pause = await self.step()
                failures = 0
            except ChainError as exc:
                failures += 1
                pause = self.backoff.delay_s(failures)
                log.warning("challenge starter: chain unavailable", error=str(exc), delay_s=pause)
            await asyncio.sleep(pause)

    async def step(self) -> float:
        """Take the step that is due, if any; the pause until the next look.

        Until the window opens only the chain's clock is read: the window of an epoch does
        not move (its middle), so it is read once, with the challenge's state."""
        epoch = self.state.view.epoch
        opens = self._window.get(epoch)
        if opens is not None:
            now = max(float(await self.chain.chain_time()), self.clock())
            if now < opens:
                return min(self.check_interval_s, opens - now)
        challenge = await self.chain.challenge_state(epoch)
        if challenge.started:
            await self.state.views.wait_for_epoch(epoch + 1)
            return 0.0
        if challenge.window_opens_at:
            self._window = {epoch: challenge.window_opens_at}
        now = max(float(await self.chain.chain_time()), self.clock())
        if now < challenge.window_opens_at:
            return min(self.check_interval_s, challenge.window_opens_at - now)
        await asyncio.sleep(self.rng.uniform(0, self.max_jitter_s))
        try:
            if challenge.seed_block == 0:
                await self.chain.schedule_challenge()
            else:
                await self.chain.start_challenge()
        except ChainRevertError as exc:
            log.debug("challenge step taken by another node", reason=exc.reason)
        return min(self.check_interval_s, 1.0)
