"""Shard sync as pure rules: which shards move at an epoch change, and how a gained one is filled.

Theory of operation (spec/walrus-system.md 2.2, 2.7, 3.1 and 3.5; Walrus `common/utils.rs`
`ShardDiffCalculator`, `node/epoch_change/plan.rs`, `node/storage/shard.rs` (`ShardStatus`,
`ShardSyncProgress`, `sync_shard_before_epoch_internal`, `check_and_record_missing_blobs`),
`node/storage.rs` `handle_sync_shard_request` and `node/shard_sync.rs`). This is the "decide" half
of shard sync: `decide_epoch_change` takes the committees of epochs e-1 and e and the statuses of
the shards this node stores, and returns the records to write and the actions to perform;
`next_request` and `advance` walk one gained shard through its sync, batch by batch, from a
progress record the driver persists with each batch; `decide_after_failure` says when to stop
asking the previous owner and recover blob by blob. Nothing here reads a clock, a store or the
network: times and committees come in as arguments.

The rules.

Shard diff, at `EpochChangeStart(e)`:
- D1 `gained` = the shards this node owns in e and did not own in e-1, each with its owner in e-1
  (its "previous owner"), or None when e-1 had no committee (the first committee: nothing was
  certified before it, so there is nothing to fetch). `lost` = owned in e-1, not in e. `kept` =
  owned in both. So gained ∪ kept = the node's shards in e, lost ∪ kept = its shards in e-1.
- D2 A stored shard may be deleted once no committee of the last two epochs (e-1, e) assigns it
  to this node: a lost shard stays through epoch e as its new owner's sync source, and goes at
  the next epoch change unless the node gains it back.

Lifecycle (Walrus `ShardStatus`, one persisted record per stored shard; `can_transition`):
- L1 gained with a previous owner -> ACTIVE_SYNC with fresh progress, `StartShardSync` from that
  owner; a gained shard already ACTIVE is left alone (Walrus: the event is a replay after the
  sync finished); any other stored status (a stale copy) is synced afresh.
- L2 gained in the first committee -> ACTIVE at once (`ActivateShard`).
- L3 lost and stored -> LOCKED_TO_MOVE (`LockShard`): no more writes, still served to the new
  owner; a sync still running on it stops and its progress goes.
- L4 kept: an ACTIVE or ACTIVE_RECOVER shard stays as it is. A kept shard in any other state (a
  sync from an earlier epoch that has not finished, or no record at all) -> ACTIVE_RECOVER
  (`RecoverShard`): its previous owner lost it at the last epoch change and may delete it now
  (D2), so the rest comes blob by blob. (Walrus restarts such a sync against the committee of
  e-1, where this node itself is the owner; recovering is what that amounts to.)
- L5 stored but deletable by D2 -> the record and the data go (`DeleteShard`).
- L6 after the transfer, ACTIVE_SYNC -> ACTIVE if no blob is pending recovery, else
  ACTIVE_RECOVER, then ACTIVE when recovery is done (`status_after_transfer`).
- L7 on restart, an ACTIVE_SYNC shard whose progress is of the current epoch resumes from it,
  and an ACTIVE_RECOVER one (the transfer fell back to recovery, keeping its progress) goes back to
  ACTIVE_SYNC and resumes the transfer (Walrus `restart_shard_sync_always_retry_transfer_first`,
  on by default): a transfer is much cheaper than recovery, and the source still holds the shard.

The sync of one gained shard (`ShardSyncProgress`, `next_request`, `advance`):
- P1 One axis at a time, primary then secondary; on each axis in increasing blob-ID order (blob IDs
  compared as bytes: Walrus's RocksDB key order, and the order of the IDs as big-endian integers).
- P2 Each request starts right after the last blob ID synced on the axis (at the all-zero ID
  first) and asks for `batch_size` slivers. Walrus's source answers the slivers it holds of its
  blobs certified before e, from the start on, exactly that many unless it runs out. (Walrus's
  requester starts each request at the next blob it knows of instead, and stops after the last
  one; it fetches the same slivers, less those of blobs certified after the last it knows of.)
- P3 A non-empty answer moves the progress to its last blob ID; an empty one (or one ending at
  the all-ones ID, which has no successor) ends the axis. A short answer does not: a source may
  stop early to bound an answer's bytes (ours does at 64 MiB), so only an empty answer proves
  there is nothing more. This costs one empty request per axis. An answer is checked first
  (`SyncBatch`): strictly increasing blob IDs, none before the start, no more than asked.
- P4 The driver stores a batch's slivers and the new progress in one transaction, so a restart
  resumes exactly after the last stored batch; a batch lost in a crash was not stored and is
  fetched again, so every sliver is stored once.
- P5 Blobs this node knows as certified before e that lie in the range a batch covered but are not
  in it are missing (`missing_blobs`): they are queued for recovery in the same transaction, and
  each is found by exactly one batch because consecutive batches cover adjacent ranges.

Falling back to recovery (`decide_after_failure`; Walrus `ShardSyncHandler::handle_sync_error`):
- F1 A source that cannot be reached, has not reached epoch e yet, or does not yet see this node
  as the shard's owner is asked again after the driver's backoff (Walrus: 60 s doubling to 600 s).
- F2 Once no batch has been stored for longer than the retry window (Walrus
  `shard_sync_retry_switch_to_recovery_interval_secs`, 12 h), or at once on any other failure (a
  refusal, an invalid answer), the shard goes ACTIVE_RECOVER and `blobs_to_recover` lists what
  the transfer did not bring.
"""

