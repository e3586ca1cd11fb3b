"""Walrus's signed messages: intent header, typed bodies, and the signed-message JSON form.

Theory of operation (spec/walrus-system.md sections 2.7 and 3.1). Everything a storage node signs
starts with a 7-byte BCS header, `intent_type u8 ‖ intent_version u8 (= 0) ‖ app_id u8 (= 3) ‖
epoch u32 LE`, followed by a body whose layout the intent type fixes:

    0 PROOF_OF_POSSESSION  sui_address [32] ‖ bls_public_key [48] (no length prefix)
    1 BLOB_CERT            blob_id [32] ‖ 0x00 (permanent) | 0x01 ‖ object_id [32] (deletable)
    2 INVALID_BLOB_ID      blob_id [32]
    3 SYNC_SHARD           0x00 (V1) ‖ shard_index u16 ‖ sliver_type u8 (0 primary, 1 secondary) ‖
                           starting_blob_id [32] ‖ sliver_count u64 ‖ epoch u32 (node to node only)
    7 CHALLENGE_ATTESTATION  node_id [32] ‖ seed [32] ‖ blobs_checked u32 (walruspy's own, not
                           Walrus's: storage challenges, `walruspy.core.challenge`)

(Intents 4 to 6, DENY_LIST_UPDATE, DENY_LIST_BLOB_DELETED and PROTOCOL_VERSION, are named in
`IntentType` but have no body type here yet. SYNC_SHARD has its own sign and verify functions at
the end of this module and is not among the `ProtocolMessage`s that `decode_message` knows: only
the previous owner of a shard ever reads one.) The bytes signed are exactly these BCS
bytes, with Walrus's DST (`walruspy.core.crypto`). Decoding is strict like Rust's
`bcs::from_bytes` with Walrus's `TryFrom<ProtocolMessage<_>>` intent checks: a wrong intent
type, intent version or app id, a bad persistence tag, a short body or trailing bytes all raise
`DecodeError`. (The Move contract's `certify_blob_message` tolerates trailing bytes "for
extensibility"; nodes and clients, like Walrus's Rust code, do not.)

EVM port choice: the proof of possession binds the key to the account that registers the node.
Walrus puts the 32-byte Sui address there; we put the 20-byte EVM address left-padded with 12
zero bytes to 32 bytes (the ABI encoding of an `address`, `convert(addr, bytes32)` in Vyper), so
the layout and the contracts' byte offsets stay those of Walrus. The PoP epoch is the chain's
current epoch when the key is registered, as in Move's `staking_pool::new`.

A node serves a signature as JSON. Verified against `MystenLabs/walrus` at 3c1cacc1:

- `crates/walrus-core/src/messages.rs`: `SignedMessage<T>` is `#[serde(rename_all =
  "camelCase")]` with `serialized_message: Vec<u8>` as `serde_with::base64::Base64` in
  human-readable formats (standard alphabet, padded) and `signature: BLS12381Signature`;
- fastcrypto (rev 4db0e90c, `serde_helpers.rs` `serialize_deserialize_with_to_from_bytes`,
  `encoding.rs`) writes that signature as `base64ct::Base64`: also standard alphabet, padded;
- `crates/walrus-core/src/messages/storage_confirmation.rs`: `StorageConfirmation` is an
  externally tagged enum with one camelCase variant, so a confirmation is
  `{"signed": {"serializedMessage": "<b64>", "signature": "<b64>"}}`, and the node wraps it as
  `{"success": {"code": 200, "data": ...}}` (`storage_openapi.yaml`, `ApiSuccess_...`);
- the inconsistency-proof endpoint answers a bare `SignedMessage` (no `signed` wrapper).

Both base64 decoders there are strict (canonical padding, no stray bits); so is ours. Unknown
keys beside the two fields are ignored, as serde does by default.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import ClassVar, Self

from walruspy.core.bcs import Reader, Writer
from walruspy.core.committee import NODE_ID_BYTES
from walruspy.core.crypto import (
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    BlsPrivateKey,
    BlsPublicKey,
    BlsSignature,
)
from walruspy.core.errors import DecodeError, VerificationError
from walruspy.core.types import ShardIndex, SliverType

#: The app id of every Walrus message (`IntentAppId::STORAGE`).
APP_ID = 3
#: The only intent version (`IntentVersion::DEFAULT`).
INTENT_VERSION = 0
#: Length of the intent header.
HEADER_BYTES = 7
#: Length of a blob ID in a message body.
BLOB_ID_BYTES = 32
#: Length of an object ID (the deletable blob's object) in a message body.
OBJECT_ID_BYTES = 32
#: Length of the account field of a proof of possession.
SUI_ADDRESS_BYTES = 32
#: Length of an EVM address, which our port pads to `SUI_ADDRESS_BYTES`.
EVM_ADDRESS_BYTES = 20
#: Largest serialized message accepted in JSON: every defined message is under 100 bytes, and
#: this bound keeps a hostile node from making us decode megabytes of base64.
MAX_SERIALIZED_MESSAGE_BYTES = 1024

_MAX_EPOCH = (1 << 32) - 1
_MAX_U32 = (1 << 32) - 1
_PERSISTENCE_PERMANENT = 0
_PERSISTENCE_DELETABLE = 1
# Base64 of MAX_SERIALIZED_MESSAGE_BYTES bytes, rounded up.
_MAX_MESSAGE_BASE64_CHARS = 4 * -(-MAX_SERIALIZED_MESSAGE_BYTES // 3)


class IntentType(IntEnum):
    """The intent type of a signed message (`walrus-core` `IntentType`, Move `messages.move`)."""

    PROOF_OF_POSSESSION = 0
    BLOB_CERT = 1
    INVALID_BLOB_ID = 2
    SYNC_SHARD = 3
    DENY_LIST_UPDATE = 4
    DENY_LIST_BLOB_DELETED = 5
    PROTOCOL_VERSION = 6
    #: walruspy's own, after Walrus's six: a peer attests that a node passed a storage challenge
    #: (`ChallengeAttestationMessage`; Walrus has no storage challenges, spec 3.6).
    CHALLENGE_ATTESTATION = 7


def _check_epoch(epoch: int) -> None:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= _MAX_EPOCH:
        raise ValueError(f"an epoch is a u32, got {epoch!r}")


def _check_id(value: bytes, length: int, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != length:
        raise ValueError(f"{what} must be {length} bytes, got {value!r}")


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """The intent header every signed message starts with."""

    intent_type: IntentType
    epoch: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "intent_type", IntentType(self.intent_type))
        _check_epoch(self.epoch)

    def write(self, writer: Writer) -> Writer:
        """Append the 7 header bytes."""
        return writer.u8(self.intent_type).u8(INTENT_VERSION).u8(APP_ID).u32(self.epoch)

    @classmethod
    def read(cls, reader: Reader) -> Self:
        """Read and check a header: known intent type, version 0, app id 3."""
        intent_type = reader.u8("intent type")
        version = reader.u8("intent version")
        app_id = reader.u8("app id")
        epoch = reader.u32("epoch")
        if version != INTENT_VERSION:
            raise DecodeError(f"unsupported intent version {version} (expected {INTENT_VERSION})")
        if app_id != APP_ID:
            raise DecodeError(f"wrong app id {app_id} (expected {APP_ID})")
        try:
            known_type = IntentType(intent_type)
        except ValueError:
            raise DecodeError(f"unknown intent type {intent_type}") from None
        return cls(known_type, epoch)

    @classmethod
    def peek(cls, data: bytes) -> Self:
        """The header of a serialized message, without decoding its body."""
        return cls.read(Reader(bytes(data)))


def _read_header(reader: Reader, expected: IntentType) -> int:
    header = MessageHeader.read(reader)
    if header.intent_type != expected:
        raise DecodeError(
            f"expected intent {expected.name} ({expected.value}), "
            f"got {header.intent_type.name} ({header.intent_type.value})"
        )
    return header.epoch


@dataclass(frozen=True, slots=True)
class BlobPersistence:
    """Whether a confirmed blob is permanent (`object_id is None`) or deletable.

    A deletable blob's confirmation names the blob object (32 bytes), so a confirmation for one
    deletable registration cannot certify another.
    """

    object_id: bytes | None = None

    PERMANENT: ClassVar[BlobPersistence]

    def __post_init__(self) -> None:
        if self.object_id is not None:
            _check_id(self.object_id, OBJECT_ID_BYTES, "object ID")

    @classmethod
    def deletable(cls, object_id: bytes) -> Self:
        """The persistence of the deletable blob object `object_id`."""
        return cls(object_id)

    @property
    def is_deletable(self) -> bool:
        """Whether the blob is deletable."""
        return self.object_id is not None

    def write(self, writer: Writer) -> Writer:
        """Append the BCS enum: tag 0, or tag 1 then the object ID."""
        if self.object_id is None:
            return writer.u8(_PERSISTENCE_PERMANENT)
        return writer.u8(_PERSISTENCE_DELETABLE).fixed(self.object_id)

    @classmethod
    def read(cls, reader: Reader) -> Self:
        """Read the BCS enum; any tag other than 0 or 1 is a `DecodeError`."""
        tag = reader.u8("blob persistence tag")
        if tag == _PERSISTENCE_PERMANENT:
            return cls()
        if tag == _PERSISTENCE_DELETABLE:
            return cls(reader.fixed(OBJECT_ID_BYTES, "object ID"))
        raise DecodeError(f"invalid blob persistence tag {tag}")


BlobPersistence.PERMANENT = BlobPersistence()


@dataclass(frozen=True, slots=True)
class ConfirmationMessage:
    """BLOB_CERT: "in `epoch` I store my slivers of `blob_id`" (Walrus `Confirmation`)."""

    epoch: int
    blob_id: bytes
    persistence: BlobPersistence = BlobPersistence.PERMANENT

    INTENT: ClassVar[IntentType] = IntentType.BLOB_CERT

    def __post_init__(self) -> None:
        _check_epoch(self.epoch)
        _check_id(self.blob_id, BLOB_ID_BYTES, "blob ID")

    def to_bcs(self) -> bytes:
        """The bytes a node signs."""
        writer = MessageHeader(self.INTENT, self.epoch).write(Writer()).fixed(self.blob_id)
        return self.persistence.write(writer).finish()

    @classmethod
    def from_bcs(cls, data: bytes) -> Self:
        """Decode strictly; see the module docstring."""
        reader = Reader(bytes(data))
        epoch = _read_header(reader, cls.INTENT)
        blob_id = reader.fixed(BLOB_ID_BYTES, "blob ID")
        persistence = BlobPersistence.read(reader)
        reader.finish("BLOB_CERT message")
        return cls(epoch, blob_id, persistence)


@dataclass(frozen=True, slots=True)
class InvalidBlobIdMessage:
    """INVALID_BLOB_ID: "in `epoch` I checked an inconsistency proof for `blob_id`"."""

    epoch: int
    blob_id: bytes

    INTENT: ClassVar[IntentType] = IntentType.INVALID_BLOB_ID

    def __post_init__(self) -> None:
        _check_epoch(self.epoch)
        _check_id(self.blob_id, BLOB_ID_BYTES, "blob ID")

    def to_bcs(self) -> bytes:
        """The bytes a node signs."""
        return MessageHeader(self.INTENT, self.epoch).write(Writer()).fixed(self.blob_id).finish()

    @classmethod
    def from_bcs(cls, data: bytes) -> Self:
        """Decode strictly; see the module docstring."""
        reader = Reader(bytes(data))
        epoch = _read_header(reader, cls.INTENT)
        blob_id = reader.fixed(BLOB_ID_BYTES, "blob ID")
        reader.finish("INVALID_BLOB_ID message")
        return cls(epoch, blob_id)


@dataclass(frozen=True, slots=True)
class ProofOfPossessionMessage:
    """PROOF_OF_POSSESSION: binds `public_key` to the registering account in `epoch`.

    `sui_address` is 32 bytes; in our EVM port it is the 20-byte EVM address left-padded with
    zeros (`for_evm_address`).
    """

    epoch: int
    sui_address: bytes
    public_key: BlsPublicKey

    INTENT: ClassVar[IntentType] = IntentType.PROOF_OF_POSSESSION

    def __post_init__(self) -> None:
        _check_epoch(self.epoch)
        _check_id(self.sui_address, SUI_ADDRESS_BYTES, "account address")
        if not isinstance(self.public_key, BlsPublicKey):
            raise TypeError(f"public_key must be a BlsPublicKey, got {self.public_key!r}")

    @classmethod
    def for_evm_address(cls, epoch: int, evm_address: bytes, public_key: BlsPublicKey) -> Self:
        """The PoP message for a 20-byte EVM account (padded to 32 bytes on the left)."""
        _check_id(evm_address, EVM_ADDRESS_BYTES, "EVM address")
        padding = bytes(SUI_ADDRESS_BYTES - EVM_ADDRESS_BYTES)
        return cls(epoch, padding + evm_address, public_key)

    def to_bcs(self) -> bytes:
        """The bytes the key's owner signs."""
        writer = MessageHeader(self.INTENT, self.epoch).write(Writer()).fixed(self.sui_address)
        return writer.fixed(self.public_key.to_bytes()).finish()

    @classmethod
    def from_bcs(cls, data: bytes) -> Self:
        """Decode strictly; the key must be a valid public key (Decode/VerificationError)."""
        reader = Reader(bytes(data))
        epoch = _read_header(reader, cls.INTENT)
        address = reader.fixed(SUI_ADDRESS_BYTES, "account address")
        key = BlsPublicKey.from_bytes(reader.fixed(PUBLIC_KEY_BYTES, "BLS public key"))
        reader.finish("PROOF_OF_POSSESSION message")
        return cls(epoch, address, key)


