# pragma version ~=0.4.3
"""
@title BLAKE2b-256 of short inputs, on the EIP-152 BLAKE2F precompile
@notice Port of Move `walrus::blob::derive_blob_id` (which calls `sui::hash::blake2b256`).
    Theory of operation (spec/encoding.md section 6, RFC 7693): BLAKE2b with a 32-byte
    digest, no key and no salt hashes a message of at most 128 bytes with exactly one
    call of the compression function F on the final block. Its chaining value starts as
    IV with the parameter block XORed into word 0 (0x01010000 | key_len << 8 | digest_len
    = 0x01010020), the counter t is the message length, and the final flag is set.
    EIP-152 exposes F at address 0x09 with the input
        rounds (u32 BE, 12) || h (8 x u64 LE) || m (16 x u64 LE) || t (2 x u64 LE) || f (1 byte)
    and returns the new h (8 x u64 LE), whose first 32 bytes are the digest.
"""

BLAKE2F: constant(address) = 0x0000000000000000000000000000000000000009

# 12 rounds, big-endian u32: the BLAKE2b round count.
ROUNDS: constant(Bytes[4]) = x"0000000c"

# IV[0..7] as little-endian u64 words, with IV[0] XOR 0x01010020 (digest 32 bytes, no key).
H_INIT_DIGEST_32: constant(Bytes[64]) = x"28c9bdf267e6096a3ba7ca8485ae67bb2bf894fe72f36e3cf1361d5f3af54fa5d182e6ad7f520e511f6c3e2b8c68059b6bbd41fbabd9831f79217e1319cde05b"

BLOCK_BYTES: constant(uint256) = 128
ZERO_BLOCK: constant(Bytes[128]) = x"0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"

# The blob-ID preimage: encoding type (1) || unencoded length u64 LE (8) || root hash (32).
BLOB_ID_PREIMAGE_BYTES: constant(uint256) = 41


@internal
@pure
def _u64_le(number: uint256) -> Bytes[8]:
    """
    @notice The 8-byte little-endian encoding of `number` (BCS u64).
    @dev Reverts on values of 2**64 or more.
    """
    assert number < 2**64, "value exceeds u64"
    reversed_value: uint256 = 0
    for i: uint256 in range(8):
        reversed_value = (reversed_value << 8) | ((number >> (8 * i)) & 255)
    return slice(convert(reversed_value << 192, bytes32), 0, 8)


@internal
@view
def _blake2b_256(data: Bytes[BLOCK_BYTES]) -> bytes32:
    """
    @notice BLAKE2b-256 (digest length 32, unkeyed) of at most 128 bytes.
    @dev One F compression of the final, zero-padded block; t = len(data).
    """
    final_block: Bytes[BLOCK_BYTES] = slice(concat(data, ZERO_BLOCK), 0, BLOCK_BYTES)
    counter: Bytes[16] = concat(self._u64_le(len(data)), slice(ZERO_BLOCK, 0, 8))
    payload: Bytes[213] = concat(ROUNDS, H_INIT_DIGEST_32, final_block, counter, x"01")
    success: bool = False
    response: Bytes[64] = b""
    success, response = raw_call(
        BLAKE2F, payload, max_outsize=64, is_static_call=True, revert_on_failure=False
    )
    # An EVM without EIP-152 answers a call to 0x09 with success and no output.
    assert success and len(response) == 64, "blake2f precompile unavailable"
    return extract32(response, 0)


@internal
@view
def _derive_blob_id(root_hash: bytes32, encoding_type: uint8, size: uint64) -> bytes32:
    """
    @notice Port of Move `blob::derive_blob_id`: BLAKE2b-256 of the BCS encoding of
        `{encoding_type: u8, size: u64, root_hash: u256}`.
    @dev `root_hash` and the result hold the raw 32 bytes of Walrus's hashes, in the
        order Walrus serializes them (Move reads them as little-endian u256; we never
        convert them to integers, so no byte reversal happens on chain).
    """
    preimage: Bytes[BLOB_ID_PREIMAGE_BYTES] = concat(
        convert(encoding_type, bytes1), self._u64_le(convert(size, uint256)), root_hash
    )
    return self._blake2b_256(preimage)