from __future__ import annotations

import bisect
import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from walruspy.core.apportionment import NODE_ID_BYTES, ShardAssignment
from walruspy.core.bcs import Reader, Writer
from walruspy.core.errors import InvalidInputError
from walruspy.core.messages import (
    BLOB_ID_BYTES,
    DEFAULT_MAX_SYNC_SLIVER_COUNT,
    SyncShardRefusal,
    SyncShardRefused,
    SyncShardRequest,
)
from walruspy.core.types import ShardIndex, SliverType
from walruspy.node.store_records import RECORD_VERSION, ShardStatus, decode_record

#: Walrus `sliver_count_per_sync_request`: slivers asked for per request. A batch is stored in one
#: transaction, so this bounds the write (1000 slivers of a few KiB to a few MiB each).
DEFAULT_SYNC_BATCH_SIZE = 1000
#: The most a request may ask for: what a Walrus source serves by default; more is refused.
MAX_SYNC_BATCH_SIZE = DEFAULT_MAX_SYNC_SLIVER_COUNT
#: Walrus `shard_sync_retry_switch_to_recovery_interval_secs`: 12 hours without a stored batch.
DEFAULT_RETRY_WINDOW_S = 12 * 3600.0
#: The first and the last blob ID in sync order.
ZERO_BLOB_ID = bytes(BLOB_ID_BYTES)
MAX_BLOB_ID = b"\xff" * BLOB_ID_BYTES

_MAX_U16 = (1 << 16) - 1
_MAX_U32 = (1 << 32) - 1
_AXES = (SliverType.PRIMARY, SliverType.SECONDARY)
#: Record tags of the axis being synced; DONE = both axes synced.
_STAGE_TAGS = {SliverType.PRIMARY: 0, SliverType.SECONDARY: 1, None: 2}
_STAGES_BY_TAG = {tag: stage for stage, tag in _STAGE_TAGS.items()}


def _check_shard(shard: int) -> None:
    if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard <= _MAX_U16:
        raise ValueError(f"a shard index is a u16, got {shard!r}")


def _check_node_id(node_id: bytes, what: str = "node ID") -> None:
    if not isinstance(node_id, bytes) or len(node_id) != NODE_ID_BYTES:
        raise ValueError(f"{what} must be {NODE_ID_BYTES} bytes, got {node_id!r:.80}")


def _check_blob_id(blob_id: bytes, what: str) -> None:
    if not isinstance(blob_id, bytes) or len(blob_id) != BLOB_ID_BYTES:
        raise ValueError(f"{what} must be {BLOB_ID_BYTES} bytes, got {blob_id!r:.80}")


def _check_epoch(epoch: int, minimum: int = 0) -> None:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not minimum <= epoch <= _MAX_U32:
        raise ValueError(f"an epoch is a u32 of at least {minimum}, got {epoch!r}")


