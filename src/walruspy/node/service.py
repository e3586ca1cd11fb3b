"""The storage node's request handling, independent of HTTP: every check before anything is stored.

It reads and writes through the typed storage gateway (`storage.NodeStorage`) and maps its typed
outcomes to Walrus's answers; no other part of the node goes through it.

Theory of operation (spec/walrus-system.md 3.1 "Node-side checks behind the writes", 1.4; spec/
encoding.md 8; Walrus `node.rs` `ServiceState`). A node believes only the chain (through its own
blob records, which the event processor keeps) and its own checks:

- metadata is stored only for a blob registered now (not expired, deleted or invalid) and only if
  it hashes to the blob ID for this system's n_shards (`UnverifiedBlobMetadataWithId.verify`);
- a sliver is stored only if the pair index is in range and agrees with the sliver's own index,
  the blob is registered now, its metadata is stored, the pair maps to a shard this node owns in
  the current committee, and the sliver verifies against the metadata (`SliverData.verify`);
- a confirmation is signed only for a registered blob stored on *all* owned shards (metadata and
  both slivers of each), for the current epoch; a deletable one also needs the object to be live;
- reads are served only for registered blobs (Walrus's `validate_blob_access`).

Every rejection raises the matching `NodeApiError`, checked in Walrus's order, so the same bad
request gets the same reason from both implementations. Store calls and CPU-heavy checks run in
worker threads (`asyncio.to_thread`), so the event loop keeps serving. Uploads marked
`pending=true` that precede the registration pass the same checks and are then held in memory
until the registration event (node/pending.py, Walrus's pending upload caches): 202 "buffered
pending registration". Without the flag they are refused with NOT_REGISTERED, unless
`upload_registration_wait_ms` (walruspy; 0, Walrus's behaviour, by default) makes a metadata
upload wait that long for the registration event first, as a confirmation long-poll does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from walruspy import clock
from walruspy.core.blob_id import BlobId
from walruspy.core.crypto import BlsPrivateKey
from walruspy.core.errors import DecodeError, InvalidInputError, VerificationError
from walruspy.core.messages import (
    BlobPersistence,
    ConfirmationMessage,
    ProtocolMessage,
    SignedMessage,
)
from walruspy.core.metadata import (
    BlobMetadata,
    UnverifiedBlobMetadataWithId,
    VerifiedBlobMetadataWithId,
)
from walruspy.core.params import RS2_ENCODING_TYPE
from walruspy.core.slivers import (
    SliverData,
    VerifiedSliver,
    slivers_bcs_from_parts,
    slivers_from_bcs,
    verify_slivers,
)
from walruspy.core.types import ShardIndex, SliverPairIndex, SliverType, shard_of_pair
from walruspy.logs import get_logger
from walruspy.node import blob_state
from walruspy.node.config import ApiLimits
from walruspy.node.metrics import NodeMetrics
from walruspy.node.pending import PendingLimits, PendingSliver, PendingUploads
from walruspy.node.storage import BlobDataCollectedError, NodeStorage, StoreOutcome
from walruspy.node.store_records import (
    BlobInfo,
    InvalidBlobInfo,
    NodeStatus,
    NodeStatusKind,
    ShardStatus,
)
from walruspy.node.view import NodeState, RegistrationWaiters
from walruspy.node_api import errors as api_errors
from walruspy.node_api import health
from walruspy.node_api.paths import ConfirmationWait
from walruspy.node_api.schemas import BlobStatus, Nonexistent, StoredOnNodeStatus

log = get_logger("walruspy.node.service")

_HEALTH_SHARD_STATUS = {
    ShardStatus.NONE: health.ShardStatus.UNKNOWN,
    ShardStatus.ACTIVE: health.ShardStatus.READY,
    ShardStatus.ACTIVE_SYNC: health.ShardStatus.IN_TRANSFER,
    ShardStatus.ACTIVE_RECOVER: health.ShardStatus.IN_RECOVERY,
    ShardStatus.LOCKED_TO_MOVE: health.ShardStatus.READ_ONLY,
}


@dataclass(frozen=True, slots=True)
class Stored:
    """The outcome of an upload: its HTTP code and Walrus's message."""

    code: int
    message: str


