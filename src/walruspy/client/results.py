"""What the client's operations return, with the JSON Walrus's CLI and publisher print for them.

Theory of operation (spec/walrus-system.md 4.1 and 4.3; Walrus `walrus-service/src/client/
responses.rs` and `walrus-sdk` `BlobStoreResult`). Each result is a frozen dataclass for Python
callers and has `to_json` giving Walrus's camelCase shape, so the CLI (`--json`) and the
publisher answer what Walrus's do: a store is `{"newlyCreated": {...}}` or
`{"alreadyCertified": {...}}`, a blob object is Walrus's `Blob`, a status is the node API's
`BlobStatus`. Object IDs are `0x` + 64 hex digits, blob IDs their 43-character text form, and
event IDs the node API's `{txDigest, eventSeq}` (walruspy.node_api.schemas). The results'
own `object_id` attributes are that `0x` text too (the chain's `BlobRecord` inside them keeps
the raw 32 bytes as `object_id` and gives the text as `object_id_hex`); the client's operations
take an object ID as either.

Progress: operations report `ProgressEvent`s (phase, done, total bytes) to an optional callback,
so a CLI can draw bars; the callback runs on the event loop and must return at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from walruspy.chain.api import BlobRecord, SystemInfo
from walruspy.core.blob_id import BlobId
from walruspy.core.committee import Committee
from walruspy.core.params import EncodingParams
from walruspy.node_api.paths import format_object_id
from walruspy.node_api.schemas import (
    BlobStatus,
    Deletable,
    EventId,
    Invalid,
    Permanent,
    blob_status_to_json,
)

#: Storage is bought in units of 1 MiB (Walrus's BYTES_PER_UNIT_SIZE).
BYTES_PER_UNIT_SIZE = 1 << 20
#: The only encoding, as Walrus names it in JSON.
ENCODING_TYPE_NAME = "RS2"

Phase = Literal["encode", "upload", "download"]


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Progress of one phase of an operation: `done` of `total` bytes."""

    phase: Phase
    done: int
    total: int


#: A function told about progress; it runs on the event loop and must not block.
ProgressCallback = Callable[[ProgressEvent], None]


class Progress:
    """Counts the bytes of one phase and tells the callback (if any)."""

    def __init__(self, callback: ProgressCallback | None, phase: Phase, total: int) -> None:
        self._callback = callback
        self.phase: Phase = phase
        self.total = total
        self.done = 0
        self._report()

    def add(self, size: int) -> None:
        """`size` more bytes are done (never beyond the total)."""
        self.done = min(self.total, self.done + size)
        self._report()

    def finish(self) -> None:
        """The phase is complete."""
        self.done = self.total
        self._report()

    def _report(self) -> None:
        if self._callback is not None:
            self._callback(ProgressEvent(self.phase, self.done, self.total))


