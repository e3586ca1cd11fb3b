"""BLS12-381 signatures as Walrus uses them, behind one small module.

Theory of operation (spec/walrus-system.md sections 2.7 and 3.10). Walrus signs with BLS12-381 in
the *minimal-public-key* variant: public keys are G1 points (48-byte compressed), signatures are G2
points (96-byte compressed), and a message is hashed to G2 with the ciphersuite
`BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_` (fastcrypto `min_pk::DST_G2`, which the Move
contracts' `bls12381_min_pk_verify` also uses). A signature is `sk * H(m)`; it verifies when
`e(pk, H(m)) == e(g1, sig)`. Signatures over one message add up, and so do public keys, so a
certificate is one aggregate signature checked against the sum of the signers' keys.

Rogue-key attacks on that sum are prevented by the proof of possession each node gives when it
registers its key; in Walrus that proof is an ordinary signature over a PROOF_OF_POSSESSION intent
message (`walruspy.core.messages`), not the IETF POP ciphersuite.

Rules this module enforces:

- Every point read from the wire must be the canonical compressed encoding of a point on the curve
  and in the prime-order subgroup (non-canonical infinity encodings, which the backing library
  accepts, are refused by re-encoding and comparing). A public key must not be the identity.
- Parsing failures raise `DecodeError` (wrong length, not a point) or `VerificationError` (a point
  outside the subgroup, an identity public key). Verification itself answers `True`/`False`.
- Private keys are 32-byte big-endian scalars in `[1, r)`, as blst/fastcrypto store them. Key
  generation from a seed is the IETF KeyGen of draft-irtf-cfrg-bls-signature-04+ (blst
  `key_gen`, which fastcrypto's `BLS12381KeyPair::generate` calls with 32 random bytes); the
  randomness always comes from the caller.

The EVM contracts verify with the EIP-2537 precompiles, which take points uncompressed with every
48-byte field element left-padded to 64 bytes: G1 is `x ‖ y` (128 bytes), G2 is
`x.c0 ‖ x.c1 ‖ y.c0 ‖ y.c1` (256 bytes). `to_eip2537`/`from_eip2537` convert, and
`hash_to_field_eip2537`/`hash_to_g2_eip2537` give the intermediate values of hashing a message so
that contract tests can check their on-chain hash-to-curve step by step.

The backing library is `py_arkworks_bls12381`; nothing outside this module imports it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Self, TypeVar

from py_arkworks_bls12381 import GT, G1Point, G2Point, Scalar

from walruspy.core.errors import DecodeError, VerificationError

#: What the parsers accept; they copy it to `bytes` first.
BytesLike = bytes | bytearray | memoryview

#: Domain separation tag of Walrus's ciphersuite (min_pk, hash to G2, NUL = basic scheme).
DST = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_"
#: Length of a serialized private key (big-endian scalar).
PRIVATE_KEY_BYTES = 32
#: Length of a compressed G1 point: a public key.
PUBLIC_KEY_BYTES = 48
#: Length of a compressed G2 point: a signature.
SIGNATURE_BYTES = 96
#: Length of an EIP-2537 G1 point (two 64-byte padded field elements).
G1_EIP2537_BYTES = 128
#: Length of an EIP-2537 G2 point (four 64-byte padded field elements).
G2_EIP2537_BYTES = 256
#: Length of an EIP-2537 Fp2 element (c0 ‖ c1, each 64-byte padded).
FP2_EIP2537_BYTES = 128
#: Order r of the prime-order subgroups (and of the scalar field).
CURVE_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
#: The base field modulus p.
FIELD_MODULUS = int(
    "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab",
    16,
)
#: The minimum seed length of IETF KeyGen.
MIN_SEED_BYTES = 32

_FP_BYTES = 48
_EIP2537_FP_BYTES = 64
_EIP2537_PAD = bytes(_EIP2537_FP_BYTES - _FP_BYTES)
_KEYGEN_SALT = b"BLS-SIG-KEYGEN-SALT-"
# IETF KeyGen output length: ceil(3 * ceil(log2(r)) / 16) = 48 bytes.
_KEYGEN_OKM_BYTES = 48
# RFC 9380 hash_to_field for G2: m = 2, k = 128, so L = ceil((381 + 128) / 8) = 64 bytes.
_HASH_TO_FIELD_L = 64
_SHA256_BLOCK_BYTES = 64
_SHA256_DIGEST_BYTES = 32


def _fail_decode(what: str, data: bytes, error: ValueError) -> DecodeError:
    return DecodeError(f"{what} is not a valid compressed point ({len(data)} bytes): {error}")


_P = TypeVar("_P", G1Point, G2Point)


def _group_name(point_type: type[_P]) -> str:
    return "G1" if point_type is G1Point else "G2"


def _decode_point(point_type: type[_P], size: int, data: bytes, what: str) -> _P:
    """A compressed point of `size` bytes that is canonical and in its group's subgroup."""
    if len(data) != size:
        raise DecodeError(f"{what} must be {size} bytes, got {len(data)}")
    try:
        point = point_type.from_compressed_bytes_unchecked(data)
    except ValueError as error:
        raise _fail_decode(what, data, error) from error
    if point.to_compressed_bytes() != data:
        raise DecodeError(f"{what} is not the canonical encoding of its point")
    if not point.is_in_subgroup():
        group = _group_name(point_type)
        raise VerificationError(f"{what} is on the curve but not in the {group} subgroup")
    return point