def parse_metadata_body(body: bytes) -> BlobMetadata:
    """A PUT metadata body; UNSUPPORTED_ENCODING_TYPE or INVALID_CONTENT_TYPE when it is not one."""
    # BlobMetadata V1 starts with tag 0 and the encoding type: name that case precisely.
    if len(body) >= 2 and body[0] == 0 and body[1] != RS2_ENCODING_TYPE:
        raise api_errors.UnsupportedEncodingTypeError(
            f"unsupported encoding type {body[1]}", {"encodingType": body[1]}
        )
    try:
        return BlobMetadata.from_bcs(body)
    except DecodeError as exc:
        raise api_errors.InvalidContentTypeError(f"invalid BCS metadata: {exc}") from exc


def parse_sliver_body(body: bytes, sliver_type: SliverType) -> SliverData:
    """A PUT sliver body as `SliverData` of the URL's type."""
    try:
        return SliverData.from_bcs(body, sliver_type)
    except DecodeError as exc:
        raise api_errors.InvalidContentTypeError(f"invalid BCS sliver: {exc}") from exc
    except VerificationError as exc:
        raise api_errors.InvalidSliverError(str(exc)) from exc


class NodeService:
    """The node's behaviour behind each route; raises `NodeApiError` for every rejection."""

    def __init__(
        self,
        storage: NodeStorage,
        protocol_key: BlsPrivateKey,
        state: NodeState,
        metrics: NodeMetrics,
        limits: ApiLimits,
        *,
        registrations: RegistrationWaiters,
        pending: PendingUploads | None = None,
    ) -> None:
        self.storage = storage
        self.state = state
        self.metrics = metrics
        self.limits = limits
        self.registrations = registrations
        #: Uploads that came before their registration (`pending=true`; node/pending.py).
        self.pending = pending or PendingUploads(PendingLimits(), clock.now)
        #: Flushes of held uploads under way, by blob: a confirmation waits for its blob's.
        self._flushes: dict[BlobId, asyncio.Event] = {}
        self._key = protocol_key

    # --- records ------------------------------------------------------------------------------

    async def blob_info(self, blob_id: BlobId) -> BlobInfo | None:
        """The node's aggregate record of `blob_id`."""
        return await self.storage.blob_info(blob_id)

    async def require_registered(
        self, blob_id: BlobId, error: type[api_errors.KnownNodeApiError]
    ) -> BlobInfo | None:
        """The blob's record, if it is registered now; else raise `error`."""
        info = await self.blob_info(blob_id)
        if not blob_state.is_registered(info, self.state.epoch):
            raise error(f"blob {blob_id} is not registered in epoch {self.state.epoch}")
        return info

    def _check_pair(self, pair: SliverPairIndex) -> None:
        n = self.state.n_shards
        if pair >= n:
            raise api_errors.IndexOutOfRangeError(
                f"index {pair} out of range for {n} shards", {"index": pair, "max": n}
            )

    # --- metadata -----------------------------------------------------------------------------

    async def get_metadata(self, blob_id: BlobId) -> bytes:
        """BCS `BlobMetadataWithId` of a registered blob."""
        await self.require_registered(blob_id, api_errors.MetadataNotFoundError)
        metadata = await self.storage.metadata(blob_id)
        if metadata is None:
            raise api_errors.MetadataNotFoundError()
        self.metrics.metadata_retrieved.inc()
        return metadata.to_bcs()

    async def put_metadata(self, blob_id: BlobId, body: bytes, *, pending: bool = False) -> Stored:
        """Store metadata after Walrus's checks, in Walrus's order; with `pending`, metadata of
        a blob not registered yet is held until it is (node/pending.py)."""
        info = await self.blob_info(blob_id)
        if isinstance(info, InvalidBlobInfo):
            raise api_errors.InvalidBlobError(f"blob {blob_id} has been marked invalid")
        if await self.storage.has_metadata(blob_id):
            return Stored(200, "metadata already stored")
        if self.pending.metadata(blob_id) is not None:
            return Stored(200, "metadata already stored")
        unverified = UnverifiedBlobMetadataWithId(blob_id, parse_metadata_body(body))
        try:
            verified = await asyncio.to_thread(unverified.verify, self.state.n_shards)
        except VerificationError as exc:
            raise api_errors.InvalidMetadataError(str(exc)) from exc
        if not blob_state.is_registered(info, self.state.epoch):
            if pending:
                self.pending.add_metadata(verified)
                await self._flush_if_registered(blob_id)
                return Stored(202, "metadata buffered pending registration")
            wait_ms = self.limits.upload_registration_wait_ms
            await self._wait_for_registration(blob_id, ConfirmationWait(True, wait_ms), wait_ms)
        if await self.storage.store_metadata(verified) is StoreOutcome.STORED:
            return Stored(201, "metadata successfully stored")
        return Stored(200, "metadata already stored")

    async def metadata_status(self, blob_id: BlobId) -> StoredOnNodeStatus:
        """Whether the metadata is stored."""
        stored = await self.storage.has_metadata(blob_id)
        return StoredOnNodeStatus.STORED if stored else StoredOnNodeStatus.NONEXISTENT

    # --- slivers ------------------------------------------------------------------------------

    async def put_sliver(
        self,
        blob_id: BlobId,
        pair: SliverPairIndex,
        sliver_type: SliverType,
        body: bytes,
        *,
        pending: bool = False,
    ) -> Stored:
        """Store a sliver after every check of the module docstring; with `pending`, a sliver
        of a blob not registered yet is held until it is (node/pending.py)."""
        sliver = parse_sliver_body(body, sliver_type)
        self._check_pair(pair)
        self._check_own_pair(sliver, pair)
        metadata, registered = await self._upload_metadata(blob_id, pending)
        shard = self._owned_shard(blob_id, pair)
        if await self.storage.has_sliver(shard, sliver_type, blob_id):
            return Stored(200, "sliver already stored")
        try:
            verified = await asyncio.to_thread(sliver.verify, metadata)
        except VerificationError as exc:
            raise api_errors.InvalidSliverError(str(exc)) from exc
        if not registered:
            added = await self._hold(blob_id, metadata, [PendingSliver(pair, verified, body)])
            if added:
                return Stored(202, "sliver buffered pending registration")
            if added == 0:
                return Stored(200, "sliver already stored")
        # BCS is canonical and the parse was strict: the body is the sliver's BCS, as is.
        if await self._store([(shard, verified, body)]) == [StoreOutcome.STORED]:
            return Stored(201, "sliver stored successfully")
        return Stored(200, "sliver already stored")

    async def put_slivers(self, blob_id: BlobId, body: bytes, *, pending: bool = False) -> Stored:
        """Store many slivers of one blob (walruspy's batch upload, BCS `Vec<Sliver>`).

        Each sliver passes every check of `put_sliver` (its pair from its own index); all are
        verified, as one batch, before any is stored, so a bad one refuses the whole request.
        With `pending`, slivers of a blob not registered yet are held until it is.
        """
        owned = self.state.view.owned_shards
        try:
            parsed = slivers_from_bcs(body, max(1, 2 * len(owned)))
        except DecodeError as exc:
            raise api_errors.InvalidContentTypeError(f"invalid BCS slivers: {exc}") from exc
        except VerificationError as exc:
            raise api_errors.InvalidSliverError(str(exc)) from exc
        if not parsed:
            raise api_errors.InvalidRequestError("the batch holds no sliver")
        n = self.state.n_shards
        for sliver, _ in parsed:
            try:
                sliver.pair_index(n)
            except InvalidInputError as exc:
                raise api_errors.IndexOutOfRangeError(str(exc)) from exc
        metadata, registered = await self._upload_metadata(blob_id, pending)
        keys = [(self._owned_shard(blob_id, s.pair_index(n)), s.sliver_type) for s, _ in parsed]
        stored = await self.storage.has_slivers(blob_id, keys)
        todo = [
            (shard, sliver, raw)
            for (shard, _), (sliver, raw), known in zip(keys, parsed, stored, strict=True)
            if not known
        ]
        try:
            verified = await asyncio.to_thread(verify_slivers, [s for _, s, _ in todo], metadata)
        except VerificationError as exc:
            raise api_errors.InvalidSliverError(str(exc)) from exc
        if not registered:
            held = [
                PendingSliver(sliver.pair_index(n), one, raw)
                for (_, sliver, raw), one in zip(todo, verified, strict=True)
            ]
            added = await self._hold(blob_id, metadata, held)
            if added:
                return Stored(
                    202, f"{added} of {len(parsed)} slivers buffered pending registration"
                )
            if added == 0:
                return Stored(200, "slivers already stored")
        outcomes = await self._store(
            [(shard, one, raw) for (shard, _, raw), one in zip(todo, verified, strict=True)]
        )
        new = sum(outcome is StoreOutcome.STORED for outcome in outcomes)
        if new:
            return Stored(201, f"{new} of {len(parsed)} slivers stored")
        return Stored(200, "slivers already stored")

    def _check_own_pair(self, sliver: SliverData, pair: SliverPairIndex) -> None:
        """The pair of the URL must be the sliver's own."""
        try:
            own_pair = sliver.pair_index(self.state.n_shards)
        except InvalidInputError as exc:
            raise api_errors.IndexOutOfRangeError(str(exc)) from exc
        if own_pair != pair:
            raise api_errors.SliverIndexMismatchError(
                f"{sliver.sliver_type.value} sliver {sliver.index} belongs to pair {own_pair}, "
                f"not {pair}",
                {"sliverPairIndex": pair, "sliverIndex": sliver.index},
            )

    async def _upload_metadata(
        self, blob_id: BlobId, pending: bool
    ) -> tuple[VerifiedBlobMetadataWithId, bool]:
        """The metadata slivers of `blob_id` are checked against, and whether the blob is
        registered. An unregistered blob's uploads are refused, unless `pending` and its
        metadata is held (Walrus `resolve_metadata_for_sliver`)."""
        info = await self.blob_info(blob_id)
        if isinstance(info, InvalidBlobInfo):
            raise api_errors.InvalidBlobError(f"blob {blob_id} has been marked invalid")
        if not blob_state.is_registered(info, self.state.epoch):
            held = self.pending.metadata(blob_id) if pending else None
            if held is not None:
                return held, False
            if pending:
                raise api_errors.MissingMetadataError()
            raise api_errors.NotRegisteredError(
                f"blob {blob_id} is not registered in epoch {self.state.epoch}"
            )
        metadata = await self.storage.metadata(blob_id)
        if metadata is None:
            if self.pending.has(blob_id):
                await self.flush_pending(blob_id)  # registered before the event processor flushed
            # Read again: a flush stores the metadata before it lets go of it, so it is there
            # now if a flush took it while the first read ran.
            metadata = await self.storage.metadata(blob_id)
        if metadata is None:
            raise api_errors.MissingMetadataError()
        return metadata, True

    async def flush_pending(self, blob_id: BlobId) -> None:
        """Persist what came for `blob_id` before its registration (the event processor calls
        this when it applies the registration, before it wakes the waiting requests); returns
        once no flush of it is under way."""
        while (running := self._flushes.get(blob_id)) is not None:
            await running.wait()
        if self.pending.metadata(blob_id) is None:
            return
        self._flushes[blob_id] = done = asyncio.Event()
        try:
            await self._flush(blob_id)
        finally:
            del self._flushes[blob_id]
            done.set()

    async def _flush(self, blob_id: BlobId) -> None:
        metadata = self.pending.metadata(blob_id)
        if metadata is None:
            return
        # Held until the metadata is stored: an upload verifying against it meanwhile finds it.
        await self.storage.store_metadata(metadata)
        _, slivers = self.pending.take(blob_id)
        view = self.state.view
        owned = [
            (shard, held)
            for held in slivers
            if (shard := shard_of_pair(held.pair, blob_id.raw, view.n_shards)) in view.owned_shards
        ]
        try:
            await self.storage.store_slivers([(shard, h.sliver, h.bcs) for shard, h in owned])
        except BlobDataCollectedError:
            log.info(
                "a blob's pending slivers came after its data was collected", blob_id=str(blob_id)
            )
        except Exception as exc:
            # The event processor calls this: a write that failed (a full disk, say) costs
            # these slivers, not the node. The writer sends them again when the confirmation
            # it asks for finds them missing, and a certified blob's missing slivers are
            # recovered from the other nodes.
            log.warning(
                "pending slivers could not be stored", blob_id=str(blob_id), error=repr(exc)
            )

    async def _hold(
        self, blob_id: BlobId, metadata: VerifiedBlobMetadataWithId, slivers: list[PendingSliver]
    ) -> int | None:
        """Hold verified slivers of a blob that was not registered when their upload came: how
        many were new. None if it is registered now, after its held uploads were stored while
        these were verified: the caller stores them as any upload (the metadata is stored)."""
        try:
            added = self.pending.add_slivers(blob_id, slivers)
        except api_errors.MissingMetadataError:
            if not blob_state.is_registered(await self.blob_info(blob_id), self.state.epoch):
                raise
            await self.storage.store_metadata(metadata)
            return None
        await self._flush_if_registered(blob_id)
        return added

    async def _flush_if_registered(self, blob_id: BlobId) -> None:
        """Persist what is held for `blob_id` if its registration came meanwhile (the event
        processor may have flushed before this upload was held)."""
        if blob_state.is_registered(await self.blob_info(blob_id), self.state.epoch):
            await self.flush_pending(blob_id)

    async def _store(
        self, items: Sequence[tuple[ShardIndex, VerifiedSliver, bytes]]
    ) -> list[StoreOutcome]:
        try:
            return await self.storage.store_slivers(items)
        except BlobDataCollectedError as exc:
            raise api_errors.NotRegisteredError(str(exc)) from exc

    def _owned_shard(self, blob_id: BlobId, pair: SliverPairIndex) -> ShardIndex:
        view = self.state.view
        shard = shard_of_pair(pair, blob_id.raw, view.n_shards)
        if shard not in view.owned_shards:
            raise api_errors.ShardNotAssignedError(
                f"shard {shard} is not assigned to this node in epoch {view.epoch}",
                {"shard": shard, "epoch": view.epoch},
            )
        return shard

    async def _stored_shard(self, blob_id: BlobId, pair: SliverPairIndex) -> ShardIndex:
        """The shard of `pair`, which must have storage on this node (owned now or before)."""
        self._check_pair(pair)
        view = self.state.view
        shard = shard_of_pair(pair, blob_id.raw, view.n_shards)
        if shard not in view.owned_shards and await self.storage.shard_status(shard) is None:
            raise api_errors.ShardNotAssignedError(
                f"shard {shard} is not assigned to this node in epoch {view.epoch}",
                {"shard": shard, "epoch": view.epoch},
            )
        return shard

    async def get_sliver(
        self, blob_id: BlobId, pair: SliverPairIndex, sliver_type: SliverType
    ) -> bytes:
        """The stored BCS sliver of a registered blob."""
        self._check_pair(pair)
        await self.require_registered(blob_id, api_errors.SliverNotFoundError)
        shard = await self._stored_shard(blob_id, pair)
        raw = await self.storage.sliver(shard, sliver_type, blob_id)
        if raw is None:
            raise api_errors.SliverNotFoundError()
        self.metrics.slivers_retrieved.labels(sliver_type.value).inc()
        self.metrics.sliver_bytes_served.labels(sliver_type.value).inc(len(raw))
        return raw

    async def get_slivers(
        self, blob_id: BlobId, pairs: Sequence[SliverPairIndex], sliver_type: SliverType
    ) -> bytes:
        """BCS `Vec<Sliver>` of the named slivers stored here, in order (walruspy's batch
        read): each through `get_sliver` and its checks; one not found is left out."""
        found: list[bytes] = []
        for pair in pairs:
            try:
                found.append(await self.get_sliver(blob_id, pair, sliver_type))
            except api_errors.SliverNotFoundError:
                continue
        return slivers_bcs_from_parts(sliver_type, found)

    async def sliver_status(
        self, blob_id: BlobId, pair: SliverPairIndex, sliver_type: SliverType
    ) -> StoredOnNodeStatus:
        """Whether the sliver is stored here."""
        shard = await self._stored_shard(blob_id, pair)
        stored = await self.storage.has_sliver(shard, sliver_type, blob_id)
        return StoredOnNodeStatus.STORED if stored else StoredOnNodeStatus.NONEXISTENT

    async def is_stored_at_all_shards(self, blob_id: BlobId) -> bool:
        """Metadata and both slivers of every owned shard are stored."""
        owned = self.state.view.owned_shards
        # verify: never confirm a blob whose stored slivers fail their checksum.
        missing = await self.storage.missing_parts(blob_id, owned, check_metadata=True, verify=True)
        return not missing

    # --- confirmation and status ----------------------------------------------------------------

    async def confirmation(
        self, blob_id: BlobId, object_id: bytes | None, wait: ConfirmationWait
    ) -> SignedMessage:
        """A signed BLOB_CERT confirmation for the current epoch (spec 3.1)."""
        info = await self.blob_info(blob_id)
        if not blob_state.is_registered(info, self.state.epoch):
            await self._wait_for_registration(blob_id, wait)
        # Uploads held before the registration are stored first, if the event processor has
        # not yet done so (it applies the event, then flushes).
        await self.flush_pending(blob_id)
        if not await self.is_stored_at_all_shards(blob_id):
            raise api_errors.MissingSliversError(
                f"blob {blob_id} is not stored on all shards of this node"
            )
        epoch = self.state.epoch
        persistence = BlobPersistence.PERMANENT
        if object_id is not None:
            record = await self.storage.object_info(object_id)
            if record is None or record.blob_id != blob_id.raw or not record.is_registered(epoch):
                raise api_errors.NotRegisteredError(
                    f"deletable blob object 0x{object_id.hex()} is not registered for {blob_id}"
                )
            if not record.deletable:
                # The contract certifies a permanent object only with a permanent confirmation.
                raise api_errors.NotRegisteredError(
                    f"blob object 0x{object_id.hex()} is permanent: ask for the permanent "
                    "confirmation"
                )
            persistence = BlobPersistence.deletable(object_id)
        signed = await self.sign(ConfirmationMessage(epoch, blob_id.raw, persistence))
        self.metrics.confirmations_issued.inc()
        return signed

    async def sign(self, message: ProtocolMessage) -> SignedMessage:
        """Sign a message with the protocol key (in a worker thread: about 1.3 ms)."""
        return await asyncio.to_thread(SignedMessage.sign, self._key, message)

    async def _wait_for_registration(
        self, blob_id: BlobId, wait: ConfirmationWait, max_ms: int | None = None
    ) -> None:
        """Return once the blob is registered, waiting as `wait` asks up to `max_ms` (the
        confirmation long-poll's bound unless given); NOT_REGISTERED when the wait ends."""
        if max_ms is None:
            max_ms = self.limits.confirmation_long_poll_max_ms
        wait_ms = max_ms if wait.wait_ms is None else min(wait.wait_ms, max_ms)
        if wait.wait_for_registration and wait_ms > 0:
            deadline = clock.now() + wait_ms / 1000
            while (remaining := deadline - clock.now()) > 0:
                if not await self.registrations.wait(blob_id.raw, remaining):
                    break
                if blob_state.is_registered(await self.blob_info(blob_id), self.state.epoch):
                    return
        raise api_errors.NotRegisteredError(
            f"blob {blob_id} is not registered in epoch {self.state.epoch}"
        )

    async def blob_status(self, blob_id: BlobId) -> BlobStatus:
        """The blob's status as this node sees it in its current epoch."""
        info = await self.blob_info(blob_id)
        return Nonexistent() if info is None else info.blob_status(self.state.epoch)

    # --- health -------------------------------------------------------------------------------

    async def health(self, detailed: bool) -> health.ServiceHealthInfo:
        """The health answer: uptime, epoch, key, status, event progress, shards."""
        shards = await self.storage.shards()
        status = await self.storage.node_status()
        owned = self.state.view.owned_shards
        counts = dict.fromkeys(health.ShardStatus, 0)
        owned_infos, other_infos = [], []
        for shard in sorted(set(shards) | owned):
            kind = _HEALTH_SHARD_STATUS[shards.get(shard, ShardStatus.NONE)]
            info = health.ShardHealthInfo(shard, kind)
            if shard in owned:
                counts[kind] += 1
                owned_infos.append(info)
            else:
                other_infos.append(info)
        applied = self.state.events_applied
        return health.ServiceHealthInfo(
            uptime_ns=time.monotonic_ns() - self.state.started_at_ns,
            epoch=self.state.epoch,
            public_key=self.state.public_key.to_bytes(),
            node_status=str(status or NodeStatus(NodeStatusKind.STANDBY)),
            event_progress=health.EventProgress(
                persisted=applied,
                pending=self.state.pending_syncs,
                highest_finished_event_index=applied - 1 if applied else None,
            ),
            shard_summary=health.ShardStatusSummary(
                owned=len(owned),
                owned_shard_status=health.OwnedShardStatus(
                    unknown=counts[health.ShardStatus.UNKNOWN],
                    ready=counts[health.ShardStatus.READY],
                    in_transfer=counts[health.ShardStatus.IN_TRANSFER],
                    in_recovery=counts[health.ShardStatus.IN_RECOVERY],
                ),
                read_only=len(other_infos),
            ),
            shard_detail=(
                health.ShardStatusDetail(tuple(owned_infos), tuple(other_infos))
                if detailed
                else None
            ),
            latest_checkpoint_sequence_number=self.state.latest_block,
        )
