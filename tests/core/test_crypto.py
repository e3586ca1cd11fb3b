"""Tests of walruspy.core.crypto: ciphersuite known answers, point checks, aggregation, EIP-2537."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from typing import Any

import py_ecc.bls
import py_ecc.bls.g2_primitives
import py_ecc.bls.hash
import py_ecc.bls.hash_to_curve
import py_ecc.optimized_bls12_381
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from py_arkworks_bls12381 import G1Point, G2Point

from walruspy.core import crypto
from walruspy.core.crypto import (
    CURVE_ORDER,
    DST,
    FIELD_MODULUS,
    BlsPrivateKey,
    BlsPublicKey,
    BlsSignature,
    aggregate_public_keys,
    aggregate_signatures,
    hash_to_field_eip2537,
    hash_to_g2_eip2537,
    map_fp2_to_g2_eip2537,
    verify,
    verify_aggregate,
    verify_aggregate_excluding,
)
from walruspy.core.errors import DecodeError, InvalidInputError, VerificationError

# py_ecc is only the oracle here; its NewType-annotated API is used untyped.
_PY_ECC: Any = py_ecc
G2Basic = _PY_ECC.bls.G2Basic
G2ProofOfPossession = _PY_ECC.bls.G2ProofOfPossession
py_ecc_g2 = _PY_ECC.bls.g2_primitives
py_ecc_expand_message_xmd = _PY_ECC.bls.hash.expand_message_xmd
py_ecc_hash_to_field_fq2 = _PY_ECC.bls.hash_to_curve.hash_to_field_FQ2
py_ecc_add = _PY_ECC.optimized_bls12_381.add
normalize = _PY_ECC.optimized_bls12_381.normalize

SEED = bytes([1]) * 32
MESSAGE = b"hello"
# py_ecc 8.0 G2Basic (DST ..._NUL_) with IKM = 0x01 * 32 and message b"hello": the same values
# are recomputed with py_ecc below; keeping them here makes a silent change of both visible.
KAT_PRIVATE_KEY = "144b27828e305a2d67fc7f4eea6de706b405cdd1ab8ad2daec046ccdeeec8b79"
KAT_PUBLIC_KEY = (
    "95a254501b7733239ed3cec4d56737977bd09ede881d8a234560e83e5525017a"
    "dd3b1dcc3eabfb85e12a4131b19c253b"
)
KAT_SIGNATURE = (
    "81b682fe0c1d64e55594322e65caf9226876e02edf5bc517c4f1079f439664b1"
    "60d11f99d21611ec840f659ba4e8e43c018518c5f3529db0a2e3fc545cf3b67e"
    "7b7e62ea1adc2f17e42ca966f35fbff6fdb0dd342466ea1f39f0b6450deb4fcf"
)

KEYS = [BlsPrivateKey.from_seed(bytes([i]) * 32) for i in range(4)]
SIGNATURES = [key.sign(MESSAGE) for key in KEYS]


def _g1_not_in_subgroup() -> bytes:
    """A compressed G1 point on the curve but outside the prime-order subgroup."""
    for x in itertools.count(1):
        encoded = bytearray(x.to_bytes(48, "big"))
        encoded[0] |= 0x80
        try:
            point = G1Point.from_compressed_bytes_unchecked(bytes(encoded))
        except ValueError:
            continue
        if not point.is_in_subgroup():
            return point.to_compressed_bytes()
    raise AssertionError("unreachable")


def _g2_not_in_subgroup() -> bytes:
    """A compressed G2 point on the curve but outside the prime-order subgroup."""
    for x in itertools.count(1):
        # Compressed G2 is x.c1 ‖ x.c0 with the flags in the first byte.
        encoded = bytearray(bytes(48) + x.to_bytes(48, "big"))
        encoded[0] |= 0x80
        try:
            point = G2Point.from_compressed_bytes_unchecked(bytes(encoded))
        except ValueError:
            continue
        if not point.is_in_subgroup():
            return point.to_compressed_bytes()
    raise AssertionError("unreachable")


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")


# ---- the ciphersuite, cross-checked against py_ecc ------------------------------------------


def test_dst_is_walrus_ciphersuite() -> None:
    assert DST == b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_"
    assert G2Basic.DST == DST


def test_keygen_public_key_and_signature_match_py_ecc() -> None:
    key = BlsPrivateKey.from_seed(SEED)
    py_ecc_key = G2Basic.KeyGen(SEED)
    assert _int(key.to_bytes()) == py_ecc_key
    assert key.public_key().to_bytes() == G2Basic.SkToPk(py_ecc_key)
    signature = key.sign(MESSAGE)
    assert signature.to_bytes() == G2Basic.Sign(py_ecc_key, MESSAGE)
    assert key.to_bytes().hex() == KAT_PRIVATE_KEY
    assert key.public_key().to_bytes().hex() == KAT_PUBLIC_KEY
    assert signature.to_bytes().hex() == KAT_SIGNATURE


def test_keygen_with_key_info_matches_py_ecc() -> None:
    seed = hashlib.sha256(b"walruspy").digest() * 2
    key = BlsPrivateKey.from_seed(seed, key_info=b"info")
    assert _int(key.to_bytes()) == G2Basic.KeyGen(seed, b"info")


def test_py_ecc_verifies_our_aggregate() -> None:
    aggregate = aggregate_signatures(SIGNATURES[:2])
    assert aggregate.to_bytes() == G2Basic.Aggregate([s.to_bytes() for s in SIGNATURES[:2]])
    points = [py_ecc_g2.pubkey_to_G1(key.public_key().to_bytes()) for key in KEYS[:2]]
    aggregate_key = py_ecc_g2.G1_to_pubkey(py_ecc_add(points[0], points[1]))
    assert aggregate_public_keys(k.public_key() for k in KEYS[:2]).to_bytes() == aggregate_key
    assert G2Basic.Verify(aggregate_key, MESSAGE, aggregate.to_bytes())


def test_expand_message_and_hash_to_field_match_py_ecc() -> None:
    message = b"walrus blob cert"
    for length in (32, 256):
        ours = crypto._expand_message_xmd(message, DST, length)
        assert ours == py_ecc_expand_message_xmd(message, DST, length, hashlib.sha256)
    u0, u1 = hash_to_field_eip2537(message)
    expected = py_ecc_hash_to_field_fq2(message, 2, DST, hashlib.sha256)
    for ours_fp2, theirs in zip((u0, u1), expected, strict=True):
        assert [_int(ours_fp2[:64]), _int(ours_fp2[64:])] == [int(c) for c in theirs.coeffs]


def test_hash_to_g2_is_the_sum_of_the_mapped_field_elements() -> None:
    for message in (b"", b"abc", bytes(range(200))):
        u0, u1 = hash_to_field_eip2537(message)
        first = BlsSignature.from_eip2537(map_fp2_to_g2_eip2537(u0))
        second = BlsSignature.from_eip2537(map_fp2_to_g2_eip2537(u1))
        total = aggregate_signatures([first, second])
        assert total.to_eip2537() == hash_to_g2_eip2537(message)


def test_map_fp2_rejects_bad_elements() -> None:
    with pytest.raises(DecodeError):
        map_fp2_to_g2_eip2537(bytes(127))
    with pytest.raises(DecodeError):
        map_fp2_to_g2_eip2537(b"\x01" + bytes(127))
    too_big = bytes(16) + FIELD_MODULUS.to_bytes(48, "big") + bytes(64)
    with pytest.raises(DecodeError):
        map_fp2_to_g2_eip2537(too_big)


def test_eip2537_encodings_match_py_ecc_coordinates() -> None:
    key = KEYS[0].public_key()
    x, y = normalize(py_ecc_g2.pubkey_to_G1(key.to_bytes()))
    encoded = key.to_eip2537()
    assert len(encoded) == 128
    assert encoded == b"".join(int(c).to_bytes(64, "big") for c in (x, y))
    signature = SIGNATURES[0]
    sx, sy = normalize(py_ecc_g2.signature_to_G2(signature.to_bytes()))
    encoded_signature = signature.to_eip2537()
    assert len(encoded_signature) == 256
    coefficients = [*sx.coeffs, *sy.coeffs]  # x.c0, x.c1, y.c0, y.c1
    assert encoded_signature == b"".join(int(c).to_bytes(64, "big") for c in coefficients)


# ---- private keys ---------------------------------------------------------------------------


def test_private_key_round_trip_and_checks() -> None:
    key = KEYS[1]
    assert BlsPrivateKey.from_bytes(key.to_bytes()) == key
    assert BlsPrivateKey.from_bytes(key.to_bytes()).public_key() == key.public_key()
    for bad in (bytes(32), CURVE_ORDER.to_bytes(32, "big"), b"\xff" * 32, bytes(31), b"\x01" * 33):
        with pytest.raises(ValueError, match="private key"):
            BlsPrivateKey.from_bytes(bad)
    assert BlsPrivateKey.from_bytes((CURVE_ORDER - 1).to_bytes(32, "big")).public_key()


def test_private_key_repr_hides_the_secret() -> None:
    key = KEYS[2]
    assert key.to_bytes().hex() not in repr(key)
    assert key.public_key().to_bytes().hex() in repr(key)


def test_generate_uses_the_callers_randomness() -> None:
    requests: list[int] = []

    def fake_random(count: int) -> bytes:
        requests.append(count)
        return SEED[:count]

    assert BlsPrivateKey.generate(fake_random) == BlsPrivateKey.from_seed(SEED)
    assert requests == [32]
    with pytest.raises(ValueError, match="at least 32"):
        BlsPrivateKey.from_seed(bytes(31))


# ---- sign and verify ------------------------------------------------------------------------


def test_sign_verify() -> None:
    key = KEYS[0]
    signature = key.sign(MESSAGE)
    assert verify(key.public_key(), MESSAGE, signature)
    assert key.public_key().verify(MESSAGE, signature)
    assert not verify(key.public_key(), MESSAGE + b"!", signature)
    assert not verify(KEYS[1].public_key(), MESSAGE, signature)
    assert key.sign(MESSAGE) == signature  # deterministic


def test_signature_under_another_dst_does_not_verify() -> None:
    # The IETF POP ciphersuite (Ethereum's) signs with another DST: Walrus must not accept it.
    py_ecc_key = _int(KEYS[0].to_bytes())
    other = BlsSignature.from_bytes(G2ProofOfPossession.Sign(py_ecc_key, MESSAGE))
    assert not verify(KEYS[0].public_key(), MESSAGE, other)


def test_identity_signature_never_verifies() -> None:
    identity = BlsSignature.from_bytes(b"\xc0" + bytes(95))
    assert not verify(KEYS[0].public_key(), MESSAGE, identity)
    total = aggregate_public_keys(key.public_key() for key in KEYS)
    # total minus all keys is the identity key: refused rather than "verified".
    everyone = [key.public_key() for key in KEYS]
    assert not verify_aggregate_excluding(total, everyone, MESSAGE, identity)


# ---- aggregation ----------------------------------------------------------------------------


def test_aggregate_verify() -> None:
    public_keys = [key.public_key() for key in KEYS]
    aggregate = aggregate_signatures(SIGNATURES)
    assert verify_aggregate(public_keys, MESSAGE, aggregate)
    assert not verify_aggregate(public_keys[:3], MESSAGE, aggregate)
    assert not verify_aggregate([], MESSAGE, aggregate)
    assert verify(aggregate_public_keys(public_keys), MESSAGE, aggregate)
    assert not verify_aggregate(public_keys, b"other", aggregate)


def test_verify_excluding_subtracts_keys() -> None:
    public_keys = [key.public_key() for key in KEYS]
    total = aggregate_public_keys(public_keys)
    partial = aggregate_signatures(SIGNATURES[1:3])
    excluded = [public_keys[0], public_keys[3]]
    assert verify_aggregate_excluding(total, excluded, MESSAGE, partial)
    assert not verify_aggregate_excluding(total, excluded[:1], MESSAGE, partial)
    assert not verify_aggregate_excluding(total, [], MESSAGE, partial)


def test_aggregation_edge_cases() -> None:
    with pytest.raises(ValueError, match="empty"):
        aggregate_signatures([])
    with pytest.raises(ValueError, match="empty"):
        aggregate_public_keys([])
    negated = BlsPrivateKey.from_bytes((CURVE_ORDER - _int(KEYS[0].to_bytes())).to_bytes(32, "big"))
    with pytest.raises(VerificationError, match="identity"):
        aggregate_public_keys([KEYS[0].public_key(), negated.public_key()])
    assert aggregate_signatures(SIGNATURES[:1]) == SIGNATURES[0]


# ---- parsing points from the wire -----------------------------------------------------------


def test_public_key_round_trips() -> None:
    key = KEYS[3].public_key()
    assert BlsPublicKey.from_bytes(key.to_bytes()) == key
    assert BlsPublicKey.from_eip2537(key.to_eip2537()) == key
    assert hash(BlsPublicKey.from_bytes(key.to_bytes())) == hash(key)
    assert len({key, BlsPublicKey.from_bytes(key.to_bytes())}) == 1


def test_signature_round_trips() -> None:
    signature = SIGNATURES[3]
    assert BlsSignature.from_bytes(signature.to_bytes()) == signature
    assert BlsSignature.from_eip2537(signature.to_eip2537()) == signature
    identity = BlsSignature.from_bytes(b"\xc0" + bytes(95))
    assert identity.to_eip2537() == bytes(256)
    assert BlsSignature.from_eip2537(bytes(256)) == identity


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (bytes(47), DecodeError),
        (bytes(49), DecodeError),
        (bytes(48), DecodeError),  # no compression flag
        (b"\xc0" + bytes(47), VerificationError),  # the identity
        (b"\xe0" + bytes(47), DecodeError),  # identity with the sign bit: not canonical
        (b"\xc0" + bytes(46) + b"\x01", DecodeError),  # identity with junk: not canonical
        (bytes([0x80 | 0x1F]) + b"\xff" * 47, DecodeError),  # x >= p
    ],
)
def test_public_key_rejects(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        BlsPublicKey.from_bytes(data)


def test_public_key_rejects_point_outside_subgroup() -> None:
    with pytest.raises(VerificationError, match="subgroup"):
        BlsPublicKey.from_bytes(_g1_not_in_subgroup())


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (bytes(95), DecodeError),
        (bytes(96), DecodeError),
        (b"\xe0" + bytes(95), DecodeError),
        (b"\xc0" + bytes(94) + b"\x01", DecodeError),
        (bytes([0x9F]) + b"\xff" * 95, DecodeError),
    ],
)
def test_signature_rejects(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        BlsSignature.from_bytes(data)


def test_signature_rejects_point_outside_subgroup() -> None:
    with pytest.raises(VerificationError, match="subgroup"):
        BlsSignature.from_bytes(_g2_not_in_subgroup())


def test_eip2537_rejects() -> None:
    key = KEYS[0].public_key().to_eip2537()
    with pytest.raises(DecodeError, match="128"):
        BlsPublicKey.from_eip2537(key[:-1])
    with pytest.raises(DecodeError, match="padding"):
        BlsPublicKey.from_eip2537(b"\x01" + key[1:])
    off_curve = key[:-1] + bytes([key[-1] ^ 1])
    with pytest.raises(DecodeError, match="curve"):
        BlsPublicKey.from_eip2537(off_curve)
    with pytest.raises(VerificationError, match="identity"):
        BlsPublicKey.from_eip2537(bytes(128))
    outside = G1Point.from_compressed_bytes_unchecked(_g1_not_in_subgroup()).to_xy_bytes_be()
    padded = bytes(16) + outside[:48] + bytes(16) + outside[48:]
    with pytest.raises(VerificationError, match="subgroup"):
        BlsPublicKey.from_eip2537(padded)
    signature = SIGNATURES[0].to_eip2537()
    with pytest.raises(DecodeError, match="256"):
        BlsSignature.from_eip2537(signature + b"\x00")
    with pytest.raises(DecodeError, match="padding"):
        BlsSignature.from_eip2537(signature[:64] + b"\x01" + signature[65:])
    outside2 = G2Point.from_compressed_bytes_unchecked(_g2_not_in_subgroup()).to_xy_bytes_be()
    padded2 = b"".join(bytes(16) + outside2[i : i + 48] for i in range(0, 192, 48))
    with pytest.raises(VerificationError, match="subgroup"):
        BlsSignature.from_eip2537(padded2)


# ---- properties -----------------------------------------------------------------------------


def _flip(data: bytes, bit: int) -> bytes:
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


def _verifies(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        key = BlsPublicKey.from_bytes(public_key)
        parsed = BlsSignature.from_bytes(signature)
    except InvalidInputError:
        return False
    verified: bool = verify(key, message, parsed)
    return verified


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 8 * len(MESSAGE) - 1))
def test_flipped_message_bit_fails(bit: int) -> None:
    public_key = KEYS[0].public_key().to_bytes()
    assert not _verifies(public_key, _flip(MESSAGE, bit), SIGNATURES[0].to_bytes())


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 8 * 96 - 1))
def test_flipped_signature_bit_fails(bit: int) -> None:
    public_key = KEYS[0].public_key().to_bytes()
    assert not _verifies(public_key, MESSAGE, _flip(SIGNATURES[0].to_bytes(), bit))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 8 * 48 - 1))
def test_flipped_public_key_bit_fails(bit: int) -> None:
    public_key = _flip(KEYS[0].public_key().to_bytes(), bit)
    assert not _verifies(public_key, MESSAGE, SIGNATURES[0].to_bytes())


def _parse_all(data: bytes) -> None:
    for parse in (
        BlsPublicKey.from_bytes,
        BlsSignature.from_bytes,
        BlsPublicKey.from_eip2537,
        BlsSignature.from_eip2537,
        map_fp2_to_g2_eip2537,
    ):
        with contextlib.suppress(DecodeError, VerificationError):
            parse(data)


def _flagged(length: int) -> st.SearchStrategy[bytes]:
    """Bytes of `length` whose first byte (the flags of a compressed point) is anything."""
    rest = st.binary(min_size=length - 1, max_size=length - 1)
    return st.builds(lambda flags, tail: bytes([flags]) + tail, st.integers(0, 255), rest)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.sampled_from([48, 96, 128, 256]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
        _flagged(48),
        _flagged(96),
    )
)
def test_point_parsers_raise_only_decode_or_verification_errors(data: bytes) -> None:
    _parse_all(data)


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=32, max_size=64), st.binary(max_size=100))
def test_any_seed_signs_and_verifies(seed: bytes, message: bytes) -> None:
    key = BlsPrivateKey.from_seed(seed)
    assert 0 < _int(key.to_bytes()) < CURVE_ORDER
    assert verify(key.public_key(), message, key.sign(message))


# ---- more known answers and algebra ----------------------------------------------------------


def test_hash_to_g2_matches_py_ecc() -> None:
    for message in (b"", b"abc"):
        x, y = normalize(_PY_ECC.bls.hash_to_curve.hash_to_G2(message, DST, hashlib.sha256))
        expected = b"".join(int(c).to_bytes(64, "big") for c in (*x.coeffs, *y.coeffs))
        assert hash_to_g2_eip2537(message) == expected


def test_hash_to_g2_depends_on_the_message() -> None:
    assert hash_to_g2_eip2537(b"a") != hash_to_g2_eip2537(b"b")
    assert hash_to_field_eip2537(b"a") != hash_to_field_eip2537(b"b")
    for element in hash_to_field_eip2537(b"a"):
        assert len(element) == 128
        for start in (0, 64):
            assert element[start : start + 16] == bytes(16)
            assert _int(element[start : start + 64]) < FIELD_MODULUS


def test_aggregate_over_different_messages_verifies_against_neither() -> None:
    mixed = aggregate_signatures([KEYS[0].sign(b"one"), KEYS[1].sign(b"two")])
    public_keys = [KEYS[0].public_key(), KEYS[1].public_key()]
    assert not verify_aggregate(public_keys, b"one", mixed)
    assert not verify_aggregate(public_keys, b"two", mixed)


def test_rogue_key_is_why_proofs_of_possession_exist() -> None:
    """Without a proof of possession, an attacker can forge a "joint" signature.

    The attacker publishes pk_rogue = x*g1 - pk_honest. The sum of the two keys is x*g1, so the
    attacker alone signs for both. Walrus stops this by requiring a signature by the key itself
    over the PROOF_OF_POSSESSION message, which the attacker cannot make for pk_rogue.
    """
    attacker = KEYS[3]
    honest = KEYS[0].public_key()
    rogue_point = G1Point.from_compressed_bytes(attacker.public_key().to_bytes()) - (
        G1Point.from_compressed_bytes(honest.to_bytes())
    )
    rogue = BlsPublicKey.from_bytes(rogue_point.to_compressed_bytes())
    forged = attacker.sign(MESSAGE)
    assert verify_aggregate([honest, rogue], MESSAGE, forged)
    # ... but the attacker's own signature is no proof of possession of the rogue key.
    assert not verify(rogue, MESSAGE, forged)


@settings(max_examples=30, deadline=None)
@given(st.permutations(list(range(len(SIGNATURES)))))
def test_aggregation_is_order_independent(order: list[int]) -> None:
    shuffled = aggregate_signatures(SIGNATURES[i] for i in order)
    assert shuffled == aggregate_signatures(SIGNATURES)
    keys = aggregate_public_keys(KEYS[i].public_key() for i in order)
    assert keys == aggregate_public_keys(key.public_key() for key in KEYS)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, CURVE_ORDER - 1))
def test_encodings_round_trip_for_any_key(secret: int) -> None:
    key = BlsPrivateKey.from_bytes(secret.to_bytes(32, "big"))
    public_key = key.public_key()
    assert BlsPublicKey.from_bytes(public_key.to_bytes()) == public_key
    assert BlsPublicKey.from_eip2537(public_key.to_eip2537()) == public_key
    assert public_key.to_eip2537()[:16] == bytes(16)
    assert public_key.to_eip2537()[64:80] == bytes(16)
    signature = key.sign(MESSAGE)
    assert BlsSignature.from_eip2537(signature.to_eip2537()) == signature


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 3), st.integers(0, 3), st.binary(max_size=64))
def test_signature_verifies_only_under_its_key(signer: int, checker: int, message: bytes) -> None:
    signature = KEYS[signer].sign(message)
    assert verify(KEYS[checker].public_key(), message, signature) == (signer == checker)


def test_inputs_may_be_any_bytes_like() -> None:
    key = KEYS[0].public_key()
    assert BlsPublicKey.from_bytes(bytearray(key.to_bytes())) == key
    assert BlsSignature.from_bytes(memoryview(SIGNATURES[0].to_bytes())) == SIGNATURES[0]
    assert BlsPrivateKey.from_bytes(bytearray(KEYS[0].to_bytes())) == KEYS[0]
    assert isinstance(BlsPublicKey.from_bytes(bytearray(key.to_bytes())).data, bytes)


def test_reprs_show_the_public_bytes() -> None:
    assert repr(KEYS[0].public_key()) == f"BlsPublicKey({KEYS[0].public_key().to_bytes().hex()})"
    assert repr(SIGNATURES[0]) == f"BlsSignature({SIGNATURES[0].to_bytes().hex()})"


def test_values_are_frozen() -> None:
    values: list[Any] = [KEYS[0].public_key(), SIGNATURES[0], KEYS[0]]
    for value in values:
        with pytest.raises(AttributeError):
            value.data = bytes(len(value.data))


def test_curve_constants_match_py_ecc() -> None:
    assert _PY_ECC.optimized_bls12_381.curve_order == CURVE_ORDER
    assert _PY_ECC.optimized_bls12_381.field_modulus == FIELD_MODULUS
