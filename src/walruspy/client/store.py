"""Storing a blob: encode, skip if already certified, register, upload to all, certify.

Theory of operation (spec/walrus-system.md 1.2 steps 0-7 and 5; Walrus `store_pipeline.rs`,
`uploader.rs`, `store_optimizations.rs`):

1. Encode on the encoder pool, off the event loop (`asyncio.to_thread`): n sliver pairs, the
   metadata and the blob ID.
2. The store asks the nodes for the blob's verified status, then lists this account's blob
   objects of the blob, unless `ignore_resources`. The listing reads every object the account
   holds (Walrus's resource manager lists them all as well), so it is skipped when the verified
   status is "nonexistent": nodes of f+1 shards know no registration of the blob, so the account
   owns no object of it. The one miss is a registration made within the nodes' event lag (a
   fraction of a second): a second registration is then paid for instead of reused. Unless
   `force`: a permanent store stops if a certified permanent registration already lasts until
   the wanted end epoch ("alreadyCertified" with its event); a deletable store stops if a
   certified deletable blob object of this account lasts long enough ("alreadyCertified" with
   the object), as Walrus does.
3. Reuse, as Walrus's resource manager (unless `ignore_resources`): a certified, unexpired
   blob object of this account of the same kind that ends too early is extended to the wanted
   end epoch and the store ends there ("reuseAndExtend": the slivers are on the nodes); else an
   uncertified registration of this account for the same blob (left by a store that failed or
   was interrupted after registering: nothing is paid twice) that lasts until the wanted end
   epoch is reused ("reuseRegistration"); else the smallest storage resource of this account
   that is current, large enough and lasts long enough carries a new registration, for the
   write fee only ("reuseStorage", `register_blob`); concurrent stores of one client each claim
   a different resource (`ClientEnv.claimed_storage`), and a resource another transaction used
   meanwhile (the contract answers "unknown storage") is passed over; else storage of the
   encoded length is bought and registered in one transaction (`reserve_and_register`). The caller's
   `on_registered` learns of the blob object as soon as the transaction returns. A cancellation
   (Ctrl-C) while the transaction is on its way waits for its outcome (bounded by the receipt
   timeout), so a paid object is never left unknown to the caller: `on_registered` hears of it
   before the cancellation goes on.
4. Upload to every node at once, from the moment the registration is sent (nothing sent needs
   the object): the metadata, then both slivers of each sliver pair whose shard the node holds
   (pair i lives on shard (i + blob-ID rotation) mod n); once registered, ask for the node's
   signed confirmation and verify it against the node's BLS key, this epoch and this blob (and
   object, for a deletable blob). A blob of at most `pending_upload_max_blob_bytes` goes as
   Walrus's pending uploads (`pending=true`): nodes verify and hold it until they see the
   registration, so the upload overlaps the transaction; the confirmation request then waits
   at the node for the registration (`confirmation_long_poll_ms`), and a node that lost what
   it held (a restart) is sent it again. A node that has not seen the registration of a larger
   blob answers NOT_REGISTERED: the request is retried with bounded backoff
   (`nodes.retrying`); our nodes may instead wait for the event
   (`limits.upload_registration_wait_ms`). Bounds: each
   node's connection slots, `max_concurrent_writes` sliver uploads and
   `max_data_in_flight_bytes` bytes of sliver data over all nodes, `request_timeout_s` per
   request and `store_timeout_s` for the whole upload. Slivers go in batches of up to
   `BATCH_BYTES` through walruspy's batch route (`PUT /v1/blobs/{id}/slivers`, verified by the
   node as one batch): at n = 1000 a node's 200 slivers of a small blob are one request instead
   of 200. A sliver larger than that goes alone, and a node without the route (a Walrus node)
   gets each sliver through Walrus's own route, from its first answer on.
5. Confirmations are gathered with `gather_weight` until their shard weight is a quorum
   (3w >= 2n + 1, the contract's test). At that moment the certificate is aggregated and posted
   (`certify_blob`) while uploads to the slower nodes go on for Walrus's extra time, 0.5 x (time
   to quorum) + 0.5 s, so more honest nodes get their slivers directly instead of recovering them.
   Without a quorum the store fails with `NotEnoughConfirmationsError`, naming every node that
   failed and why; the registration stays and is reused by the next attempt.

6. An epoch change during a store makes the confirmations of the old epoch useless: nodes sign
   for the epoch they are in, and the contract certifies only with the current epoch. When the
   quorum is missed or the certificate refused, the store reads the committee again; if the
   epoch moved on, it gathers confirmations for the new epoch (at most `MAX_EPOCH_CHANGES`
   times), as Walrus's client does. Each node is first only asked for its confirmation: one
   that already stores its slivers signs at once, and only the others get the upload again. A
   node that still signs for the old epoch has not yet seen the change, and is asked again with
   the usual backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Final

from walruspy.chain.api import (
    BlobRecord,
    ChainRevertError,
    ChainUnavailableError,
    ChainWriter,
    Registration,
    StorageRecord,
)
from walruspy.client.errors import (
    BlobTooLargeError,
    InvalidArgumentError,
    NotEnoughConfirmationsError,
    NoValidStatusError,
    RegistrationExpiredError,
)
from walruspy.client.funds import (
    UNPAID_REASON,
    extension_cost,
    insufficient_wal,
    paying,
    storage_cost,
)
from walruspy.client.nodes import ClientEnv, Node, retrying
from walruspy.client.results import (
    Progress,
    ProgressCallback,
    ResourceOperation,
    StoreResult,
    VerifiedStatus,
)
from walruspy.client.status import verified_status
from walruspy.core.blob_id import BlobId
from walruspy.core.certificates import Certificate
from walruspy.core.committee import Committee
from walruspy.core.encoding import EncodedBlob
from walruspy.core.errors import WalrusError
from walruspy.core.messages import (
    BlobPersistence,
    ConfirmationMessage,
    SignedMessage,
    decode_message,
)
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.params import EncodingParams
from walruspy.core.slivers import expected_sliver_length
from walruspy.core.types import ShardIndex, SliverPairIndex, SliverType, pair_of_shard
from walruspy.logs import get_logger
from walruspy.node_api import errors as api_errors
from walruspy.node_api.fanout import Fanout, NodeRequest, gather_weight
from walruspy.node_api.paths import ConfirmationWait, format_object_id
from walruspy.node_api.schemas import EventId, Nonexistent, Permanent
from walruspy.tasks import first_error, gather_reads

log = get_logger("walruspy.client.store")

#: What the contract says of a storage resource another transaction has used (objects.vy).
STORAGE_TAKEN_REASONS: Final = frozenset({"unknown storage", "not the owner"})

#: Epoch changes one store goes through before it gives up (an epoch lasts minutes at least, so
#: more than one change during an upload means an upload far slower than the epochs).
MAX_EPOCH_CHANGES = 2


def check_epochs(epochs: int, max_epochs_ahead: int) -> None:
    """Refuse an epoch count the contract would refuse, before any work is done."""
    if isinstance(epochs, bool) or not 1 <= epochs <= max_epochs_ahead:
        raise InvalidArgumentError(
            f"epochs must be between 1 and max_epochs_ahead = {max_epochs_ahead}, got {epochs}"
        )


def check_size(size: int, params: EncodingParams, max_blob_bytes: int) -> None:
    """Refuse a blob over the client's limit or the committee's maximum blob size."""
    limit = min(max_blob_bytes, params.max_blob_size)
    if size > limit:
        which = (
            "the client's max_blob_bytes"
            if limit == max_blob_bytes
            else f"the largest blob {params.n_shards} shards can encode"
        )
        raise BlobTooLargeError(f"a blob of {size} bytes exceeds {which}: {limit} bytes")


async def store_blob(
    env: ClientEnv,
    data: bytes | memoryview,
    *,
    epochs: int,
    deletable: bool,
    force: bool,
    ignore_resources: bool,
    progress: ProgressCallback | None,
    on_registered: Callable[[BlobRecord], None] | None = None,
    share: bool = False,
) -> StoreResult:
    """Store `data` for `epochs` epochs (see the module docstring); with `share`, a newly
    created blob object is then shared, unfunded (Walrus's `--share`, `share=true`)."""
    writer = env.require_writer("store")
    started = time.monotonic()
    # The committee gives the epoch; the limit on epochs is a constant of the deployment.
    committee, limit = await gather_reads(env.chain.committee(), env.epochs_limit())
    check_epochs(epochs, limit)
    params = EncodingParams(committee.n_shards)
    check_size(len(data), params, env.config.max_blob_bytes)
    encoding = Progress(progress, "encode", len(data))
    clock = time.monotonic()
    encoded = await asyncio.to_thread(env.encoder.encode, data, committee.n_shards)
    encoding.finish()
    job = _StoreJob(
        env,
        writer,
        encoded,
        committee,
        deletable,
        committee.epoch + epochs,
        progress,
        on_registered,
    )
    job.phases["encode"] = time.monotonic() - clock
    result = await job.run(epochs, committee.epoch, force=force, ignore_resources=ignore_resources)
    if share and result.blob is not None and not result.already_certified:
        shared = await writer.share_blob(result.blob.object_id, 0)
        result = replace(result, shared_blob_object=format_object_id(shared))
    job.phases["total"] = time.monotonic() - started
    log.debug("blob stored", blob_id=str(result.blob_id), phases=job.phases)
    return replace(result, phase_s=job.phases)


@dataclass(slots=True)
class _StoreJob:
    """One blob on its way from encoded to certified."""

    env: ClientEnv
    writer: ChainWriter
    encoded: EncodedBlob
    committee: Committee
    deletable: bool
    target_end: int
    progress: ProgressCallback | None
    on_registered: Callable[[BlobRecord], None] | None = None
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def blob_id(self) -> BlobId:
        return self.encoded.metadata.blob_id

    @property
    def encoded_length(self) -> int:
        metadata = self.encoded.metadata
        return metadata.params.encoded_length(metadata.unencoded_length)

    async def run(
        self, epochs: int, epoch: int, *, force: bool, ignore_resources: bool
    ) -> StoreResult:
        """Steps 2 to 5 of the module docstring."""
        clock = time.monotonic()
        # This account's storage resources are listed meanwhile, for a registration to use.
        verified, storage = await gather_reads(
            self._verified_status(skip=force and ignore_resources),
            self._owned_storage(skip=ignore_resources),
        )
        owned: list[BlobRecord] = []
        if not ignore_resources and not _never_registered(verified):
            listed = await self.writer.owned_blobs(self.writer.address)
            owned = [blob for blob in listed if blob.blob_id == self.blob_id]
        self.phases["status"] = time.monotonic() - clock
        if not force:
            existing = self._already_certified(owned, verified)
            if existing is not None:
                return existing
            extended = await self._extend_certified(owned, epoch)
            if extended is not None:
                return extended
        clock = time.monotonic()
        # The upload starts with the registration, and nothing it sends needs the object. A
        # small blob goes as pending uploads, which nodes hold until they see the registration;
        # a larger one waits at the node for the registration event (or is answered
        # NOT_REGISTERED into the backoff).
        config = self.env.config
        pending = (
            config.pending_uploads
            and self.encoded.metadata.unencoded_length <= config.pending_upload_max_blob_bytes
        )
        delivery = _Delivery(self.env, self.encoded, _upload_progress(self.encoded, self.progress))
        early = {
            node.member.node_id: asyncio.create_task(delivery.deliver(node, pending=pending))
            for node in self.env.pool.nodes(self.committee)
        }
        try:
            record, operation, cost = await self._register(owned, storage, epochs, epoch)
            self.phases["register"] = time.monotonic() - clock
            self._registered(record)
            fanout = await self._upload_and_certify(record, delivery, early, pending)
        finally:
            await _cancel(early.values())
        return StoreResult(
            blob_id=self.blob_id,
            unencoded_length=self.encoded.metadata.unencoded_length,
            encoded_length=self.encoded_length,
            end_epoch=record.end_epoch,
            cost=cost,
            already_certified=False,
            blob=replace(record, certified_epoch=self.committee.epoch),
            operation=operation,
            upload_summary=fanout.summary(),
        )

    def _already(
        self, end_epoch: int, *, blob: BlobRecord | None = None, event: EventId | None = None
    ) -> StoreResult:
        return StoreResult(
            blob_id=self.blob_id,
            unencoded_length=self.encoded.metadata.unencoded_length,
            encoded_length=self.encoded_length,
            end_epoch=end_epoch,
            cost=0,
            already_certified=True,
            blob=blob,
            certified_by="object" if blob is not None else "event",
            event=event,
        )

    async def _verified_status(self, *, skip: bool) -> VerifiedStatus | None:
        """The blob's verified status, or None when no status is reported by f+1 shards (or
        it is not asked: `skip`)."""
        if skip:
            return None
        try:
            return await verified_status(self.env, self.blob_id, self.committee)
        except NoValidStatusError as exc:
            log.debug("no verified status before storing; storing anyway", error=str(exc))
            return None

    def _already_certified(
        self, owned: list[BlobRecord], verified: VerifiedStatus | None
    ) -> StoreResult | None:
        """A result for a blob already certified until the target epoch, else None."""
        if self.deletable:
            for record in owned:
                certified = record.certified_epoch is not None
                if record.deletable and certified and record.end_epoch >= self.target_end:
                    return self._already(record.end_epoch, blob=record)
            return None
        if verified is None:
            return None
        status = verified.status
        if isinstance(status, Permanent) and verified.is_certified_until(self.target_end):
            return self._already(status.end_epoch, event=status.status_event)
        return None

    async def _extend_certified(self, owned: list[BlobRecord], epoch: int) -> StoreResult | None:
        """Walrus's ReuseAndExtend: a certified, unexpired object of this account of the same
        kind that ends too early is extended to the target end epoch instead of storing the
        blob again (its slivers are on the nodes already); the longest-lived one is chosen."""
        candidates = [
            r
            for r in owned
            if r.certified_epoch is not None
            and r.deletable == self.deletable
            and epoch < r.end_epoch < self.target_end
        ]
        if not candidates:
            return None
        record = max(candidates, key=lambda r: r.end_epoch)
        epochs = self.target_end - record.end_epoch
        info = await self.env.chain.system_info()
        cost = extension_cost(info, record.storage.storage_size, epochs)
        await paying(self.writer, self.writer.extend_blob(record.object_id, epochs), cost)
        storage = replace(record.storage, end_epoch=self.target_end)
        return StoreResult(
            blob_id=self.blob_id,
            unencoded_length=self.encoded.metadata.unencoded_length,
            encoded_length=self.encoded_length,
            end_epoch=self.target_end,
            cost=cost,
            already_certified=False,
            blob=replace(record, storage=storage),
            operation=ResourceOperation("reuseAndExtend", self.encoded_length, epochs),
        )

    async def _register(
        self, owned: list[BlobRecord], storage: Sequence[StorageRecord], epochs: int, epoch: int
    ) -> tuple[BlobRecord, ResourceOperation, int]:
        """Reuse an owned uncertified registration that fits, else register on an owned storage
        resource that fits (Walrus's ReuseStorage), else reserve and register."""
        for record in owned:
            fits = record.end_epoch >= self.target_end and record.registered_epoch <= epoch
            if record.certified_epoch is None and record.deletable == self.deletable and fits:
                return record, ResourceOperation("reuseRegistration", self.encoded_length), 0
        metadata = self.encoded.metadata
        claimed = self.env.claimed_storage
        fitting = self._fitting_storage([s for s in storage if s.storage_id not in claimed], epoch)
        if fitting is not None:
            claimed.add(fitting.storage_id)
            try:
                registration = await self._paid(
                    self.writer.register_blob(
                        fitting.storage_id,
                        blob_id=self.blob_id,
                        root_hash=metadata.metadata.root_hash(),
                        unencoded_size=metadata.unencoded_length,
                        deletable=self.deletable,
                    ),
                    epochs=0,
                )
            except ChainRevertError as exc:
                if exc.reason not in STORAGE_TAKEN_REASONS:
                    raise
                # Used meanwhile by another client of this account (or a store of this one
                # that listed it before): buy storage instead.
                log.info("an owned storage resource was taken meanwhile", reason=exc.reason)
            else:
                operation = ResourceOperation("reuseStorage", self.encoded_length)
                return registration.blob, operation, registration.cost
            finally:
                claimed.discard(fitting.storage_id)
        registration = await self._paid(
            self.writer.reserve_and_register(
                blob_id=self.blob_id,
                root_hash=metadata.metadata.root_hash(),
                unencoded_size=metadata.unencoded_length,
                encoded_size=self.encoded_length,
                epochs_ahead=epochs,
                deletable=self.deletable,
            ),
            epochs=epochs,
        )
        operation = ResourceOperation("registerFromScratch", self.encoded_length, epochs)
        return registration.blob, operation, registration.cost

    async def _owned_storage(self, *, skip: bool) -> Sequence[StorageRecord]:
        return () if skip else await self.writer.owned_storage(self.writer.address)

    def _fitting_storage(
        self, storage: Sequence[StorageRecord], epoch: int
    ) -> StorageRecord | None:
        """The smallest storage resource of this account that can carry the blob until the
        target end epoch (current, large enough, lasting long enough), if any."""
        fitting = [
            s
            for s in storage
            if s.start_epoch <= epoch < s.end_epoch
            and s.end_epoch >= self.target_end
            and s.storage_size >= self.encoded_length
        ]
        return min(fitting, key=lambda s: (s.storage_size, s.end_epoch), default=None)

    async def _paid(self, transaction: Awaitable[Registration], *, epochs: int) -> Registration:
        """A registering transaction's outcome, seen through even by a cancellation (the
        transaction may be on its way and paid for: its outcome is waited for, bounded by the
        sender's receipt timeout, so the caller learns of the object); an unpaid revert names
        the wallet and what the storage (`epochs` epochs of it; 0: the write fee) costs."""
        registering = asyncio.ensure_future(transaction)
        try:
            return await asyncio.shield(registering)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                self._registered((await registering).blob)
            raise
        except ChainRevertError as exc:
            if exc.reason == UNPAID_REASON:
                cost = storage_cost(await self.env.chain.system_info(), self.encoded_length, epochs)
                raise await insufficient_wal(self.writer, cost, exc.operation) from exc
            raise

    def _registered(self, record: BlobRecord) -> None:
        if self.on_registered is not None:
            self.on_registered(record)

    async def _upload_and_certify(
        self,
        record: BlobRecord,
        delivery: _Delivery,
        early: dict[bytes, asyncio.Task[None]],
        early_pending: bool,
    ) -> Fanout[Node, SignedMessage]:
        """Upload and certify in the current epoch, again in the next if the epoch changes.

        `early`: the deliveries started with the registration, by node ID, for the first
        attempt to take over (`early_pending`: as pending uploads).
        """
        for changes in range(MAX_EPOCH_CHANGES + 1):
            try:
                if changes:
                    early = {}
                    delivery = _Delivery(
                        self.env, self.encoded, _upload_progress(self.encoded, self.progress)
                    )
                return await self._upload_and_certify_in_epoch(
                    record, delivery, early, confirm_first=changes > 0, early_pending=early_pending
                )
            except (NotEnoughConfirmationsError, ChainRevertError) as exc:
                if changes == MAX_EPOCH_CHANGES:
                    raise
                committee = await self.env.chain.committee()
                if committee.epoch <= self.committee.epoch:
                    raise
                if record.end_epoch <= committee.epoch:
                    raise RegistrationExpiredError(
                        f"blob {self.blob_id} was registered until epoch {record.end_epoch}, "
                        f"which ended while it was being stored (the epoch is now "
                        f"{committee.epoch}); store it again for more epochs"
                    ) from exc
                log.info(
                    "the epoch changed during a store: gathering confirmations again",
                    blob_id=str(self.blob_id),
                    old_epoch=self.committee.epoch,
                    epoch=committee.epoch,
                    error=str(exc)[:300],
                )
                self.committee = committee
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _upload_and_certify_in_epoch(
        self,
        record: BlobRecord,
        delivery: _Delivery,
        early: dict[bytes, asyncio.Task[None]],
        *,
        confirm_first: bool,
        early_pending: bool = False,
    ) -> Fanout[Node, SignedMessage]:
        """Upload to every node; certify as soon as confirmations reach a quorum."""
        persistence = (
            BlobPersistence.deletable(record.object_id)
            if record.deletable
            else BlobPersistence.PERMANENT
        )
        upload = _NodeUpload(
            delivery,
            ConfirmationMessage(self.committee.epoch, self.blob_id.raw, persistence),
            record.object_id if record.deletable else None,
            early,
            confirm_first,
            early_pending,
        )
        nodes = self.env.pool.nodes(self.committee)
        requests = [NodeRequest(node, node.weight, partial(upload.run, node)) for node in nodes]
        quorum: list[tuple[int, SignedMessage]] = []
        reached = asyncio.Event()
        start = time.monotonic()

        at_quorum: list[Fanout[Node, SignedMessage]] = []

        def on_reached(so_far: Fanout[Node, SignedMessage]) -> None:
            at_quorum.append(so_far)
            quorum.extend((success.key.index, success.value) for success in so_far.successes)
            self.phases["upload"] = time.monotonic() - start
            reached.set()

        async def certify_at_quorum() -> None:
            await reached.wait()
            clock = time.monotonic()
            certificate = Certificate.from_signed_messages(quorum)
            await self._certify(record.object_id, certificate)
            self.phases["certify"] = time.monotonic() - clock

        # Every node at once: a committee has at most a few hundred members (the contract's
        # bound); each node's slots and the global budgets bound the work.
        fanning = asyncio.create_task(
            gather_weight(
                requests,
                self.committee.quorum_weight,
                max_concurrency=len(nodes),
                timeout_s=self.env.config.store_timeout_s,
                linger_s=self.env.config.linger_s,
                on_reached=on_reached,
            )
        )
        certifier = asyncio.create_task(certify_at_quorum())
        detached = False
        try:
            await asyncio.wait({fanning, certifier}, return_when=asyncio.FIRST_COMPLETED)
            if certifier.done():
                certifier.result()  # a failed certification ends the store (and the fan-out)
                if self.env.detach_tails and not fanning.done():
                    # Certified: the uploads to the slower nodes finish without the caller.
                    self.env.tails.keep(fanning)
                    detached = True
                    return at_quorum[0]
            fanout = await fanning
            if fanout.reached:
                await certifier
        finally:
            if not detached:
                fanning.cancel()
                certifier.cancel()
                await asyncio.gather(fanning, certifier, return_exceptions=True)
        if not fanout.reached:
            raise NotEnoughConfirmationsError(
                f"storage confirmations for blob {self.blob_id} (object "
                f"{format_object_id(record.object_id)}) fall short of a quorum: "
                f"{fanout.summary()}. The blob is registered but not certified; "
                + _retry_hint(record, self.committee.epoch),
                [fanout],
            )
        return fanout

    async def _certify(self, object_id: bytes, certificate: Certificate) -> None:
        """Post the certificate; a chain that cannot be reached is tried again with backoff.

        Every upload is done by then: an outage of the RPC endpoint must not waste them. If a
        retry reverts, the first attempt may have landed after all (its answer was lost): the
        blob object then says so.
        """
        backoff = self.env.config.backoff
        for attempt in range(backoff.max_retries + 1):
            try:
                await self.writer.certify_blob(
                    object_id, certificate, n_members=len(self.committee.members)
                )
                return
            except ChainUnavailableError as exc:
                if attempt == backoff.max_retries:
                    raise
                delay = backoff.delay_s(attempt) * self.env.rng.uniform(0.5, 1.0)
                log.warning(
                    "the chain did not take the certificate; retrying",
                    blob_id=str(self.blob_id),
                    error=str(exc)[:200],
                    delay_s=round(delay, 2),
                )
                await asyncio.sleep(delay)
            except ChainRevertError:
                if attempt == 0:
                    raise
                blob = await self.env.chain.get_blob(object_id)
                if blob is None or blob.certified_epoch is None:
                    raise
                return


def _upload_progress(encoded: EncodedBlob, callback: ProgressCallback | None) -> Progress:
    params, symbol_size = encoded.metadata.params, encoded.metadata.symbol_size
    pair_bytes = sum(expected_sliver_length(params, t, symbol_size) for t in SliverType)
    return Progress(callback, "upload", params.n_shards * pair_bytes)


@dataclass(frozen=True, slots=True)
class _Delivery:
    """What every node gets: the metadata, then its slivers."""

    env: ClientEnv
    encoded: EncodedBlob
    uploaded: Progress

    async def deliver(self, node: Node, *, pending: bool = False) -> None:
        """The metadata, then the slivers of the node's shards, in batches (module doc);
        `pending`: marked so, for the node to hold until it sees the registration."""
        metadata = self.encoded.metadata
        backoff, rng = self.env.config.backoff, self.env.rng
        await retrying(
            lambda: node.call(lambda c: c.put_metadata(metadata, pending=pending)), backoff, rng
        )
        n = metadata.n_shards
        pairs = [pair_of_shard(ShardIndex(s), metadata.blob_id.raw, n) for s in node.member.shards]
        slivers = [(pair, kind) for pair in pairs for kind in SliverType]
        try:
            async with asyncio.TaskGroup() as group:
                for batch in _batches(slivers, partial(self._size, metadata)):
                    group.create_task(self._put_batch(node, batch, pending))
        except BaseExceptionGroup as failures:
            raise first_error(failures) from None

    @staticmethod
    def _size(metadata: VerifiedBlobMetadataWithId, sliver: _SliverKey) -> int:
        return expected_sliver_length(metadata.params, sliver[1], metadata.symbol_size)

    async def _put_batch(self, node: Node, batch: list[_SliverKey], pending: bool) -> None:
        """Upload `batch` in one request, or each sliver alone to a node without batches."""
        if len(batch) == 1 or node.client.batch_upload is False:
            await asyncio.gather(*(self._put_sliver(node, *sliver, pending) for sliver in batch))
            return
        metadata, env = self.encoded.metadata, self.env
        size = sum(self._size(metadata, sliver) for sliver in batch)

        async def send() -> bool:
            async with node.slots, env.write_slots, env.write_bytes.hold(size):
                slivers = [self.encoded.sliver(pair, kind) for pair, kind in batch]
                outcome = await node.client.put_slivers(metadata.blob_id, slivers, pending=pending)
                return outcome is not None

        if await retrying(send, env.config.backoff, env.rng):
            self.uploaded.add(size)
        else:  # the node has no batch route: Walrus's, one sliver at a time
            await self._put_batch(node, batch, pending)

    async def _put_sliver(
        self, node: Node, pair: SliverPairIndex, sliver_type: SliverType, pending: bool
    ) -> None:
        """Upload one sliver within the node's slots and the global write budgets."""
        metadata, env = self.encoded.metadata, self.env
        size = expected_sliver_length(metadata.params, sliver_type, metadata.symbol_size)

        async def send() -> None:
            # The node's slot first: a task waiting on a slow node holds no global budget.
            async with node.slots, env.write_slots, env.write_bytes.hold(size):
                sliver = self.encoded.sliver(pair, sliver_type)  # a copy, only while in flight
                await node.client.put_sliver(metadata.blob_id, pair, sliver, pending=pending)

        await retrying(send, env.config.backoff, env.rng)
        self.uploaded.add(size)


@dataclass(frozen=True, slots=True)
class _NodeUpload:
    """Each node's delivery, then what it must sign: `expected`."""

    delivery: _Delivery
    expected: ConfirmationMessage
    object_id: bytes | None
    #: Deliveries started before this attempt, by node ID; each is taken over once.
    early: dict[bytes, asyncio.Task[None]]
    #: Ask for the confirmation before uploading (a second epoch: the node may have it all).
    confirm_first: bool = False
    #: The early deliveries were pending uploads (held by the node until the registration).
    early_pending: bool = False

    @property
    def env(self) -> ClientEnv:
        return self.delivery.env

    @property
    def encoded(self) -> EncodedBlob:
        return self.delivery.encoded

    async def run(self, node: Node) -> SignedMessage:
        """The node's delivery (the early one if it went well), then its verified confirmation."""
        if self.confirm_first:
            try:
                return await self._confirmation(node, retries=False)
            except WalrusError as exc:
                log.debug("no confirmation without an upload", node=node.index, error=str(exc))
        early = self.early.pop(node.member.node_id, None)
        delivered = False
        if early is not None:
            try:
                await early
                delivered = True
            except WalrusError as exc:
                log.debug("the early upload failed; again", node=node.index, error=str(exc))
        if not delivered:
            await self.delivery.deliver(node)
        elif self.early_pending:
            try:
                return await self._confirmation(node, retries=True)
            except (api_errors.MissingSliversError, api_errors.MissingMetadataError) as exc:
                # What the node held is gone (a restart, its cache's age limit): again, stored.
                log.debug("the pending upload was lost; again", node=node.index, error=str(exc))
                await self.delivery.deliver(node)
        return await self._confirmation(node, retries=True)

    async def _confirmation(self, node: Node, *, retries: bool) -> SignedMessage:
        """The node's confirmation, verified; asked again while the node is an epoch behind.

        `retries`: also retry the answers `retrying` retries (NOT_REGISTERED, overload).
        """
        blob_id, backoff, rng = self.encoded.metadata.blob_id, self.env.config.backoff, self.env.rng

        # Walrus's long poll: a node that has not seen the registration yet waits for it.
        long_poll = self.env.config.confirmation_long_poll_ms
        wait = (
            ConfirmationWait(wait_for_registration=True, wait_ms=long_poll) if long_poll else None
        )

        async def confirm() -> SignedMessage:
            return await node.call(lambda c: c.get_confirmation(blob_id, self.object_id, wait=wait))

        for attempt in range(backoff.max_retries + 1):
            signed = await (retrying(confirm, backoff, rng) if retries else confirm())
            behind = decode_message(signed.serialized_message).epoch < self.expected.epoch
            if not behind or attempt == backoff.max_retries:
                break
            # The node has not seen the new epoch yet: it signs for it once it has.
            await asyncio.sleep(backoff.delay_s(attempt) * rng.uniform(0.5, 1.0))
        await asyncio.to_thread(signed.verify, node.member.public_key, self.expected)
        return signed


async def _cancel(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel the deliveries no attempt took over, and wait until they have stopped."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: a failure no attempt waited for is not an error


#: A sliver: its pair and axis.
_SliverKey = tuple[SliverPairIndex, SliverType]
#: Bytes of slivers sent to a node in one request (walruspy's batch route). Large enough that a
#: small blob's slivers are one request per node, small enough that a large blob's still go over
#: several connections at once.
BATCH_BYTES = 2 << 20


def _batches(
    slivers: list[_SliverKey], size: Callable[[_SliverKey], int]
) -> list[list[_SliverKey]]:
    """`slivers` in order, cut into batches of at most `BATCH_BYTES` (a larger sliver alone)."""
    batches: list[list[_SliverKey]] = []
    total = BATCH_BYTES
    for sliver in slivers:
        length = size(sliver)
        if total + length > BATCH_BYTES:
            batches.append([])
            total = 0
        batches[-1].append(sliver)
        total += length
    return batches


def _never_registered(verified: VerifiedStatus | None) -> bool:
    """Whether nodes of f+1 shards know no registration of the blob, so that this account owns
    no object of it to reuse or extend (step 2 of the module doc)."""
    return verified is not None and isinstance(verified.status, Nonexistent)


def _retry_hint(record: BlobRecord, epoch: int) -> str:
    """What storing the blob again will cost: a registration is reused only while it covers
    the epochs asked for (`_register`), so the hint names how many that is."""
    left = record.end_epoch - epoch
    if left <= 0:
        return "its registration has ended, so storing it again registers it anew"
    return (
        f"storing it again in epoch {epoch} with --epochs {left} or fewer reuses the"
        f" registration (it ends at epoch {record.end_epoch}); a later or longer store"
        " registers it anew"
    )
