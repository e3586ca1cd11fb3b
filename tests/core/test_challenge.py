"""Tests of walruspy.core.challenge (storage challenges) and the CHALLENGE_ATTESTATION message."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.strategies import blobs, encoded, flip_bit, shard_counts
from walruspy.core import challenge
from walruspy.core.bcs import Writer
from walruspy.core.challenge import (
    DEFAULT_FAILURE_PROBABILITY,
    DEFAULT_MISSING_FRACTION,
    DEFAULT_SAMPLE_SIZE,
    MAX_CHALLENGE_SYMBOLS,
    SAMPLE_DOMAIN,
    ChallengeProof,
    SharedSymbolId,
    SliverKey,
    challenge_answer,
    challenge_sample,
    checks_per_verifier,
    joint_checks,
    max_challenge_proof_bytes,
    pass_probability,
    sample_size,
    shared_symbol_ids,
    verify_challenge_answer,
)
from walruspy.core.crypto import BlsPrivateKey
from walruspy.core.encoding import EncodedBlob
from walruspy.core.errors import (
    ChallengeVerificationError,
    DecodeError,
    InconsistentBlobError,
    InvalidInputError,
    VerificationError,
    WalrusError,
)
from walruspy.core.merkle import MerkleProof
from walruspy.core.messages import (
    CHALLENGE_ATTESTATION_MESSAGE_BYTES,
    ChallengeAttestationMessage,
    ConfirmationMessage,
    IntentType,
    SignedMessage,
    decode_message,
)
from walruspy.core.params import EncodingParams, max_n_faulty, quorum_weight
from walruspy.core.slivers import SliverData, VerifiedSliver, trust_encoded_sliver
from walruspy.core.symbols import RecoverySymbol
from walruspy.core.types import (
    ShardIndex,
    SliverPairIndex,
    SliverType,
    pair_of_shard,
    sliver_index_of_pair,
)

PRIMARY = SliverType.PRIMARY
SECONDARY = SliverType.SECONDARY


def unchecked(value: object) -> Any:
    """`value` with its static type erased, to test run-time type checks."""
    return value


# ---- CHALLENGE_ATTESTATION ------------------------------------------------------------------

ATTESTATION = ChallengeAttestationMessage(
    epoch=0x01020304, node_id=bytes(range(32)), seed=bytes([0xAA]) * 32, blobs_checked=2062
)
# Written by hand from the layout: intent 7, version 0, app id 3, epoch u32 LE, node_id [32],
# seed [32], blobs_checked u32 LE (2062 = 0x080e).
ATTESTATION_HEX = (
    "07" + "00" + "03" + "04030201"
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "0e080000"
)


def test_attestation_golden_bytes() -> None:
    encoded_bytes = ATTESTATION.to_bcs()
    assert encoded_bytes.hex() == ATTESTATION_HEX
    assert len(encoded_bytes) == CHALLENGE_ATTESTATION_MESSAGE_BYTES == 75
    assert ChallengeAttestationMessage.from_bcs(bytes.fromhex(ATTESTATION_HEX)) == ATTESTATION
    assert decode_message(encoded_bytes) == ATTESTATION


def test_attestation_intent_follows_walrus_six() -> None:
    assert IntentType.CHALLENGE_ATTESTATION.value == 7
    assert ChallengeAttestationMessage.INTENT is IntentType.CHALLENGE_ATTESTATION
    walrus = [
        intent.value for intent in IntentType if intent is not IntentType.CHALLENGE_ATTESTATION
    ]
    assert walrus == list(range(7))


def test_attestation_refuses_other_intents_headers_and_lengths() -> None:
    data = bytes.fromhex(ATTESTATION_HEX)
    with pytest.raises(DecodeError, match="expected intent CHALLENGE_ATTESTATION"):
        ChallengeAttestationMessage.from_bcs(bytes([1]) + data[1:])
    with pytest.raises(DecodeError, match="intent version"):
        ChallengeAttestationMessage.from_bcs(data[:1] + bytes([1]) + data[2:])
    with pytest.raises(DecodeError, match="app id"):
        ChallengeAttestationMessage.from_bcs(data[:2] + bytes([4]) + data[3:])
    with pytest.raises(DecodeError, match="trailing"):
        ChallengeAttestationMessage.from_bcs(data + b"\x00")
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            ChallengeAttestationMessage.from_bcs(data[:cut])
    blob_cert = ConfirmationMessage(1, bytes(32)).to_bcs()
    with pytest.raises(DecodeError, match="expected intent CHALLENGE_ATTESTATION"):
        ChallengeAttestationMessage.from_bcs(blob_cert)
    with pytest.raises(DecodeError, match="expected intent BLOB_CERT"):
        ConfirmationMessage.from_bcs(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epoch", -1),
        ("epoch", 1 << 32),
        ("node_id", bytes(31)),
        ("node_id", bytes(33)),
        ("node_id", "a" * 32),
        ("seed", bytes(31)),
        ("seed", bytearray(32)),
        ("blobs_checked", -1),
        ("blobs_checked", 1 << 32),
        ("blobs_checked", True),
        ("blobs_checked", 1.0),
    ],
)
def test_attestation_checks_its_fields(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=r"epoch|node ID|seed|blobs_checked"):
        replace(ATTESTATION, **{field: unchecked(value)})


@settings(max_examples=200)
@given(
    st.integers(0, (1 << 32) - 1),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
    st.integers(0, (1 << 32) - 1),
)
def test_attestation_round_trips(epoch: int, node_id: bytes, seed: bytes, checked: int) -> None:
    message = ChallengeAttestationMessage(epoch, node_id, seed, checked)
    data = message.to_bcs()
    expected = (
        Writer().u8(7).u8(0).u8(3).u32(epoch).fixed(node_id).fixed(seed).u32(checked).finish()
    )
    assert data == expected
    assert ChallengeAttestationMessage.from_bcs(data) == message
    assert decode_message(data) == message


@settings(max_examples=300)
@given(st.binary(max_size=90))
def test_attestation_parser_never_raises_anything_else(data: bytes) -> None:
    try:
        message = ChallengeAttestationMessage.from_bcs(data)
    except DecodeError:
        return
    assert message.to_bcs() == data


def test_attestation_is_signed_and_verified_like_other_messages() -> None:
    key = BlsPrivateKey.from_seed(bytes([3]) * 32)
    signed = SignedMessage.sign(key, ATTESTATION)
    assert signed.serialized_message == ATTESTATION.to_bcs()
    assert signed.verify(key.public_key(), ATTESTATION) == ATTESTATION
    assert signed.verify_and_decode(key.public_key()) == ATTESTATION
    other = replace(ATTESTATION, blobs_checked=2061)
    with pytest.raises(VerificationError, match="content"):
        signed.verify(key.public_key(), other)


# ---- sample size ----------------------------------------------------------------------------


def test_sample_size_defaults_and_table() -> None:
    assert (DEFAULT_MISSING_FRACTION, DEFAULT_FAILURE_PROBABILITY) == (0.01, 1e-9)
    assert sample_size(10**9) == DEFAULT_SAMPLE_SIZE == 2062
    assert 0.99**2062 <= 1e-9 < 0.99**2061
    assert sample_size(10**9, missing=0.05) == 405
    assert sample_size(10**9, missing=0.10) == 197
    assert sample_size(10**6, missing=0.01, failure=1e-30) == 6874
    # The paper's example (section 4.6): 640 files for 90 %, 7000 for 99 %, below 1e-30.
    assert 0.9**640 < 1e-29 and 0.99**7000 < 1e-30


# ---- checks per verifier ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "n_shards", "joint", "each"),
    [(4, 100, 2269, 1669), (7, 70, 2476, 1032), (10, 1000, 2683, 804), (100, 1000, 8890, 267)],
)
def test_checks_per_verifier_table(members: int, n_shards: int, joint: int, each: int) -> None:
    verifiers = members - 1
    assert joint_checks(verifiers) == joint
    # K is the smallest with 2^V (1 - m)^K <= failure.
    assert 2.0**verifiers * 0.99**joint <= 1e-9 < 2.0**verifiers * 0.99 ** (joint - 1)
    weight = n_shards // members
    assert checks_per_verifier(weight, n_shards=n_shards, n_verifiers=verifiers) == each


def test_joint_checks_is_far_from_a_rounding_boundary() -> None:
    # Nodes compute K independently in floating point; no committee size may put the quotient
    # within a rounding error of an integer, or two nodes could disagree on the positions.
    for verifiers in range(5001):
        quotient = (-math.log(1e-9) + verifiers * math.log(2)) / -math.log1p(-0.01)
        assert 8e-5 < quotient % 1.0 < 1.0 - 8e-5


def test_a_verifier_holding_the_honest_weight_checks_everything_alone() -> None:
    assert checks_per_verifier(50, n_shards=100, n_verifiers=1) == joint_checks(1)
    assert checks_per_verifier(0, n_shards=100, n_verifiers=3) == 0
    with pytest.raises(ValueError, match="n_verifiers"):
        joint_checks(-1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=2, max_size=12), st.data())
def test_every_set_able_to_certify_holds_the_joint_checks(
    weights: list[int], data: st.DataObject
) -> None:
    # A committee with these weights; any honest verifiers a certificate needs (weight >= q - f)
    # hold at least K checks between them, so they all pass with probability <= (1 - m)^K.
    n_shards = sum(weights)
    verifiers = len(weights) - 1
    honest = quorum_weight(n_shards) - max_n_faulty(n_shards)
    others = weights[1:]
    chosen = data.draw(st.lists(st.booleans(), min_size=verifiers, max_size=verifiers))
    subset = [w for w, keep in zip(others, chosen, strict=True) if keep]
    if sum(subset) < honest:
        return
    checks = [checks_per_verifier(w, n_shards=n_shards, n_verifiers=verifiers) for w in subset]
    assert sum(checks) >= joint_checks(verifiers) or max(checks) == joint_checks(verifiers)


def test_four_nodes_exact_pass_probability_is_below_the_bound() -> None:
    # 4 nodes x 25 of 100 shards: a certificate needs honest weight 34, two of the three others.
    each = checks_per_verifier(25, n_shards=100, n_verifiers=3)
    one = 0.99**each
    two_of_three = 3 * one**2 * (1 - one) + one**3
    assert two_of_three <= DEFAULT_FAILURE_PROBABILITY


@pytest.mark.parametrize("n_blobs", [0, 1, 2, 100, 2061, 2062])
def test_sample_size_checks_every_blob_of_a_small_set(n_blobs: int) -> None:
    assert sample_size(n_blobs) == n_blobs


@pytest.mark.parametrize(
    ("n_blobs", "probability", "smallest"),
    [(3_000, 5.2e-16, 1490), (10_000, 8.2e-11, 1863), (100_000, 8.0e-10, 2041)],
)
def test_pass_probability_table(n_blobs: int, probability: float, smallest: int) -> None:
    n_missing = math.ceil(n_blobs / 100)
    at_k = pass_probability(n_blobs, n_missing, sample_size(n_blobs))
    assert at_k == pytest.approx(probability, rel=0.01)
    assert at_k <= DEFAULT_FAILURE_PROBABILITY
    assert pass_probability(n_blobs, n_missing, smallest) <= DEFAULT_FAILURE_PROBABILITY
    assert pass_probability(n_blobs, n_missing, smallest - 1) > DEFAULT_FAILURE_PROBABILITY


def test_pass_probability_edges() -> None:
    assert pass_probability(100, 0, 50) == 1.0
    assert pass_probability(100, 1, 100) == 0.0
    assert pass_probability(100, 10, 91) == 0.0
    assert pass_probability(10, 1, 1) == pytest.approx(0.9)
    assert pass_probability(10, 2, 2) == pytest.approx(8 / 10 * 7 / 9)
    with pytest.raises(ValueError, match="n_missing"):
        pass_probability(10, 11, 1)
    with pytest.raises(ValueError, match="n_missing"):
        pass_probability(10, 1, 11)


@settings(max_examples=300)
@given(
    st.floats(min_value=1e-4, max_value=0.9),
    st.floats(min_value=1e-40, max_value=0.5),
    st.integers(0, 10**7),
)
def test_sample_size_is_the_smallest_k(missing: float, failure: float, n_blobs: int) -> None:
    k = sample_size(10**12, missing, failure)
    log_keep = math.log1p(-missing)
    assert k * log_keep <= math.log(failure)
    assert k == 1 or (k - 1) * log_keep > math.log(failure)
    assert sample_size(n_blobs, missing, failure) == min(n_blobs, k)


@settings(max_examples=60)
@given(st.integers(1, 50_000), st.sampled_from([0.01, 0.05, 0.1]))
def test_sample_size_bounds_the_hypergeometric_pass_probability(n: int, missing: float) -> None:
    k = sample_size(n, missing)
    assert pass_probability(n, math.ceil(missing * n), k) <= DEFAULT_FAILURE_PROBABILITY


@pytest.mark.parametrize(
    ("n_blobs", "missing", "failure"),
    [
        (-1, 0.01, 1e-9),
        (True, 0.01, 1e-9),
        (unchecked(1.5), 0.01, 1e-9),
        (10, 0.0, 1e-9),
        (10, 1.0, 1e-9),
        (10, math.nan, 1e-9),
        (10, 0.1, 0.0),
        (10, 0.1, 1.0),
    ],
)
def test_sample_size_refuses_bad_arguments(n_blobs: int, missing: float, failure: float) -> None:
    with pytest.raises(ValueError, match=r"n_blobs|missing"):
        sample_size(n_blobs, missing, failure)


# ---- sampling -------------------------------------------------------------------------------

SEED = bytes([0x5E]) * 32
NODE = bytes([0xA1]) * 32
OTHER_NODE = bytes([0xA2]) * 32


def blob_id(i: int) -> bytes:
    """A deterministic, well-spread blob ID."""
    return hashlib.blake2b(i.to_bytes(4, "little"), digest_size=32).digest()


BLOB_IDS = [blob_id(i) for i in range(100)]
ids_lists = st.lists(st.binary(min_size=32, max_size=32), unique=True, max_size=60)
seeds = st.binary(min_size=32, max_size=32)


def reference_sample(seed: bytes, node_id: bytes, ids: Sequence[bytes], size: int) -> list[bytes]:
    """The sampler written again from its docstring, with no code of the module."""

    def words() -> Iterator[int]:
        for counter in range(1 << 20):
            block = SAMPLE_DOMAIN + seed + node_id + counter.to_bytes(8, "little")
            digest = hashlib.blake2b(block, digest_size=32).digest()
            for k in range(4):
                yield int.from_bytes(digest[8 * k : 8 * k + 8], "little")

    stream = words()
    pool = sorted(ids)
    if size >= len(pool):
        return pool
    for t in range(size):
        bound = len(pool) - t
        while (word := next(stream)) >= (1 << 64) - (1 << 64) % bound:
            pass
        j = t + word % bound
        pool[t], pool[j] = pool[j], pool[t]
    return sorted(pool[:size])


def test_sample_golden_vector() -> None:
    # Pins the PRF and shuffle: another implementation must reproduce exactly this.
    ids = [blob_id(i) for i in range(12)]
    assert challenge_sample(SEED, NODE, ids, 4) == [ids[9], ids[8], ids[11], ids[6]]
    assert SAMPLE_DOMAIN == b"walruspy/challenge-sample/v1"


@settings(max_examples=200)
@given(seeds, st.binary(min_size=32, max_size=32), ids_lists, st.integers(0, 70))
def test_sample_matches_the_documented_algorithm(
    seed: bytes, node_id: bytes, ids: list[bytes], size: int
) -> None:
    assert challenge_sample(seed, node_id, ids, size) == reference_sample(seed, node_id, ids, size)


@settings(max_examples=200)
@given(seeds, ids_lists, st.integers(0, 70), st.randoms(use_true_random=False))
def test_sample_is_a_sorted_subset_of_the_right_size_whatever_the_order(
    seed: bytes, ids: list[bytes], size: int, rng: Any
) -> None:
    sample = challenge_sample(seed, NODE, ids, size)
    shuffled = list(ids)
    rng.shuffle(shuffled)
    assert challenge_sample(seed, NODE, shuffled, size) == sample
    assert challenge_sample(seed, NODE, tuple(reversed(ids)), size) == sample
    assert challenge_sample(seed, NODE, ids, size) == sample
    assert len(sample) == min(size, len(ids))
    assert len(set(sample)) == len(sample)
    assert set(sample) <= set(ids)
    assert sample == sorted(sample)


@settings(max_examples=100)
@given(seeds, seeds)
def test_different_nodes_and_seeds_get_different_samples(seed: bytes, other_seed: bytes) -> None:
    # C(100, 10) > 1.7e13 samples: a collision would be a bug, not chance.
    sample = challenge_sample(seed, NODE, BLOB_IDS, 10)
    assert challenge_sample(seed, OTHER_NODE, BLOB_IDS, 10) != sample
    if other_seed != seed:
        assert challenge_sample(other_seed, NODE, BLOB_IDS, 10) != sample


def test_sample_edges() -> None:
    assert challenge_sample(SEED, NODE, [], 5) == []
    assert challenge_sample(SEED, NODE, BLOB_IDS, 0) == []
    assert challenge_sample(SEED, NODE, BLOB_IDS, 100) == sorted(BLOB_IDS)
    assert challenge_sample(SEED, NODE, BLOB_IDS, 10**9) == sorted(BLOB_IDS)
    assert challenge_sample(SEED, NODE, iter_list(BLOB_IDS[:3]), 1)[0] in BLOB_IDS[:3]


def iter_list(values: list[bytes]) -> list[bytes]:
    """A copy, to show the sampler does not change its argument."""
    copy = list(values)
    challenge_sample(SEED, NODE, copy, 2)
    assert copy == values
    return copy


@pytest.mark.parametrize(
    ("seed", "node_id", "ids", "size", "match"),
    [
        (SEED, NODE, [BLOB_IDS[0], BLOB_IDS[1], BLOB_IDS[0]], 1, "duplicate"),
        (SEED, NODE, [BLOB_IDS[0], bytes(31)], 1, "blob ID"),
        (SEED, NODE, [unchecked("x" * 32)], 1, "blob ID"),
        (bytes(31), NODE, BLOB_IDS, 1, "seed"),
        (SEED, bytes(33), BLOB_IDS, 1, "node ID"),
        (SEED, NODE, BLOB_IDS, -1, "sample size"),
        (SEED, NODE, BLOB_IDS, unchecked(True), "sample size"),
    ],
)
def test_sample_refuses_bad_arguments(
    seed: bytes, node_id: bytes, ids: list[bytes], size: int, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        challenge_sample(seed, node_id, ids, size)


def test_uniform_below_rejects_the_biased_tail() -> None:
    top = (1 << 64) - 1  # 2^64 mod 3 = 1: the single word 2^64 - 1 would favour 0
    assert challenge._uniform_below(iter([top, 5]), 3) == 2
    assert challenge._uniform_below(iter([top - 1]), 3) == (top - 1) % 3
    assert challenge._uniform_below(iter([top]), 1 << 64) == top
    assert challenge._uniform_below(iter([top]), 1) == 0
    with pytest.raises(ValueError, match="bound"):
        challenge._uniform_below(iter([0]), 0)


# Chi-square critical values at p = 1e-4 (19 degrees of freedom). The seeds are fixed, so the
# statistics are fixed numbers: the test cannot flake, and the threshold is far from them.
CHI2_19_P1E4 = 43.82
UNIFORMITY_SEEDS = [blob_id(1_000_000 + t) for t in range(2000)]


def chi_square(counts: Mapping[Any, int], cells: int, total: int) -> float:
    """Pearson's statistic of `counts` against `total` spread evenly over `cells` cells."""
    expected = total / cells
    missing_cells = cells - len(counts)
    observed = sum((c - expected) ** 2 / expected for c in counts.values())
    return observed + missing_cells * expected


