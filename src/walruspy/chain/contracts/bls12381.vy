# pragma version ~=0.4.3
"""
@title BLS12-381 min-pk signatures on the EIP-2537 precompiles
@notice Port of what Move `walrus::bls_aggregate` takes from `sui::bls12381`:
    G1 sums of public keys and `bls12381_min_pk_verify` (spec/walrus-system.md 2.7, 2.9).
    Theory of operation. Public keys are G1 points, signatures G2 points, and a signature
    on message m is sk * H(m) with H the ciphersuite BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_:
      1. expand_message_xmd (RFC 9380 section 5.3.1) with SHA-256 (precompile 0x02) to
         256 uniform bytes;
      2. hash_to_field: four 64-byte chunks, each reduced mod p with MODEXP (0x05,
         exponent 1), giving u0 = (c0, c1) and u1 = (c0, c1) in Fp2;
      3. MAP_FP2_TO_G2 (0x11) maps and clears the cofactor of each; since clearing the
         cofactor is a homomorphism, H(m) = map(u0) + map(u1) with G2ADD (0x0d).
    Verification is one PAIRING_CHECK (0x0f): e(pk, H(m)) * e(-g1, sig) == 1.
    Points use the EIP-2537 encoding: each Fp element is 64 bytes big-endian (16 zero
    bytes, then 48); a G1 point is x || y (128 bytes), a G2 point x.c0 || x.c1 || y.c0 ||
    y.c1 (256 bytes); (0, 0) encodes the point at infinity.
    Every precompile call gets a bounded gas allowance: a failing precompile burns all the
    gas it is given, and malformed signatures must not cost the caller the whole transaction.
"""

# SHA-256 (0x02) is reached through Vyper's `sha256` builtin.
MODEXP: constant(address) = 0x0000000000000000000000000000000000000005
G1ADD: constant(address) = 0x000000000000000000000000000000000000000b
G1MSM: constant(address) = 0x000000000000000000000000000000000000000C
G2ADD: constant(address) = 0x000000000000000000000000000000000000000d
PAIRING_CHECK: constant(address) = 0x000000000000000000000000000000000000000F
MAP_FP2_TO_G2: constant(address) = 0x0000000000000000000000000000000000000011

# Gas allowances: about ten times the Prague prices (G1ADD 375, G1MSM of one pair 12000,
# G2ADD 600, MAP_FP2_TO_G2 23800, pairing of two pairs 102900, MODEXP 200 minimum), so
# later repricing (for example EIP-7883 for MODEXP) does not break us, while a failure
# costs at most this much.
G1ADD_GAS: constant(uint256) = 4_000
G1MSM_GAS: constant(uint256) = 120_000
G2ADD_GAS: constant(uint256) = 6_000
MAP_FP2_TO_G2_GAS: constant(uint256) = 240_000
PAIRING_2_GAS: constant(uint256) = 1_000_000
MODEXP_GAS: constant(uint256) = 20_000

G1_POINT_BYTES: constant(uint256) = 128
G2_POINT_BYTES: constant(uint256) = 256
FP_BYTES: constant(uint256) = 64
COMPRESSED_G1_BYTES: constant(uint256) = 48

# The base field modulus p as a 64-byte EIP-2537 field element, and as two 256-bit words.
P_FP: constant(Bytes[64]) = x"000000000000000000000000000000001a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab"
P_HI: constant(uint256) = 34565483545414906068789196026815425751  # 0x1a0111ea397fe69a4b1ba7b6434bacd7
# 0x64774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab:
P_LO: constant(uint256) = 45442060874369865957053122457065728162598490762543039060009208264153100167851

# The negated G1 generator -g1 = (g1.x, p - g1.y), EIP-2537 encoded.
NEG_G1_GENERATOR: constant(Bytes[128]) = x"0000000000000000000000000000000017f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb00000000000000000000000000000000114d1d6855d545a8aa7d76c8cf2e21f267816aef1db507c96655b9d5caac42364e6f38ba0ecb751bad54dcd6b939c2ca"

# DST_prime = DST || I2OSP(len(DST), 1) for DST = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_":
# 43 bytes, and 43 = 0x2b is "+".
DST_PRIME: constant(Bytes[44]) = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_+"
# Z_pad: one SHA-256 input block of zeros.
Z_PAD: constant(Bytes[64]) = x"00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
# I2OSP(256, 2) || I2OSP(0, 1): the requested length (256 bytes) and the first counter.
LEN_256_AND_ZERO: constant(Bytes[3]) = x"010000"
# Four Fp elements of 64 bytes each: 2 Fp2 elements for hash_to_field with count 2.
UNIFORM_BYTES: constant(uint256) = 256
SHA256_BLOCKS: constant(uint256) = 8

MAX_MESSAGE_BYTES: constant(uint256) = 1024