def _point_from_eip2537(point_type: type[_P], size: int, data: bytes) -> _P:
    """An EIP-2537 uncompressed point of `size` bytes, canonical and in its group's subgroup."""
    group = _group_name(point_type)
    what = f"EIP-2537 {group} point"
    xy = _unpad_eip2537(data, size, what)
    try:
        point = point_type.from_xy_bytes_unchecked_be(xy)
    except ValueError as error:
        raise DecodeError(f"{what} is not on the curve: {error}") from error
    if point.to_xy_bytes_be() != xy:
        raise DecodeError(f"{what} is not the canonical encoding of its point")
    if not point.is_in_subgroup():
        raise VerificationError(f"{what} is not in the {group} subgroup")
    return point


def _pad_eip2537(xy: bytes) -> bytes:
    """Left-pad each 48-byte big-endian field element to 64 bytes."""
    return b"".join(
        _EIP2537_PAD + xy[start : start + _FP_BYTES] for start in range(0, len(xy), _FP_BYTES)
    )


def _unpad_eip2537(data: bytes, expected_len: int, what: str) -> bytes:
    if len(data) != expected_len:
        raise DecodeError(f"{what} must be {expected_len} bytes, got {len(data)}")
    out = bytearray()
    for start in range(0, expected_len, _EIP2537_FP_BYTES):
        element = data[start : start + _EIP2537_FP_BYTES]
        if element[: len(_EIP2537_PAD)] != _EIP2537_PAD:
            raise DecodeError(f"{what}: a field element has non-zero padding bytes")
        out += element[len(_EIP2537_PAD) :]
    return bytes(out)


