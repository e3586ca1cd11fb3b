"""Tests of walruspy.core.committee and walruspy.core.certificates."""

from __future__ import annotations

import contextlib
import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walruspy.core.certificates import (
    Certificate,
    CertifiedMessage,
    Threshold,
    bitmap_to_signers,
    signers_to_bitmap,
    verify_certificate,
    verify_signers_bitmap,
)
from walruspy.core.committee import Committee, CommitteeMember
from walruspy.core.crypto import (
    BlsPrivateKey,
    BlsPublicKey,
    BlsSignature,
    aggregate_public_keys,
    aggregate_signatures,
    verify_aggregate,
)
from walruspy.core.errors import InvalidInputError, VerificationError
from walruspy.core.messages import (
    ConfirmationMessage,
    InvalidBlobIdMessage,
    SignedMessage,
)

VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "messages.json"

POOL_SIZE = 6
KEYS = [BlsPrivateKey.from_seed(bytes([0x40 + i]) * 32) for i in range(POOL_SIZE)]
EPOCH = 3
BLOB_ID = bytes(range(32))
MESSAGE = ConfirmationMessage(EPOCH, BLOB_ID)
MESSAGE_BYTES = MESSAGE.to_bcs()
OTHER_MESSAGE_BYTES = ConfirmationMessage(EPOCH, bytes(32)).to_bcs()
# Precomputed: BLS operations take milliseconds, and properties reuse them.
GOOD = [key.sign(MESSAGE_BYTES) for key in KEYS]
BAD = [key.sign(OTHER_MESSAGE_BYTES) for key in KEYS]


def unchecked(value: object) -> Any:
    """`value` with its static type erased, to test run-time type checks."""
    return value


def make_committee(weights: list[int], epoch: int = EPOCH) -> Committee:
    """Members 0.. with the pool's keys, holding consecutive shards of the given weights."""
    members = []
    next_shard = 0
    for index, weight in enumerate(weights):
        shards = tuple(range(next_shard, next_shard + weight))
        next_shard += weight
        members.append(
            CommitteeMember(
                node_id=bytes([index]) * 32,
                public_key=KEYS[index].public_key(),
                network_address=f"127.0.0.1:{9185 + index}",
                shards=shards,
            )
        )
    return Committee(epoch=epoch, n_shards=next_shard, members=tuple(members))


COMMITTEE = make_committee([3, 3, 2, 2])  # n = 10: quorum 7, validity 4


def certify(signers: list[int], message: bytes = MESSAGE_BYTES) -> Certificate:
    signatures = [(i, KEYS[i].sign(message)) for i in signers]
    return Certificate.from_signatures(message, signatures)


# ---- committee ------------------------------------------------------------------------------


def test_committee_basics() -> None:
    assert COMMITTEE.n_members == 4
    assert [m.weight for m in COMMITTEE.members] == [3, 3, 2, 2]
    assert COMMITTEE.total_aggregated_key == aggregate_public_keys(k.public_key() for k in KEYS[:4])
    assert COMMITTEE.max_n_faulty == 3
    assert COMMITTEE.min_n_correct == 7
    assert (COMMITTEE.quorum_weight, COMMITTEE.validity_weight) == (7, 4)
    assert COMMITTEE.member_index(bytes([2]) * 32) == 2
    assert COMMITTEE.member_index(bytes([9]) * 32) is None
    assert [COMMITTEE.shard_owner(s) for s in range(10)] == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3]
    assert COMMITTEE.weight_of([0, 2, 2]) == 5
    with pytest.raises(ValueError, match="outside"):
        COMMITTEE.shard_owner(10)
    assert make_committee([3, 3, 2, 2]) == COMMITTEE
    assert hash(COMMITTEE) == hash(make_committee([3, 3, 2, 2]))


def test_member_shards_are_sorted() -> None:
    member = CommitteeMember(bytes(32), KEYS[0].public_key(), "a:1", (5, 1, 3))
    assert member.shards == (1, 3, 5)
    assert member.weight == 3