def _check_sorted_shards(shards: tuple[ShardIndex, ...], what: str) -> None:
    for shard in shards:
        _check_shard(shard)
    if list(shards) != sorted(set(shards)):
        raise ValueError(f"{what} must be strictly increasing, got {shards!r}")


# --- D: the shard diff -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GainedShard:
    """A shard this node gains, and its owner in the previous committee (None: first committee)."""

    shard: ShardIndex
    previous_owner: bytes | None

    def __post_init__(self) -> None:
        _check_shard(self.shard)
        if self.previous_owner is not None:
            _check_node_id(self.previous_owner, "previous owner")


@dataclass(frozen=True, slots=True)
class ShardDiff:
    """Rule D1: the shards gained, lost and kept at an epoch change, each in increasing order."""

    gained: tuple[GainedShard, ...]
    lost: tuple[ShardIndex, ...]
    kept: tuple[ShardIndex, ...]

    def __post_init__(self) -> None:
        for name in ("gained", "lost", "kept"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not all(isinstance(g, GainedShard) for g in self.gained):
            raise TypeError("gained holds GainedShard values")
        _check_sorted_shards(self.gained_shards, "gained shards")
        _check_sorted_shards(self.lost, "lost shards")
        _check_sorted_shards(self.kept, "kept shards")
        gained, lost, kept = set(self.gained_shards), set(self.lost), set(self.kept)
        if gained & lost or gained & kept or lost & kept:
            raise ValueError("a shard is in at most one of gained, lost and kept")

    @property
    def gained_shards(self) -> tuple[ShardIndex, ...]:
        """The gained shard indices."""
        return tuple(g.shard for g in self.gained)

    @property
    def owned_now(self) -> frozenset[ShardIndex]:
        """The node's shards in the new committee: gained ∪ kept."""
        return frozenset(self.gained_shards) | frozenset(self.kept)

    @property
    def owned_before(self) -> frozenset[ShardIndex]:
        """The node's shards in the previous committee: lost ∪ kept."""
        return frozenset(self.lost) | frozenset(self.kept)


def owner_of(committee: ShardAssignment, shard: ShardIndex) -> bytes | None:
    """The node ID that `committee` assigns `shard` to, or None (empty committee, no such shard)."""
    for member in committee.members:
        if shard in member.shards:
            return member.node_id
    return None


def shard_diff(previous: ShardAssignment, current: ShardAssignment, node_id: bytes) -> ShardDiff:
    """Rule D1 for the node `node_id` between the committees of epochs e-1 and e.

    `previous` is empty before the first committee; otherwise both hold the same shards (a
    `ValueError` if not: the shard count never changes).
    """
    _check_node_id(node_id)
    if previous.members and previous.n_shards != current.n_shards:
        raise ValueError(f"{previous.n_shards} shards before, {current.n_shards} now")
    before = set(previous.shards_of(node_id) or ())
    now = set(current.shards_of(node_id) or ())
    owners = {shard: m.node_id for m in previous.members for shard in m.shards}
    gained = tuple(GainedShard(shard, owners.get(shard)) for shard in sorted(now - before))
    return ShardDiff(gained, tuple(sorted(before - now)), tuple(sorted(before & now)))


def may_delete(
    shard: ShardIndex, previous: ShardAssignment, current: ShardAssignment, node_id: bytes
) -> bool:
    """Rule D2: neither the committee of e-1 nor that of e assigns `shard` to `node_id`."""
    _check_shard(shard)
    _check_node_id(node_id)
    return all(shard not in (c.shards_of(node_id) or ()) for c in (previous, current))


# --- L: the lifecycle of a stored shard --------------------------------------------------------

#: Every status change the rules make; None is "no record" (not stored, or deleted).
_TRANSITIONS: Mapping[ShardStatus | None, frozenset[ShardStatus | None]] = {
    None: frozenset({ShardStatus.ACTIVE, ShardStatus.ACTIVE_SYNC, ShardStatus.ACTIVE_RECOVER}),
    ShardStatus.NONE: frozenset(
        {
            ShardStatus.ACTIVE,
            ShardStatus.ACTIVE_SYNC,
            ShardStatus.ACTIVE_RECOVER,
            ShardStatus.LOCKED_TO_MOVE,
            None,
        }
    ),
    ShardStatus.ACTIVE: frozenset({ShardStatus.LOCKED_TO_MOVE, None}),
    ShardStatus.ACTIVE_SYNC: frozenset(
        {
            ShardStatus.ACTIVE,
            ShardStatus.ACTIVE_SYNC,
            ShardStatus.ACTIVE_RECOVER,
            ShardStatus.LOCKED_TO_MOVE,
            None,
        }
    ),
    ShardStatus.ACTIVE_RECOVER: frozenset(
        {ShardStatus.ACTIVE, ShardStatus.ACTIVE_SYNC, ShardStatus.LOCKED_TO_MOVE, None}
    ),
    ShardStatus.LOCKED_TO_MOVE: frozenset(
        {ShardStatus.ACTIVE_SYNC, ShardStatus.ACTIVE_RECOVER, None}
    ),
}


def can_transition(old: ShardStatus | None, new: ShardStatus | None) -> bool:
    """Whether the rules ever change a shard from `old` to `new` (None: no record)."""
    return new in _TRANSITIONS[old]


def status_after_transfer(pending_recovery: bool) -> ShardStatus:
    """Rule L6: the status of a shard whose transfer is done, given blobs pending recovery."""
    return ShardStatus.ACTIVE_RECOVER if pending_recovery else ShardStatus.ACTIVE


def status_on_restart(
    status: ShardStatus,
    progress: ShardSyncProgress | None,
    current_epoch: int,
    retry_transfer_first: bool = True,
) -> ShardStatus:
    """Rule L7: the status a shard resumes in when the node restarts."""
    _check_epoch(current_epoch)
    resumable = progress is not None and progress.epoch == current_epoch and not progress.done
    if status is ShardStatus.ACTIVE_RECOVER and retry_transfer_first and resumable:
        return ShardStatus.ACTIVE_SYNC
    return status


# --- the sync progress record (P) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShardSyncProgress:
    """Where the sync of `shard` towards `epoch` stands (Walrus `ShardSyncProgressV1`).

    `sliver_type` is the axis being synced (None once both are done); `last_synced_blob_id` the
    last blob ID stored on it (None before the first batch). Persisted with every batch.
    """

    shard: ShardIndex
    epoch: int
    sliver_type: SliverType | None = SliverType.PRIMARY
    last_synced_blob_id: bytes | None = None

    def __post_init__(self) -> None:
        _check_shard(self.shard)
        # Walrus syncs towards epoch >= 1: nothing precedes the first committee.
        _check_epoch(self.epoch, minimum=1)
        if self.sliver_type is not None and not isinstance(self.sliver_type, SliverType):
            raise TypeError(f"sliver_type must be a SliverType or None, got {self.sliver_type!r}")
        if self.last_synced_blob_id is not None:
            _check_blob_id(self.last_synced_blob_id, "last synced blob ID")
            if self.sliver_type is None:
                raise ValueError("a finished sync has no last synced blob ID")

    @classmethod
    def start(cls, shard: ShardIndex, epoch: int) -> ShardSyncProgress:
        """The progress of a sync that has fetched nothing yet."""
        return cls(shard, epoch)

    @property
    def done(self) -> bool:
        """Both axes are synced."""
        return self.sliver_type is None

    def encode(self) -> bytes:
        """The versioned record: version ‖ shard u16 ‖ epoch u32 ‖ axis u8 ‖ option<blob ID>."""
        writer = Writer().u8(RECORD_VERSION).u16(self.shard).u32(self.epoch)
        writer.u8(_STAGE_TAGS[self.sliver_type])
        if self.last_synced_blob_id is None:
            return writer.u8(0).finish()
        return writer.u8(1).fixed(self.last_synced_blob_id).finish()

    @classmethod
    def decode(cls, data: bytes) -> ShardSyncProgress:
        """Parse the record; anything malformed is a `StoreCorruptionError`."""
        return decode_record(data, "shard sync progress", cls._read)

    @classmethod
    def _read(cls, reader: Reader) -> ShardSyncProgress:
        shard = ShardIndex(reader.u16("shard"))
        epoch = reader.u32("epoch")
        tag = reader.u8("sync axis")
        if tag not in _STAGES_BY_TAG:
            raise ValueError(f"invalid sync axis tag {tag}")
        last = reader.fixed(BLOB_ID_BYTES, "blob ID") if reader.bool("option tag") else None
        return cls(shard, epoch, _STAGES_BY_TAG[tag], last)


@dataclass(frozen=True, slots=True)
class SyncDone:
    """Both axes of `shard` are synced: nothing more to ask its previous owner."""

    shard: ShardIndex

    def __post_init__(self) -> None:
        _check_shard(self.shard)


@dataclass(frozen=True, slots=True)
class SyncBatch:
    """The blob IDs of one answer to `request`, in the order received (rule P3).

    The slivers stay with the driver. The IDs come from a peer, so an answer that breaks the
    rules is an `InvalidInputError`: strictly increasing 32-byte IDs, none before the request's
    start, at most `sliver_count` of them.
    """

    request: SyncShardRequest
    blob_ids: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.request, SyncShardRequest):
            raise TypeError(f"request must be a SyncShardRequest, got {self.request!r}")
        blob_ids = tuple(self.blob_ids)
        object.__setattr__(self, "blob_ids", blob_ids)
        for blob_id in blob_ids:
            if not isinstance(blob_id, bytes) or len(blob_id) != BLOB_ID_BYTES:
                raise InvalidInputError(f"a blob ID is {BLOB_ID_BYTES} bytes, got {blob_id!r:.80}")
        if len(blob_ids) > self.request.sliver_count:
            raise InvalidInputError(
                f"{len(blob_ids)} slivers in answer to a request for {self.request.sliver_count}"
            )
        if blob_ids and blob_ids[0] < self.request.starting_blob_id:
            raise InvalidInputError("the answer starts before the requested blob ID")
        if any(left >= right for left, right in pairwise(blob_ids)):
            raise InvalidInputError("the answer's blob IDs are not strictly increasing")

    @property
    def ends_axis(self) -> bool:
        """The source has no more on this axis: an empty answer, or one ending at the last ID."""
        return not self.blob_ids or self.blob_ids[-1] == MAX_BLOB_ID


