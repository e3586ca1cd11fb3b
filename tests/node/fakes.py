"""A test double of the control plane (`ChainWriter`) for the node's tests, in memory.

It keeps what the System contract keeps for a fixed committee (epoch, blob objects, events) and
emits Walrus's events in order, one block per transaction, so the node's event processor, blob
sync, GC and epoch driver can be exercised without an EVM. Certificates given to `certify_blob`
and `invalidate_blob_id` are verified against the committee like the contract does. Test helpers
(`register`, `certify`, `extend`, `delete`, `invalidate`, `advance_time`) skip payments and
certificates. `fail_reads` makes the next reads fail, as an unreachable RPC endpoint would.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from walruspy.chain.api import (
    BlobAttribute,
    BlobRecord,
    ChainReorganizedError,
    ChainRevertError,
    ChainUnavailableError,
    ChallengeState,
    EpochCommittees,
    Registration,
    SharedBlobRecord,
    StorageRecord,
    SystemInfo,
)
from walruspy.chain.events import (
    BlobCertified,
    BlobDeleted,
    BlobRegistered,
    ChainEvent,
    ChallengeCertified,
    ChallengeScheduled,
    ChallengeStart,
    EpochChangeDone,
    EpochChangeStart,
    EventCursor,
    EventId,
    InvalidBlobId,
)
from walruspy.core.blob_id import BlobId
from walruspy.core.certificates import (
    Certificate,
    CertifiedMessage,
    Threshold,
    verify_certificate,
)
from walruspy.core.committee import Committee, CommitteeMember
from walruspy.core.errors import VerificationError
from walruspy.core.messages import (
    ChallengeAttestationMessage,
    ConfirmationMessage,
    InvalidBlobIdMessage,
)

ADDRESS = "0x" + "11" * 20


def ChallengeRevert(reason: str) -> ChainRevertError:
    """A revert of Challenges.vy with `reason`."""
    return ChainRevertError(reason, "certify_challenge")


#: The address that holds shared blob objects (SharedBlobs.vy's, on a real chain).
SHARED_BLOBS_ADDRESS = "0x" + "5b" * 20


@dataclass(frozen=True, slots=True)
class FakeSnapshot:
    """A `FakeChain` as it was: the next block, the event count, the blobs and the epoch."""

    next_block: int
    events: int
    blobs: dict[bytes, BlobRecord]
    epoch: int


class FakeChain:
    """An in-memory `ChainWriter` with a fixed committee."""

    def __init__(
        self, members: Sequence[CommitteeMember], n_shards: int, epoch_duration_s: int = 3600
    ) -> None:
        self.members = tuple(members)
        self.n_shards = n_shards
        self.epoch = 1
        self.epoch_duration_s = epoch_duration_s
        self.now = 1_000_000
        self.epoch_started_at = self.now
        self.events_log: list[ChainEvent] = []
        self.blobs: dict[bytes, BlobRecord] = {}
        #: Attributes.vy's records: a blob's pairs in order (absent: no attribute).
        self.attributes: dict[bytes, dict[str, str]] = {}
        #: Storage resources owned unwrapped (given back by deletions), by storage ID.
        self.storage: dict[bytes, StorageRecord] = {}
        #: SharedBlobs.vy's records, by shared blob ID.
        self.shared: dict[bytes, SharedBlobRecord] = {}
        self._next_block = 1
        # Block hashes depend on the fork: `revert` starts a new one, so blocks mined again at
        # the same heights get new hashes, as after a reorganisation.
        self._fork = 0
        self._block_hashes: dict[int, bytes] = {}
        self._objects = itertools.count(1)
        self.fail_reads = 0
        self.previous_members: tuple[CommitteeMember, ...] | None = None
        self.changing = False
        self.advance_calls = 0
        self.sync_done_reports: list[int] = []
        self._epoch_changed = asyncio.Event()
        #: epoch -> (seed block, seed) and (epoch, node ID) -> blobs checked.
        self._challenges: dict[int, tuple[int, bytes]] = {}
        self._challenge_passed: dict[tuple[int, bytes], int] = {}
        #: `watch_heads` callbacks, called for each block mined.
        self._head_watchers: list[Callable[[], None]] = []
        self.push_heads = True
        self._emit_epoch_start()

    # --- internals ------------------------------------------------------------------------

    def _check_up(self) -> None:
        if self.fail_reads > 0:
            self.fail_reads -= 1
            raise ChainUnavailableError("fake chain: unreachable")

    def _event_ids(self, count: int) -> list[EventId]:
        block = self._next_block
        self._next_block += 1
        for on_head in list(self._head_watchers):
            on_head()  # rings now; the watcher reads the event the caller appends next
        tx = hashlib.blake2b(block.to_bytes(8, "little"), digest_size=32).digest()
        block_hash = hashlib.blake2b(b"%d/%d" % (self._fork, block), digest_size=32).digest()
        self._block_hashes[block] = block_hash
        return [EventId(block, i, tx, block_hash) for i in range(count)]

    def snapshot(self) -> FakeSnapshot:
        """The chain as it is now, for `revert` (as `evm_snapshot`)."""
        return FakeSnapshot(self._next_block, len(self.events_log), dict(self.blobs), self.epoch)

    def revert(self, snapshot: FakeSnapshot) -> None:
        """Drop every block mined since `snapshot`; blocks mined next get new hashes."""
        self._next_block = snapshot.next_block
        del self.events_log[snapshot.events :]
        self.blobs = dict(snapshot.blobs)
        self.epoch = snapshot.epoch
        for block in [b for b in self._block_hashes if b >= snapshot.next_block]:
            del self._block_hashes[block]
        self._fork += 1

    def _emit_epoch_start(self) -> None:
        start, done = self._event_ids(2)
        self.events_log += [EpochChangeStart(start, self.epoch), EpochChangeDone(done, self.epoch)]

    @property
    def event_count(self) -> int:
        """Events emitted so far."""
        return len(self.events_log)

    # --- ChainReader ----------------------------------------------------------------------

    async def system_info(self) -> SystemInfo:
        self._check_up()
        return SystemInfo(
            chain_id=31337,
            system_address=ADDRESS,
            wal_address=ADDRESS,
            epoch=self.epoch,
            n_shards=self.n_shards,
            epoch_duration_s=self.epoch_duration_s,
            epoch_started_at=self.epoch_started_at,
            max_epochs_ahead=53,
            storage_price_per_unit_size=1,
            write_price_per_unit_size=1,
            total_capacity_size=1 << 40,
            used_capacity_size=0,
        )

    async def committee(self) -> Committee:
        self._check_up()
        return Committee(self.epoch, self.n_shards, self.members)

    async def epoch_committees(self) -> EpochCommittees:
        self._check_up()
        current = Committee(self.epoch, self.n_shards, self.members)
        previous = None
        if self.previous_members is not None:
            previous = Committee(self.epoch - 1, self.n_shards, self.previous_members)
        return EpochCommittees(current, previous, self.changing)

    async def get_blob(self, object_id: bytes) -> BlobRecord | None:
        self._check_up()
        return self.blobs.get(object_id)

    async def blob_attribute(self, object_id: bytes) -> BlobAttribute | None:
        self._check_up()
        pairs = self.attributes.get(object_id)
        if pairs is None or object_id not in self.blobs:
            return None
        return tuple(pairs.items())

    async def shared_blob(self, shared_blob_id: bytes) -> SharedBlobRecord | None:
        self._check_up()
        return self.shared.get(shared_blob_id)

    async def owned_blobs(self, owner: str) -> Sequence[BlobRecord]:
        self._check_up()
        return [b for b in self.blobs.values() if b.owner == owner]

    async def events(self, cursor: EventCursor, limit: int) -> Sequence[ChainEvent]:
        self._check_up()
        found_hash = self._block_hashes.get(cursor.block_number)
        if cursor.block_hash and found_hash != cursor.block_hash:
            raise ChainReorganizedError(cursor.block_number, "fake chain: block replaced")
        found = [e for e in self.events_log if cursor.admits(e.event_id)]
        return found[:limit]

    async def watch_heads(self, on_head: Callable[[], None], ws_url: str | None = None) -> None:
        if not self.push_heads:
            return  # as an endpoint without subscriptions
        self._head_watchers.append(on_head)
        try:
            await asyncio.Event().wait()
        finally:
            self._head_watchers.remove(on_head)

    async def blob_events(self, blob_id: BlobId) -> Sequence[ChainEvent]:
        self._check_up()
        return [e for e in self.events_log if getattr(e, "blob_id", None) == blob_id]

    async def chain_time(self) -> int:
        self._check_up()
        return self.now

    # --- test helpers (no payment, no certificate) ----------------------------------------

    def register(
        self,
        blob_id: BlobId,
        size: int = 1000,
        epochs_ahead: int = 5,
        deletable: bool = False,
        storage: StorageRecord | None = None,
    ) -> bytes:
        """Register a blob object (on new storage of `size` bytes, or on `storage`); returns its
        object ID."""
        object_id = hashlib.blake2b(b"obj%d" % next(self._objects), digest_size=32).digest()
        if storage is None:
            storage = StorageRecord(object_id, ADDRESS, self.epoch, self.epoch + epochs_ahead, size)
        end = storage.end_epoch
        self.blobs[object_id] = BlobRecord(
            object_id, ADDRESS, blob_id, size, 1, self.epoch, None, storage, deletable
        )
        (event_id,) = self._event_ids(1)
        self.events_log.append(
            BlobRegistered(event_id, self.epoch, blob_id, size, 1, end, deletable, object_id)
        )
        return object_id

    def certify(self, object_id: bytes) -> None:
        """Certify a registered blob object."""
        blob = self.blobs[object_id]
        if blob.certified_epoch is not None:
            raise ChainRevertError("already certified", "certify_blob")
        self.blobs[object_id] = replace(blob, certified_epoch=self.epoch)
        (event_id,) = self._event_ids(1)
        self.events_log.append(
            BlobCertified(
                event_id, self.epoch, blob.blob_id, blob.end_epoch, blob.deletable, object_id, False
            )
        )

    def extend(self, object_id: bytes, epochs: int) -> None:
        """Extend a certified blob object."""
        blob = self.blobs[object_id]
        storage = replace(blob.storage, end_epoch=blob.end_epoch + epochs)
        self.blobs[object_id] = replace(blob, storage=storage)
        (event_id,) = self._event_ids(1)
        self.events_log.append(
            BlobCertified(
                event_id,
                self.epoch,
                blob.blob_id,
                storage.end_epoch,
                blob.deletable,
                object_id,
                True,
            )
        )

    def delete(self, object_id: bytes) -> None:
        """Delete a deletable blob object."""
        blob = self.blobs.pop(object_id)
        if not blob.deletable:
            raise ChainRevertError("not deletable", "delete_blob")
        (event_id,) = self._event_ids(1)
        self.events_log.append(
            BlobDeleted(
                event_id,
                self.epoch,
                blob.blob_id,
                blob.end_epoch,
                object_id,
                blob.certified_epoch is not None,
            )
        )

    def invalidate(self, blob_id: BlobId) -> None:
        """Mark a blob ID invalid."""
        (event_id,) = self._event_ids(1)
        self.events_log.append(InvalidBlobId(event_id, self.epoch, blob_id))

    def advance_time(self, seconds: int) -> None:
        """Move the chain clock forward."""
        self.now += seconds

    def next_epoch(self, members: Sequence[CommitteeMember] | None = None) -> None:
        """Start the next epoch now (as advance_epoch would once the time has come).

        With `members`, the committee changes to them: the old one becomes the previous
        committee, and EpochChangeDone follows only once members holding 2f + 1 shards of the
        new committee have called `epoch_sync_done` (as under staking).
        """
        self.epoch += 1
        self.epoch_started_at = self.now
        if members is None:
            self._emit_epoch_start()
        else:
            self.previous_members = self.members
            self.members = tuple(members)
            self._reporters: set[str] = set()
            self.changing = True
            self._change_done = asyncio.Event()
            (start,) = self._event_ids(1)
            self.events_log.append(EpochChangeStart(start, self.epoch))
        self._epoch_changed.set()
        self._epoch_changed = asyncio.Event()

    async def wait_change_done(self) -> None:
        """Wait for the EpochChangeDone of the current epoch (at once if it came)."""
        if self.changing:
            await self._change_done.wait()

    def _sync_reported(self, reporter: str) -> None:
        if not self.changing:
            return
        self._reporters.add(reporter)
        committee = Committee(self.epoch, self.n_shards, self.members)
        weight = sum(m.weight for m in self.members if m.network_address in self._reporters)
        if committee.is_quorum(weight):
            self.changing = False
            self._change_done.set()
            (done,) = self._event_ids(1)
            self.events_log.append(EpochChangeDone(done, self.epoch))

    async def wait_for_epoch(self, epoch: int) -> None:
        """Wait until the chain reaches `epoch`."""
        while self.epoch < epoch:
            await self._epoch_changed.wait()

    # --- ChainWriter ----------------------------------------------------------------------

    @property
    def address(self) -> str:
        return ADDRESS

    async def wal_balance(self, owner: str | None = None) -> int:
        return 10**18

    async def reserve_and_register(
        self,
        *,
        blob_id: BlobId,
        root_hash: bytes,
        unencoded_size: int,
        encoded_size: int,
        epochs_ahead: int,
        deletable: bool,
    ) -> Registration:
        storage = StorageRecord(
            next(self._objects).to_bytes(32, "big"),
            ADDRESS,
            self.epoch,
            self.epoch + epochs_ahead,
            encoded_size,
        )
        object_id = self.register(blob_id, unencoded_size, epochs_ahead, deletable, storage)
        return Registration(self.blobs[object_id], encoded_size, b"\x00" * 32)

    async def register_blob(
        self,
        storage_id: bytes,
        *,
        blob_id: BlobId,
        root_hash: bytes,
        unencoded_size: int,
        deletable: bool,
    ) -> Registration:
        storage = self.storage.pop(storage_id, None)
        if storage is None:
            raise ChainRevertError("unknown storage", "register_blob")
        object_id = self.register(blob_id, unencoded_size, 0, deletable, storage)
        return Registration(self.blobs[object_id], 0, b"\x00" * 32)

    async def owned_storage(self, owner: str) -> Sequence[StorageRecord]:
        self._check_up()
        return [s for s in self.storage.values() if s.owner == owner]

    async def _verified(
        self, certificate: Certificate, threshold: Threshold, operation: str
    ) -> CertifiedMessage:
        """The certificate checked as the contract checks it: a failure is a revert."""
        try:
            return verify_certificate(await self.committee(), certificate, threshold)
        except VerificationError as exc:
            raise ChainRevertError(str(exc), operation) from exc

    async def certify_blob(
        self, object_id: bytes, certificate: Certificate, *, n_members: int | None = None
    ) -> None:
        del n_members  # the fake checks the certificate against its committee
        blob = self.blobs.get(object_id)
        if blob is None:
            raise ChainRevertError("no such blob", "certify_blob")
        certified = await self._verified(certificate, "quorum", "certify_blob")
        message = certified.message
        if not isinstance(message, ConfirmationMessage) or message.blob_id != blob.blob_id.raw:
            raise ChainRevertError("certificate for another message", "certify_blob")
        self.certify(object_id)

    async def extend_blob(self, object_id: bytes, extended_epochs: int) -> None:
        self.extend(object_id, extended_epochs)

    async def delete_blob(self, object_id: bytes) -> StorageRecord:
        storage = self.blobs[object_id].storage
        self.delete(object_id)
        self.storage[storage.storage_id] = storage
        return storage

    def _owned_attribute(self, object_id: bytes, operation: str) -> dict[str, str] | None:
        if object_id not in self.blobs:
            raise ChainRevertError("unknown blob", operation)
        return self.attributes.get(object_id)

    async def set_blob_attribute_pairs(
        self, object_id: bytes, pairs: Sequence[tuple[str, str]]
    ) -> None:
        current = dict(self._owned_attribute(object_id, "insert_or_update_pairs") or {})
        for key, value in pairs:
            current.pop(key, None)  # an update moves the key to the end, as VecMap does
            current[key] = value
        self.attributes[object_id] = current

    async def remove_blob_attribute_pairs(self, object_id: bytes, keys: Sequence[str]) -> None:
        current = self._owned_attribute(object_id, "remove_pairs")
        if current is None:
            raise ChainRevertError("no attribute", "remove_pairs")
        kept = dict(current)
        for key in keys:
            if key not in kept:
                raise ChainRevertError("unknown key", "remove_pairs")
            del kept[key]
        self.attributes[object_id] = kept

    async def remove_blob_attribute(self, object_id: bytes) -> None:
        if self._owned_attribute(object_id, "remove_attribute") is None:
            raise ChainRevertError("no attribute", "remove_attribute")
        del self.attributes[object_id]

    async def burn_blob(self, object_id: bytes) -> None:
        if self.blobs.pop(object_id, None) is None:
            raise ChainRevertError("unknown blob", "burn_blob")

    async def share_blob(self, object_id: bytes, amount: int) -> bytes:
        if object_id not in self.blobs:
            raise ChainRevertError("unknown blob", "share")
        await self.transfer_blob(object_id, SHARED_BLOBS_ADDRESS)
        shared_blob_id = next(self._objects).to_bytes(32, "big")
        self.shared[shared_blob_id] = SharedBlobRecord(shared_blob_id, object_id, amount)
        return shared_blob_id

    async def fund_shared_blob(self, shared_blob_id: bytes, amount: int) -> None:
        record = self.shared.get(shared_blob_id)
        if record is None:
            raise ChainRevertError("unknown shared blob", "fund")
        self.shared[shared_blob_id] = replace(record, funds=record.funds + amount)

    async def extend_shared_blob(self, shared_blob_id: bytes, extended_epochs: int) -> None:
        record = self.shared.get(shared_blob_id)
        if record is None:
            raise ChainRevertError("unknown shared blob", "extend")
        blob = self.blobs[record.blob_object_id]
        cost = -(-blob.storage.storage_size // (1 << 20)) * extended_epochs  # price 1 per unit
        if cost > record.funds:
            raise ChainRevertError("insufficient funds", "extend")
        self.extend(record.blob_object_id, extended_epochs)
        self.shared[shared_blob_id] = replace(record, funds=record.funds - cost)

    async def transfer_blob(self, object_id: bytes, to: str) -> None:
        record = self.blobs[object_id]
        self.blobs[object_id] = replace(record, owner=to)

    async def invalidate_blob_id(
        self, certificate: Certificate, *, n_members: int | None = None
    ) -> BlobId:
        del n_members  # the fake checks the certificate against its committee
        certified = await self._verified(certificate, "validity", "invalidate_blob_id")
        message = certified.message
        if not isinstance(message, InvalidBlobIdMessage):
            raise ChainRevertError("not an invalid-blob message", "invalidate_blob_id")
        blob_id = BlobId(message.blob_id)
        self.invalidate(blob_id)
        return blob_id

    async def advance_epoch(self) -> bool:
        self._check_up()
        self.advance_calls += 1
        if self.now < self.epoch_started_at + self.epoch_duration_s:
            return False
        self.next_epoch()
        return True

    async def epoch_step_due_at(self) -> int | None:
        self._check_up()
        return self.epoch_started_at + self.epoch_duration_s

    # --- storage challenges (Challenges.vy's rules, without its clock: the window is open) ---

    async def challenge_state(self, epoch: int) -> ChallengeState:
        self._check_up()
        seed_block, seed = self._challenges.get(epoch, (0, b""))
        passed = {n: k for (e, n), k in self._challenge_passed.items() if e == epoch}
        return ChallengeState(epoch, seed_block, seed, bool(seed), self.epoch_started_at, passed)

    async def schedule_challenge(self) -> bool:
        self._check_up()
        if self.epoch in self._challenges:
            return False
        self._challenges[self.epoch] = (self._next_block, b"")
        (event_id,) = self._event_ids(1)
        self.events_log.append(ChallengeScheduled(event_id, self.epoch, self._next_block))
        return True

    async def start_challenge(self) -> bool:
        self._check_up()
        seed_block, seed = self._challenges.get(self.epoch, (0, b""))
        if not seed_block or seed:
            return False
        seed = hashlib.blake2b(
            b"challenge%d/%d" % (self.epoch, seed_block), digest_size=32
        ).digest()
        self._challenges[self.epoch] = (seed_block, seed)
        (event_id,) = self._event_ids(1)
        self.events_log.append(ChallengeStart(event_id, self.epoch, seed))
        return True

    async def certify_challenge(
        self,
        node_id: bytes,
        blobs_checked: int,
        certificate: Certificate,
        *,
        n_members: int | None = None,
    ) -> None:
        del n_members  # the fake checks the certificate against its committee
        self._check_up()
        _, seed = self._challenges.get(self.epoch, (0, b""))
        if not seed:
            raise ChallengeRevert("challenge not started")
        if (self.epoch, node_id) in self._challenge_passed:
            raise ChallengeRevert("already certified")
        if node_id not in {m.node_id for m in self.members}:
            raise ChallengeRevert("not a committee member")
        certified = await self._verified(certificate, "quorum", "certify_challenge")
        expected = ChallengeAttestationMessage(self.epoch, node_id, seed, blobs_checked)
        if certified.message != expected:
            raise ChallengeRevert("certificate for another message")
        self._challenge_passed[(self.epoch, node_id)] = blobs_checked
        (event_id,) = self._event_ids(1)
        self.events_log.append(ChallengeCertified(event_id, self.epoch, node_id, blobs_checked))

    async def epoch_sync_done(self, epoch: int, reporter: str = "") -> bool:
        self._check_up()
        self.sync_done_reports.append(epoch)
        if epoch == self.epoch:
            self._sync_reported(reporter)
        return True

    def for_node(self, address: str) -> NodeChain:
        """This chain as the node at `address` uses it (its reports name it)."""
        return NodeChain(self, address)


class NodeChain:
    """One node's handle on a `FakeChain`: everything delegates; sync reports carry its address."""

    def __init__(self, chain: FakeChain, address: str) -> None:
        self._chain = chain
        self._address = address

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chain, name)

    async def epoch_sync_done(self, epoch: int) -> bool:
        return await self._chain.epoch_sync_done(epoch, self._address)