def test_each_blob_is_picked_equally_often() -> None:
    ids = [bytes([i]) * 32 for i in range(20)]
    picks = Counter(b for seed in UNIFORMITY_SEEDS for b in challenge_sample(seed, NODE, ids, 5))
    statistic = chi_square(picks, 20, 5 * len(UNIFORMITY_SEEDS))
    assert statistic < CHI2_19_P1E4, statistic
    # The test has power: always taking the first blobs of the canonical order fails it.
    biased = Counter(b for _ in UNIFORMITY_SEEDS for b in ids[:5])
    assert chi_square(biased, 20, 5 * len(UNIFORMITY_SEEDS)) > 100 * CHI2_19_P1E4


def test_each_subset_is_picked_equally_often() -> None:
    # C(6, 3) = 20 subsets, 19 degrees of freedom: catches a uniform-per-blob but biased shuffle.
    ids = [bytes([i]) * 32 for i in range(6)]
    subsets = Counter(tuple(challenge_sample(s, NODE, ids, 3)) for s in UNIFORMITY_SEEDS)
    assert len(subsets) == 20
    assert chi_square(subsets, 20, len(UNIFORMITY_SEEDS)) < CHI2_19_P1E4


# ---- shared symbol ids ----------------------------------------------------------------------

N = 10
NODES_10 = ((0, 4, 8), (1, 5, 9), (2, 6), (3, 7))