#: Length of the challenge seed (the shared random coin) in a challenge attestation.
CHALLENGE_SEED_BYTES = 32
#: Length of a serialized CHALLENGE_ATTESTATION message: 7 header bytes, 32 + 32 + 4 body bytes.
CHALLENGE_ATTESTATION_MESSAGE_BYTES = 75


@dataclass(frozen=True, slots=True)
class ChallengeAttestationMessage:
    """CHALLENGE_ATTESTATION: "in `epoch`, node `node_id` passed the challenge of `seed`".

    Signed by a peer that checked the challenged node's answers for all `blobs_checked` blobs of
    the sample `seed` picks (`walruspy.core.challenge`); a quorum of such signatures is the
    certificate posted on chain (Walrus paper, arXiv 2505.05370, section 4.6). The body is
    `node_id [32] ‖ seed [32] ‖ blobs_checked u32 LE`, fixed-size fields without length prefixes,
    the layout the on-chain counterpart reads by byte offset.
    """

    epoch: int
    node_id: bytes
    seed: bytes
    blobs_checked: int

    INTENT: ClassVar[IntentType] = IntentType.CHALLENGE_ATTESTATION

    def __post_init__(self) -> None:
        _check_epoch(self.epoch)
        _check_id(self.node_id, NODE_ID_BYTES, "node ID")
        _check_id(self.seed, CHALLENGE_SEED_BYTES, "challenge seed")
        count = self.blobs_checked
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= _MAX_U32:
            raise ValueError(f"blobs_checked is a u32, got {count!r}")

    def to_bcs(self) -> bytes:
        """The bytes a peer signs (`CHALLENGE_ATTESTATION_MESSAGE_BYTES` long)."""
        writer = MessageHeader(self.INTENT, self.epoch).write(Writer()).fixed(self.node_id)
        return writer.fixed(self.seed).u32(self.blobs_checked).finish()

    @classmethod
    def from_bcs(cls, data: bytes) -> Self:
        """Decode strictly; see the module docstring."""
        reader = Reader(bytes(data))
        epoch = _read_header(reader, cls.INTENT)
        node_id = reader.fixed(NODE_ID_BYTES, "node ID")
        seed = reader.fixed(CHALLENGE_SEED_BYTES, "challenge seed")
        blobs_checked = reader.u32("blobs checked")
        reader.finish("CHALLENGE_ATTESTATION message")
        return cls(epoch, node_id, seed, blobs_checked)