def _successor(blob_id: bytes) -> bytes:
    assert blob_id != MAX_BLOB_ID, "the last blob ID ends its axis"
    return (int.from_bytes(blob_id, "big") + 1).to_bytes(BLOB_ID_BYTES, "big")


def next_request(progress: ShardSyncProgress, batch_size: int) -> SyncShardRequest | SyncDone:
    """Rule P2: the next request of the sync at `progress`, or `SyncDone`."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be an int, got {batch_size!r}")
    if not 1 <= batch_size <= MAX_SYNC_BATCH_SIZE:
        raise ValueError(f"batch_size must be in [1, {MAX_SYNC_BATCH_SIZE}], got {batch_size}")
    if progress.sliver_type is None:
        return SyncDone(progress.shard)
    last = progress.last_synced_blob_id
    start = ZERO_BLOB_ID if last is None else _successor(last)
    return SyncShardRequest(progress.shard, progress.sliver_type, start, batch_size, progress.epoch)


def advance(progress: ShardSyncProgress, batch: SyncBatch) -> ShardSyncProgress:
    """Rule P3: the progress once `batch`, the answer to `next_request(progress, n)`, is stored."""
    if progress.sliver_type is None:
        raise ValueError(f"the sync of shard {progress.shard} is already done")
    if batch.request != next_request(progress, batch.request.sliver_count):
        raise ValueError(f"{batch.request!r} is not the next request of {progress!r}")
    if not batch.ends_axis:
        return dataclasses.replace(progress, last_synced_blob_id=batch.blob_ids[-1])
    if progress.sliver_type is SliverType.PRIMARY:
        return ShardSyncProgress(progress.shard, progress.epoch, SliverType.SECONDARY)
    return ShardSyncProgress(progress.shard, progress.epoch, None)


def missing_blobs(batch: SyncBatch, certified: Sequence[bytes]) -> tuple[bytes, ...]:
    """Rule P5: blobs of `certified` in the range `batch` covers that it does not hold.

    `certified` is what this node knows was certified before the sync's epoch, in increasing
    order (not checked here: the driver reads it from its sorted store). The range is from the
    request's start to the batch's last blob ID, or to the end when the batch ends its axis.
    """
    low = bisect.bisect_left(certified, batch.request.starting_blob_id)
    if batch.ends_axis:
        high = len(certified)
    else:
        high = bisect.bisect_right(certified, batch.blob_ids[-1], lo=low)
    received = set(batch.blob_ids)
    return tuple(blob_id for blob_id in certified[low:high] if blob_id not in received)


def blobs_to_recover(
    progress: ShardSyncProgress, certified: Sequence[bytes]
) -> tuple[tuple[SliverType, bytes], ...]:
    """Rule F2: the slivers the transfer did not bring, to recover blob by blob.

    On the axis being synced, the blobs of `certified` (increasing) after the last synced one;
    on the axes after it, all of them.
    """
    if progress.sliver_type is None:
        return ()
    remaining: list[tuple[SliverType, bytes]] = []
    last = progress.last_synced_blob_id
    start = 0 if last is None else bisect.bisect_right(certified, last)
    remaining.extend((progress.sliver_type, blob_id) for blob_id in certified[start:])
    for axis in _AXES[_AXES.index(progress.sliver_type) + 1 :]:
        remaining.extend((axis, blob_id) for blob_id in certified)
    return tuple(remaining)


# --- decide: the shard changes of an epoch change ----------------------------------------------


@dataclass(frozen=True, slots=True)
class LockShard:
    """Rule L3: refuse writes to `shard` from now on, stop any sync of it, keep serving it."""

    shard: ShardIndex

    def __post_init__(self) -> None:
        _check_shard(self.shard)


@dataclass(frozen=True, slots=True)
class DeleteShard:
    """Rule L5: delete `shard`'s slivers, pending recoveries and progress (its record goes)."""

    shard: ShardIndex

    def __post_init__(self) -> None:
        _check_shard(self.shard)