struct G1Point:
    # An EIP-2537 G1 point as four big-endian words: x = x_hi * 2**256 + x_lo, and so y.
    # The high words hold at most 125 bits (p < 2**381).
    x_hi: uint256
    x_lo: uint256
    y_hi: uint256
    y_lo: uint256


@internal
@pure
def _g1_from_bytes(data: Bytes[G1_POINT_BYTES]) -> G1Point:
    """
    @notice Splits a 128-byte EIP-2537 G1 encoding into words (no curve checks).
    """
    assert len(data) == G1_POINT_BYTES, "public key must be 128 bytes"
    return G1Point(
        x_hi=extract32(data, 0, output_type=uint256),
        x_lo=extract32(data, 32, output_type=uint256),
        y_hi=extract32(data, 64, output_type=uint256),
        y_lo=extract32(data, 96, output_type=uint256),
    )


@internal
@pure
def _g1_to_bytes(point: G1Point) -> Bytes[G1_POINT_BYTES]:
    """
    @notice The 128-byte EIP-2537 encoding of a G1 point.
    """
    return concat(
        convert(point.x_hi, bytes32),
        convert(point.x_lo, bytes32),
        convert(point.y_hi, bytes32),
        convert(point.y_lo, bytes32),
    )


@internal
@pure
def _g1_is_infinity(point: G1Point) -> bool:
    """
    @notice True for the point at infinity, encoded (0, 0).
    """
    return point.x_hi == 0 and point.x_lo == 0 and point.y_hi == 0 and point.y_lo == 0


@internal
@pure
def _g1_neg(point: G1Point) -> G1Point:
    """
    @notice -P = (x, p - y); the point at infinity is its own negation.
    @dev A 384-bit subtraction over two words with a borrow; y < p holds for every point
        the precompiles accepted, so no word underflows.
    """
    if self._g1_is_infinity(point):
        return point
    borrow: uint256 = 0
    if point.y_lo > P_LO:
        borrow = 1
    return G1Point(
        x_hi=point.x_hi,
        x_lo=point.x_lo,
        y_hi=P_HI - point.y_hi - borrow,
        y_lo=unsafe_sub(P_LO, point.y_lo),
    )


@internal
@view
def _g1_add(a: G1Point, b: G1Point) -> G1Point:
    """
    @notice a + b with G1ADD (0x0b); reverts if either is not a point of the curve.
    """
    success: bool = False
    response: Bytes[G1_POINT_BYTES] = b""
    success, response = raw_call(
        G1ADD,
        abi_encode(a, b),
        max_outsize=G1_POINT_BYTES,
        gas=G1ADD_GAS,
        is_static_call=True,
        revert_on_failure=False,
    )
    assert success and len(response) == G1_POINT_BYTES, "invalid G1 point"
    return self._g1_from_bytes(response)


@internal
@view
def _g1_in_subgroup(point: G1Point) -> bool:
    """
    @notice True if `point` lies in the prime-order subgroup of G1: G1MSM (0x0c), which
        EIP-2537 makes check subgroup membership, accepts it with scalar 1.
    """
    success: bool = False
    response: Bytes[G1_POINT_BYTES] = b""
    success, response = raw_call(
        G1MSM,
        abi_encode(point, convert(1, uint256)),
        max_outsize=G1_POINT_BYTES,
        gas=G1MSM_GAS,
        is_static_call=True,
        revert_on_failure=False,
    )
    return success and len(response) == G1_POINT_BYTES


@internal
@pure
def _g1_compress(point: G1Point) -> Bytes[COMPRESSED_G1_BYTES]:
    """
    @notice The 48-byte compressed (ZCash) form of a G1 point, as Walrus clients use it:
        x big-endian with flag bits in its top byte: 0x80 compressed, 0x40 infinity,
        0x20 when y is the larger of y and p - y.
    """
    if self._g1_is_infinity(point):
        return concat(x"c0", slice(Z_PAD, 0, COMPRESSED_G1_BYTES - 1))
    neg: G1Point = self._g1_neg(point)
    y_is_larger: bool = point.y_hi > neg.y_hi or (point.y_hi == neg.y_hi and point.y_lo > neg.y_lo)
    flags: uint256 = 128  # 0x80
    if y_is_larger:
        flags = 160  # 0xa0
    x_hi_flagged: uint256 = point.x_hi | (flags << 120)
    return concat(slice(convert(x_hi_flagged, bytes32), 16, 16), convert(point.x_lo, bytes32))


@internal
@view
def _reduce_mod_p(number: Bytes[FP_BYTES]) -> Bytes[FP_BYTES]:
    """
    @notice A 64-byte big-endian integer reduced mod p, as a 64-byte field element:
        MODEXP (0x05) computes number ** 1 mod p.
    """
    # Lengths of base, exponent and modulus (64, 1, 64), then the three operands.
    payload: Bytes[96 + 64 + 1 + 64] = concat(
        convert(64, bytes32), convert(1, bytes32), convert(64, bytes32), number, x"01", P_FP
    )
    success: bool = False
    response: Bytes[FP_BYTES] = b""
    success, response = raw_call(
        MODEXP, payload, max_outsize=FP_BYTES, gas=MODEXP_GAS, is_static_call=True, revert_on_failure=False
    )
    assert success and len(response) == FP_BYTES, "modexp precompile unavailable"
    return response