#: The message types with a body defined here.
ProtocolMessage = (
    ConfirmationMessage
    | InvalidBlobIdMessage
    | ProofOfPossessionMessage
    | ChallengeAttestationMessage
)

_MESSAGE_TYPES: dict[IntentType, type[ProtocolMessage]] = {
    IntentType.BLOB_CERT: ConfirmationMessage,
    IntentType.INVALID_BLOB_ID: InvalidBlobIdMessage,
    IntentType.PROOF_OF_POSSESSION: ProofOfPossessionMessage,
    IntentType.CHALLENGE_ATTESTATION: ChallengeAttestationMessage,
}


def decode_message(data: bytes) -> ProtocolMessage:
    """Decode any message with a body type here, by its intent; others are a `DecodeError`."""
    header = MessageHeader.peek(data)
    message_type = _MESSAGE_TYPES.get(header.intent_type)
    if message_type is None:
        raise DecodeError(f"no message type for intent {header.intent_type.name}")
    return message_type.from_bcs(data)


def sign_proof_of_possession(
    private_key: BlsPrivateKey, epoch: int, sui_address: bytes
) -> BlsSignature:
    """Walrus's proof of possession: the key's signature over its PROOF_OF_POSSESSION message.

    `sui_address` is 32 bytes; for an EVM account use `sign_proof_of_possession_evm`.
    """
    message = ProofOfPossessionMessage(epoch, sui_address, private_key.public_key())
    return private_key.sign(message.to_bcs())


