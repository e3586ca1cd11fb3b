# pragma version ~=0.4.3
"""
@title RedStuff (RS2) encoded length
@notice Port of Move `walrus::encoding::encoded_blob_length` and
    `walrus::redstuff::encoded_blob_length` (spec/encoding.md section 2).
    With n shards, f = (n - 1) // 3 Byzantine shards, p = n - 2f primary and s = n - f
    secondary source symbols, a blob of L bytes (L = 0 sized as 1) has
        symbol_size = (L - 1) // (p * s) + 1, rounded up to even, at most 65534
    and takes n * (n * 64 + 32) bytes of metadata plus n * (p + s) * symbol_size bytes
    of slivers on the network. Storage is bought and charged for that encoded length.
"""

# The only supported encoding: RedStuff with Reed-Solomon (Move `encoding::RS2`).
RS2: constant(uint8) = 1

# RS2 symbols must have an even size (reed-solomon-simd) and fit in u16 - 1.
MAX_SYMBOL_SIZE: constant(uint256) = 65534

DIGEST_BYTES: constant(uint256) = 32
BLOB_ID_BYTES: constant(uint256) = 32


@internal
@pure
def _encoded_blob_length(unencoded_length: uint64, encoding_type: uint8, n_shards: uint16) -> uint64:
    """
    @notice Port of Move `encoding::encoded_blob_length`: the bytes a blob occupies on
        the whole network, slivers plus per-shard metadata.
    @dev Reverts "unsupported encoding type" for anything but RS2 and "blob too large" when
        the symbol size would exceed 65534 (Walrus's `DataTooLarge`).
    """
    assert encoding_type == RS2, "unsupported encoding type"
    assert n_shards > 0, "no shards"
    n: uint256 = convert(n_shards, uint256)
    f: uint256 = (n - 1) // 3
    primary: uint256 = n - 2 * f
    secondary: uint256 = n - f
    length: uint256 = max(convert(unencoded_length, uint256), 1)
    symbol_size: uint256 = (length - 1) // (primary * secondary) + 1
    if symbol_size % 2 == 1:
        symbol_size += 1
    assert symbol_size <= MAX_SYMBOL_SIZE, "blob too large"
    metadata_size: uint256 = n * DIGEST_BYTES * 2 + BLOB_ID_BYTES
    return convert(n * ((primary + secondary) * symbol_size + metadata_size), uint64)