@dataclass(frozen=True, slots=True)
class ActivateShard:
    """Rule L2: create `shard`'s storage, ACTIVE at once (first committee, nothing to fetch)."""

    shard: ShardIndex

    def __post_init__(self) -> None:
        _check_shard(self.shard)


@dataclass(frozen=True, slots=True)
class StartShardSync:
    """Rule L1: create `shard`'s storage and sync it from `source`, starting at `progress`."""

    shard: ShardIndex
    source: bytes
    progress: ShardSyncProgress

    def __post_init__(self) -> None:
        _check_shard(self.shard)
        _check_node_id(self.source, "source")
        if not isinstance(self.progress, ShardSyncProgress) or self.progress.shard != self.shard:
            raise ValueError("progress must be a ShardSyncProgress of this shard")


@dataclass(frozen=True, slots=True)
class RecoverShard:
    """Rule L4: recover what `shard` lacks blob by blob (`blobs_to_recover`, or a full scan)."""

    shard: ShardIndex

    def __post_init__(self) -> None:
        _check_shard(self.shard)


#: What the driver does once the plan's records are persisted, in this order.
ShardAction = LockShard | DeleteShard | ActivateShard | StartShardSync | RecoverShard


@dataclass(frozen=True, slots=True)
class EpochShardPlan:
    """The shard side of `EpochChangeStart(epoch)`: records to write (None deletes), actions.

    The driver writes `statuses` and `progress` with the event cursor in one transaction, then
    performs `actions` in order: locks first, so the node never accepts writes for a shard it
    lost while it tells the chain it holds its new ones.
    """

    epoch: int
    diff: ShardDiff
    statuses: Mapping[ShardIndex, ShardStatus | None] = field(default_factory=dict)
    progress: Mapping[ShardIndex, ShardSyncProgress | None] = field(default_factory=dict)
    actions: tuple[ShardAction, ...] = ()

    def __post_init__(self) -> None:
        _check_epoch(self.epoch, minimum=1)
        object.__setattr__(self, "actions", tuple(self.actions))
        for shard, status in self.statuses.items():
            _check_shard(shard)
            if status is not None and not isinstance(status, ShardStatus):
                raise TypeError(f"status of shard {shard} must be a ShardStatus or None")
        for shard, progress in self.progress.items():
            if progress is not None and (progress.shard != shard or progress.epoch != self.epoch):
                raise ValueError(f"progress of shard {shard} is not for it in epoch {self.epoch}")