def sign_proof_of_possession_evm(
    private_key: BlsPrivateKey, epoch: int, evm_address: bytes
) -> BlsSignature:
    """The proof of possession for a 20-byte EVM account (the address padded to 32 bytes)."""
    message = ProofOfPossessionMessage.for_evm_address(epoch, evm_address, private_key.public_key())
    return private_key.sign(message.to_bcs())


def verify_proof_of_possession(message: ProofOfPossessionMessage, signature: BlsSignature) -> bool:
    """Whether `signature` proves possession of `message.public_key` (Move's check)."""
    return message.public_key.verify(message.to_bcs(), signature)


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: object, what: str, max_chars: int) -> bytes:
    if not isinstance(value, str):
        raise DecodeError(f"{what} must be a base64 string, got {type(value).__name__}")
    if len(value) > max_chars:
        raise DecodeError(f"{what} is longer than {max_chars} base64 characters")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise DecodeError(f"{what} is not standard padded base64: {error}") from error
    if _b64encode(data) != value:
        raise DecodeError(f"{what} is not canonical base64")
    return data


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """A node's signature over one serialized message (Walrus `SignedMessage<T>`).

    The signature is parsed (subgroup-checked) but not verified: call `verify` or
    `verify_and_decode` with the signer's public key before trusting the message.
    """

    serialized_message: bytes
    signature: BlsSignature

    def __post_init__(self) -> None:
        if not isinstance(self.serialized_message, bytes):
            raise TypeError("serialized_message must be bytes")
        if not isinstance(self.signature, BlsSignature):
            raise TypeError("signature must be a BlsSignature")

    @classmethod
    def sign(cls, private_key: BlsPrivateKey, message: ProtocolMessage) -> Self:
        """Serialize `message` and sign it."""
        serialized = message.to_bcs()
        return cls(serialized, private_key.sign(serialized))

    def verify_and_decode(self, public_key: BlsPublicKey) -> ProtocolMessage:
        """Decode the message and check the signature; raises Decode/VerificationError."""
        message = decode_message(self.serialized_message)
        if not public_key.verify(self.serialized_message, self.signature):
            raise VerificationError(f"signature does not verify under {public_key.data.hex()}")
        return message

    def verify(self, public_key: BlsPublicKey, expected: ProtocolMessage) -> ProtocolMessage:
        """Check the message is `expected` and signed by `public_key` (Walrus's order).

        The epoch is compared first, then the contents, then the signature, the costly step.
        """
        message = decode_message(self.serialized_message)
        if message.epoch != expected.epoch:
            raise VerificationError(
                f"message is for epoch {message.epoch}, expected epoch {expected.epoch}"
            )
        if message != expected:
            raise VerificationError(f"message content {message!r} is not the expected {expected!r}")
        if not public_key.verify(self.serialized_message, self.signature):
            raise VerificationError(f"signature does not verify under {public_key.data.hex()}")
        return message

    def to_json_dict(self) -> dict[str, str]:
        """`{"serializedMessage": <base64>, "signature": <base64>}` (standard, padded)."""
        return {
            "serializedMessage": _b64encode(self.serialized_message),
            "signature": _b64encode(self.signature.to_bytes()),
        }

    @classmethod
    def from_json_dict(cls, value: object) -> Self:
        """Parse the JSON object form; every failure is a Decode/VerificationError."""
        if not isinstance(value, dict):
            raise DecodeError(f"a signed message must be a JSON object, got {type(value).__name__}")
        for key in ("serializedMessage", "signature"):
            if key not in value:
                raise DecodeError(f"signed message lacks {key!r}")
        message = _b64decode(
            value["serializedMessage"], "serializedMessage", _MAX_MESSAGE_BASE64_CHARS
        )
        # 96 bytes are exactly 128 base64 characters; the bound only stops huge strings early.
        signature = _b64decode(value["signature"], "signature", _MAX_MESSAGE_BASE64_CHARS)
        return cls(message, BlsSignature.from_bytes(signature))


