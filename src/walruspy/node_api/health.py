"""The health answer of a storage node, `GET /v1/health` (spec/walrus-system.md 3.1).

Theory of operation: the shape is Walrus's `ServiceHealthInfo` (`walrus-storage-node-client/src/
api.rs`) as serde writes it: camelCase keys; `uptime` as Rust's `Duration`, `{"secs", "nanos"}`;
`publicKey` as the standard base64 of the 48-byte BLS key; `nodeStatus` as the display string of
the node status (`"Active"`, `"RecoveryInProgress (3)"`, ...); `shardDetail` and
`latestCheckpointSequenceNumber` left out when absent. `latestCheckpointSequenceNumber` is Sui's
checkpoint; on our chain it carries the number of the latest block the node has seen, the EVM's
nearest equivalent.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass

from walruspy.core.errors import DecodeError
from walruspy.node_api import json_fields as jf
from walruspy.node_api.json_fields import JsonObject, JsonValue
from walruspy.node_api.schemas import BLS_PUBLIC_KEY_LEN

#: Nanoseconds in a second, the modulus of `Duration.nanos`.
NANOS_PER_SECOND = 1_000_000_000
#: Most shards listed in a detailed health answer: one entry for every u16 shard index.
MAX_HEALTH_SHARDS = jf.U16_MAX + 1
#: Longest node-status string we accept; Walrus's longest is about 100 characters.
MAX_NODE_STATUS_CHARS = 256


def _check_count(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= jf.U64_MAX:
        raise ValueError(f"{what} must be a u64, got {value!r}")


class ShardStatus(enum.Enum):
    """The state of one shard on a node, as the health answer reports it."""

    UNKNOWN = "unknown"
    READY = "ready"
    IN_TRANSFER = "inTransfer"
    IN_RECOVERY = "inRecovery"
    READ_ONLY = "readOnly"


@dataclass(frozen=True, slots=True)
class ShardHealthInfo:
    """One shard and its status."""

    shard: int
    status: ShardStatus

    def __post_init__(self) -> None:
        if not 0 <= self.shard <= jf.U16_MAX:
            raise ValueError(f"shard index must be a u16, got {self.shard}")

    def to_json(self) -> JsonObject:
        """`{"shard": i, "status": "ready"}`."""
        return {"shard": self.shard, "status": self.status.value}

    @classmethod
    def from_json(cls, value: JsonValue, what: str) -> ShardHealthInfo:
        """Parse the JSON form."""
        obj = jf.as_object(value, what)
        text = jf.as_str(jf.field(obj, "status", what), f"{what}.status", 32)
        try:
            status = ShardStatus(text)
        except ValueError:
            raise DecodeError(f"{what}.status: unknown shard status {text!r}") from None
        return cls(jf.as_int(jf.field(obj, "shard", what), f"{what}.shard", jf.U16_MAX), status)


@dataclass(frozen=True, slots=True)
class EventProgress:
    """How far the node has processed chain events."""

    persisted: int
    pending: int
    highest_finished_event_index: int | None

    def __post_init__(self) -> None:
        _check_count(self.persisted, "persisted")
        _check_count(self.pending, "pending")
        if self.highest_finished_event_index is not None:
            _check_count(self.highest_finished_event_index, "highest_finished_event_index")


@dataclass(frozen=True, slots=True)
class OwnedShardStatus:
    """How many of the node's shards are in each state."""

    unknown: int = 0
    ready: int = 0
    in_transfer: int = 0
    in_recovery: int = 0

    def __post_init__(self) -> None:
        for name in ("unknown", "ready", "in_transfer", "in_recovery"):
            _check_count(getattr(self, name), name)


@dataclass(frozen=True, slots=True)
class ShardStatusSummary:
    """Counts of owned shards (by state) and of read-only shards no longer owned."""

    owned: int
    owned_shard_status: OwnedShardStatus
    read_only: int

    def __post_init__(self) -> None:
        _check_count(self.owned, "owned")
        _check_count(self.read_only, "read_only")


@dataclass(frozen=True, slots=True)
class ShardStatusDetail:
    """Per-shard states: shards owned this epoch, and other shards the node still stores."""

    owned: tuple[ShardHealthInfo, ...]
    other: tuple[ShardHealthInfo, ...]

    def __post_init__(self) -> None:
        if len(self.owned) + len(self.other) > MAX_HEALTH_SHARDS:
            raise ValueError("more shards than u16 indices")


