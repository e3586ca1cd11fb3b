"""The crypto modules, blake2b.vy (EIP-152) and bls12381.vy (EIP-2537), against Python.

A small harness contract exposes the modules' internal functions; it is compiled as if it sat
beside them so its imports resolve.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import boa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.chain.conftest import MESSAGE_VECTORS, RS2_VECTORS, blob_id_of, vector_committee
from walruspy.chain.contracts import CONTRACTS_DIR
from walruspy.core.crypto import (
    BlsPrivateKey,
    BlsPublicKey,
    aggregate_public_keys,
    hash_to_field_eip2537,
    hash_to_g2_eip2537,
)
from walruspy.core.messages import ProofOfPossessionMessage

HARNESS = """
# pragma version ~=0.4.3
import blake2b
import bls12381
import messages

@external
@view
def blake2b_256(data: Bytes[128]) -> bytes32:
    return blake2b._blake2b_256(data)

@external
@view
def derive_blob_id(root_hash: bytes32, encoding_type: uint8, size: uint64) -> bytes32:
    return blake2b._derive_blob_id(root_hash, encoding_type, size)

@external
@view
def expand_message_xmd(message: Bytes[1024]) -> Bytes[256]:
    return bls12381._expand_message_xmd(message)

@external
@view
def reduce_mod_p(number: Bytes[64]) -> Bytes[64]:
    return bls12381._reduce_mod_p(number)

@external
@view
def hash_to_g2(message: Bytes[1024]) -> Bytes[256]:
    return bls12381._hash_to_g2(message)

@external
@view
def verify(public_key: Bytes[128], signature: Bytes[256], message: Bytes[1024]) -> bool:
    return bls12381._verify(bls12381._g1_from_bytes(public_key), signature, message)

@external
@view
def g1_add(a: Bytes[128], b: Bytes[128]) -> Bytes[128]:
    return bls12381._g1_to_bytes(
        bls12381._g1_add(bls12381._g1_from_bytes(a), bls12381._g1_from_bytes(b))
    )

@external
@pure
def g1_neg(a: Bytes[128]) -> Bytes[128]:
    return bls12381._g1_to_bytes(bls12381._g1_neg(bls12381._g1_from_bytes(a)))

@external
@pure
def g1_compress(a: Bytes[128]) -> Bytes[48]:
    return bls12381._g1_compress(bls12381._g1_from_bytes(a))

@external
@pure
def proof_of_possession_message(epoch: uint32, account: address, key: Bytes[128]) -> Bytes[87]:
    return messages._proof_of_possession_message(
        epoch, account, bls12381._g1_compress(bls12381._g1_from_bytes(key))
    )