def storage_confirmation_to_json(signed: SignedMessage) -> dict[str, dict[str, str]]:
    """A storage confirmation as a node serves it: `{"signed": {...}}`."""
    return {"signed": signed.to_json_dict()}


def storage_confirmation_from_json(value: object) -> SignedMessage:
    """Parse `{"signed": {...}}` (the only variant of Walrus's `StorageConfirmation`)."""
    if not isinstance(value, dict) or list(value) != ["signed"]:
        raise DecodeError('a storage confirmation must be a JSON object {"signed": {...}}')
    return SignedMessage.from_json_dict(value["signed"])


# --- SYNC_SHARD: a node asks a shard's previous owner for its slivers ---------------------------
#
# Verified against `MystenLabs/walrus` at 3c1cacc1: `crates/walrus-core/src/messages/
# sync_shard.rs` (`SyncShardRequest::V1(SyncShardRequestV1 {shard_index: ShardIndex, sliver_type:
# SliverType, starting_blob_id: BlobId, sliver_count: u64, epoch: Epoch})`, `SyncShardMsg` =
# `ProtocolMessage<SyncShardRequest>` with intent SYNC_SHARD), `lib.rs` (`ShardIndex` is a
# `#[serde(transparent)]` u16, `BlobId` a `[u8; 32]`), `by_axis.rs` (`SliverType = Axis {Primary,
# Secondary}`, BCS tags 0 and 1), and the server side in `walrus-service/src/node.rs`
# (`sync_shard`) and `node/storage.rs` (`handle_sync_shard_request`). The requester signs with its
# protocol key, and its client sets the header epoch to the request's epoch
# (`walrus-storage-node-client/src/client.rs` `sync_shard`). Walrus's `SignedMessage` in BCS (the
# body of `POST /v1/migrate/sync_shard`) is `serialized_message: Vec<u8>` (ULEB128 length, bytes)
# then the signature as a fixed 96-byte array (fastcrypto `serialize_deserialize_with_to_from_bytes`
# writes a `[u8; 96]` in binary formats), and nothing for the `PhantomData`.