@dataclass(frozen=True, slots=True)
class BlsPublicKey:
    """A BLS12-381 min_pk public key: a G1 point in the subgroup, never the identity.

    `data` is the 48-byte compressed encoding; the constructor checks it (DecodeError for bytes
    that are not a canonical point, VerificationError for a point outside the subgroup or the
    identity).
    """

    data: bytes
    _point: G1Point = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        point = _decode_point(G1Point, PUBLIC_KEY_BYTES, bytes(self.data), "BLS public key")
        if point == G1Point.identity():
            raise VerificationError("BLS public key is the identity point")
        object.__setattr__(self, "data", bytes(self.data))
        object.__setattr__(self, "_point", point)

    @classmethod
    def from_bytes(cls, data: BytesLike) -> Self:
        """Parse a 48-byte compressed public key (with subgroup and identity checks)."""
        return cls(bytes(data))

    @classmethod
    def from_eip2537(cls, data: BytesLike) -> Self:
        """Parse a 128-byte EIP-2537 uncompressed G1 point (with the same checks)."""
        point = _point_from_eip2537(G1Point, G1_EIP2537_BYTES, bytes(data))
        return cls(point.to_compressed_bytes())

    def to_bytes(self) -> bytes:
        """The 48-byte compressed encoding."""
        return self.data

    def to_eip2537(self) -> bytes:
        """The 128-byte EIP-2537 encoding: 64-byte padded x ‖ 64-byte padded y, big-endian."""
        return _pad_eip2537(self._point.to_xy_bytes_be())

    def verify(self, message: bytes, signature: BlsSignature) -> bool:
        """Whether `signature` is this key's signature over `message`."""
        return _verify_point(self._point, message, signature)

    def __repr__(self) -> str:
        return f"BlsPublicKey({self.data.hex()})"


@dataclass(frozen=True, slots=True)
class BlsSignature:
    """A BLS12-381 min_pk signature (or an aggregate of several): a G2 point in the subgroup.

    `data` is the 96-byte compressed encoding; the constructor checks it as `BlsPublicKey` does,
    except that the identity is a valid (if never verifying) signature.
    """

    data: bytes
    _point: G2Point = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        point = _decode_point(G2Point, SIGNATURE_BYTES, bytes(self.data), "BLS signature")
        object.__setattr__(self, "data", bytes(self.data))
        object.__setattr__(self, "_point", point)

    @classmethod
    def from_bytes(cls, data: BytesLike) -> Self:
        """Parse a 96-byte compressed signature (with the subgroup check)."""
        return cls(bytes(data))

    @classmethod
    def from_eip2537(cls, data: BytesLike) -> Self:
        """Parse a 256-byte EIP-2537 uncompressed G2 point (with the subgroup check)."""
        point = _point_from_eip2537(G2Point, G2_EIP2537_BYTES, bytes(data))
        return cls(point.to_compressed_bytes())

    def to_bytes(self) -> bytes:
        """The 96-byte compressed encoding."""
        return self.data

    def to_eip2537(self) -> bytes:
        """The 256-byte EIP-2537 encoding: x.c0 ‖ x.c1 ‖ y.c0 ‖ y.c1, each 64-byte padded."""
        return _pad_eip2537(self._point.to_xy_bytes_be())

    def __repr__(self) -> str:
        return f"BlsSignature({self.data.hex()})"


@dataclass(frozen=True, slots=True)
class BlsPrivateKey:
    """A BLS12-381 private key: a scalar in [1, r), serialized as 32 big-endian bytes.

    The constructor raises `ValueError` for bytes that are not such a scalar: private keys come
    from our own key files, not from peers. `repr` never shows the key.
    """

    data: bytes = field(repr=False)
    _scalar: Scalar = field(init=False, repr=False, compare=False)
    _public_key: BlsPublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        data = bytes(self.data)
        if len(data) != PRIVATE_KEY_BYTES:
            raise ValueError(f"a BLS private key is {PRIVATE_KEY_BYTES} bytes, got {len(data)}")
        value = int.from_bytes(data, "big")
        if not 0 < value < CURVE_ORDER:
            raise ValueError("a BLS private key must be a scalar in [1, r)")
        scalar = Scalar(value)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "_scalar", scalar)
        public = BlsPublicKey((G1Point() * scalar).to_compressed_bytes())
        object.__setattr__(self, "_public_key", public)

    @classmethod
    def from_bytes(cls, data: BytesLike) -> Self:
        """Load a private key from its 32-byte big-endian encoding."""
        return cls(bytes(data))

    @classmethod
    def from_seed(cls, seed: bytes, key_info: bytes = b"") -> Self:
        """Derive a private key with IETF KeyGen (blst `key_gen`) from at least 32 seed bytes."""
        if len(seed) < MIN_SEED_BYTES:
            raise ValueError(f"KeyGen needs a seed of at least {MIN_SEED_BYTES} bytes")
        return cls(_ietf_keygen(bytes(seed), bytes(key_info)).to_bytes(PRIVATE_KEY_BYTES, "big"))

    @classmethod
    def generate(cls, random_bytes: Callable[[int], bytes]) -> Self:
        """A fresh key from 32 bytes of the caller's randomness (for example `os.urandom`)."""
        return cls.from_seed(random_bytes(MIN_SEED_BYTES))

    def to_bytes(self) -> bytes:
        """The 32-byte big-endian encoding (keep it secret)."""
        return self.data

    def public_key(self) -> BlsPublicKey:
        """The matching public key, `sk * g1`."""
        return self._public_key

    def sign(self, message: bytes) -> BlsSignature:
        """Sign `message` (the full BCS bytes, intent header included): `sk * H(message)`."""
        point = G2Point.hash_to_curve(bytes(message), DST) * self._scalar
        return BlsSignature(point.to_compressed_bytes())

    def __repr__(self) -> str:
        return f"BlsPrivateKey(<secret>, public_key={self._public_key.data.hex()})"


