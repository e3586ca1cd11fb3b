"""The records of the node store and their versioned byte encoding.

Theory of operation (spec/walrus-system.md 1.4, 3.2, 3.3, 3.7; Walrus `node/storage/blob_info*.rs`,
`event_cursor_table.rs`, `storage.rs`): besides metadata and slivers, which the store keeps as the
BCS bytes it is given, a node persists small records: per blob ID an aggregate `BlobInfo`, per
`Blob` object a `PerObjectBlobInfo`, the `EventProgress`, the `NodeStatus`, the `GcProgress` and a
`ShardStatus` per shard. Each is a frozen dataclass that checks Walrus's invariants in its
constructor, so an impossible record can be neither written nor read back.

Encoding: one version byte (`RECORD_VERSION`), then the fields in BCS (walruspy.core.bcs): fixed
little-endian integers, `0`/`1` tags for options and booleans, ULEB128 enum tags. BCS because it is
already the project's one canonical, strictly parsed encoding, and it keeps records a few dozen
bytes; the version byte lets a later release read old records and migrate them. A record that
does not decode, has bytes left over, or breaks an invariant raises `StoreCorruptionError`: the
disk, not a peer, is at fault.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

from walruspy.core.bcs import Reader, Writer
from walruspy.core.errors import DecodeError, WalrusError
from walruspy.node_api.schemas import (
    TX_HASH_LEN,
    BlobStatus,
    Deletable,
    DeletableCounts,
    EventId,
    Invalid,
    Nonexistent,
    Permanent,
)

#: The version byte that starts every record written by this release.
RECORD_VERSION = 1
#: Length of blob IDs and object IDs, the keys of the store.
ID_LEN = 32
_U32_MAX = (1 << 32) - 1
_U64_MAX = (1 << 64) - 1

R = TypeVar("R")


class StoreError(WalrusError):
    """The node store failed: an LMDB error, a full disk, the map at its configured cap."""


class StoreCorruptionError(StoreError):
    """A record read from the store does not decode or breaks an invariant."""


def check_id(value: bytes, what: str) -> None:
    """Check that `value` is a 32-byte ID (blob ID or object ID)."""
    if not isinstance(value, bytes) or len(value) != ID_LEN:
        raise ValueError(f"{what} must be {ID_LEN} bytes, got {value!r:.80}")


def _check_u32(value: int | None, what: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U32_MAX:
        raise ValueError(f"{what} must be a u32, got {value!r}")


def _check_u64(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U64_MAX:
        raise ValueError(f"{what} must be a u64, got {value!r}")


def _write_opt_u32(writer: Writer, value: int | None) -> None:
    if value is None:
        writer.u8(0)
    else:
        writer.u8(1).u32(value)


def _read_opt_u32(reader: Reader, what: str) -> int | None:
    return reader.u32(what) if reader.bool(f"option tag of {what}") else None


def _write_event(writer: Writer, event: EventId) -> None:
    writer.fixed(event.tx_hash).u64(event.log_index)


def _read_event(reader: Reader) -> EventId:
    return EventId(reader.fixed(TX_HASH_LEN, "event tx hash"), reader.u64("event log index"))


def _encode(body: Callable[[Writer], object]) -> bytes:
    writer = Writer().u8(RECORD_VERSION)
    body(writer)
    return writer.finish()


def decode_record(data: bytes, what: str, parse: Callable[[Reader], R]) -> R:
    """Decode a versioned record, turning any failure into `StoreCorruptionError`."""
    try:
        reader = Reader(data)
        version = reader.u8("record version")
        if version != RECORD_VERSION:
            raise DecodeError(f"unknown record version {version}")
        record = parse(reader)
        reader.finish(what)
    except (DecodeError, ValueError) as exc:
        raise StoreCorruptionError(f"corrupt {what} record: {exc}") from exc
    return record


# --- event cursor ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class EventProgress:
    """The last chain event applied: its block and log index, and how many events came before.

    The event processor resumes strictly after `(block_number, log_index)`. `events_applied`
    counts every event applied since the node's first start, so a restart can check that the
    stream neither skipped nor repeated one.
    """

    block_number: int
    log_index: int
    events_applied: int

    def __post_init__(self) -> None:
        _check_u64(self.block_number, "block_number")
        _check_u64(self.log_index, "log_index")
        _check_u64(self.events_applied, "events_applied")
        if self.events_applied == 0:
            raise ValueError("a cursor exists only once an event has been applied")

    @property
    def position(self) -> tuple[int, int]:
        """`(block_number, log_index)`, the chain order of events."""
        return (self.block_number, self.log_index)

    @classmethod
    def after(
        cls, previous: EventProgress | None, block_number: int, log_index: int
    ) -> EventProgress:
        """The cursor once the event at `(block_number, log_index)` follows `previous`."""
        count = 1 if previous is None else previous.events_applied + 1
        cursor = cls(block_number, log_index, count)
        if previous is not None and cursor.position <= previous.position:
            raise ValueError(f"event {cursor.position} does not follow {previous.position}")
        return cursor

    def encode(self) -> bytes:
        """The versioned record bytes."""
        return _encode(
            lambda w: w.u64(self.block_number).u64(self.log_index).u64(self.events_applied)
        )

    @classmethod
    def decode(cls, data: bytes) -> EventProgress:
        """Parse the record bytes."""
        return decode_record(
            data, "event cursor", lambda r: cls(r.u64("block"), r.u64("log"), r.u64("count"))
        )


@dataclass(frozen=True, slots=True)
class EventUndo:
    """What one applied event changed, kept so a chain reorganisation can take it back.

    `progress` is the cursor the event advanced to and `block_hash` the hash of its block (empty
    when the chain gave none); `previous` is the cursor before it and `previous_block_hash` the
    hash of that cursor's block. `blob_infos` and `objects`
    hold, for every record the event wrote or deleted, the record's bytes before the event (None:
    it did not exist), in the order the event wrote them.
    """

    progress: EventProgress
    block_hash: bytes
    previous: EventProgress | None
    previous_block_hash: bytes
    blob_infos: tuple[tuple[bytes, bytes | None], ...]
    objects: tuple[tuple[bytes, bytes | None], ...]

    def __post_init__(self) -> None:
        for value in (self.block_hash, self.previous_block_hash):
            if len(value) not in (0, 32):
                raise ValueError(f"block hash must be 32 bytes, got {len(value)}")
        for key, _ in (*self.blob_infos, *self.objects):
            check_id(key, "undo key")

    def encode(self) -> bytes:
        """The versioned record bytes."""

        def body(w: Writer) -> None:
            p = self.progress
            w.u64(p.block_number).u64(p.log_index).u64(p.events_applied).bytes(self.block_hash)
            if self.previous is None:
                w.u8(0)
            else:
                q = self.previous
                w.u8(1).u64(q.block_number).u64(q.log_index).u64(q.events_applied)
            w.bytes(self.previous_block_hash)
            for entries in (self.blob_infos, self.objects):
                w.uleb128(len(entries))
                for key, before in entries:
                    w.fixed(key)
                    if before is None:
                        w.u8(0)
                    else:
                        w.u8(1).bytes(before)

        return _encode(body)

    @classmethod
    def decode(cls, data: bytes) -> EventUndo:
        """Parse the record bytes."""

        def progress(r: Reader) -> EventProgress:
            return EventProgress(r.u64("block"), r.u64("log"), r.u64("count"))

        def entries(r: Reader) -> tuple[tuple[bytes, bytes | None], ...]:
            found = []
            for _ in range(r.uleb128("undo entries")):
                key = r.fixed(ID_LEN, "undo key")
                found.append((key, r.bytes("undo value") if r.bool("undo tag") else None))
            return tuple(found)

        def parse(r: Reader) -> EventUndo:
            current = progress(r)
            block_hash = r.bytes("block hash", 32)
            previous = progress(r) if r.bool("previous tag") else None
            previous_hash = r.bytes("previous block hash", 32)
            return cls(current, block_hash, previous, previous_hash, entries(r), entries(r))

        return decode_record(data, "event undo", parse)


# --- blob info -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PermanentBlobInfo:
    """How many permanent `Blob` objects share a status, their latest end epoch, and its event."""

    count: int
    end_epoch: int
    event: EventId

    def __post_init__(self) -> None:
        _check_u32(self.count, "count")
        _check_u32(self.end_epoch, "end_epoch")
        if self.count == 0:
            raise ValueError("a permanent blob info counts at least one object")


def _write_opt_permanent(writer: Writer, info: PermanentBlobInfo | None) -> None:
    if info is None:
        writer.u8(0)
        return
    writer.u8(1).u32(info.count).u32(info.end_epoch)
    _write_event(writer, info.event)


def _read_opt_permanent(reader: Reader) -> PermanentBlobInfo | None:
    if not reader.bool("option tag of permanent info"):
        return None
    return PermanentBlobInfo(reader.u32("count"), reader.u32("end epoch"), _read_event(reader))


@dataclass(frozen=True, slots=True)
class ValidBlobInfo:
    """The aggregate state of a blob ID that has not been marked invalid (Walrus `ValidBlobInfoV1`).

    The `latest_seen_*` end epochs let a node report deletable blobs as expired in the short
    window after an epoch change before garbage collection lowers the counts.
    """

    is_metadata_stored: bool = False
    count_deletable_total: int = 0
    count_deletable_certified: int = 0
    permanent_total: PermanentBlobInfo | None = None
    permanent_certified: PermanentBlobInfo | None = None
    initial_certified_epoch: int | None = None
    latest_seen_deletable_registered_end_epoch: int | None = None
    latest_seen_deletable_certified_end_epoch: int | None = None

    def __post_init__(self) -> None:
        _check_u32(self.count_deletable_total, "count_deletable_total")
        _check_u32(self.count_deletable_certified, "count_deletable_certified")
        _check_u32(self.initial_certified_epoch, "initial_certified_epoch", optional=True)
        registered = self.latest_seen_deletable_registered_end_epoch
        certified = self.latest_seen_deletable_certified_end_epoch
        _check_u32(registered, "latest_seen_deletable_registered_end_epoch", optional=True)
        _check_u32(certified, "latest_seen_deletable_certified_end_epoch", optional=True)
        # Walrus's `ValidBlobInfoV1::check_invariants`, one by one.
        if self.count_deletable_certified > self.count_deletable_total:
            raise ValueError("more certified deletable blobs than deletable blobs")
        any_certified = self.count_deletable_certified > 0 or self.permanent_certified is not None
        if (self.initial_certified_epoch is not None) != any_certified:
            raise ValueError("initial_certified_epoch is set iff some object is certified")
        total, cert = self.permanent_total, self.permanent_certified
        if cert is not None:
            if total is None:
                raise ValueError("certified permanent blobs without registered ones")
            if total.end_epoch < cert.end_epoch or total.count < cert.count:
                raise ValueError("permanent_certified exceeds permanent_total")
        if certified is not None and (registered is None or registered < certified):
            raise ValueError("latest certified deletable end epoch exceeds the registered one")

    def has_no_objects(self) -> bool:
        """True when no `Blob` object refers to the blob ID any more (its data may go)."""
        return (
            self.count_deletable_total == 0
            and self.permanent_total is None
            and self.initial_certified_epoch is None
            and self.latest_seen_deletable_registered_end_epoch is None
        )

    def blob_status(self, current_epoch: int) -> BlobStatus:
        """The status served for this blob ID in `current_epoch` (Walrus `to_blob_status`)."""
        registered = self.latest_seen_deletable_registered_end_epoch
        certified = self.latest_seen_deletable_certified_end_epoch
        counts = DeletableCounts(
            self.count_deletable_total
            if registered is not None and registered > current_epoch
            else 0,
            self.count_deletable_certified
            if certified is not None and certified > current_epoch
            else 0,
        )
        for info, is_certified in ((self.permanent_certified, True), (self.permanent_total, False)):
            if info is not None and info.end_epoch > current_epoch:
                return Permanent(
                    end_epoch=info.end_epoch,
                    is_certified=is_certified,
                    status_event=info.event,
                    deletable_counts=counts,
                    initial_certified_epoch=self.initial_certified_epoch,
                )
        if counts != DeletableCounts():
            return Deletable(self.initial_certified_epoch, counts)
        return Nonexistent()


@dataclass(frozen=True, slots=True)
class InvalidBlobInfo:
    """A blob ID marked invalid in `epoch` by `event`; kept after its data is deleted."""

    epoch: int
    event: EventId

    def __post_init__(self) -> None:
        _check_u32(self.epoch, "epoch")

    def blob_status(self, current_epoch: int) -> BlobStatus:
        """Always `Invalid`, whatever the epoch."""
        del current_epoch
        return Invalid(self.event)


#: The aggregate record of one blob ID.
BlobInfo: TypeAlias = ValidBlobInfo | InvalidBlobInfo


def encode_blob_info(info: BlobInfo) -> bytes:
    """The versioned record bytes of a `BlobInfo` (tag 0 invalid, 1 valid, as Walrus's enum)."""

    def body(w: Writer) -> None:
        if isinstance(info, InvalidBlobInfo):
            w.uleb128(0).u32(info.epoch)
            _write_event(w, info.event)
            return
        w.uleb128(1).bool(info.is_metadata_stored)
        w.u32(info.count_deletable_total).u32(info.count_deletable_certified)
        _write_opt_permanent(w, info.permanent_total)
        _write_opt_permanent(w, info.permanent_certified)
        _write_opt_u32(w, info.initial_certified_epoch)
        _write_opt_u32(w, info.latest_seen_deletable_registered_end_epoch)
        _write_opt_u32(w, info.latest_seen_deletable_certified_end_epoch)

    return _encode(body)


def decode_blob_info(data: bytes) -> BlobInfo:
    """Parse the record bytes of a `BlobInfo`."""

    def parse(r: Reader) -> BlobInfo:
        tag = r.uleb128("blob info variant", max_value=1)
        if tag == 0:
            return InvalidBlobInfo(r.u32("epoch"), _read_event(r))
        return ValidBlobInfo(
            is_metadata_stored=r.bool("is_metadata_stored"),
            count_deletable_total=r.u32("count_deletable_total"),
            count_deletable_certified=r.u32("count_deletable_certified"),
            permanent_total=_read_opt_permanent(r),
            permanent_certified=_read_opt_permanent(r),
            initial_certified_epoch=_read_opt_u32(r, "initial_certified_epoch"),
            latest_seen_deletable_registered_end_epoch=_read_opt_u32(r, "registered end epoch"),
            latest_seen_deletable_certified_end_epoch=_read_opt_u32(r, "certified end epoch"),
        )

    return decode_record(data, "blob info", parse)


@dataclass(frozen=True, slots=True)
class PerObjectBlobInfo:
    """The state of one `Blob` object on chain (Walrus `PerObjectBlobInfoV1`)."""

    blob_id: bytes
    registered_epoch: int
    certified_epoch: int | None
    end_epoch: int
    deletable: bool
    event: EventId
    deleted: bool

    def __post_init__(self) -> None:
        check_id(self.blob_id, "blob_id")
        _check_u32(self.registered_epoch, "registered_epoch")
        _check_u32(self.certified_epoch, "certified_epoch", optional=True)
        _check_u32(self.end_epoch, "end_epoch")
        if self.certified_epoch is not None and self.certified_epoch < self.registered_epoch:
            raise ValueError("a blob object cannot be certified before it is registered")

    def is_registered(self, current_epoch: int) -> bool:
        """Live in `current_epoch`: not deleted and not expired (end epoch is exclusive)."""
        return not self.deleted and self.end_epoch > current_epoch

    def encode(self) -> bytes:
        """The versioned record bytes."""

        def body(w: Writer) -> None:
            w.fixed(self.blob_id).u32(self.registered_epoch)
            _write_opt_u32(w, self.certified_epoch)
            w.u32(self.end_epoch).bool(self.deletable)
            _write_event(w, self.event)
            w.bool(self.deleted)

        return _encode(body)

    @classmethod
    def decode(cls, data: bytes) -> PerObjectBlobInfo:
        """Parse the record bytes."""
        return decode_record(
            data,
            "per-object blob info",
            lambda r: cls(
                blob_id=r.fixed(ID_LEN, "blob_id"),
                registered_epoch=r.u32("registered_epoch"),
                certified_epoch=_read_opt_u32(r, "certified_epoch"),
                end_epoch=r.u32("end_epoch"),
                deletable=r.bool("deletable"),
                event=_read_event(r),
                deleted=r.bool("deleted"),
            ),
        )


# --- storage challenges ---------------------------------------------------------------------

#: Most members a challenge record names (Committee.vy's member bound is lower).
MAX_CHALLENGE_MEMBERS = 1024
#: Most blob IDs one member's sample holds (core.challenge.sample_size is 2,063 by default).
MAX_CHALLENGE_SAMPLE = 100_000


@dataclass(frozen=True, slots=True)
class ChallengeRecord:
    """A storage challenge as the node derived it when it applied the epoch's ChallengeStart.

    `seed` is the chain's seed; `samples` names, for each committee member (node ID, in
    committee order), the blob IDs it must prove it holds (node/challenges.py). Every node
    derives the same record from the same event position, so it is written with that event.
    """

    epoch: int
    seed: bytes
    samples: tuple[tuple[bytes, tuple[bytes, ...]], ...]

    def __post_init__(self) -> None:
        _check_u32(self.epoch, "epoch")
        check_id(self.seed, "seed")
        if len(self.samples) > MAX_CHALLENGE_MEMBERS:
            raise ValueError(f"{len(self.samples)} members exceed {MAX_CHALLENGE_MEMBERS}")
        for node_id, blob_ids in self.samples:
            check_id(node_id, "node_id")
            if len(blob_ids) > MAX_CHALLENGE_SAMPLE:
                raise ValueError(f"a sample of {len(blob_ids)} exceeds {MAX_CHALLENGE_SAMPLE}")
            for blob_id in blob_ids:
                check_id(blob_id, "blob_id")

    def sample_of(self, node_id: bytes) -> tuple[bytes, ...] | None:
        """The blobs `node_id` must prove, or None if it is not challenged."""
        for member, blob_ids in self.samples:
            if member == node_id:
                return blob_ids
        return None

    def challenged_blobs(self) -> frozenset[bytes]:
        """Every blob of any member's sample."""
        return frozenset(b for _, blob_ids in self.samples for b in blob_ids)

    def encode(self) -> bytes:
        """The versioned record bytes."""

        def body(w: Writer) -> None:
            w.u32(self.epoch).fixed(self.seed).uleb128(len(self.samples))
            for node_id, blob_ids in self.samples:
                w.fixed(node_id).uleb128(len(blob_ids))
                for blob_id in blob_ids:
                    w.fixed(blob_id)

        return _encode(body)

    @classmethod
    def decode(cls, data: bytes) -> ChallengeRecord:
        """Parse the record bytes."""

        def parse(r: Reader) -> ChallengeRecord:
            epoch, seed = r.u32("epoch"), r.fixed(ID_LEN, "seed")
            samples = []
            for _ in range(r.uleb128("members", MAX_CHALLENGE_MEMBERS)):
                node_id = r.fixed(ID_LEN, "node_id")
                count = r.uleb128("sample", MAX_CHALLENGE_SAMPLE)
                samples.append((node_id, tuple(r.fixed(ID_LEN, "blob_id") for _ in range(count))))
            return cls(epoch, seed, tuple(samples))

        return decode_record(data, "challenge", parse)


# --- node, shard and GC state ------------------------------------------------------------------


class NodeStatusKind(enum.Enum):
    """The modes of a node (Walrus `NodeStatus`), numbered as their BCS tags."""

    STANDBY = 0
    ACTIVE = 1
    RECOVER_METADATA = 2
    RECOVERY_CATCH_UP = 3
    RECOVERY_IN_PROGRESS = 4
    RECOVERY_CATCH_UP_WITH_INCOMPLETE_HISTORY = 5


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """The node's mode, with the epochs that two of the modes carry."""

    kind: NodeStatusKind
    #: RECOVERY_IN_PROGRESS: the epoch in which the recovery started.
    recovery_epoch: int | None = None
    #: RECOVERY_CATCH_UP_WITH_INCOMPLETE_HISTORY: first epoch whose events are all available.
    first_complete_epoch: int | None = None
    #: RECOVERY_CATCH_UP_WITH_INCOMPLETE_HISTORY: the epoch when the catch-up started.
    epoch_at_start: int | None = None

    def __post_init__(self) -> None:
        in_progress = self.kind is NodeStatusKind.RECOVERY_IN_PROGRESS
        incomplete = self.kind is NodeStatusKind.RECOVERY_CATCH_UP_WITH_INCOMPLETE_HISTORY
        if (self.recovery_epoch is not None) != in_progress:
            raise ValueError(f"recovery_epoch belongs to RECOVERY_IN_PROGRESS only ({self.kind})")
        if (self.first_complete_epoch is not None) != incomplete or (
            self.epoch_at_start is not None
        ) != incomplete:
            raise ValueError("first_complete_epoch and epoch_at_start go with incomplete history")
        for name in ("recovery_epoch", "first_complete_epoch", "epoch_at_start"):
            _check_u32(getattr(self, name), name, optional=True)

    def __str__(self) -> str:
        """Walrus's display form, which the health answer reports as `nodeStatus`."""
        if self.kind is NodeStatusKind.RECOVERY_IN_PROGRESS:
            return f"RecoveryInProgress ({self.recovery_epoch})"
        if self.kind is NodeStatusKind.RECOVERY_CATCH_UP_WITH_INCOMPLETE_HISTORY:
            return (
                "RecoveryCatchUpWithIncompleteHistory (first complete epoch: "
                f"{self.first_complete_epoch}, epoch at start: {self.epoch_at_start})"
            )
        return "".join(part.capitalize() for part in self.kind.name.split("_"))

    def encode(self) -> bytes:
        """The versioned record bytes."""

        def body(w: Writer) -> None:
            w.uleb128(self.kind.value)
            if self.recovery_epoch is not None:
                w.u32(self.recovery_epoch)
            if self.first_complete_epoch is not None and self.epoch_at_start is not None:
                w.u32(self.first_complete_epoch).u32(self.epoch_at_start)

        return _encode(body)

    @classmethod
    def decode(cls, data: bytes) -> NodeStatus:
        """Parse the record bytes."""

        def parse(r: Reader) -> NodeStatus:
            kind = NodeStatusKind(r.uleb128("node status", max_value=len(NodeStatusKind) - 1))
            if kind is NodeStatusKind.RECOVERY_IN_PROGRESS:
                return cls(kind, recovery_epoch=r.u32("recovery epoch"))
            if kind is NodeStatusKind.RECOVERY_CATCH_UP_WITH_INCOMPLETE_HISTORY:
                return cls(kind, first_complete_epoch=r.u32("first"), epoch_at_start=r.u32("at"))
            return cls(kind)

        return decode_record(data, "node status", parse)


class ShardStatus(enum.Enum):
    """The storage state of a shard on this node (Walrus `node/storage/shard.rs`)."""

    NONE = 0
    ACTIVE = 1
    ACTIVE_SYNC = 2
    ACTIVE_RECOVER = 3
    LOCKED_TO_MOVE = 4

    def encode(self) -> bytes:
        """The versioned record bytes."""
        return _encode(lambda w: w.uleb128(self.value))

    @classmethod
    def decode(cls, data: bytes) -> ShardStatus:
        """Parse the record bytes."""
        return decode_record(
            data, "shard status", lambda r: cls(r.uleb128("shard status", max_value=len(cls) - 1))
        )


@dataclass(frozen=True, slots=True)
class GcProgress:
    """The last epochs whose garbage collection started and completed (spec 3.7)."""

    last_started_epoch: int | None = None
    last_completed_epoch: int | None = None

    def __post_init__(self) -> None:
        _check_u32(self.last_started_epoch, "last_started_epoch", optional=True)
        _check_u32(self.last_completed_epoch, "last_completed_epoch", optional=True)
        started, completed = self.last_started_epoch, self.last_completed_epoch
        if completed is not None and (started is None or started < completed):
            raise ValueError("a garbage collection cannot complete before it starts")

    def encode(self) -> bytes:
        """The versioned record bytes."""

        def body(w: Writer) -> None:
            _write_opt_u32(w, self.last_started_epoch)
            _write_opt_u32(w, self.last_completed_epoch)

        return _encode(body)

    @classmethod
    def decode(cls, data: bytes) -> GcProgress:
        """Parse the record bytes."""
        return decode_record(
            data,
            "GC progress",
            lambda r: cls(_read_opt_u32(r, "started"), _read_opt_u32(r, "completed")),
        )