#: Walrus `DEFAULT_MAX_SLIVER_COUNT_PER_SYNC_REQUEST` (`node/config.rs`): the most slivers a source
#: serves in one answer. It bounds the response the source builds in memory; the requester asks
#: for 1000 at a time by default.
DEFAULT_MAX_SYNC_SLIVER_COUNT = 100_000
#: Length of a serialized SYNC_SHARD message: 7 header bytes, 1 + 2 + 1 + 32 + 8 + 4 body bytes.
SYNC_SHARD_MESSAGE_BYTES = 55

_MAX_U16 = (1 << 16) - 1
_MAX_U64 = (1 << 64) - 1
_SYNC_SHARD_REQUEST_V1 = 0
_SLIVER_TYPE_TAGS = {SliverType.PRIMARY: 0, SliverType.SECONDARY: 1}
_SLIVER_TYPES_BY_TAG = {tag: sliver_type for sliver_type, tag in _SLIVER_TYPE_TAGS.items()}


@dataclass(frozen=True, slots=True)
class SyncShardRequest:
    """Walrus `SyncShardRequest::V1`: "send me your `sliver_type` slivers of `shard_index`".

    The source answers with at most `sliver_count` slivers of the blobs certified before `epoch`,
    in increasing blob-ID order, starting at `starting_blob_id` (inclusive). `epoch` is the epoch
    the requester is moving into: the source serves only requests for its own current epoch.
    """

    shard_index: ShardIndex
    sliver_type: SliverType
    starting_blob_id: bytes
    sliver_count: int
    epoch: int

    def __post_init__(self) -> None:
        index = self.shard_index
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= _MAX_U16:
            raise ValueError(f"a shard index is a u16, got {index!r}")
        if not isinstance(self.sliver_type, SliverType):
            raise TypeError(f"sliver_type must be a SliverType, got {self.sliver_type!r}")
        _check_id(self.starting_blob_id, BLOB_ID_BYTES, "starting blob ID")
        count = self.sliver_count
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= _MAX_U64:
            raise ValueError(f"a sliver count is a u64, got {count!r}")
        _check_epoch(self.epoch)

    def write(self, writer: Writer) -> Writer:
        """Append the BCS enum: tag 0 (V1), then the five fields in order."""
        writer.uleb128(_SYNC_SHARD_REQUEST_V1).u16(self.shard_index)
        writer.u8(_SLIVER_TYPE_TAGS[self.sliver_type]).fixed(self.starting_blob_id)
        return writer.u64(self.sliver_count).u32(self.epoch)

    @classmethod
    def read(cls, reader: Reader) -> Self:
        """Read the BCS enum; a version other than V1 or a bad sliver type is a `DecodeError`."""
        version = reader.uleb128("sync shard request version")
        if version != _SYNC_SHARD_REQUEST_V1:
            raise DecodeError(f"unknown sync shard request version {version}")
        shard_index = ShardIndex(reader.u16("shard index"))
        tag = reader.u8("sliver type")
        sliver_type = _SLIVER_TYPES_BY_TAG.get(tag)
        if sliver_type is None:
            raise DecodeError(f"invalid sliver type tag {tag}")
        starting_blob_id = reader.fixed(BLOB_ID_BYTES, "starting blob ID")
        sliver_count = reader.u64("sliver count")
        return cls(shard_index, sliver_type, starting_blob_id, sliver_count, reader.u32("epoch"))


