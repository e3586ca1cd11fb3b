"""The control plane's events, as storage nodes and clients consume them (walrus-system.md 1.5).

Theory of operation: the System contract emits Walrus's events as EVM logs (Staking emits
EpochChangeDone under staking; Challenges.vy emits the storage-challenge events, which are ours).
Each event carries its `EventId` (block number, log index, transaction hash); events are totally
ordered by (block number, log index), and an `EventCursor` names the position just after the last
event a consumer applied, so a consumer that persists its cursor with its effects resumes without
skipping or repeating an event. This replaces Walrus's (checkpoint, event sequence) cursor; node
status JSON shows an event's ID as `{"txDigest": <tx hash>, "eventSeq": <log index>}`.

Reorganisations. An EVM chain may replace its latest blocks (Sui's checkpoints never are). Each
event also carries the hash of its block, and a cursor may carry the hash of the block of the
event it follows: a reader that no longer finds that block on the chain raises
`walruspy.chain.api.ChainReorganizedError` instead of reading on from a position that no longer
exists, and the consumer rewinds (walrus-system.md 3.3, node/events.py). Hashes take no part in
ordering or equality of positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from walruspy.core.blob_id import BlobId


@dataclass(frozen=True, slots=True, order=True)
class EventId:
    """Where an event sits on chain; ordered by (block number, log index)."""

    block_number: int
    log_index: int
    tx_hash: bytes = b""
    #: The hash of the event's block (empty where the source has none).
    block_hash: bytes = field(default=b"", compare=False)

    def __post_init__(self) -> None:
        if self.block_number < 0 or self.log_index < 0:
            raise ValueError(f"invalid event position {self.block_number}/{self.log_index}")

    @property
    def cursor_after(self) -> EventCursor:
        """The cursor that resumes just after this event (and checks that its block stays)."""
        return EventCursor(self.block_number, self.log_index + 1, self.block_hash)


@dataclass(frozen=True, slots=True, order=True)
class EventCursor:
    """The position of the next event to read: events at or after (block, log index)."""

    block_number: int = 0
    log_index: int = 0
    #: The hash of block `block_number` as the consumer saw it (empty: not checked). A reader
    #: that finds another block there, or none, raises `ChainReorganizedError`.
    block_hash: bytes = field(default=b"", compare=False)

    def __post_init__(self) -> None:
        if self.block_number < 0 or self.log_index < 0:
            raise ValueError(f"invalid event cursor {self.block_number}/{self.log_index}")

    def admits(self, event_id: EventId) -> bool:
        """Whether an event at `event_id` comes at or after this cursor."""
        return (event_id.block_number, event_id.log_index) >= (self.block_number, self.log_index)


@dataclass(frozen=True, slots=True)
class BlobRegistered:
    """A blob object was registered (Move `BlobRegistered`)."""

    event_id: EventId
    epoch: int
    blob_id: BlobId
    size: int
    encoding_type: int
    end_epoch: int
    deletable: bool
    object_id: bytes


@dataclass(frozen=True, slots=True)
class BlobCertified:
    """A blob object was certified, or its certified lifetime extended (Move `BlobCertified`)."""

    event_id: EventId
    epoch: int
    blob_id: BlobId
    end_epoch: int
    deletable: bool
    object_id: bytes
    is_extension: bool


@dataclass(frozen=True, slots=True)
class BlobDeleted:
    """A deletable blob object was deleted by its owner (Move `BlobDeleted`)."""

    event_id: EventId
    epoch: int
    blob_id: BlobId
    end_epoch: int
    object_id: bytes
    was_certified: bool


@dataclass(frozen=True, slots=True)
class InvalidBlobId:
    """A blob ID was proven inconsistent by a validity certificate (Move `InvalidBlobID`)."""

    event_id: EventId
    epoch: int
    blob_id: BlobId


@dataclass(frozen=True, slots=True)
class EpochChangeStart:
    """Epoch `epoch` began: writes go to its committee (Move `EpochChangeStart`)."""

    event_id: EventId
    epoch: int


@dataclass(frozen=True, slots=True)
class EpochChangeDone:
    """Epoch `epoch`'s committee holds all its shards (Move `EpochChangeDone`)."""

    event_id: EventId
    epoch: int


@dataclass(frozen=True, slots=True)
class ChallengeScheduled:
    """The storage challenge of `epoch` will take its seed from block `seed_block`: from now
    on nodes withhold recovery symbols until the challenge's sample is known."""

    event_id: EventId
    epoch: int
    seed_block: int


@dataclass(frozen=True, slots=True)
class ChallengeStart:
    """The storage challenge of `epoch` starts with `seed` (walruspy's Challenges contract)."""

    event_id: EventId
    epoch: int
    seed: bytes


@dataclass(frozen=True, slots=True)
class ChallengeCertified:
    """`node_id` posted its certificate for the challenge of `epoch` over `blobs_checked` blobs."""

    event_id: EventId
    epoch: int
    node_id: bytes
    blobs_checked: int


ChainEvent = (
    BlobRegistered
    | BlobCertified
    | BlobDeleted
    | InvalidBlobId
    | EpochChangeStart
    | EpochChangeDone
    | ChallengeScheduled
    | ChallengeStart
    | ChallengeCertified
)
BlobEvent = BlobRegistered | BlobCertified | BlobDeleted | InvalidBlobId
EVENT_NAMES = (
    "BlobRegistered",
    "BlobCertified",
    "BlobDeleted",
    "InvalidBlobID",
    "EpochChangeStart",
    "EpochChangeDone",
    "ChallengeStart",
    "ChallengeCertified",
)