def pairs_of(blob: bytes, shards: Sequence[int], n: int) -> set[int]:
    return {pair_of_shard(ShardIndex(s), blob, n) for s in shards}


@settings(max_examples=100)
@given(
    st.binary(min_size=32, max_size=32),
    st.integers(4, 40).flatmap(
        lambda n: st.tuples(st.just(n), st.permutations(range(n)), st.integers(1, n - 1))
    ),
    st.data(),
)
def test_shared_ids_are_the_crossings_of_the_two_nodes(
    blob: bytes, shape: tuple[int, list[int], int], data: st.DataObject
) -> None:
    n, order, cut = shape
    shards_a = order[:cut]
    shards_b = order[cut : cut + data.draw(st.integers(0, n - cut))]
    ids = shared_symbol_ids(blob, n, shards_a, shards_b)
    pairs_a, pairs_b = pairs_of(blob, shards_a, n), pairs_of(blob, shards_b, n)
    assert len(ids) == 2 * len(shards_a) * len(shards_b)
    assert ids == sorted(ids, key=lambda i: i.sort_key)
    assert len(set(ids)) == len(ids)
    positions = [i.matrix_position(n) for i in ids]
    assert len(set(positions)) == len(positions)
    for symbol_id, (row, column) in zip(ids, positions, strict=True):
        assert symbol_id.source_pair in pairs_a and symbol_id.target_pair in pairs_b
        assert symbol_id.target_axis is symbol_id.source_axis.orthogonal
        # The symbol lies on one sliver of A and one of B: row = primary, column = secondary.
        primary_pair, secondary_pair = row, n - 1 - column
        holders = {primary_pair, secondary_pair}
        assert holders == {symbol_id.source_pair, symbol_id.target_pair}
    assert shared_symbol_ids(blob, n, list(reversed(shards_a)) * 2, shards_b) == ids