@pytest.mark.parametrize(
    ("n", "quorum", "validity"),
    [
        (1, 1, 1),
        (4, 3, 2),
        (6, 5, 3),  # Walrus's Rust client would say 3 and 2 here (w > 2f, w > f)
        (7, 5, 3),
        (10, 7, 4),
        (1000, 667, 334),
    ],
)
def test_thresholds(n: int, quorum: int, validity: int) -> None:
    member = CommitteeMember(bytes(32), KEYS[0].public_key(), "", tuple(range(n)))
    committee = Committee(1, n, (member,))
    assert committee.quorum_weight == quorum
    assert committee.validity_weight == validity
    assert committee.is_quorum(quorum)
    assert not committee.is_quorum(quorum - 1)
    assert committee.is_above_validity(validity)
    assert not committee.is_above_validity(validity - 1)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 65535))
def test_threshold_weights_are_the_least_passing(n: int) -> None:
    f = (n - 1) // 3
    quorum = -(-(2 * n + 1) // 3)
    validity = -(-(n + 1) // 3)
    assert 3 * quorum >= 2 * n + 1 > 3 * (quorum - 1)
    assert 3 * validity >= n + 1 > 3 * (validity - 1)
    if n % 3 == 1:  # n = 3f + 1: the textbook 2f + 1 and f + 1
        assert (quorum, validity) == (2 * f + 1, f + 1)


def _member(index: int, shards: tuple[int, ...], key: int | None = None) -> CommitteeMember:
    public_key = KEYS[index if key is None else key].public_key()
    return CommitteeMember(bytes([index]) * 32, public_key, "host:1", shards)


@pytest.mark.parametrize(
    ("n_shards", "members", "reason"),
    [
        (4, (), "at least one member"),
        (4, (_member(0, (0, 1)), _member(0, (2, 3), key=1)), "appears twice"),
        (4, (_member(0, (0, 1, 2)), _member(1, (2, 3))), "held by members 0 and 1"),
        (4, (_member(0, (0, 1)), _member(1, (2,))), "1 shards have no member, first 3"),
        (4, (_member(0, (0, 1)), _member(1, (2, 3, 4))), "outside"),
        (0, (_member(0, (0,)),), "n_shards"),
        (65536, (_member(0, (0,)),), "n_shards"),
    ],
)
def test_committee_validation(n_shards: int, members: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Committee(1, n_shards, members)


def test_committee_epoch_validation() -> None:
    with pytest.raises(ValueError, match="u32"):
        Committee(-1, 1, (_member(0, (0,)),))


def test_member_validation() -> None:
    key = KEYS[0].public_key()
    with pytest.raises(ValueError, match="node ID"):
        CommitteeMember(bytes(31), key, "a", (0,))
    with pytest.raises(ValueError, match="no shards"):
        CommitteeMember(bytes(32), key, "a", ())
    with pytest.raises(ValueError, match="twice"):
        CommitteeMember(bytes(32), key, "a", (1, 1))
    with pytest.raises(ValueError, match="exceeds 259"):
        CommitteeMember(bytes(32), key, "a" * 260, (0,))
    with pytest.raises(TypeError, match="BlsPublicKey"):
        CommitteeMember(bytes(32), unchecked(key.to_bytes()), "a", (0,))
    with pytest.raises(TypeError, match="ints"):
        CommitteeMember(bytes(32), key, "a", (True,))


# ---- bitmaps --------------------------------------------------------------------------------


def test_bitmap_layout() -> None:
    assert signers_to_bitmap([0, 1, 2], 4) == b"\x07"
    assert signers_to_bitmap([], 4) == b"\x00"
    assert signers_to_bitmap([8], 9) == b"\x00\x01"
    assert signers_to_bitmap([7, 9], 16) == b"\x80\x02"
    assert signers_to_bitmap([], 0) == b""
    assert bitmap_to_signers(b"\x80\x02", 16) == (7, 9)
    assert bitmap_to_signers(b"\x05", 12) == (0, 2)  # shorter than 2 bytes: the rest did not sign
    assert bitmap_to_signers(b"", 12) == ()


def test_bitmap_rejects() -> None:
    with pytest.raises(VerificationError, match="signer index 4 but the committee has 4"):
        signers_to_bitmap([4], 4)
    with pytest.raises(VerificationError, match="2 bytes, at most 1"):
        bitmap_to_signers(b"\x01\x00", 8)
    with pytest.raises(VerificationError, match="bit 4 is set"):
        bitmap_to_signers(b"\x10", 4)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1)))))