@dataclass(frozen=True, slots=True)
class ServiceHealthInfo:
    """The health answer of a storage node."""

    uptime_ns: int
    epoch: int
    public_key: bytes
    node_status: str
    event_progress: EventProgress
    shard_summary: ShardStatusSummary
    shard_detail: ShardStatusDetail | None = None
    latest_checkpoint_sequence_number: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.uptime_ns // NANOS_PER_SECOND <= jf.U64_MAX:
            raise ValueError(f"uptime must fit a Rust Duration, got {self.uptime_ns} ns")
        if not 0 <= self.epoch <= jf.U32_MAX:
            raise ValueError(f"epoch must be a u32, got {self.epoch}")
        if len(self.public_key) != BLS_PUBLIC_KEY_LEN:
            raise ValueError(f"a BLS public key is {BLS_PUBLIC_KEY_LEN} bytes")
        if len(self.node_status) > MAX_NODE_STATUS_CHARS:
            raise ValueError("node status string too long")
        if self.latest_checkpoint_sequence_number is not None:
            _check_count(self.latest_checkpoint_sequence_number, "latest block number")

    def to_json(self) -> JsonObject:
        """The JSON serde writes for Walrus's `ServiceHealthInfo`."""
        secs, nanos = divmod(self.uptime_ns, NANOS_PER_SECOND)
        progress = self.event_progress
        summary = self.shard_summary
        owned = summary.owned_shard_status
        body: JsonObject = {
            "uptime": {"secs": secs, "nanos": nanos},
            "epoch": self.epoch,
            "publicKey": base64.b64encode(self.public_key).decode(),
            "nodeStatus": self.node_status,
            "eventProgress": {
                "persisted": progress.persisted,
                "pending": progress.pending,
                "highestFinishedEventIndex": progress.highest_finished_event_index,
            },
            "shardSummary": {
                "owned": summary.owned,
                "ownedShardStatus": {
                    "unknown": owned.unknown,
                    "ready": owned.ready,
                    "inTransfer": owned.in_transfer,
                    "inRecovery": owned.in_recovery,
                },
                "readOnly": summary.read_only,
            },
        }
        if self.shard_detail is not None:
            body["shardDetail"] = {
                "owned": [info.to_json() for info in self.shard_detail.owned],
                "other": [info.to_json() for info in self.shard_detail.other],
            }
        if self.latest_checkpoint_sequence_number is not None:
            body["latestCheckpointSequenceNumber"] = self.latest_checkpoint_sequence_number
        return body

    @classmethod
    def from_json(cls, value: JsonValue) -> ServiceHealthInfo:
        """Parse the JSON form strictly (unknown keys are ignored, as serde does)."""
        obj = jf.as_object(value, "health")
        uptime = jf.as_object(jf.field(obj, "uptime", "health"), "uptime")
        secs = jf.as_u64(jf.field(uptime, "secs", "uptime"), "uptime.secs")
        nanos = jf.as_int(jf.field(uptime, "nanos", "uptime"), "uptime.nanos", NANOS_PER_SECOND - 1)
        public_key = jf.as_base64(
            jf.field(obj, "publicKey", "health"), "publicKey", BLS_PUBLIC_KEY_LEN
        )
        if len(public_key) != BLS_PUBLIC_KEY_LEN:
            raise DecodeError(f"publicKey: expected {BLS_PUBLIC_KEY_LEN} bytes")
        detail = jf.optional_field(obj, "shardDetail")
        return cls(
            uptime_ns=secs * NANOS_PER_SECOND + nanos,
            epoch=jf.as_u32(jf.field(obj, "epoch", "health"), "epoch"),
            public_key=public_key,
            node_status=jf.as_str(
                jf.field(obj, "nodeStatus", "health"), "nodeStatus", MAX_NODE_STATUS_CHARS
            ),
            event_progress=_progress_from_json(jf.field(obj, "eventProgress", "health")),
            shard_summary=_summary_from_json(jf.field(obj, "shardSummary", "health")),
            shard_detail=None if detail is None else _detail_from_json(detail),
            latest_checkpoint_sequence_number=jf.as_optional_u64(
                jf.optional_field(obj, "latestCheckpointSequenceNumber"),
                "latestCheckpointSequenceNumber",
            ),
        )


def _progress_from_json(value: JsonValue) -> EventProgress:
    obj = jf.as_object(value, "eventProgress")
    return EventProgress(
        persisted=jf.as_u64(jf.field(obj, "persisted", "eventProgress"), "persisted"),
        pending=jf.as_u64(jf.field(obj, "pending", "eventProgress"), "pending"),
        highest_finished_event_index=jf.as_optional_u64(
            jf.optional_field(obj, "highestFinishedEventIndex"), "highestFinishedEventIndex"
        ),
    )


def _summary_from_json(value: JsonValue) -> ShardStatusSummary:
    obj = jf.as_object(value, "shardSummary")
    owned = jf.as_object(jf.field(obj, "ownedShardStatus", "shardSummary"), "ownedShardStatus")

    def count(key: str) -> int:
        return jf.as_u64(jf.field(owned, key, "ownedShardStatus"), f"ownedShardStatus.{key}")

    return ShardStatusSummary(
        owned=jf.as_u64(jf.field(obj, "owned", "shardSummary"), "shardSummary.owned"),
        owned_shard_status=OwnedShardStatus(
            count("unknown"), count("ready"), count("inTransfer"), count("inRecovery")
        ),
        read_only=jf.as_u64(jf.field(obj, "readOnly", "shardSummary"), "shardSummary.readOnly"),
    )


def _detail_from_json(value: JsonValue) -> ShardStatusDetail:
    obj = jf.as_object(value, "shardDetail")
    lists = {
        key: jf.as_list(jf.field(obj, key, "shardDetail"), f"shardDetail.{key}", MAX_HEALTH_SHARDS)
        for key in ("owned", "other")
    }
    if len(lists["owned"]) + len(lists["other"]) > MAX_HEALTH_SHARDS:
        raise DecodeError("shardDetail: more shards than u16 indices")
    return ShardStatusDetail(
        owned=tuple(
            ShardHealthInfo.from_json(item, f"shardDetail.owned[{i}]")
            for i, item in enumerate(lists["owned"])
        ),
        other=tuple(
            ShardHealthInfo.from_json(item, f"shardDetail.other[{i}]")
            for i, item in enumerate(lists["other"])
        ),
    )
