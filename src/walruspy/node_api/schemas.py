"""JSON bodies of the node REST API: the success envelope, blob status, confirmations, health.

Theory of operation (spec/walrus-system.md 1.4 and 3.1; Walrus `walrus-storage-node-client/src/
api.rs`, `walrus-service/src/common/api.rs`, `walrus-core/src/messages.rs`): JSON answers are
wrapped as `{"success": {"code": <http>, "data": <T>}}`; errors are AIP-193 (`errors.py`). Each
type here is a frozen dataclass that validates in its constructor, writes exactly the JSON serde
writes in Walrus (`to_json`) and parses it strictly (`from_json`, raising `DecodeError`).

Serde spellings, checked against Walrus's source: enums are externally tagged and camelCase, so a
unit variant is a bare string (`"nonexistent"`, `"stored"`) and a struct variant is a one-key
object (`{"permanent": {"endEpoch": ...}}`); `DeletableCounts` keeps snake_case inner keys; an
`Option` is written as `null` and read as `null` when missing; `Duration` is `{"secs", "nanos"}`;
BLS keys and signatures, and `SignedMessage.serializedMessage`, are standard padded base64.

Event IDs: Walrus names a chain event by the Sui `EventID` `{"txDigest": <base58 digest>,
"eventSeq": "<u64 as a decimal string>"}`. On our EVM chain an event is a log, named by the hash of
its transaction and its log index, so `EventId` keeps the two Walrus keys and puts the 32-byte
transaction hash in `txDigest` as `0x` + 64 lowercase hex digits (the form every EVM tool prints
and accepts) and the log index in `eventSeq`, still a decimal string. The EVM log index counts logs
in the block, not in the transaction as Sui's sequence does; the pair still names exactly one
event, which is what the client needs to check a `statusEvent` against the chain's receipt.

Ordering of statuses (spec 1.4, Walrus `impl Ord for BlobStatus`): nonexistent < deletable <
permanent < invalid; deletables by certified count, total count, then the earlier initial
certified epoch; permanents by certification, end epoch, deletable counts, then the earlier initial
epoch. `blob_status_sort_key` reproduces it, including Rust's `Reverse(Option)` placing an unknown
initial epoch above every known one.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass
from typing import TypeAlias

from walruspy.core.errors import DecodeError
from walruspy.node_api import json_fields as jf
from walruspy.node_api.errors import error_from_response
from walruspy.node_api.json_fields import JsonObject, JsonValue

#: Length of an EVM transaction hash.
TX_HASH_LEN = 32
#: Length of a min-pk BLS12-381 public key (compressed G1), the node's protocol key.
BLS_PUBLIC_KEY_LEN = 48
#: Length of a min-pk BLS12-381 signature (compressed G2).
BLS_SIGNATURE_LEN = 96
#: Largest BCS message inside a signed confirmation or attestation we accept. Walrus's largest
#: signed message (a storage confirmation) is under 100 bytes; 64 KiB leaves room for new kinds.
MAX_SIGNED_MESSAGE_BYTES = 64 * 1024


def _check_u32(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= jf.U32_MAX:
        raise ValueError(f"{what} must be a u32, got {value!r}")


def _check_u64(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= jf.U64_MAX:
        raise ValueError(f"{what} must be a u64, got {value!r}")


# --- the success envelope -------------------------------------------------------------------


def success_body(data: JsonValue, code: int = 200) -> JsonObject:
    """Wrap `data` as Walrus's `ApiSuccess`: `{"success": {"code": code, "data": data}}`."""
    if not 200 <= code < 300:
        raise ValueError(f"a success code must be 2xx, got {code}")
    return {"success": {"code": code, "data": data}}


def parse_success_body(value: JsonValue) -> tuple[int, JsonValue]:
    """Split a decoded success envelope into its code and data."""
    inner = jf.as_object(
        jf.field(jf.as_object(value, "response"), "success", "response"), "success"
    )
    code = jf.as_int(jf.field(inner, "code", "success"), "success.code", 999)
    if not 200 <= code < 300:
        raise DecodeError(f"success.code: {code} is not a 2xx code")
    return code, jf.field(inner, "data", "success")


def parse_service_response(http_status: int, body: bytes) -> JsonValue:
    """The `data` of a JSON answer; raise the answer's `NodeApiError` for an error.

    A 2xx answer whose body is not a success envelope for the same code raises `DecodeError`.
    """
    if not 200 <= http_status < 300:
        raise error_from_response(http_status, body)
    code, data = parse_success_body(jf.loads(body, "response"))
    if code != http_status:
        raise DecodeError(f"HTTP {http_status} carries a success body with code {code}")
    return data