@internal
@view
def _expand_message_xmd(message: Bytes[MAX_MESSAGE_BYTES]) -> Bytes[UNIFORM_BYTES]:
    """
    @notice expand_message_xmd (RFC 9380 5.3.1) with SHA-256 to 256 bytes under the
        DST of BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_.
    @dev b_0 = H(Z_pad || msg || I2OSP(256, 2) || I2OSP(0, 1) || DST_prime),
        b_1 = H(b_0 || I2OSP(1, 1) || DST_prime),
        b_i = H((b_0 XOR b_(i-1)) || I2OSP(i, 1) || DST_prime); output b_1 || ... || b_8.
    """
    b_0: bytes32 = sha256(concat(Z_PAD, message, LEN_256_AND_ZERO, DST_PRIME))
    blocks: bytes32[SHA256_BLOCKS] = empty(bytes32[SHA256_BLOCKS])
    blocks[0] = sha256(concat(b_0, x"01", DST_PRIME))
    for i: uint256 in range(1, SHA256_BLOCKS):
        mixed: uint256 = convert(b_0, uint256) ^ convert(blocks[i - 1], uint256)
        counter: bytes1 = convert(convert(i + 1, uint8), bytes1)
        blocks[i] = sha256(concat(convert(mixed, bytes32), counter, DST_PRIME))
    return concat(
        blocks[0], blocks[1], blocks[2], blocks[3], blocks[4], blocks[5], blocks[6], blocks[7]
    )


@internal
@view
def _map_fp2_to_g2(c0: Bytes[FP_BYTES], c1: Bytes[FP_BYTES]) -> Bytes[G2_POINT_BYTES]:
    """
    @notice MAP_FP2_TO_G2 (0x11): simplified SWU map of c0 + c1 * u with cofactor clearing.
    """
    success: bool = False
    response: Bytes[G2_POINT_BYTES] = b""
    success, response = raw_call(
        MAP_FP2_TO_G2,
        concat(c0, c1),
        max_outsize=G2_POINT_BYTES,
        gas=MAP_FP2_TO_G2_GAS,
        is_static_call=True,
        revert_on_failure=False,
    )
    assert success and len(response) == G2_POINT_BYTES, "bls precompiles unavailable"
    return response


@internal
@view
def _hash_to_g2(message: Bytes[MAX_MESSAGE_BYTES]) -> Bytes[G2_POINT_BYTES]:
    """
    @notice hash_to_curve to G2 of BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_, EIP-2537
        encoded: map(u0) + map(u1) for the two Fp2 elements of hash_to_field.
    """
    uniform: Bytes[UNIFORM_BYTES] = self._expand_message_xmd(message)
    q0: Bytes[G2_POINT_BYTES] = self._map_fp2_to_g2(
        self._reduce_mod_p(slice(uniform, 0, 64)), self._reduce_mod_p(slice(uniform, 64, 64))
    )
    q1: Bytes[G2_POINT_BYTES] = self._map_fp2_to_g2(
        self._reduce_mod_p(slice(uniform, 128, 64)), self._reduce_mod_p(slice(uniform, 192, 64))
    )
    success: bool = False
    response: Bytes[G2_POINT_BYTES] = b""
    success, response = raw_call(
        G2ADD,
        concat(q0, q1),
        max_outsize=G2_POINT_BYTES,
        gas=G2ADD_GAS,
        is_static_call=True,
        revert_on_failure=False,
    )
    assert success and len(response) == G2_POINT_BYTES, "bls precompiles unavailable"
    return response


@internal
@view
def _verify(
    public_key: G1Point, signature: Bytes[G2_POINT_BYTES], message: Bytes[MAX_MESSAGE_BYTES]
) -> bool:
    """
    @notice Port of `sui::bls12381::bls12381_min_pk_verify` on EIP-2537 encodings:
        true iff e(public_key, H(message)) == e(g1, signature).
    @dev False for a signature that is not 256 bytes or not a point of the G2 subgroup
        (the pairing precompile fails on those) and for the key at infinity.
    """
    if len(signature) != G2_POINT_BYTES or self._g1_is_infinity(public_key):
        return False
    payload: Bytes[2 * (G1_POINT_BYTES + G2_POINT_BYTES)] = concat(
        self._g1_to_bytes(public_key), self._hash_to_g2(message), NEG_G1_GENERATOR, signature
    )
    success: bool = False
    response: Bytes[32] = b""
    success, response = raw_call(
        PAIRING_CHECK,
        payload,
        max_outsize=32,
        gas=PAIRING_2_GAS,
        is_static_call=True,
        revert_on_failure=False,
    )
    return success and len(response) == 32 and extract32(response, 0, output_type=uint256) == 1