def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt, ikm, "sha256")


def _hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes((counter,)), "sha256")
        out += block
        counter += 1
    return out[:length]


def _ietf_keygen(seed: bytes, key_info: bytes) -> int:
    """KeyGen of draft-irtf-cfrg-bls-signature-04 and later (blst `keygen` version 4)."""
    salt = _KEYGEN_SALT
    secret = 0
    while secret == 0:
        salt = hashlib.sha256(salt).digest()
        prk = _hkdf_extract(salt, seed + b"\x00")
        okm = _hkdf_expand(prk, key_info + _KEYGEN_OKM_BYTES.to_bytes(2, "big"), _KEYGEN_OKM_BYTES)
        secret = int.from_bytes(okm, "big") % CURVE_ORDER
    return secret


def _verify_point(public_point: G1Point, message: bytes, signature: BlsSignature) -> bool:
    if public_point == G1Point.identity():
        # blst refuses an infinite public key; without this, identity key and identity
        # signature would pass the pairing check for every message.
        return False
    # e(pk, H(m)) == e(g1, sig)  <=>  e(pk, H(m)) * e(-g1, sig) == 1
    return GT.pairing_check([public_point, -G1Point()], [_hashed(bytes(message)), signature._point])


@functools.lru_cache(maxsize=64)
def _hashed(message: bytes) -> G2Point:
    """H(m), kept for the messages verified last: a store checks every node's confirmation of
    one message, and hashing to G2 is a third of a verification (0.7 of 2.5 ms)."""
    return G2Point.hash_to_curve(message, DST)


def verify(public_key: BlsPublicKey, message: bytes, signature: BlsSignature) -> bool:
    """Whether `signature` is `public_key`'s signature over `message` (Walrus's DST)."""
    return _verify_point(public_key._point, message, signature)


def aggregate_signatures(signatures: Iterable[BlsSignature]) -> BlsSignature:
    """Add signatures (over one message, for a certificate); at least one is needed."""
    total: G2Point | None = None
    for signature in signatures:
        total = signature._point if total is None else total + signature._point
    if total is None:
        raise ValueError("cannot aggregate an empty list of signatures")
    return BlsSignature(total.to_compressed_bytes())


def _sum_g1(public_keys: Iterable[BlsPublicKey]) -> G1Point:
    total = G1Point.identity()
    for key in public_keys:
        total = total + key._point
    return total