"""

FIELD_MODULUS = int(
    "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab",
    16,
)
RS2_BLOB_VECTORS = [v for v in json.loads(RS2_VECTORS.read_text())["vectors"] if "blob_id_hex" in v]
# The harness has no state, so one deployment serves every generated example.
stateless = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def harness_deployer() -> Any:
    return boa.loads_partial(HARNESS, name="CryptoHarness", filename=CONTRACTS_DIR / "harness.vy")


@pytest.fixture
def harness(harness_deployer: Any) -> Any:
    return harness_deployer.deploy()


def _key(seed: int) -> BlsPrivateKey:
    return BlsPrivateKey.from_seed(bytes([seed]) * 32)


@pytest.mark.parametrize("length", [0, 1, 41, 64, 127, 128])
def test_blake2b_256_matches_hashlib(harness: Any, length: int) -> None:
    data = bytes((i * 37 + 11) % 256 for i in range(length))
    assert harness.blake2b_256(data) == hashlib.blake2b(data, digest_size=32).digest()


@stateless
@given(data=st.binary(max_size=128))
def test_blake2b_256_matches_hashlib_for_any_short_input(harness: Any, data: bytes) -> None:
    assert harness.blake2b_256(data) == hashlib.blake2b(data, digest_size=32).digest()


@pytest.mark.parametrize(
    "vector",
    RS2_BLOB_VECTORS[:: max(1, len(RS2_BLOB_VECTORS) // 8)],
    ids=lambda v: f"n{v['n_shards']}-L{v['unencoded_length']}",
)
def test_derive_blob_id_matches_walrus_vectors(harness: Any, vector: dict[str, str]) -> None:
    root_hash = bytes.fromhex(vector["root_hash_hex"])
    size = int(vector["unencoded_length"])
    expected = bytes.fromhex(vector["blob_id_hex"])
    assert blob_id_of(root_hash, size) == expected
    assert harness.derive_blob_id(root_hash, 1, size) == expected


def test_derive_blob_id_covers_every_input(harness: Any) -> None:
    root = bytes(range(32))
    base = harness.derive_blob_id(root, 1, 1000)
    assert harness.derive_blob_id(root, 2, 1000) != base
    assert harness.derive_blob_id(root, 1, 1001) != base
    assert harness.derive_blob_id(bytes(reversed(root)), 1, 1000) != base
    assert harness.derive_blob_id(root, 1, 2**64 - 1) == blob_id_of(root, 2**64 - 1)


@pytest.mark.parametrize("message", [b"", b"abc", bytes(range(200))], ids=len)
def test_hash_to_field_steps_match_python(harness: Any, message: bytes) -> None:
    uniform = harness.expand_message_xmd(message)
    u0, u1 = hash_to_field_eip2537(message)
    reduced = b"".join(harness.reduce_mod_p(uniform[i : i + 64]) for i in range(0, 256, 64))
    assert reduced == u0 + u1


def test_reduce_mod_p_at_the_edges(harness: Any) -> None:
    for number in [0, 1, FIELD_MODULUS - 1, FIELD_MODULUS, FIELD_MODULUS + 5, 2**512 - 1]:
        out = harness.reduce_mod_p(number.to_bytes(64, "big"))
        assert int.from_bytes(out, "big") == number % FIELD_MODULUS


def test_hash_to_g2_matches_golden_vectors(harness: Any) -> None:
    for vector in json.loads(MESSAGE_VECTORS.read_text())["messages"].values():
        message = bytes.fromhex(vector["bytes"])
        assert harness.hash_to_g2(message).hex() == vector["hash_to_g2_eip2537"]


@stateless
@given(message=st.binary(max_size=300))
def test_hash_to_g2_matches_python(harness: Any, message: bytes) -> None:
    assert harness.hash_to_g2(message) == hash_to_g2_eip2537(message)


def test_verify_accepts_signatures_and_rejects_everything_else(harness: Any) -> None:
    key, other = _key(0), _key(1)
    public_key = key.public_key().to_eip2537()
    message = b"walrus certificate"
    signature = key.sign(message).to_eip2537()
    assert harness.verify(public_key, signature, message)
    assert not harness.verify(public_key, signature, message + b"!")
    assert not harness.verify(other.public_key().to_eip2537(), signature, message)
    assert not harness.verify(public_key, other.sign(message).to_eip2537(), message)


def test_verify_is_false_for_malformed_points(harness: Any) -> None:
    key = _key(0)
    public_key = key.public_key().to_eip2537()
    signature = key.sign(b"m").to_eip2537()
    not_on_curve = signature[:-1] + bytes([signature[-1] ^ 1])
    assert not harness.verify(public_key, not_on_curve, b"m")
    assert not harness.verify(public_key, signature[:128], b"m")
    assert not harness.verify(public_key, bytes(256), b"m")
    # The identity key with the identity signature would pass the pairing for any message.
    assert not harness.verify(bytes(128), bytes(256), b"m")


def test_verify_checks_golden_aggregates(harness: Any) -> None:
    committee = vector_committee()
    for vector in json.loads(MESSAGE_VECTORS.read_text())["messages"].values():
        message = bytes.fromhex(vector["bytes"])
        for aggregate in vector["aggregates"]:
            keys = [committee.members[i].private_key.public_key() for i in aggregate["signers"]]
            key = aggregate_public_keys(keys).to_eip2537()
            signature = bytes.fromhex(aggregate["signature_eip2537"])
            assert harness.verify(key, signature, message)


def test_g1_add_and_neg(harness: Any) -> None:
    a, b = _key(2).public_key(), _key(3).public_key()
    total = aggregate_public_keys([a, b]).to_eip2537()
    assert harness.g1_add(a.to_eip2537(), b.to_eip2537()) == total
    assert harness.g1_add(total, harness.g1_neg(b.to_eip2537())) == a.to_eip2537()
    assert harness.g1_add(a.to_eip2537(), harness.g1_neg(a.to_eip2537())) == bytes(128)
    assert harness.g1_neg(bytes(128)) == bytes(128)
    with boa.reverts("invalid G1 point"):
        harness.g1_add(a.to_eip2537()[:-1] + b"\x00", b.to_eip2537())


def test_g1_compress_matches_python(harness: Any) -> None:
    for seed in range(8):
        public_key = _key(seed).public_key()
        assert harness.g1_compress(public_key.to_eip2537()) == public_key.to_bytes()
        negated = harness.g1_neg(public_key.to_eip2537())
        assert harness.g1_compress(negated)[1:] == public_key.to_bytes()[1:]
        assert harness.g1_compress(negated)[0] ^ public_key.to_bytes()[0] == 0x20
    assert harness.g1_compress(bytes(128)) == b"\xc0" + bytes(47)


def test_g1_compress_matches_python_for_many_keys(harness: Any) -> None:
    # Random keys and their negations: both roots of y, so both values of the sign flag.
    signs = set()
    for seed in range(64):
        key = BlsPrivateKey.from_seed(hashlib.sha256(b"compress %d" % seed).digest())
        for public_key in (key.public_key(), _negated(key.public_key())):
            compressed = public_key.to_bytes()
            assert harness.g1_compress(public_key.to_eip2537()) == compressed
            signs.add(compressed[0] & 0x20)
    assert signs == {0, 0x20}


def _negated(public_key: BlsPublicKey) -> BlsPublicKey:
    encoded = public_key.to_eip2537()
    y = int.from_bytes(encoded[64:], "big")
    return BlsPublicKey.from_eip2537(encoded[:64] + (FIELD_MODULUS - y).to_bytes(64, "big"))


@pytest.mark.parametrize("epoch", [0, 1, 0x01020304, 2**32 - 1])
def test_proof_of_possession_message_matches_python(harness: Any, epoch: int) -> None:
    account = "0x" + bytes(range(1, 21)).hex()
    for seed in range(4):
        public_key = _key(seed).public_key()
        expected = ProofOfPossessionMessage.for_evm_address(
            epoch, bytes(range(1, 21)), public_key
        ).to_bcs()
        message = harness.proof_of_possession_message(epoch, account, public_key.to_eip2537())
        assert message == expected