def decide_epoch_change(
    epoch: int,
    previous: ShardAssignment,
    current: ShardAssignment,
    node_id: bytes,
    stored: Mapping[ShardIndex, ShardStatus],
    *,
    stored_progress: Mapping[ShardIndex, ShardSyncProgress] | None = None,
) -> EpochShardPlan:
    """Rules D1, D2, L1 to L5 and L7 for `EpochChangeStart(epoch)`.

    `previous` and `current` are the committees of `epoch - 1` and `epoch`; `stored` maps every
    shard this node stores to its status, `stored_progress` every shard being synced to its
    progress record. Deciding again after a restart gives the same plan, except that a sync
    of this epoch resumes from its stored progress (L7) instead of starting afresh.
    """
    saved = stored_progress or {}
    _check_epoch(epoch, minimum=1)
    diff = shard_diff(previous, current, node_id)
    statuses: dict[ShardIndex, ShardStatus | None] = {}
    progress: dict[ShardIndex, ShardSyncProgress | None] = {}
    locks: list[ShardAction] = []
    deletes: list[ShardAction] = []
    fills: list[ShardAction] = []
    for shard in diff.lost:
        status = stored.get(shard)
        if status is None or status is ShardStatus.LOCKED_TO_MOVE:
            continue  # not stored, or already locked (a replayed event)
        statuses[shard] = ShardStatus.LOCKED_TO_MOVE
        if status in (ShardStatus.ACTIVE_SYNC, ShardStatus.ACTIVE_RECOVER):
            progress[shard] = None
        locks.append(LockShard(shard))
    for shard in sorted(set(stored) - diff.owned_now - diff.owned_before):
        statuses[shard] = None
        progress[shard] = None
        deletes.append(DeleteShard(shard))
    for gained in diff.gained:
        shard, status = gained.shard, stored.get(gained.shard)
        if status is ShardStatus.ACTIVE:
            continue  # L1: a replayed event after the sync finished
        if gained.previous_owner is None:
            statuses[shard] = ShardStatus.ACTIVE
            fills.append(ActivateShard(shard))
            continue
        resumed = saved.get(shard)
        resumable = resumed is not None and resumed.epoch == epoch and not resumed.done
        if resumable and status in (ShardStatus.ACTIVE_SYNC, ShardStatus.ACTIVE_RECOVER):
            assert resumed is not None
            if status is not ShardStatus.ACTIVE_SYNC:
                statuses[shard] = status_on_restart(status, resumed, epoch)
            fills.append(StartShardSync(shard, gained.previous_owner, resumed))
            continue
        start = ShardSyncProgress.start(shard, epoch)
        statuses[shard] = ShardStatus.ACTIVE_SYNC
        progress[shard] = start
        fills.append(StartShardSync(shard, gained.previous_owner, start))
    for shard in diff.kept:
        if stored.get(shard) not in (ShardStatus.ACTIVE, ShardStatus.ACTIVE_RECOVER):
            statuses[shard] = ShardStatus.ACTIVE_RECOVER
            fills.append(RecoverShard(shard))
    return EpochShardPlan(epoch, diff, statuses, progress, (*locks, *deletes, *fills))


