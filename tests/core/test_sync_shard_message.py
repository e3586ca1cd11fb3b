"""Tests of the SYNC_SHARD message (walruspy.core.messages, intent 3): bytes, signing, verify.

The golden bytes are derived by hand from Walrus's serde types (`walrus-core/src/messages/
sync_shard.rs` at 3c1cacc1, see the comment above `SyncShardRequest` in messages.py): BCS writes a
struct as its fields in order, an enum as its ULEB128 variant index then its payload, a
`#[serde(transparent)]` u16 as two little-endian bytes, and a `[u8; 32]` as 32 bytes with no
length. Walrus has no test vector of its own for this message; its `messages.rs` tests (wrong
intent type 99, intent version 99, app id 44 fail; a valid message round-trips) are ported here.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from walruspy.core.crypto import SIGNATURE_BYTES, BlsPrivateKey
from walruspy.core.errors import DecodeError
from walruspy.core.messages import (
    DEFAULT_MAX_SYNC_SLIVER_COUNT,
    MAX_SERIALIZED_MESSAGE_BYTES,
    SYNC_SHARD_MESSAGE_BYTES,
    ConfirmationMessage,
    IntentType,
    SignedMessage,
    SyncShardMessage,
    SyncShardRefusal,
    SyncShardRefused,
    SyncShardRequest,
    VerifiedSyncShardRequest,
    decode_message,
    sign_sync_shard_request,
    signed_message_from_bcs,
    signed_message_to_bcs,
    verify_sync_shard_request,
)
from walruspy.core.types import ShardIndex, SliverType

# The values of Walrus's own message tests (crates/walrus-core/src/messages.rs).
WALRUS_EPOCH = 21
WALRUS_BLOB_ID = bytes([7]) * 32

KEY = BlsPrivateKey.from_seed(bytes([9]) * 32)
OTHER_KEY = BlsPrivateKey.from_seed(bytes([10]) * 32)


def unchecked(value: object) -> Any:
    """`value` with its static type erased, to test run-time type checks."""
    return value


def request(
    shard: int = 3,
    sliver_type: SliverType = SliverType.PRIMARY,
    start: bytes = WALRUS_BLOB_ID,
    count: int = 1000,
    epoch: int = WALRUS_EPOCH,
) -> SyncShardRequest:
    return SyncShardRequest(ShardIndex(shard), sliver_type, start, count, epoch)


# ---- golden bytes, derived by hand ----------------------------------------------------------

#: Walrus's test values: shard 258 (0x0102), secondary, blob [7; 32], 1000 slivers, epoch 21.
GOLDEN_SECONDARY = bytes.fromhex(
    "03"  # intent type SYNC_SHARD
    "00"  # intent version 0
    "03"  # app id STORAGE
    "15000000"  # header epoch 21, u32 LE
    "00"  # SyncShardRequest::V1, ULEB128 variant index 0
    "0201"  # shard_index 258, u16 LE
    "01"  # sliver_type Axis::Secondary, variant index 1
    + "07"
    * 32  # starting_blob_id, [u8; 32] with no length prefix
    + "e803000000000000"  # sliver_count 1000, u64 LE
    "15000000"  # epoch 21, u32 LE
)

#: Extremes: shard 0, primary, blob ID 0x00..0x1f, u64::MAX slivers, epoch u32::MAX - 1.
GOLDEN_PRIMARY = bytes.fromhex(
    "030003" + "feffffff" + "00" + "0000" + "00" + bytes(range(32)).hex() + "ff" * 8 + "feffffff"
)


def test_golden_bytes_secondary() -> None:
    message = SyncShardMessage.for_request(request(258, SliverType.SECONDARY))
    assert message.epoch == WALRUS_EPOCH
    assert message.to_bcs() == GOLDEN_SECONDARY
    assert len(GOLDEN_SECONDARY) == SYNC_SHARD_MESSAGE_BYTES == 55
    assert SyncShardMessage.from_bcs(GOLDEN_SECONDARY) == message


def test_golden_bytes_primary_extremes() -> None:
    epoch = (1 << 32) - 2
    extreme = request(0, SliverType.PRIMARY, bytes(range(32)), (1 << 64) - 1, epoch)
    message = SyncShardMessage(epoch, extreme)
    assert message.to_bcs() == GOLDEN_PRIMARY
    assert SyncShardMessage.from_bcs(GOLDEN_PRIMARY) == message


def test_layout_offsets() -> None:
    encoded = SyncShardMessage.for_request(request(0xABCD, SliverType.SECONDARY, count=7)).to_bcs()
    assert encoded[:7] == bytes([IntentType.SYNC_SHARD, 0, 3]) + (21).to_bytes(4, "little")
    assert encoded[7] == 0  # V1
    assert encoded[8:10] == (0xABCD).to_bytes(2, "little")
    assert encoded[10] == 1
    assert encoded[11:43] == WALRUS_BLOB_ID
    assert encoded[43:51] == (7).to_bytes(8, "little")
    assert encoded[51:55] == (21).to_bytes(4, "little")


def test_header_epoch_is_independent_of_the_request_epoch() -> None:
    # Walrus's `SyncShardMsg::new(epoch, request)` takes both; its client passes the same one.
    encoded = SyncShardMessage(5, request(epoch=9)).to_bcs()
    assert encoded[3:7] == (5).to_bytes(4, "little")
    assert encoded[51:55] == (9).to_bytes(4, "little")
    assert SyncShardMessage.from_bcs(encoded).epoch == 5


# ---- Walrus's decoding tests, ported --------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "value", "match"),
    [
        (0, 99, "unknown intent type 99"),
        (0, IntentType.BLOB_CERT, "expected intent SYNC_SHARD"),
        (1, 99, "intent version 99"),
        (2, 44, "app id 44"),
        (7, 1, "unknown sync shard request version 1"),
        (10, 2, "sliver type tag 2"),
    ],
)
def test_decoding_fails_for_a_wrong_byte(offset: int, value: int, match: str) -> None:
    encoded = bytearray(GOLDEN_SECONDARY)
    encoded[offset] = value
    with pytest.raises(DecodeError, match=match):
        SyncShardMessage.from_bcs(bytes(encoded))


def test_decoding_fails_for_truncated_or_trailing_bytes() -> None:
    for length in range(len(GOLDEN_SECONDARY)):
        with pytest.raises(DecodeError):
            SyncShardMessage.from_bcs(GOLDEN_SECONDARY[:length])
    with pytest.raises(DecodeError, match="trailing"):
        SyncShardMessage.from_bcs(GOLDEN_SECONDARY + b"\x00")


def test_decode_message_still_knows_no_sync_shard_body() -> None:
    # SYNC_SHARD is node to node: it has its own verify, and `decode_message` (used for the
    # certificate-carrying messages) keeps refusing it.
    with pytest.raises(DecodeError, match="no message type for intent SYNC_SHARD"):
        decode_message(GOLDEN_SECONDARY)


requests = st.builds(
    SyncShardRequest,
    st.integers(0, (1 << 16) - 1).map(ShardIndex),
    st.sampled_from(SliverType),
    st.binary(min_size=32, max_size=32),
    st.integers(0, (1 << 64) - 1),
    st.integers(0, (1 << 32) - 1),
)


@given(requests, st.integers(0, (1 << 32) - 1))
def test_round_trip(value: SyncShardRequest, header_epoch: int) -> None:
    message = SyncShardMessage(header_epoch, value)
    encoded = message.to_bcs()
    assert len(encoded) == SYNC_SHARD_MESSAGE_BYTES
    assert SyncShardMessage.from_bcs(encoded) == message


@given(st.binary(max_size=80))
def test_fuzzed_bytes_decode_canonically_or_fail_cleanly(data: bytes) -> None:
    try:
        message = SyncShardMessage.from_bcs(data)
    except DecodeError:
        return
    assert message.to_bcs() == data


@given(st.binary(min_size=SYNC_SHARD_MESSAGE_BYTES, max_size=SYNC_SHARD_MESSAGE_BYTES))
def test_fuzzed_bodies_behind_a_valid_header(data: bytes) -> None:
    fuzzed = GOLDEN_SECONDARY[:7] + data[7:]
    try:
        message = SyncShardMessage.from_bcs(fuzzed)
    except DecodeError:
        assert fuzzed[7] != 0 or fuzzed[10] > 1
        return
    assert message.to_bcs() == fuzzed


# ---- construction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"shard": 1 << 16}, ValueError, "u16"),
        ({"shard": -1}, ValueError, "u16"),
        ({"shard": True}, ValueError, "u16"),
        ({"sliver_type": "primary"}, TypeError, "SliverType"),
        ({"start": bytes(31)}, ValueError, "32 bytes"),
        ({"start": "07" * 32}, ValueError, "32 bytes"),
        ({"count": 1 << 64}, ValueError, "u64"),
        ({"count": -1}, ValueError, "u64"),
        ({"epoch": 1 << 32}, ValueError, "u32"),
    ],
)
def test_request_rejects(changes: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        request(**unchecked(changes))


def test_message_rejects() -> None:
    with pytest.raises(TypeError, match="SyncShardRequest"):
        SyncShardMessage(1, unchecked("request"))
    with pytest.raises(ValueError, match="u32"):
        SyncShardMessage(-1, request())


# ---- the signed request, on the wire --------------------------------------------------------


def test_sign_uses_the_request_epoch_and_the_protocol_key() -> None:
    signed = sign_sync_shard_request(KEY, request(258, SliverType.SECONDARY))
    assert signed.serialized_message == GOLDEN_SECONDARY
    assert KEY.public_key().verify(GOLDEN_SECONDARY, signed.signature)
    assert not OTHER_KEY.public_key().verify(GOLDEN_SECONDARY, signed.signature)


def test_signed_message_bcs_layout() -> None:
    signed = sign_sync_shard_request(KEY, request(258, SliverType.SECONDARY))
    wire = signed_message_to_bcs(signed)
    # Vec<u8>: ULEB128 length 55 = 0x37, the message; then the signature as a [u8; 96].
    assert wire == b"\x37" + GOLDEN_SECONDARY + signed.signature.to_bytes()
    assert len(wire) == 1 + SYNC_SHARD_MESSAGE_BYTES + SIGNATURE_BYTES
    assert signed_message_from_bcs(wire) == signed


def test_signed_message_bcs_is_strict() -> None:
    wire = signed_message_to_bcs(sign_sync_shard_request(KEY, request()))
    with pytest.raises(DecodeError, match="trailing"):
        signed_message_from_bcs(wire + b"\x00")
    with pytest.raises(DecodeError):
        signed_message_from_bcs(wire[:-1])
    too_long = b"\x81\x08" + bytes(MAX_SERIALIZED_MESSAGE_BYTES + 1)  # ULEB128 1025
    with pytest.raises(DecodeError, match="exceeds the maximum"):
        signed_message_from_bcs(too_long)


# ---- verify, as the source ------------------------------------------------------------------


def verify(signed: SignedMessage, **overrides: Any) -> VerifiedSyncShardRequest | SyncShardRefused:
    arguments: dict[str, Any] = {
        "server_epoch": WALRUS_EPOCH,
        "requester_shards": {ShardIndex(3), ShardIndex(4)},
    }
    arguments.update(overrides)
    return verify_sync_shard_request(signed, KEY.public_key(), **arguments)


def refusal(outcome: VerifiedSyncShardRequest | SyncShardRefused) -> SyncShardRefusal:
    assert isinstance(outcome, SyncShardRefused), outcome
    return outcome.reason


def test_verify_accepts_an_owner_in_the_current_epoch() -> None:
    outcome = verify(sign_sync_shard_request(KEY, request()))
    assert isinstance(outcome, VerifiedSyncShardRequest)
    assert outcome.request == request()
    assert outcome.requester == KEY.public_key()


def test_a_verified_request_cannot_be_made_by_hand() -> None:
    with pytest.raises(TypeError, match="made only by"):
        VerifiedSyncShardRequest(request(), KEY.public_key(), _token=object())


def test_verify_refuses_a_stranger_before_decoding() -> None:
    garbage = SignedMessage(b"garbage", KEY.sign(b"garbage"))
    assert refusal(verify(garbage, requester_shards=None)) is SyncShardRefusal.UNAUTHORIZED
    assert refusal(verify(garbage)) is SyncShardRefusal.MESSAGE_VERIFICATION_FAILED


def test_verify_refuses_a_signature_by_another_key() -> None:
    signed = sign_sync_shard_request(OTHER_KEY, request())
    outcome = verify(signed)
    assert refusal(outcome) is SyncShardRefusal.MESSAGE_VERIFICATION_FAILED
    assert isinstance(outcome, SyncShardRefused)
    assert "signature" in outcome.detail


def test_verify_refuses_another_message_type() -> None:
    signed = SignedMessage.sign(KEY, ConfirmationMessage(WALRUS_EPOCH, WALRUS_BLOB_ID))
    outcome = verify(signed)
    assert refusal(outcome) is SyncShardRefusal.MESSAGE_VERIFICATION_FAILED
    assert isinstance(outcome, SyncShardRefused)
    assert "expected intent SYNC_SHARD" in outcome.detail


def test_verify_refuses_a_header_epoch_unlike_the_request_epoch() -> None:
    serialized = SyncShardMessage(WALRUS_EPOCH - 1, request()).to_bcs()
    signed = SignedMessage(serialized, KEY.sign(serialized))
    assert refusal(verify(signed)) is SyncShardRefusal.MESSAGE_VERIFICATION_FAILED


@pytest.mark.parametrize("epoch", [0, WALRUS_EPOCH - 1, WALRUS_EPOCH + 1])
def test_verify_refuses_another_epoch(epoch: int) -> None:
    outcome = verify(sign_sync_shard_request(KEY, request(epoch=epoch)))
    assert outcome == SyncShardRefused(
        SyncShardRefusal.INVALID_EPOCH,
        f"request epoch {epoch}, server epoch {WALRUS_EPOCH}",
        request_epoch=epoch,
        server_epoch=WALRUS_EPOCH,
    )


def test_verify_checks_the_epoch_before_ownership() -> None:
    # Walrus's order: a stale requester learns the epoch differs, whatever shard it asked for.
    signed = sign_sync_shard_request(KEY, request(shard=9, epoch=WALRUS_EPOCH - 1))
    assert refusal(verify(signed)) is SyncShardRefusal.INVALID_EPOCH


def test_verify_refuses_a_shard_the_requester_does_not_own() -> None:
    signed = sign_sync_shard_request(KEY, request(shard=5))
    assert refusal(verify(signed)) is SyncShardRefusal.UNAUTHORIZED
    assert refusal(verify(signed, requester_shards=())) is SyncShardRefusal.UNAUTHORIZED


def test_verify_bounds_the_sliver_count() -> None:
    at_limit = sign_sync_shard_request(KEY, request(count=DEFAULT_MAX_SYNC_SLIVER_COUNT))
    assert isinstance(verify(at_limit), VerifiedSyncShardRequest)
    over = sign_sync_shard_request(KEY, request(count=DEFAULT_MAX_SYNC_SLIVER_COUNT + 1))
    assert refusal(verify(over)) is SyncShardRefusal.SLIVER_COUNT_EXCEEDS_LIMIT
    assert refusal(verify(at_limit, max_sliver_count=10)) is (
        SyncShardRefusal.SLIVER_COUNT_EXCEEDS_LIMIT
    )
    huge = sign_sync_shard_request(KEY, request(count=(1 << 64) - 1))
    assert isinstance(verify(huge, max_sliver_count=None), VerifiedSyncShardRequest)


def test_verify_rejects_misuse() -> None:
    signed = sign_sync_shard_request(KEY, request())
    with pytest.raises(TypeError):
        verify_sync_shard_request(
            unchecked(b"bytes"), KEY.public_key(), server_epoch=1, requester_shards=()
        )
    with pytest.raises(ValueError, match="u32"):
        verify(signed, server_epoch=-1)


def test_refusal_values_are_walrus_reasons() -> None:
    assert {reason.value for reason in SyncShardRefusal} == {
        "REQUEST_UNAUTHORIZED",
        "MESSAGE_VERIFICATION_FAILED",
        "INVALID_EPOCH",
        "SLIVER_COUNT_EXCEEDS_LIMIT",
    }
    with pytest.raises(ValueError, match="only there"):
        SyncShardRefused(SyncShardRefusal.INVALID_EPOCH, "no epochs")
    with pytest.raises(ValueError, match="only there"):
        SyncShardRefused(SyncShardRefusal.UNAUTHORIZED, "x", request_epoch=1, server_epoch=2)
    with pytest.raises(TypeError):
        SyncShardRefused(unchecked("INVALID_EPOCH"), "x")


@given(requests, st.integers(0, SYNC_SHARD_MESSAGE_BYTES * 8 - 1))
def test_any_flipped_bit_is_refused(value: SyncShardRequest, bit: int) -> None:
    signed = sign_sync_shard_request(KEY, value)
    flipped = bytearray(signed.serialized_message)
    flipped[bit // 8] ^= 1 << (bit % 8)
    tampered = SignedMessage(bytes(flipped), signed.signature)
    outcome = verify_sync_shard_request(
        tampered,
        KEY.public_key(),
        server_epoch=value.epoch,
        requester_shards=unchecked(range(1 << 16)),  # owns every shard
        max_sliver_count=None,
    )
    assert isinstance(outcome, SyncShardRefused)