def test_bitmap_round_trip(case: tuple[int, set[int]]) -> None:
    n_members, signers = case
    bitmap = signers_to_bitmap(signers, n_members)
    assert len(bitmap) == -(-n_members // 8)
    assert bitmap_to_signers(bitmap, n_members) == tuple(sorted(signers))
    stripped = bitmap.rstrip(b"\x00")
    assert bitmap_to_signers(stripped, n_members) == tuple(sorted(signers))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.integers(0, 300))
def test_bitmap_parser_only_raises_verification_errors(bitmap: bytes, n_members: int) -> None:
    with contextlib.suppress(VerificationError):
        signers = bitmap_to_signers(bitmap, n_members)
        assert all(0 <= s < n_members for s in signers)
        assert signers_to_bitmap(signers, n_members).startswith(bitmap)


# ---- certificate construction ---------------------------------------------------------------


def test_certificate_from_signatures_sorts_and_aggregates() -> None:
    certificate = Certificate.from_signatures(MESSAGE_BYTES, [(2, GOOD[2]), (0, GOOD[0])])
    assert certificate.signers == (0, 2)
    assert certificate.signature == aggregate_signatures([GOOD[0], GOOD[2]])
    assert certificate.signers_bitmap(4) == b"\x05"
    assert Certificate.from_bitmap(b"\x05", 4, MESSAGE_BYTES, certificate.signature) == certificate
    with pytest.raises(ValueError, match="twice"):
        Certificate.from_signatures(MESSAGE_BYTES, [(1, GOOD[1]), (1, GOOD[1])])
    with pytest.raises(ValueError, match="at least one"):
        Certificate.from_signatures(MESSAGE_BYTES, [])


def test_certificate_from_signed_messages() -> None:
    signed = [(i, SignedMessage.sign(KEYS[i], MESSAGE)) for i in (3, 1, 0)]
    certificate = Certificate.from_signed_messages(signed)
    assert certificate.signers == (0, 1, 3)
    assert verify_certificate(COMMITTEE, certificate).message == MESSAGE
    mixed = [*signed, (2, SignedMessage(OTHER_MESSAGE_BYTES, BAD[2]))]
    with pytest.raises(ValueError, match="differ"):
        Certificate.from_signed_messages(mixed)
    with pytest.raises(ValueError, match="at least one"):
        Certificate.from_signed_messages([])


@pytest.mark.parametrize("signers", [(1, 0), (0, 0), (-1,), (65536,)])
def test_certificate_rejects_bad_signer_lists(signers: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="signer indices"):
        Certificate(signers, MESSAGE_BYTES, GOOD[0])


def test_certificate_rejects_bad_types() -> None:
    with pytest.raises(TypeError):
        Certificate((0,), MESSAGE_BYTES, unchecked(GOOD[0].to_bytes()))
    with pytest.raises(TypeError):
        Certificate((0,), unchecked(bytearray(MESSAGE_BYTES)), GOOD[0])


# ---- verification ---------------------------------------------------------------------------


def test_quorum_certificate_verifies() -> None:
    certified = verify_certificate(COMMITTEE, certify([0, 1, 2]))
    assert certified == CertifiedMessage(MESSAGE, 8)


def test_below_quorum_says_by_how_much() -> None:
    with pytest.raises(VerificationError, match=r"hold 6 of 10 shards; a quorum needs 7"):
        verify_certificate(COMMITTEE, certify([0, 1]))


def test_validity_threshold() -> None:
    message = InvalidBlobIdMessage(EPOCH, BLOB_ID)
    certificate = certify([0, 2], message.to_bcs())
    assert verify_certificate(COMMITTEE, certificate, "validity") == CertifiedMessage(message, 5)
    with pytest.raises(VerificationError, match="quorum needs 7"):
        verify_certificate(COMMITTEE, certificate, "quorum")
    with pytest.raises(VerificationError, match=r"hold 3 of 10 shards; validity needs 4"):
        verify_certificate(COMMITTEE, certify([0], message.to_bcs()), "validity")
    with pytest.raises(ValueError, match="unknown threshold"):
        verify_certificate(COMMITTEE, certificate, unchecked("most"))