@settings(max_examples=50)
@given(st.binary(min_size=32, max_size=32), shard_counts, st.randoms(use_true_random=False))
def test_crossings_of_all_node_pairs_cover_each_cross_symbol_twice(
    blob: bytes, n: int, rng: Any
) -> None:
    shards = list(range(n))
    rng.shuffle(shards)
    cuts = sorted(rng.sample(range(1, n), 2))
    nodes = [shards[: cuts[0]], shards[cuts[0] : cuts[1]], shards[cuts[1] :]]
    owner = {pair_of_shard(ShardIndex(s), blob, n): k for k, node in enumerate(nodes) for s in node}
    seen = Counter(
        i.matrix_position(n)
        for a, b in ((a, b) for a in range(3) for b in range(3) if a != b)
        for i in shared_symbol_ids(blob, n, nodes[a], nodes[b])
    )
    expected = {
        (row, column): 2
        for row in range(n)
        for column in range(n)
        if owner[SliverPairIndex(row)] != owner[SliverPairIndex(n - 1 - column)]
    }
    assert dict(seen) == expected


def test_shared_ids_follow_the_rotation() -> None:
    blob = bytes(31) + bytes([3])  # offset 3 for 10 shards
    ids = shared_symbol_ids(blob, 10, [3], [4])
    assert ids == [
        SharedSymbolId(SliverPairIndex(0), PRIMARY, SliverPairIndex(1), SECONDARY),
        SharedSymbolId(SliverPairIndex(0), SECONDARY, SliverPairIndex(1), PRIMARY),
    ]
    assert [i.source_index(10) for i in ids] == [0, 9]
    assert [i.target_index(10) for i in ids] == [8, 1]
    assert [i.matrix_position(10) for i in ids] == [(0, 8), (1, 9)]
    assert shared_symbol_ids(blob, 10, [], [4]) == []