def storage_units(size: int) -> int:
    """1 MiB units, rounded up, that `size` bytes of storage take."""
    return -(-size // BYTES_PER_UNIT_SIZE)


def blob_record_to_json(record: BlobRecord) -> dict[str, Any]:
    """A blob object in Walrus's `Blob` JSON shape."""
    return {
        "id": format_object_id(record.object_id),
        "registeredEpoch": record.registered_epoch,
        "blobId": str(record.blob_id),
        "size": record.size,
        "encodingType": ENCODING_TYPE_NAME,
        "certifiedEpoch": record.certified_epoch,
        "storage": {
            "id": format_object_id(record.storage.storage_id),
            "startEpoch": record.storage.start_epoch,
            "endEpoch": record.storage.end_epoch,
            "storageSize": record.storage.storage_size,
        },
        "deletable": record.deletable,
    }


@dataclass(frozen=True, slots=True)
class ResourceOperation:
    """How the blob got its registration: bought from scratch, or an owned one reused."""

    kind: Literal["registerFromScratch", "reuseStorage", "reuseRegistration", "reuseAndExtend"]
    encoded_length: int
    #: Epochs bought (registerFromScratch) or added (reuseAndExtend).
    epochs: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Walrus's `RegisterBlobOp` JSON."""
        body: dict[str, Any] = {"encodedLength": self.encoded_length}
        if self.kind == "registerFromScratch":
            body["epochsAhead"] = self.epochs
        elif self.kind == "reuseAndExtend":
            body["epochsExtended"] = self.epochs
        return {self.kind: body}


@dataclass(frozen=True, slots=True)
class StoreResult:
    """The outcome of a store: a blob newly certified, or one found already certified.

    `certified_by` says how an already certified blob was recognised: "event" (a permanent
    status, vouched for by nodes of at least f+1 shards, with its chain event) or "object" (a
    certified deletable blob object this account owns). `phase_s` times each phase: encode,
    status, register, upload (to the quorum), certify, and total.
    """

    blob_id: BlobId
    unencoded_length: int
    encoded_length: int
    end_epoch: int
    cost: int
    already_certified: bool
    blob: BlobRecord | None = None
    operation: ResourceOperation | None = None
    certified_by: Literal["event", "object"] | None = None
    event: EventId | None = None
    phase_s: Mapping[str, float] = field(default_factory=dict)
    upload_summary: str = ""
    #: The shared blob made of the new object (`store(..., share=True)`), `0x` text.
    shared_blob_object: str | None = None

    @property
    def object_id(self) -> str | None:
        """The blob object's ID, `0x` and 64 hex digits (None when already certified through
        another's object)."""
        return format_object_id(self.blob.object_id) if self.blob is not None else None

    def to_json(self) -> dict[str, Any]:
        """Walrus's `BlobStoreResult`: `newlyCreated` or `alreadyCertified`."""
        if self.already_certified:
            body: dict[str, Any] = {"blobId": str(self.blob_id)}
            if self.certified_by == "object" and self.blob is not None:
                body["object"] = format_object_id(self.blob.object_id)
            elif self.event is not None:
                body["event"] = self.event.to_json()
            body["endEpoch"] = self.end_epoch
            return {"alreadyCertified": body}
        assert self.blob is not None and self.operation is not None
        created: dict[str, Any] = {
            "blobObject": blob_record_to_json(self.blob),
            "resourceOperation": self.operation.to_json(),
            "cost": self.cost,
        }
        if self.shared_blob_object is not None:
            created["sharedBlobObject"] = self.shared_blob_object
        return {"newlyCreated": created}


@dataclass(frozen=True, slots=True)
class VerifiedStatus:
    """A blob status that nodes of at least f+1 shards reported (spec 1.4).

    `weight` is the shard weight that reported this very status; `answered_weight` that of all
    the nodes that answered.
    """

    blob_id: BlobId
    status: BlobStatus
    weight: int
    answered_weight: int
    n_shards: int

    @property
    def end_epoch(self) -> int | None:
        """The end epoch of a permanent blob (None for the other statuses)."""
        return self.status.end_epoch if isinstance(self.status, Permanent) else None

    @property
    def initial_certified_epoch(self) -> int | None:
        """The epoch the blob was first certified in (None: not certified, invalid, unknown).

        Reads during an epoch change use it to pick the committee (walruspy.client.read).
        """
        status = self.status
        if isinstance(status, Permanent | Deletable):
            return status.initial_certified_epoch
        return None

    def is_certified_until(self, epoch: int) -> bool:
        """Whether a permanent, certified registration lasts at least until `epoch`."""
        status = self.status
        return isinstance(status, Permanent) and status.is_certified and status.end_epoch >= epoch

    def to_json(self) -> dict[str, Any]:
        """`{"blobId", "status"}` as Walrus's `BlobStatusOutput` (expiry added by callers)."""
        return {"blobId": str(self.blob_id), "status": blob_status_to_json(self.status)}

    def describe(self) -> str:
        """One line for people."""
        status = self.status
        if isinstance(status, Permanent):
            state = "certified" if status.is_certified else "registered, not certified"
            return f"permanent blob, {state}, stored until epoch {status.end_epoch} (exclusive)"
        if isinstance(status, Deletable):
            counts = status.deletable_counts
            return (
                f"deletable blob: {counts.count_deletable_certified} certified of "
                f"{counts.count_deletable_total} registered objects"
            )
        if isinstance(status, Invalid):
            return "invalid: marked invalid on chain (inconsistently encoded)"
        return "nonexistent: never registered, expired or deleted"


@dataclass(frozen=True, slots=True)
class RangeRead:
    """Bytes [start, start + len(data)) of blob `blob_id`, which has `blob_size` bytes.

    `slivers` are the primary slivers read for them (the source rows holding the range) and
    `sliver_bytes` their size: what crossed the network besides the metadata.
    """

    blob_id: BlobId
    data: bytes = field(repr=False)
    start: int
    blob_size: int
    slivers: tuple[int, ...]
    sliver_bytes: int

    @property
    def end(self) -> int:
        """The first byte after the range."""
        return self.start + len(self.data)

    def to_json(self) -> dict[str, Any]:
        """`{"blobId", "start", "end", "blobSize"}` (the CLI adds the bytes)."""
        return {
            "blobId": str(self.blob_id),
            "start": self.start,
            "end": self.end,
            "blobSize": self.blob_size,
        }


def estimated_epoch_start_s(info: SystemInfo, epoch: int) -> int:
    """When `epoch` starts (or started), in chain seconds, if epochs keep their duration."""
    return info.epoch_started_at + (epoch - info.epoch) * info.epoch_duration_s


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """Blob objects deleted (their storage came back to the account).

    `object_id` is the one asked for, `0x` and 64 hex digits (raw bytes are converted).
    """

    blob_id: BlobId | None
    object_id: str | None
    deleted: Sequence[BlobRecord]

    def __post_init__(self) -> None:
        if isinstance(self.object_id, bytes):
            object.__setattr__(self, "object_id", format_object_id(self.object_id))

    def to_json(self) -> dict[str, Any]:
        """Walrus's `DeleteOutput` (without the post-deletion status, added by callers)."""
        identity: dict[str, Any] = {}
        if self.blob_id is not None:
            identity["blobId"] = str(self.blob_id)
        if self.object_id is not None:
            identity["objectId"] = self.object_id
        return {
            "blobIdentity": identity,
            "deletedBlobs": [blob_record_to_json(b) for b in self.deleted],
            "noBlobFound": not self.deleted,
        }


@dataclass(frozen=True, slots=True)
class ExtendResult:
    """A certified blob kept for more epochs; `cost` is at the prices when it was sent."""

    blob: BlobRecord
    epochs_extended: int
    end_epoch: int
    cost: int

    @property
    def object_id(self) -> str:
        """The blob object's ID, `0x` and 64 hex digits."""
        return format_object_id(self.blob.object_id)

    def to_json(self) -> dict[str, Any]:
        """Walrus's `ExtendBlobOutput`, with the object, its new end epoch and the cost."""
        return {
            "objectId": format_object_id(self.blob.object_id),
            "blobId": str(self.blob.blob_id),
            "epochsExtended": self.epochs_extended,
            "endEpoch": self.end_epoch,
            "cost": self.cost,
        }


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    """The system's parameters and committee, as `walrus info` shows them."""

    system: SystemInfo
    committee: Committee

    @property
    def params(self) -> EncodingParams:
        """The encoding parameters of the committee's shard count."""
        return EncodingParams(self.committee.n_shards)

    def cost_of(self, blob_length: int, epochs: int) -> int:
        """What storing `blob_length` bytes for `epochs` epochs costs at current prices."""
        units = storage_units(self.params.encoded_length(blob_length))
        info = self.system
        return units * (info.storage_price_per_unit_size * epochs + info.write_price_per_unit_size)

    def to_json(self) -> dict[str, Any]:
        """Walrus's `InfoOutput` groups: epoch, storage, size, price, BFT and committee."""
        info, params, committee = self.system, self.params, self.committee
        metadata_units = storage_units(params.n_shards * params.metadata_length)
        return {
            "epochInfo": {
                "currentEpoch": info.epoch,
                "startOfCurrentEpoch": info.epoch_started_at,
                "epochDurationS": info.epoch_duration_s,
                "maxEpochsAhead": info.max_epochs_ahead,
            },
            "storageInfo": {"nShards": committee.n_shards, "nNodes": committee.n_members},
            "sizeInfo": {
                "storageUnitSize": BYTES_PER_UNIT_SIZE,
                "maxBlobSize": params.max_blob_size,
            },
            "priceInfo": {
                "storagePricePerUnitSize": info.storage_price_per_unit_size,
                "writePricePerUnitSize": info.write_price_per_unit_size,
                "metadataPrice": metadata_units * info.storage_price_per_unit_size,
                "exampleBlobs": [
                    {"unencodedSize": size, "costPerEpoch": self.cost_of(size, 1)}
                    for size in (16 << 20, 512 << 20, 13 << 30)
                    if size <= params.max_blob_size
                ],
            },
            "bftInfo": {
                "f": committee.max_n_faulty,
                "quorumThreshold": committee.quorum_weight,
                "validityThreshold": committee.validity_weight,
                "minNCorrect": committee.min_n_correct,
            },
            "committeeInfo": {
                "nPrimarySourceSymbols": params.n_primary_source_symbols,
                "nSecondarySourceSymbols": params.n_secondary_source_symbols,
                "storageNodes": [
                    {
                        "nodeId": "0x" + m.node_id.hex(),
                        "networkAddress": m.network_address,
                        "nShards": m.weight,
                    }
                    for m in committee.members
                ],
            },
        }