def test_wrong_epoch_fails() -> None:
    message = ConfirmationMessage(EPOCH + 1, BLOB_ID).to_bcs()
    with pytest.raises(VerificationError, match="epoch 4, the committee is for epoch 3"):
        verify_certificate(COMMITTEE, certify([0, 1, 2, 3], message))


def test_bad_signature_fails() -> None:
    certificate = Certificate((0, 1, 2), MESSAGE_BYTES, aggregate_signatures(GOOD[:2] + BAD[2:3]))
    with pytest.raises(VerificationError, match=r"members \[0, 1, 2\] does not verify"):
        verify_certificate(COMMITTEE, certificate)
    # Right signatures, wrong signer list.
    shifted = Certificate((0, 1, 3), MESSAGE_BYTES, aggregate_signatures(GOOD[:3]))
    with pytest.raises(VerificationError, match="does not verify"):
        verify_certificate(COMMITTEE, shifted)


def test_signer_outside_committee_fails() -> None:
    certificate = Certificate(
        (0, 1, 2, 4), MESSAGE_BYTES, aggregate_signatures(GOOD[:3] + GOOD[4:5])
    )
    with pytest.raises(VerificationError, match="bad signers bitmap: signer index 4"):
        verify_certificate(COMMITTEE, certificate)


def test_bad_header_or_body_fails() -> None:
    for message, reason in (
        (b"\x01\x00", "header is invalid"),
        (bytes([1, 0, 4]) + EPOCH.to_bytes(4, "little") + BLOB_ID + b"\x00", "app id"),
        (MESSAGE_BYTES + b"\x00", "does not decode.*trailing"),
    ):
        with pytest.raises(VerificationError, match=reason):
            verify_certificate(COMMITTEE, certify([0, 1, 2], message))


def test_bitmap_form_matches_move() -> None:
    certificate = certify([0, 1, 3])
    assert (
        verify_signers_bitmap(
            COMMITTEE, b"\x0b", MESSAGE_BYTES, certificate.signature
        ).signer_weight
        == 8
    )
    with pytest.raises(VerificationError, match="bit 4 is set"):
        verify_signers_bitmap(COMMITTEE, b"\x1b", MESSAGE_BYTES, certificate.signature)
    with pytest.raises(VerificationError, match="2 bytes"):
        verify_signers_bitmap(COMMITTEE, b"\x0b\x00", MESSAGE_BYTES, certificate.signature)


def test_golden_vector_aggregates() -> None:
    vectors = json.loads(VECTORS_PATH.read_text())
    spec = vectors["committee"]
    members = tuple(
        CommitteeMember(
            bytes.fromhex(m["node_id"]),
            BlsPublicKey.from_bytes(bytes.fromhex(m["public_key"])),
            "",
            tuple(m["shards"]),
        )
        for m in spec["members"]
    )
    committee = Committee(spec["epoch"], spec["n_shards"], members)
    assert committee.total_aggregated_key.to_bytes().hex() == spec["total_aggregated_key"]
    for entry in vectors["messages"].values():
        message = bytes.fromhex(entry["bytes"])
        for aggregate in entry["aggregates"]:
            bitmap = bytes.fromhex(aggregate["signers_bitmap"])
            signature = BlsSignature.from_bytes(bytes.fromhex(aggregate["signature"]))
            thresholds: tuple[tuple[Threshold, str], ...] = (
                ("quorum", "is_quorum"),
                ("validity", "is_above_validity"),
            )
            for threshold, flag in thresholds:
                if aggregate[flag]:
                    certified = verify_signers_bitmap(
                        committee,
                        bitmap,
                        message,
                        signature,
                        threshold,
                    )
                    assert certified.signer_weight == aggregate["signer_weight"]
                else:
                    with pytest.raises(VerificationError, match="shards"):
                        verify_signers_bitmap(
                            committee,
                            bitmap,
                            message,
                            signature,
                            threshold,
                        )


# ---- properties -----------------------------------------------------------------------------