@pytest.mark.parametrize(
    ("blob", "n", "a", "b", "match"),
    [
        (bytes(32), 10, [1, 2], [2, 3], "in common"),
        (bytes(32), 10, [10], [2], "out of range"),
        (bytes(32), 10, [1], [-1], "out of range"),
        (bytes(32), 10, [unchecked(True)], [2], "out of range"),
        (bytes(31), 10, [1], [2], "blob ID"),
        (bytes(32), 0, [1], [2], "n_shards"),
    ],
)
def test_shared_ids_refuse_bad_arguments(
    blob: bytes, n: int, a: list[int], b: list[int], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        shared_symbol_ids(blob, n, a, b)


def test_shared_symbol_id_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="orthogonal"):
        SharedSymbolId(SliverPairIndex(0), PRIMARY, SliverPairIndex(1), PRIMARY)
    with pytest.raises(ValueError, match="orthogonal"):
        SharedSymbolId(SliverPairIndex(0), unchecked("primary"), SliverPairIndex(1), SECONDARY)
    with pytest.raises(ValueError, match="pair index"):
        SharedSymbolId(SliverPairIndex(-1), PRIMARY, SliverPairIndex(1), SECONDARY)
    with pytest.raises(InvalidInputError):
        SharedSymbolId(SliverPairIndex(10), PRIMARY, SliverPairIndex(1), SECONDARY).source_index(10)


# ---- answers on a real encoded blob ---------------------------------------------------------

BLOB = bytes((i * 31 + 7) % 256 for i in range(3000))
#: 4-byte symbols at n = 10: the exhaustive bit-flip loops stay fast.
SMALL_BLOB = BLOB[:100]


def slivers_of(
    blob: EncodedBlob, shards: Sequence[int]
) -> dict[SliverKey, VerifiedSliver | SliverData]:
    """A node's slivers of `blob` by (pair, axis), as the encoder made them."""
    raw = blob.metadata.blob_id.raw
    result: dict[SliverKey, VerifiedSliver | SliverData] = {}
    for shard in shards:
        pair = pair_of_shard(ShardIndex(shard), raw, blob.n_shards)
        for axis in SliverType:
            result[(pair, axis)] = blob.sliver(pair, axis)
    return result


@lru_cache(maxsize=16)
def honest(
    blob_bytes: bytes, n: int, a: tuple[int, ...], b: tuple[int, ...]
) -> tuple[EncodedBlob, list[SharedSymbolId], ChallengeProof]:
    """The blob, the ids A and B share and A's honest answer."""
    blob = encoded(blob_bytes, n)
    ids = shared_symbol_ids(blob.metadata.blob_id.raw, n, a, b)
    return blob, ids, challenge_answer(blob.metadata, slivers_of(blob, a), ids)


def verify(blob: EncodedBlob, answer: ChallengeProof, ids: list[SharedSymbolId], b: Any) -> None:
    verify_challenge_answer(blob.metadata, answer, ids, slivers_of(blob, b))


@pytest.mark.parametrize("a", range(len(NODES_10)))
@pytest.mark.parametrize("b", range(len(NODES_10)))
def test_honest_answers_verify_for_every_pair_of_nodes(a: int, b: int) -> None:
    if a == b:
        return
    blob, ids, answer = honest(BLOB, N, NODES_10[a], NODES_10[b])
    assert len(answer.symbols) == len(ids) == 2 * len(NODES_10[a]) * len(NODES_10[b])
    verify(blob, answer, ids, NODES_10[b])
    verify(blob, ChallengeProof.from_bcs(answer.to_bcs(), len(ids)), ids, NODES_10[b])
    # B's slivers as read from its store (unverified): checked against the metadata first.
    stored = {key: sliver_data(s) for key, s in slivers_of(blob, NODES_10[b]).items()}
    verify_challenge_answer(blob.metadata, answer, ids, stored)


def sliver_data(sliver: VerifiedSliver | SliverData) -> SliverData:
    return sliver.sliver if isinstance(sliver, VerifiedSliver) else sliver