# --- F: when the previous owner fails ----------------------------------------------------------


class SyncFailure(enum.Enum):
    """Why one request to a shard's previous owner failed, as the driver saw it."""

    #: No answer: connection refused or reset, timeout (Walrus: any transport error).
    UNREACHABLE = "unreachable"
    #: INVALID_EPOCH with the request's epoch ahead of the source's: it has not caught up yet.
    SOURCE_BEHIND = "source_behind"
    #: REQUEST_UNAUTHORIZED: the source does not see this node as the shard's owner yet.
    UNAUTHORIZED = "unauthorized"
    #: Any other refusal: INVALID_EPOCH with an older epoch, too many slivers, a server error.
    REFUSED = "refused"
    #: An answer that does not decode, or breaks the rules of `SyncBatch`.
    INVALID_RESPONSE = "invalid_response"


#: Rule F1: the failures worth asking the same source again for.
RETRYABLE_FAILURES = frozenset(
    {SyncFailure.UNREACHABLE, SyncFailure.SOURCE_BEHIND, SyncFailure.UNAUTHORIZED}
)


def failure_of_refusal(refused: SyncShardRefused) -> SyncFailure:
    """The failure kind of a source's refusal (Walrus's `handle_sync_error` classification)."""
    if refused.reason is SyncShardRefusal.UNAUTHORIZED:
        return SyncFailure.UNAUTHORIZED
    if refused.reason is SyncShardRefusal.INVALID_EPOCH:
        assert refused.request_epoch is not None and refused.server_epoch is not None
        if refused.request_epoch > refused.server_epoch:
            return SyncFailure.SOURCE_BEHIND
    return SyncFailure.REFUSED