# --- event IDs and blob status ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class EventId:
    """A chain event: the hash of its transaction and its log index (Walrus's Sui `EventID`)."""

    tx_hash: bytes
    log_index: int

    def __post_init__(self) -> None:
        if not isinstance(self.tx_hash, bytes) or len(self.tx_hash) != TX_HASH_LEN:
            raise ValueError(f"tx_hash must be {TX_HASH_LEN} bytes, got {self.tx_hash!r:.80}")
        _check_u64(self.log_index, "log_index")

    def to_json(self) -> JsonObject:
        """`{"txDigest": "0x…", "eventSeq": "<log index>"}`."""
        return {"txDigest": "0x" + self.tx_hash.hex(), "eventSeq": str(self.log_index)}

    @classmethod
    def from_json(cls, value: JsonValue, what: str = "event") -> EventId:
        """Parse the JSON form; the digest must be 0x and 64 hex digits (any case)."""
        obj = jf.as_object(value, what)
        digest = jf.as_str(jf.field(obj, "txDigest", what), f"{what}.txDigest", 128)
        if len(digest) != 2 + 2 * TX_HASH_LEN or not digest.startswith("0x"):
            raise DecodeError(f"{what}.txDigest: expected 0x and 64 hex digits, got {digest!r}")
        try:
            tx_hash = bytes.fromhex(digest[2:])
        except ValueError:
            raise DecodeError(f"{what}.txDigest: invalid hex {digest!r}") from None
        seq = jf.as_str(jf.field(obj, "eventSeq", what), f"{what}.eventSeq", 32)
        return cls(tx_hash, jf.parse_decimal_u64(seq, f"{what}.eventSeq"))


@dataclass(frozen=True, slots=True)
class DeletableCounts:
    """Counts of the live deletable `Blob` objects of a blob ID, all and certified."""

    count_deletable_total: int = 0
    count_deletable_certified: int = 0

    def __post_init__(self) -> None:
        _check_u32(self.count_deletable_total, "count_deletable_total")
        _check_u32(self.count_deletable_certified, "count_deletable_certified")

    def to_json(self) -> JsonObject:
        """The two counts, with their snake_case keys (Walrus does not rename them)."""
        return {
            "count_deletable_total": self.count_deletable_total,
            "count_deletable_certified": self.count_deletable_certified,
        }

    @classmethod
    def from_json(cls, value: JsonValue, what: str = "deletableCounts") -> DeletableCounts:
        """Parse the JSON form."""
        obj = jf.as_object(value, what)
        return cls(
            jf.as_u32(
                jf.field(obj, "count_deletable_total", what), f"{what}.count_deletable_total"
            ),
            jf.as_u32(
                jf.field(obj, "count_deletable_certified", what),
                f"{what}.count_deletable_certified",
            ),
        )


@dataclass(frozen=True, slots=True)
class Nonexistent:
    """The blob was never registered, or all its registrations expired or were deleted."""


@dataclass(frozen=True, slots=True)
class Invalid:
    """The blob ID was marked invalid on chain by `event`."""

    event: EventId


@dataclass(frozen=True, slots=True)
class Permanent:
    """At least one live permanent registration; `end_epoch` is the latest among them."""

    end_epoch: int
    is_certified: bool
    status_event: EventId
    deletable_counts: DeletableCounts
    initial_certified_epoch: int | None

    def __post_init__(self) -> None:
        _check_u32(self.end_epoch, "end_epoch")
        if self.initial_certified_epoch is not None:
            _check_u32(self.initial_certified_epoch, "initial_certified_epoch")


@dataclass(frozen=True, slots=True)
class Deletable:
    """Only deletable registrations are live: the blob may vanish at any time."""

    initial_certified_epoch: int | None
    deletable_counts: DeletableCounts

    def __post_init__(self) -> None:
        if self.initial_certified_epoch is not None:
            _check_u32(self.initial_certified_epoch, "initial_certified_epoch")


#: The status of a blob as one node sees it.
BlobStatus: TypeAlias = Nonexistent | Invalid | Permanent | Deletable

_STATUS_VARIANTS = frozenset({"invalid", "permanent", "deletable"})


def blob_status_to_json(status: BlobStatus) -> JsonValue:
    """The JSON serde writes for Walrus's `BlobStatus`."""
    if isinstance(status, Nonexistent):
        return "nonexistent"
    if isinstance(status, Invalid):
        return {"invalid": {"event": status.event.to_json()}}
    if isinstance(status, Permanent):
        return {
            "permanent": {
                "endEpoch": status.end_epoch,
                "isCertified": status.is_certified,
                "statusEvent": status.status_event.to_json(),
                "deletableCounts": status.deletable_counts.to_json(),
                "initialCertifiedEpoch": status.initial_certified_epoch,
            }
        }
    return {
        "deletable": {
            "initialCertifiedEpoch": status.initial_certified_epoch,
            "deletableCounts": status.deletable_counts.to_json(),
        }
    }