def test_answer_symbols_are_the_recovery_symbols_at_the_crossings() -> None:
    blob, ids, answer = honest(BLOB, N, NODES_10[0], NODES_10[1])
    for symbol_id, symbol in zip(ids, answer.symbols, strict=True):
        row, column = symbol_id.matrix_position(N)
        primary_row = blob.primary_sliver(row).expanded_symbols(N)
        secondary_column = blob.secondary_sliver(column).expanded_symbols(N)
        assert symbol.data == primary_row[column] == secondary_column[row]
        assert symbol.source_type is symbol_id.source_axis
        assert symbol.target_type is symbol_id.target_axis


@settings(max_examples=25)
@given(blobs, shard_counts, st.randoms(use_true_random=False), st.data())
def test_honest_answers_verify_and_any_flipped_bit_fails(
    blob_bytes: bytes, n: int, rng: Any, data: st.DataObject
) -> None:
    shards = list(range(n))
    rng.shuffle(shards)
    cut = rng.randrange(1, n)
    a, b = tuple(shards[:cut]), tuple(shards[cut : rng.randrange(cut + 1, n + 1)])
    blob, ids, answer = honest(blob_bytes, n, a, b)
    verify(blob, answer, ids, b)
    k = data.draw(st.integers(0, len(ids) - 1))
    symbol = answer.symbols[k]
    nodes = [i for i, node in enumerate(symbol.proof.path) if node is not None]
    where = data.draw(st.sampled_from(["data", *(["proof"] if nodes else [])]))
    bit = data.draw(st.integers(0, 1 << 20))
    if where == "data":
        changed = replace(symbol, data=flip_bit(symbol.data, bit))
    else:
        changed = replace(
            symbol, proof=flip_proof(symbol.proof, data.draw(st.sampled_from(nodes)), bit)
        )
    with pytest.raises(ChallengeVerificationError, match=f"symbol {k} "):
        verify(blob, with_symbol(answer, k, changed), ids, b)


def flip_proof(proof: MerkleProof, node: int, bit: int) -> MerkleProof:
    """`proof` with one bit of its node `node` flipped."""
    path = list(proof.path)
    digest = path[node]
    assert digest is not None
    path[node] = flip_bit(digest, bit)
    return MerkleProof(tuple(path))


def with_symbol(answer: ChallengeProof, k: int, symbol: RecoverySymbol) -> ChallengeProof:
    symbols = list(answer.symbols)
    symbols[k] = symbol
    return ChallengeProof(answer.blob_id, tuple(symbols))


def test_every_single_bit_flip_in_symbols_and_proofs_fails() -> None:
    # Every bit of every symbol; every bit of every proof node of the first and last symbols,
    # every 7th bit of the others (the hypothesis test above draws the rest at random).
    blob, ids, answer = honest(SMALL_BLOB, N, NODES_10[0], NODES_10[2])
    checked = 0
    for k, symbol in enumerate(answer.symbols):
        for bit in range(len(symbol.data) * 8):
            changed = replace(symbol, data=flip_bit(symbol.data, bit))
            with pytest.raises(ChallengeVerificationError, match=f"symbol {k} .*Merkle"):
                verify(blob, with_symbol(answer, k, changed), ids, NODES_10[2])
            checked += 1
        stride = 1 if k in (0, len(ids) - 1) else 7
        for node, digest in enumerate(symbol.proof.path):
            if digest is None:
                continue
            for bit in range(0, 256, stride):
                changed = replace(symbol, proof=flip_proof(symbol.proof, node, bit))
                with pytest.raises(ChallengeVerificationError, match=f"symbol {k} .*Merkle"):
                    verify(blob, with_symbol(answer, k, changed), ids, NODES_10[2])
                checked += 1
    assert checked > 8 * 256


def test_every_single_bit_flip_of_the_wire_bytes_is_refused() -> None:
    blob, ids, answer = honest(SMALL_BLOB, N, NODES_10[2], NODES_10[3])
    data = answer.to_bcs()
    for bit in range(len(data) * 8):
        with pytest.raises((DecodeError, ChallengeVerificationError)):
            verify(blob, ChallengeProof.from_bcs(flip_bit(data, bit), len(ids)), ids, NODES_10[3])


def test_missing_extra_and_misplaced_symbols_fail() -> None:
    blob, ids, answer = honest(BLOB, N, NODES_10[0], NODES_10[1])
    symbols = list(answer.symbols)
    b = NODES_10[1]
    for k in range(len(symbols)):
        fewer = ChallengeProof(answer.blob_id, tuple(symbols[:k] + symbols[k + 1 :]))
        with pytest.raises(ChallengeVerificationError, match="symbols, the challenge asks for"):
            verify(blob, fewer, ids, b)
        more = ChallengeProof(answer.blob_id, (*symbols[: k + 1], symbols[k], *symbols[k + 1 :]))
        with pytest.raises(ChallengeVerificationError, match="symbols, the challenge asks for"):
            verify(blob, more, ids, b)
    swapped = [symbols[1], symbols[0], *symbols[2:]]
    with pytest.raises(ChallengeVerificationError, match=r"symbol 0 .*expected"):
        verify(blob, ChallengeProof(answer.blob_id, tuple(swapped)), ids, b)
    # A valid symbol for another peer C, in place of one for B: misplaced.
    _, _, for_c = honest(BLOB, N, NODES_10[0], NODES_10[2])
    with pytest.raises(ChallengeVerificationError, match=r"symbol 3 .*expected"):
        verify(blob, with_symbol(answer, 3, for_c.symbols[3]), ids, b)
    with pytest.raises(ChallengeVerificationError, match="challenge asks for"):
        verify(blob, ChallengeProof(answer.blob_id, ()), ids, b)