@st.composite
def certificate_cases(draw: st.DrawFn) -> tuple[list[int], dict[int, bool], Threshold]:
    """Weights, each signer's honesty (signed the right message or not), and a threshold.

    Each member is an honest signer with probability 3/5, a signer of another message 1/5,
    absent 1/5, so that a fair share of cases (about a third) should verify.
    """
    weights = draw(st.lists(st.integers(1, 4), min_size=1, max_size=POOL_SIZE))
    roles = draw(st.lists(st.sampled_from("HHHDA"), min_size=len(weights), max_size=len(weights)))
    honest = {i: role == "H" for i, role in enumerate(roles) if role != "A"}
    threshold: Threshold = draw(st.sampled_from(["quorum", "validity"]))
    return weights, honest, threshold


@settings(max_examples=30, deadline=None)
@given(certificate_cases())
def test_certificate_verifies_iff_enough_weight_and_all_signed(
    case: tuple[list[int], dict[int, bool], Threshold],
) -> None:
    weights, honest, threshold = case
    committee = make_committee(weights)
    weight = sum(weights[i] for i in honest)
    n = committee.n_shards
    enough = 3 * weight >= (2 * n + 1 if threshold == "quorum" else n + 1)
    expected = enough and all(honest.values())
    if honest:
        signature = aggregate_signatures(GOOD[i] if ok else BAD[i] for i, ok in honest.items())
    else:
        signature = GOOD[0]
    certificate = Certificate(tuple(sorted(honest)), MESSAGE_BYTES, signature)
    try:
        certified = verify_certificate(committee, certificate, threshold)
    except VerificationError:
        assert not expected
    else:
        assert expected
        assert certified == CertifiedMessage(MESSAGE, weight)
    if honest:  # the committee's subtraction agrees with summing the signers' keys
        signer_keys = [KEYS[i].public_key() for i in sorted(honest)]
        assert verify_aggregate(signer_keys, MESSAGE_BYTES, signature) == all(honest.values())


def _flip(data: bytes, bit: int) -> bytes:
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


QUORUM_CERTIFICATE = certify([0, 1, 2, 3])


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["message", "signature", "bitmap", "key"]), st.data())
def test_any_flipped_bit_fails(part: str, data: Any) -> None:
    message = QUORUM_CERTIFICATE.serialized_message
    signature = QUORUM_CERTIFICATE.signature.to_bytes()
    bitmap = QUORUM_CERTIFICATE.signers_bitmap(COMMITTEE.n_members)
    committee = COMMITTEE
    if part == "message":
        message = _flip(message, data.draw(st.integers(0, 8 * len(message) - 1)))
    elif part == "signature":
        signature = _flip(signature, data.draw(st.integers(0, 8 * len(signature) - 1)))
    elif part == "bitmap":
        bitmap = _flip(bitmap, data.draw(st.integers(0, 7)))
    else:
        member_index = data.draw(st.integers(0, COMMITTEE.n_members - 1))
        bit = data.draw(st.integers(0, 8 * 48 - 1))
        try:
            key = BlsPublicKey.from_bytes(
                _flip(COMMITTEE.members[member_index].public_key.to_bytes(), bit)
            )
        except InvalidInputError:
            return  # a flipped key that is not a valid key never reaches a committee
        members = list(COMMITTEE.members)
        old = members[member_index]
        members[member_index] = CommitteeMember(old.node_id, key, old.network_address, old.shards)
        committee = Committee(COMMITTEE.epoch, COMMITTEE.n_shards, tuple(members))
    with pytest.raises(InvalidInputError):
        verify_signers_bitmap(committee, bitmap, message, BlsSignature.from_bytes(signature))


# ---- random committees ----------------------------------------------------------------------


@st.composite
def shard_partitions(draw: st.DrawFn) -> tuple[int, list[tuple[int, ...]]]:
    """n_shards and a random split of a random permutation of its shards over 1..6 members."""
    n_members = draw(st.integers(1, POOL_SIZE))
    n_shards = draw(st.integers(n_members, 60))
    order = draw(st.permutations(list(range(n_shards))))
    cuts: list[int] = []
    if n_members > 1:
        size = n_members - 1
        cuts = sorted(draw(st.sets(st.integers(1, n_shards - 1), min_size=size, max_size=size)))
    bounds = [0, *cuts, n_shards]
    return n_shards, [tuple(order[a:b]) for a, b in pairwise(bounds)]