def blob_status_from_json(value: JsonValue) -> BlobStatus:
    """Parse a `BlobStatus`; `DecodeError` names what is wrong."""
    if isinstance(value, str):
        if value != "nonexistent":
            raise DecodeError(f"blob status: unknown unit variant {value[:60]!r}")
        return Nonexistent()
    tag, body = jf.single_key(value, "blob status", _STATUS_VARIANTS)
    obj = jf.as_object(body, tag)
    if tag == "invalid":
        return Invalid(EventId.from_json(jf.field(obj, "event", tag), "invalid.event"))
    initial = jf.as_optional_u32(
        jf.optional_field(obj, "initialCertifiedEpoch"), f"{tag}.initialCertifiedEpoch"
    )
    counts = DeletableCounts.from_json(
        jf.field(obj, "deletableCounts", tag), f"{tag}.deletableCounts"
    )
    if tag == "deletable":
        return Deletable(initial, counts)
    return Permanent(
        end_epoch=jf.as_u32(jf.field(obj, "endEpoch", tag), "permanent.endEpoch"),
        is_certified=jf.as_bool(jf.field(obj, "isCertified", tag), "permanent.isCertified"),
        status_event=EventId.from_json(jf.field(obj, "statusEvent", tag), "permanent.statusEvent"),
        deletable_counts=counts,
        initial_certified_epoch=initial,
    )


def _reverse_optional_epoch(epoch: int | None) -> tuple[int, int]:
    """Sort key of Rust's `Reverse(Option<Epoch>)`: smaller epochs rank higher, None highest."""
    return (1, 0) if epoch is None else (0, -epoch)


def blob_status_sort_key(status: BlobStatus) -> tuple[int, int, int, int, int, int, int]:
    """A key that sorts statuses as Walrus orders them; equal keys mean "equally recent"."""
    if isinstance(status, Nonexistent):
        return (0, 0, 0, 0, 0, 0, 0)
    if isinstance(status, Invalid):
        return (3, 0, 0, 0, 0, 0, 0)
    counts = status.deletable_counts
    initial = _reverse_optional_epoch(status.initial_certified_epoch)
    if isinstance(status, Deletable):
        rank, is_certified, end_epoch = 1, 0, 0
    else:
        rank, is_certified, end_epoch = 2, int(status.is_certified), status.end_epoch
    return (
        rank,
        is_certified,
        end_epoch,
        counts.count_deletable_certified,
        counts.count_deletable_total,
        *initial,
    )


class StoredOnNodeStatus(enum.Enum):
    """Whether a node holds a blob's metadata or one of its slivers."""

    NONEXISTENT = "nonexistent"
    BUFFERED = "buffered"
    STORED = "stored"

    def to_json(self) -> JsonValue:
        """The bare string serde writes for this unit variant."""
        return self.value

    @classmethod
    def from_json(cls, value: JsonValue) -> StoredOnNodeStatus:
        """Parse one of the three strings."""
        text = jf.as_str(value, "stored-on-node status", 32)
        try:
            return cls(text)
        except ValueError:
            raise DecodeError(f"stored-on-node status: unknown value {text!r}") from None


# --- signed messages ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """A BCS message and the node's BLS signature over it (confirmations, attestations)."""

    serialized_message: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not 0 < len(self.serialized_message) <= MAX_SIGNED_MESSAGE_BYTES:
            raise ValueError(f"signed message of {len(self.serialized_message)} bytes")
        if len(self.signature) != BLS_SIGNATURE_LEN:
            raise ValueError(f"a BLS signature is {BLS_SIGNATURE_LEN} bytes")

    def to_json(self) -> JsonObject:
        """`{"serializedMessage": <base64>, "signature": <base64>}`."""
        return {
            "serializedMessage": base64.b64encode(self.serialized_message).decode(),
            "signature": base64.b64encode(self.signature).decode(),
        }

    @classmethod
    def from_json(cls, value: JsonValue, what: str = "signed message") -> SignedMessage:
        """Parse the JSON form, with bounded sizes."""
        obj = jf.as_object(value, what)
        message = jf.as_base64(
            jf.field(obj, "serializedMessage", what),
            f"{what}.serializedMessage",
            MAX_SIGNED_MESSAGE_BYTES,
        )
        if not message:
            raise DecodeError(f"{what}.serializedMessage: empty")
        signature = jf.as_base64(
            jf.field(obj, "signature", what), f"{what}.signature", BLS_SIGNATURE_LEN
        )
        if len(signature) != BLS_SIGNATURE_LEN:
            raise DecodeError(f"{what}.signature: expected {BLS_SIGNATURE_LEN} bytes")
        return cls(message, signature)


def storage_confirmation_to_json(signed: SignedMessage) -> JsonObject:
    """Walrus's `StorageConfirmation::Signed`: `{"signed": {...}}`."""
    return {"signed": signed.to_json()}


def storage_confirmation_from_json(value: JsonValue) -> SignedMessage:
    """Parse a `StorageConfirmation` (its only variant is `signed`)."""
    _, body = jf.single_key(value, "storage confirmation", frozenset({"signed"}))
    return SignedMessage.from_json(body, "signed")