def test_answer_to_other_ids_or_blob_fails() -> None:
    blob, ids, answer = honest(BLOB, N, NODES_10[0], NODES_10[1])
    _, ids_c, _ = honest(BLOB, N, NODES_10[0], NODES_10[2])
    with pytest.raises(ChallengeVerificationError):
        verify(blob, answer, ids_c[: len(ids)], NODES_10[2])
    other = encoded(BLOB[:-1], N)
    with pytest.raises(ChallengeVerificationError, match="answer is for blob"):
        verify_challenge_answer(other.metadata, answer, ids, slivers_of(other, NODES_10[1]))
    with pytest.raises(ChallengeVerificationError, match="answer is for blob"):
        verify(blob, ChallengeProof(bytes(32), answer.symbols), ids, NODES_10[1])


def test_wrong_symbol_size_fails() -> None:
    blob, ids, answer = honest(BLOB, N, NODES_10[0], NODES_10[1])
    symbol = answer.symbols[0]
    with pytest.raises(ChallengeVerificationError, match="bytes, the blob's symbols"):
        verify(
            blob,
            with_symbol(answer, 0, replace(symbol, data=symbol.data + b"\0\0")),
            ids,
            (1, 5, 9),
        )


def test_a_symbol_committed_by_a_but_not_held_by_b_is_an_inconsistent_blob() -> None:
    # A proves its symbol against its sliver hash; if B's verified copy differs the blob was
    # encoded inconsistently: not A's fault. B's "verified" sliver is forged here to get there.
    blob, ids, answer = honest(BLOB, N, NODES_10[0], NODES_10[1])
    own = slivers_of(blob, NODES_10[1])
    target = (ids[0].target_pair, ids[0].target_axis)
    good = sliver_data(own[target])
    forged = replace(good, data=bytes(len(good.data)))
    own[target] = trust_encoded_sliver(forged, blob.metadata.blob_id.raw)
    with pytest.raises(InconsistentBlobError, match=r"symbol 0 .*inconsistent"):
        verify_challenge_answer(blob.metadata, answer, ids, own)
    assert not issubclass(InconsistentBlobError, ChallengeVerificationError)


def test_b_with_a_damaged_or_missing_own_sliver_is_a_caller_error() -> None:
    blob, ids, answer = honest(BLOB, N, NODES_10[0], NODES_10[1])
    own = slivers_of(blob, NODES_10[1])
    target = (ids[0].target_pair, ids[0].target_axis)
    good = sliver_data(own[target])
    own[target] = replace(good, data=flip_bit(good.data, 0))
    with pytest.raises(ValueError, match="damaged"):
        verify_challenge_answer(blob.metadata, answer, ids, own)
    del own[target]
    with pytest.raises(ValueError, match="B has no"):
        verify_challenge_answer(blob.metadata, answer, ids, own)
    other = encoded(BLOB[:-1], N)
    own[target] = trust_encoded_sliver(good, other.metadata.blob_id.raw)
    with pytest.raises(ValueError, match="another blob"):
        verify_challenge_answer(blob.metadata, answer, ids, own)


def test_challenge_answer_needs_a_s_own_slivers() -> None:
    blob, ids, _ = honest(BLOB, N, NODES_10[0], NODES_10[1])
    slivers = slivers_of(blob, NODES_10[0])
    key = (ids[0].source_pair, ids[0].source_axis)
    del slivers[key]
    with pytest.raises(ValueError, match="A has no primary sliver"):
        challenge_answer(blob.metadata, slivers, ids)
    slivers[key] = blob.sliver(SliverPairIndex((key[0] + 1) % N), PRIMARY)
    with pytest.raises(ValueError, match="not primary sliver"):
        challenge_answer(blob.metadata, slivers, ids)
    other = encoded(bytes(20_000), N)
    slivers[key] = other.sliver(key[0], PRIMARY)
    with pytest.raises(ValueError, match="symbol size"):
        challenge_answer(blob.metadata, slivers, ids)
    assert challenge_answer(blob.metadata, {}, []) == ChallengeProof(blob.metadata.blob_id.raw, ())


def test_a_node_that_dropped_a_sliver_cannot_answer() -> None:
    # A replaced one sliver with zeros (kept the key): every symbol cut from it fails at B.
    blob, ids, _ = honest(BLOB, N, NODES_10[1], NODES_10[3])
    slivers = slivers_of(blob, NODES_10[1])
    key = (ids[-1].source_pair, ids[-1].source_axis)
    lost = sliver_data(slivers[key])
    slivers[key] = replace(lost, data=bytes(len(lost.data)))
    answer = challenge_answer(blob.metadata, slivers, ids)
    first_bad = next(k for k, i in enumerate(ids) if (i.source_pair, i.source_axis) == key)
    with pytest.raises(ChallengeVerificationError, match=f"symbol {first_bad} "):
        verify(blob, answer, ids, NODES_10[3])


# ---- wire form and sizes --------------------------------------------------------------------


def test_proof_bcs_round_trips_and_is_strict() -> None:
    _, ids, answer = honest(BLOB, N, NODES_10[0], NODES_10[1])
    data = answer.to_bcs()
    assert data[:32] == answer.blob_id and data[32] == len(ids)
    assert ChallengeProof.from_bcs(data) == answer
    with pytest.raises(DecodeError, match="trailing"):
        ChallengeProof.from_bcs(data + b"\0")
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            ChallengeProof.from_bcs(data[:cut])
    with pytest.raises(DecodeError, match="exceeds the maximum"):
        ChallengeProof.from_bcs(data, max_symbols=len(ids) - 1)
    huge = bytes(32) + Writer().uleb128(MAX_CHALLENGE_SYMBOLS + 1).finish()
    with pytest.raises(DecodeError, match="exceeds the maximum"):
        ChallengeProof.from_bcs(huge, max_symbols=10**9)


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_proof_parser_never_raises_anything_else(data: bytes) -> None:
    try:
        proof = ChallengeProof.from_bcs(data)
    except (DecodeError, VerificationError):
        return
    assert proof.to_bcs() == data