@dataclass(frozen=True, slots=True)
class SyncShardMessage:
    """SYNC_SHARD: the message a node signs to ask for a shard (Walrus `SyncShardMsg`).

    `epoch` is the header's epoch; Walrus's client (and `for_request`) sets it to the request's.
    """

    epoch: int
    request: SyncShardRequest

    INTENT: ClassVar[IntentType] = IntentType.SYNC_SHARD

    def __post_init__(self) -> None:
        _check_epoch(self.epoch)
        if not isinstance(self.request, SyncShardRequest):
            raise TypeError(f"request must be a SyncShardRequest, got {self.request!r}")

    @classmethod
    def for_request(cls, request: SyncShardRequest) -> Self:
        """The message for `request`, in the request's epoch (as Walrus's client builds it)."""
        return cls(request.epoch, request)

    def to_bcs(self) -> bytes:
        """The bytes the requesting node signs (`SYNC_SHARD_MESSAGE_BYTES` long)."""
        return self.request.write(MessageHeader(self.INTENT, self.epoch).write(Writer())).finish()

    @classmethod
    def from_bcs(cls, data: bytes) -> Self:
        """Decode strictly; see the module docstring."""
        reader = Reader(bytes(data))
        epoch = _read_header(reader, cls.INTENT)
        request = SyncShardRequest.read(reader)
        reader.finish("SYNC_SHARD message")
        return cls(epoch, request)


def sign_sync_shard_request(private_key: BlsPrivateKey, request: SyncShardRequest) -> SignedMessage:
    """The requesting node's signature, by its protocol key, over `request`'s SYNC_SHARD message."""
    serialized = SyncShardMessage.for_request(request).to_bcs()
    return SignedMessage(serialized, private_key.sign(serialized))


def signed_message_to_bcs(signed: SignedMessage) -> bytes:
    """Walrus's `SignedMessage` in BCS: ULEB128 length ‖ serialized message ‖ signature [96]."""
    return Writer().bytes(signed.serialized_message).fixed(signed.signature.to_bytes()).finish()


def signed_message_from_bcs(data: bytes) -> SignedMessage:
    """Parse a BCS `SignedMessage` strictly (Decode/VerificationError), without verifying it.

    The message may be at most `MAX_SERIALIZED_MESSAGE_BYTES` long.
    """
    reader = Reader(bytes(data))
    message = reader.bytes("serialized message", MAX_SERIALIZED_MESSAGE_BYTES)
    signature = BlsSignature.from_bytes(reader.fixed(SIGNATURE_BYTES, "signature"))
    reader.finish("signed message")
    return SignedMessage(message, signature)


class SyncShardRefusal(Enum):
    """Why a source refuses a sync-shard request; the values are Walrus's error reasons."""

    #: The requester is not a committee member, or does not own the shard in the current
    #: committee (HTTP 403).
    UNAUTHORIZED = "REQUEST_UNAUTHORIZED"
    #: The message does not decode, is not SYNC_SHARD, or its signature does not verify (400).
    MESSAGE_VERIFICATION_FAILED = "MESSAGE_VERIFICATION_FAILED"
    #: The request's epoch is not the source's current epoch (400, with both epochs).
    INVALID_EPOCH = "INVALID_EPOCH"
    #: The request asks for more slivers than the source serves at once (400).
    SLIVER_COUNT_EXCEEDS_LIMIT = "SLIVER_COUNT_EXCEEDS_LIMIT"


@dataclass(frozen=True, slots=True)
class SyncShardRefused:
    """A refused sync-shard request: the reason, a description, and the epochs when they differ.

    `request_epoch` and `server_epoch` are set for `INVALID_EPOCH` only; a requester whose epoch
    is ahead of the source's retries later (the source has not reached the epoch yet).
    """

    reason: SyncShardRefusal
    detail: str
    request_epoch: int | None = None
    server_epoch: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.reason, SyncShardRefusal):
            raise TypeError(f"reason must be a SyncShardRefusal, got {self.reason!r}")
        has_epochs = self.request_epoch is not None and self.server_epoch is not None
        if has_epochs != (self.reason is SyncShardRefusal.INVALID_EPOCH):
            raise ValueError("request_epoch and server_epoch go with INVALID_EPOCH, and only there")
        if self.request_epoch is not None and self.server_epoch is not None:
            _check_epoch(self.request_epoch)
            _check_epoch(self.server_epoch)