def aggregate_public_keys(public_keys: Iterable[BlsPublicKey]) -> BlsPublicKey:
    """Add public keys; at least one is needed, and a sum that is the identity is refused.

    Summing is only safe for keys that came with a proof of possession (rogue-key attacks).
    """
    keys = list(public_keys)
    if not keys:
        raise ValueError("cannot aggregate an empty list of public keys")
    total = _sum_g1(keys)
    if total == G1Point.identity():
        raise VerificationError("the public keys sum to the identity point")
    return BlsPublicKey(total.to_compressed_bytes())


def verify_aggregate(
    public_keys: Sequence[BlsPublicKey], message: bytes, signature: BlsSignature
) -> bool:
    """FastAggregateVerify: whether `signature` aggregates the keys' signatures over `message`.

    False for an empty key list.
    """
    if not public_keys:
        return False
    return _verify_point(_sum_g1(public_keys), message, signature)


def verify_aggregate_excluding(
    total_key: BlsPublicKey,
    excluded_keys: Iterable[BlsPublicKey],
    message: bytes,
    signature: BlsSignature,
) -> bool:
    """Verify against `total_key` minus the sum of `excluded_keys` (Move's certificate trick).

    A committee keeps the sum of all its members' keys, so checking a certificate only needs the
    few non-signers' keys subtracted. False when the remaining key is the identity.
    """
    return _verify_point(total_key._point - _sum_g1(excluded_keys), message, signature)


def _expand_message_xmd(message: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 section 5.3.1 with SHA-256."""
    ell = -(-length // _SHA256_DIGEST_BYTES)
    assert ell <= 255
    assert len(dst) <= 255
    dst_prime = dst + bytes((len(dst),))
    msg_prime = (
        bytes(_SHA256_BLOCK_BYTES) + message + length.to_bytes(2, "big") + b"\x00" + dst_prime
    )
    b_0 = hashlib.sha256(msg_prime).digest()
    b_i = hashlib.sha256(b_0 + b"\x01" + dst_prime).digest()
    uniform = bytearray(b_i)
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = hashlib.sha256(mixed + bytes((i,)) + dst_prime).digest()
        uniform += b_i
    return bytes(uniform[:length])


def hash_to_field_eip2537(message: bytes) -> tuple[bytes, bytes]:
    """The two Fp2 elements u0, u1 of hashing `message` to G2, each in EIP-2537 form (128 bytes).

    On chain, `H(m) = MAP_FP2_TO_G2(u0) + MAP_FP2_TO_G2(u1)`; the expansion itself is
    `expand_message_xmd` with SHA-256 and `DST` (RFC 9380 sections 5.2 and 5.3.1).
    """
    uniform = _expand_message_xmd(bytes(message), DST, 4 * _HASH_TO_FIELD_L)
    elements = [
        int.from_bytes(uniform[i * _HASH_TO_FIELD_L : (i + 1) * _HASH_TO_FIELD_L], "big")
        % FIELD_MODULUS
        for i in range(4)
    ]
    encoded = [value.to_bytes(_EIP2537_FP_BYTES, "big") for value in elements]
    return encoded[0] + encoded[1], encoded[2] + encoded[3]


def hash_to_g2_eip2537(message: bytes) -> bytes:
    """`H(message)` under Walrus's DST as a 256-byte EIP-2537 G2 point."""
    return _pad_eip2537(G2Point.hash_to_curve(bytes(message), DST).to_xy_bytes_be())


def map_fp2_to_g2_eip2537(element: bytes) -> bytes:
    """EIP-2537 MAP_FP2_TO_G2 of a 128-byte Fp2 element (for checking contract vectors)."""
    fp2 = _unpad_eip2537(bytes(element), FP2_EIP2537_BYTES, "EIP-2537 Fp2 element")
    for start in range(0, len(fp2), _FP_BYTES):
        if int.from_bytes(fp2[start : start + _FP_BYTES], "big") >= FIELD_MODULUS:
            raise DecodeError("EIP-2537 Fp2 element: a coefficient is not below p")
    return _pad_eip2537(G2Point.map_from_fp2_be(fp2).to_xy_bytes_be())