def _committee_from(n_shards: int, shard_sets: list[tuple[int, ...]]) -> Committee:
    members = tuple(_member(i, shards) for i, shards in enumerate(shard_sets))
    return Committee(7, n_shards, members)


@settings(max_examples=50, deadline=None)
@given(shard_partitions())
def test_any_partition_makes_a_committee(case: tuple[int, list[tuple[int, ...]]]) -> None:
    n_shards, shard_sets = case
    committee = _committee_from(n_shards, shard_sets)
    assert sum(m.weight for m in committee.members) == n_shards
    for index, member in enumerate(committee.members):
        assert committee.member_index(member.node_id) == index
        assert all(committee.shard_owner(s) == index for s in member.shards)
    assert committee.weight_of(range(committee.n_members)) == n_shards


@settings(max_examples=50, deadline=None)
@given(shard_partitions(), st.data())
def test_broken_partitions_are_refused(case: tuple[int, list[tuple[int, ...]]], data: Any) -> None:
    n_shards, shard_sets = case
    victim = data.draw(st.integers(0, len(shard_sets) - 1))
    mutation = data.draw(st.sampled_from(["drop", "duplicate", "grow"]))
    broken = list(shard_sets)
    shards = broken[victim]
    if mutation == "drop":
        if len(shards) == 1:
            return
        broken[victim] = shards[1:]
    elif mutation == "duplicate":
        other = data.draw(st.integers(0, n_shards - 1))
        if other in shards:
            return
        broken[victim] = (*shards, other)
    else:
        broken[victim] = (*shards, n_shards)
    with pytest.raises(ValueError, match="shard"):
        _committee_from(n_shards, broken)


def test_large_committee_certificate() -> None:
    """1000 shards over 100 members, a third of them silent: as on Mainnet, but smaller keys."""
    keys = [BlsPrivateKey.from_seed(bytes([i, 0x77]) * 16) for i in range(100)]
    members = tuple(
        CommitteeMember(bytes([i]) * 32, key.public_key(), "", tuple(range(10 * i, 10 * i + 10)))
        for i, key in enumerate(keys)
    )
    committee = Committee(EPOCH, 1000, members)
    silent = set(range(0, 99, 3))  # 33 members, 330 shards: just under a third
    signatures = [(i, keys[i].sign(MESSAGE_BYTES)) for i in range(100) if i not in silent]
    certificate = Certificate.from_signatures(MESSAGE_BYTES, signatures)
    assert len(certificate.signers_bitmap(100)) == 13
    assert verify_certificate(committee, certificate).signer_weight == 670
    one_less = Certificate.from_signatures(MESSAGE_BYTES, signatures[1:])
    with pytest.raises(VerificationError, match="660 of 1000 shards; a quorum needs 667"):
        verify_certificate(committee, one_less)
    assert verify_certificate(committee, one_less, "validity").signer_weight == 660


def test_certified_proof_of_possession_message_decodes_as_such() -> None:
    """The certificate check is generic: it returns whatever typed message was certified."""
    message = InvalidBlobIdMessage(EPOCH, bytes(32))
    certified = verify_certificate(COMMITTEE, certify([0, 1, 2, 3], message.to_bcs()), "validity")
    assert certified.message == message
    assert certified.signer_weight == 10


def test_unsupported_intent_in_certificate() -> None:
    message = bytes([4, 0, 3]) + EPOCH.to_bytes(4, "little") + bytes(32 + 8 + 8 + 32)
    with pytest.raises(VerificationError, match="no message type for intent DENY_LIST_UPDATE"):
        verify_certificate(COMMITTEE, certify([0, 1, 2], message))


def test_certificate_is_a_value() -> None:
    first = certify([1, 2])
    assert first == certify([2, 1])
    assert hash(first) == hash(certify([1, 2]))
    assert first != certify([1, 3])
    assert Certificate(unchecked([0, 2]), MESSAGE_BYTES, GOOD[0]).signers == (0, 2)