_VERIFIED = object()


@dataclass(frozen=True, slots=True)
class VerifiedSyncShardRequest:
    """A sync-shard request whose signature, epoch, shard ownership and size were checked.

    Made only by `verify_sync_shard_request`: the only value a source serves slivers for.
    """

    request: SyncShardRequest
    requester: BlsPublicKey
    _token: object = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._token is not _VERIFIED:
            raise TypeError("VerifiedSyncShardRequest is made only by verify_sync_shard_request()")


def verify_sync_shard_request(
    signed: SignedMessage,
    requester: BlsPublicKey,
    *,
    server_epoch: int,
    requester_shards: Collection[ShardIndex] | None,
    max_sliver_count: int | None = DEFAULT_MAX_SYNC_SLIVER_COUNT,
) -> VerifiedSyncShardRequest | SyncShardRefused:
    """Check a sync-shard request as its source must (Walrus `StorageNode::sync_shard`).

    `requester` is the key the request claims to come from (the `Authorization` header);
    `server_epoch` is the source's current committee epoch; `requester_shards` are the shards the
    requester owns in the source's current committee, or None if it is a member of none of the
    source's committees (previous, current or next); `max_sliver_count` is the source's limit
    (None: no limit). In Walrus's order, cheap checks before the pairing:

    1. not a member of any committee -> UNAUTHORIZED;
    2. not a SYNC_SHARD message, or a bad signature -> MESSAGE_VERIFICATION_FAILED; so is a
       header epoch that differs from the request's (Walrus's client never sends one);
    3. the request's epoch is not `server_epoch` -> INVALID_EPOCH (old or future alike);
    4. the requester does not own the shard in the current committee -> UNAUTHORIZED;
    5. more than `max_sliver_count` slivers -> SLIVER_COUNT_EXCEEDS_LIMIT.

    A peer's bad input is a refusal value, never an exception; a wrong argument type is a
    `TypeError` (our own mistake).
    """
    if not isinstance(signed, SignedMessage) or not isinstance(requester, BlsPublicKey):
        raise TypeError("verify_sync_shard_request takes a SignedMessage and a BlsPublicKey")
    _check_epoch(server_epoch)
    if requester_shards is None:
        return SyncShardRefused(SyncShardRefusal.UNAUTHORIZED, "requester is not a storage node")
    request = _signed_request(signed, requester)
    if isinstance(request, SyncShardRefused):
        return request
    refusal = _refusal(request, server_epoch, requester_shards, max_sliver_count)
    if refusal is not None:
        return refusal
    return VerifiedSyncShardRequest(request, requester, _token=_VERIFIED)


def _signed_request(
    signed: SignedMessage, requester: BlsPublicKey
) -> SyncShardRequest | SyncShardRefused:
    """The request if the bytes decode and `requester` signed them (check 2)."""
    failed = SyncShardRefusal.MESSAGE_VERIFICATION_FAILED
    try:
        message = SyncShardMessage.from_bcs(signed.serialized_message)
    except DecodeError as error:
        return SyncShardRefused(failed, str(error))
    if message.epoch != message.request.epoch:
        return SyncShardRefused(
            failed,
            f"header epoch {message.epoch} differs from the request's epoch "
            f"{message.request.epoch}",
        )
    if not requester.verify(signed.serialized_message, signed.signature):
        return SyncShardRefused(failed, f"signature does not verify under {requester.data.hex()}")
    return message.request


def _refusal(
    request: SyncShardRequest,
    server_epoch: int,
    requester_shards: Collection[ShardIndex],
    max_sliver_count: int | None,
) -> SyncShardRefused | None:
    """Why an authentic request may not be served (checks 3 to 5), or None."""
    if request.epoch != server_epoch:
        return SyncShardRefused(
            SyncShardRefusal.INVALID_EPOCH,
            f"request epoch {request.epoch}, server epoch {server_epoch}",
            request_epoch=request.epoch,
            server_epoch=server_epoch,
        )
    if request.shard_index not in requester_shards:
        return SyncShardRefused(
            SyncShardRefusal.UNAUTHORIZED,
            f"requester does not own shard {request.shard_index} in epoch {server_epoch}",
        )
    if max_sliver_count is not None and request.sliver_count > max_sliver_count:
        return SyncShardRefused(
            SyncShardRefusal.SLIVER_COUNT_EXCEEDS_LIMIT,
            f"requested {request.sliver_count} slivers, the limit is {max_sliver_count}",
        )
    return None