@dataclass(frozen=True, slots=True)
class SyncRetryPolicy:
    """How long a source may fail before the shard is recovered blob by blob instead."""

    retry_window_s: float = DEFAULT_RETRY_WINDOW_S

    def __post_init__(self) -> None:
        window = self.retry_window_s
        if isinstance(window, bool) or not isinstance(window, (int, float)):
            raise TypeError(f"retry_window_s must be a number, got {window!r}")
        if not (math.isfinite(window) and window > 0):
            raise ValueError(f"retry_window_s must be positive and finite, got {window}")


#: Walrus's default: fall back after 12 hours without a stored batch.
DEFAULT_RETRY_POLICY = SyncRetryPolicy()


@dataclass(frozen=True, slots=True)
class RetrySync:
    """Ask the previous owner again, after the driver's backoff (rule F1)."""

    failure: SyncFailure

    def __post_init__(self) -> None:
        if self.failure not in RETRYABLE_FAILURES:
            raise ValueError(f"{self.failure} is not worth a retry")


class RecoveryReason(enum.Enum):
    """Why the shard falls back to recovery blob by blob (rule F2)."""

    #: A retryable failure, but no batch was stored for longer than the retry window.
    RETRY_WINDOW_EXCEEDED = "retry_window_exceeded"
    #: A failure that asking again will not fix.
    NOT_RETRYABLE = "not_retryable"


@dataclass(frozen=True, slots=True)
class FallBackToRecovery:
    """Stop the transfer: set ACTIVE_RECOVER and recover `blobs_to_recover` blob by blob."""

    failure: SyncFailure
    reason: RecoveryReason

    def __post_init__(self) -> None:
        if not isinstance(self.failure, SyncFailure) or not isinstance(self.reason, RecoveryReason):
            raise TypeError("failure and reason must be a SyncFailure and a RecoveryReason")
        if (self.reason is RecoveryReason.NOT_RETRYABLE) == (self.failure in RETRYABLE_FAILURES):
            raise ValueError(f"{self.reason} does not go with {self.failure}")


def decide_after_failure(
    failure: SyncFailure,
    *,
    last_progress_s: float,
    now_s: float,
    policy: SyncRetryPolicy = DEFAULT_RETRY_POLICY,
) -> RetrySync | FallBackToRecovery:
    """Rules F1 and F2, after a failed request.

    `last_progress_s` is when the last batch was stored (or the sync started), `now_s` the time
    now, both from the driver's monotonic clock.
    """
    if not isinstance(failure, SyncFailure):
        raise TypeError(f"failure must be a SyncFailure, got {failure!r}")
    if not (math.isfinite(last_progress_s) and math.isfinite(now_s)):
        raise ValueError("times must be finite")
    if now_s < last_progress_s:
        raise ValueError(f"now_s {now_s} is before last_progress_s {last_progress_s}")
    if failure not in RETRYABLE_FAILURES:
        return FallBackToRecovery(failure, RecoveryReason.NOT_RETRYABLE)
    if now_s - last_progress_s > policy.retry_window_s:
        return FallBackToRecovery(failure, RecoveryReason.RETRY_WINDOW_EXCEEDED)
    return RetrySync(failure)