def test_proof_checks_its_fields() -> None:
    _, _, answer = honest(BLOB, N, NODES_10[0], NODES_10[1])
    with pytest.raises(ValueError, match="blob ID"):
        ChallengeProof(bytes(31), answer.symbols)
    with pytest.raises(TypeError, match="RecoverySymbols"):
        ChallengeProof(bytes(32), (unchecked(b"x"),))
    with pytest.raises(ValueError, match="exceed"):
        ChallengeProof(bytes(32), (answer.symbols[0],) * (MAX_CHALLENGE_SYMBOLS + 1))
    assert ChallengeProof(bytes(32), unchecked(list(answer.symbols))).symbols == answer.symbols


@pytest.mark.parametrize("n", [10, 16])
def test_max_challenge_proof_bytes_bounds_the_answer(n: int) -> None:
    blob, ids, answer = honest(BLOB, n, (0, 1, 2, 9), (5, 7, 8))
    bound = max_challenge_proof_bytes(n, blob.metadata.symbol_size, len(ids))
    size = len(answer.to_bcs())
    # Exact but for the padding (`Empty`) nodes, 1 byte instead of 33; 16 leaves have none.
    empty_nodes = sum(node is None for symbol in answer.symbols for node in symbol.proof.path)
    assert size == bound - 32 * empty_nodes
    assert (empty_nodes == 0) is (n == 16)


def test_traffic_figures_of_the_docstring() -> None:
    # n = 100 with 4 nodes and n = 1000 with 10 nodes, a 1 MiB blob.
    figures: list[object] = []
    for n, nodes in ((100, 4), (1000, 10)):
        params = EncodingParams(n)
        ss = params.symbol_size(1 << 20)
        shards = n // nodes
        stored = shards * (params.n_primary_source_symbols + params.n_secondary_source_symbols)
        stored *= ss
        symbols = 2 * shards * shards
        per_peer = (
            max_challenge_proof_bytes(n, ss, symbols) - 32 - len(Writer().uleb128(symbols).finish())
        )
        figures.append((ss, stored, symbols, per_peer, round(per_peer / stored, 2)))
        figures.append(round((nodes - 1) * per_peer / stored, 2))
    assert figures == [
        (462, 1_166_550, 1_250, 876_250, 0.75),
        2.25,
        (6, 600_600, 20_000, 6_860_000, 11.42),
        102.8,
    ]


def test_real_answer_at_100_shards() -> None:
    # One real answer at the n of the table: 25 shards each side, 1250 symbols, proofs of 7.
    n = 100
    a, b = tuple(range(0, 100, 4)), tuple(range(1, 100, 4))
    blob, ids, answer = honest(BLOB, n, a, b)
    assert len(ids) == 1250
    verify(blob, answer, ids, b)
    assert len(answer.to_bcs()) <= max_challenge_proof_bytes(n, blob.metadata.symbol_size, 1250)
    assert {len(s.proof.path) for s in answer.symbols} == {7}


# ---- the whole lightweight challenge --------------------------------------------------------


def test_a_challenge_from_seed_to_signed_attestations() -> None:
    blobs_bytes = [BLOB[:k] for k in (100, 1000, 2000, 3000)]
    stored = {encoded(b, N).metadata.blob_id.raw: encoded(b, N) for b in blobs_bytes}
    node_ids = [bytes([0xB0 + k]) * 32 for k in range(len(NODES_10))]
    keys = [BlsPrivateKey.from_seed(bytes([k + 1]) * 32) for k in range(len(NODES_10))]
    seed = hashlib.blake2b(b"epoch 5 coin", digest_size=32).digest()
    challenged = 2
    size = sample_size(len(stored), missing=0.5, failure=0.25)
    assert size == 2
    sample = challenge_sample(seed, node_ids[challenged], list(stored), size)
    signed = []
    for peer in range(len(NODES_10)):
        if peer == challenged:
            continue
        for blob_key in sample:
            blob = stored[blob_key]
            ids = shared_symbol_ids(blob_key, N, NODES_10[challenged], NODES_10[peer])
            answer = challenge_answer(blob.metadata, slivers_of(blob, NODES_10[challenged]), ids)
            wire = ChallengeProof.from_bcs(answer.to_bcs(), max_symbols=len(ids))
            verify_challenge_answer(blob.metadata, wire, ids, slivers_of(blob, NODES_10[peer]))
        message = ChallengeAttestationMessage(5, node_ids[challenged], seed, len(sample))
        signed.append(SignedMessage.sign(keys[peer], message))
    assert len(signed) == 3
    for peer, attestation in zip((0, 1, 3), signed, strict=True):
        decoded = attestation.verify_and_decode(keys[peer].public_key())
        assert decoded == ChallengeAttestationMessage(5, node_ids[challenged], seed, 2)


def test_errors_sit_in_the_core_tree() -> None:
    assert issubclass(ChallengeVerificationError, VerificationError)
    assert issubclass(ChallengeVerificationError, InvalidInputError)
    assert issubclass(InconsistentBlobError, WalrusError)
    assert not issubclass(InconsistentBlobError, InvalidInputError)
    assert sliver_index_of_pair(SliverPairIndex(0), SECONDARY, N) == N - 1


def test_module_docstring_tables_match_the_code() -> None:
    doc = challenge.__doc__
    assert doc is not None
    rows = {
        "1 %": (2062, 0.01),
        "5 %": (405, 0.05),
        "10 %": (197, 0.10),
    }
    for label, (k, missing) in rows.items():
        assert sample_size(10**9, missing) == k
        ratio = math.log(1e-9) / math.log1p(-missing)
        line = next(line for line in doc.splitlines() if line.strip().startswith(label))
        assert f"{ratio:.2f}" in line and f" {k} " in line and f"{(1 - missing) ** k:.3e}" in line
    for n_blobs, text in ((3_000, "5.2e-16"), (10_000, "8.2e-11"), (100_000, "8.0e-10")):
        probability = pass_probability(n_blobs, math.ceil(n_blobs / 100), 2062)
        assert f"{probability:.1e}" == text and text in doc
    assert "1,166,550" in doc and "6,860,000" in doc
