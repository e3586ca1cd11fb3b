"""BCS primitives, Merkle proofs, blob IDs and parameters; every parser fuzzed with random bytes."""

from __future__ import annotations

import base64
import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.strategies import blobs, encoded, shard_counts
from walruspy.core.bcs import Reader, Writer, uleb128
from walruspy.core.blob_id import BlobId
from walruspy.core.errors import (
    BlobIdError,
    DataTooLargeError,
    DecodeError,
    InvalidInputError,
    InvalidParametersError,
)
from walruspy.core.inconsistency import InconsistencyProof
from walruspy.core.merkle import MerkleProof, MerkleTree, leaf_hash, leaf_hashes, merkle_roots
from walruspy.core.metadata import BlobMetadata, UnverifiedBlobMetadataWithId
from walruspy.core.params import EncodingParams
from walruspy.core.slivers import SliverData
from walruspy.core.symbols import symbols_from_bcs
from walruspy.core.types import (
    ShardIndex,
    SliverPairIndex,
    SliverType,
    pair_of_shard,
    shard_of_pair,
)

# --- BCS --------------------------------------------------------------------------------------


@given(st.integers(0, (1 << 31) - 1))
def test_uleb128_round_trip(value: int) -> None:
    reader = Reader(uleb128(value))
    assert reader.uleb128() == value
    reader.finish()


def test_uleb128_rejects_non_canonical_and_oversized() -> None:
    with pytest.raises(DecodeError, match="non-canonical"):
        Reader(b"\x80\x00").uleb128()
    with pytest.raises(DecodeError, match="exceeds"):
        Reader(uleb128(1 << 31)).uleb128()
    with pytest.raises(DecodeError, match="truncated"):
        Reader(b"\x80").uleb128()


@given(
    st.integers(0, 255),
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**256 - 1),
    st.booleans(),
    st.binary(max_size=300),
)
def test_writer_reader_round_trip(
    a: int, b: int, c: int, d: int, e: int, f: bool, g: bytes
) -> None:
    data = Writer().u8(a).u16(b).u32(c).u64(d).u256(e).bool(f).bytes(g).fixed(b"xy").finish()
    reader = Reader(data)
    assert (
        reader.u8(),
        reader.u16(),
        reader.u32(),
        reader.u64(),
        reader.u256(),
        reader.bool(),
        reader.bytes(),
        reader.fixed(2),
    ) == (a, b, c, d, e, f, g, b"xy")
    reader.finish()


def test_reader_rejects_trailing_bytes_and_bad_bools() -> None:
    reader = Reader(b"\x01\x02")
    reader.u8()
    with pytest.raises(DecodeError, match="1 trailing bytes"):
        reader.finish()
    with pytest.raises(DecodeError, match="invalid bool"):
        Reader(b"\x02").bool()


# --- Merkle -----------------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=40), max_size=40))
def test_merkle_tree_proofs_and_batched_roots_agree(leaves: list[bytes]) -> None:
    tree = MerkleTree.from_leaves(leaves)
    if not leaves:
        assert tree.root == bytes(32)
        return
    for index, leaf in enumerate(leaves):
        proof = tree.proof(index)
        proof.verify(tree.root, len(leaves), leaf, index)
        assert MerkleProof.read(Reader(_bcs(proof))) == proof
    width = max(len(x) for x in leaves)
    if all(len(x) == width for x in leaves) and width:
        import numpy as np

        array = np.frombuffer(b"".join(leaves), dtype=np.uint8).reshape(1, len(leaves), width)
        assert bytes(merkle_roots(leaf_hashes(array))[0]) == tree.root


def _bcs(proof: MerkleProof) -> bytes:
    writer = Writer()
    proof.write(writer)
    return writer.finish()


def test_merkle_known_shapes() -> None:
    """spec/encoding.md section 6: three leaves give I(I(h0,h1), I(h2, 0^32))."""
    import hashlib as h

    def inner(a: bytes, b: bytes) -> bytes:
        return h.blake2b(b"\x01" + a + b, digest_size=32).digest()

    hs = [leaf_hash(x) for x in (b"a", b"b", b"c")]
    assert MerkleTree(hs).root == inner(inner(hs[0], hs[1]), inner(hs[2], bytes(32)))
    assert MerkleTree(hs[:1]).root == hs[0]
    assert MerkleTree(hs).proof(2).path[0] is None  # the padding sibling is Node::Empty


def test_merkle_proof_rejects_wrong_leaf_index_and_long_paths() -> None:
    tree = MerkleTree.from_leaves([b"a", b"b", b"c", b"d"])
    proof = tree.proof(1)
    with pytest.raises(Exception, match="does not lead"):
        proof.verify(tree.root, 4, b"b", 0)
    with pytest.raises(Exception, match="does not fit"):
        proof.verify(tree.root, 4, b"b", 5)
    with pytest.raises(Exception, match="more than"):
        proof.verify(tree.root, 2, b"b", 1)


# --- blob IDs, parameters and the shard rotation ------------------------------------------------


@given(st.binary(min_size=32, max_size=32))
def test_blob_id_text_round_trip(raw: bytes) -> None:
    blob_id = BlobId(raw)
    text = str(blob_id)
    assert len(text) == 43
    assert BlobId.parse(text) == blob_id
    assert BlobId.from_u256_le(blob_id.as_u256_le()) == blob_id
    assert BlobId.from_hex(blob_id.hex()) == blob_id


@pytest.mark.parametrize(
    "text",
    ["", "short", "A" * 44, "A" * 42 + "=", "A" * 42 + "+", "A" * 42 + "B", 42],
)
def test_blob_id_parse_errors_name_the_problem(text: object) -> None:
    with pytest.raises(BlobIdError, match="blob ID"):
        BlobId.parse(text)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 65536])
def test_invalid_shard_counts_are_rejected(n: int) -> None:
    with pytest.raises(InvalidParametersError, match="n_shards must be between 4"):
        EncodingParams(n)


@pytest.mark.parametrize(
    ("n", "f", "p", "s", "max_size"),
    [
        (4, 1, 2, 3, 393204),
        (10, 3, 4, 7, 1834952),
        (100, 33, 34, 67, 149286452),
        (1000, 333, 334, 667, 14599533452),
    ],
)
def test_parameter_table_of_the_spec(n: int, f: int, p: int, s: int, max_size: int) -> None:
    params = EncodingParams(n)
    assert (params.f, params.n_primary_source_symbols, params.n_secondary_source_symbols) == (
        f,
        p,
        s,
    )
    assert params.max_blob_size == max_size
    assert params.symbol_size(max_size) == 65534
    with pytest.raises(DataTooLargeError, match=f"maximum blob size of {max_size} bytes"):
        params.symbol_size(max_size + 1)


def test_encoded_length_formula() -> None:
    """walrus-system.md 1.2: n * (n*64 + 32) + n * (p + s) * symbol_size."""
    params = EncodingParams(1000)
    length = 1 << 20
    ss = params.symbol_size(length)
    assert params.encoded_length(length) == 1000 * (1000 * 64 + 32) + 1000 * (334 + 667) * ss
    assert params.symbol_size(0) == 2
    assert params.quorum_weight == 667 and params.validity_weight == 334


@given(st.binary(min_size=32, max_size=32), shard_counts, st.integers(0, 12))
def test_shard_rotation_is_a_bijection(raw: bytes, n: int, pair: int) -> None:
    pair_index = SliverPairIndex(pair % n)
    shard = shard_of_pair(pair_index, raw, n)
    assert pair_of_shard(ShardIndex(shard), raw, n) == pair_index
    assert shard == (pair_index + int.from_bytes(raw, "big") % n) % n


def test_out_of_range_indices_are_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="out of range"):
        shard_of_pair(SliverPairIndex(4), bytes(32), 4)


# --- every parser, on random and on mutated input ----------------------------------------------

PARSERS = {
    "metadata-with-id": UnverifiedBlobMetadataWithId.from_bcs,
    "metadata": BlobMetadata.from_bcs,
    "primary-sliver": lambda b: SliverData.from_bcs(b, SliverType.PRIMARY),
    "recovery-symbols": symbols_from_bcs,
    "inconsistency-proof": lambda b: InconsistencyProof.from_bcs(b, SliverType.SECONDARY),
}


@pytest.mark.parametrize("name", sorted(PARSERS))
@given(data=st.binary(max_size=600))
def test_parsers_never_crash_on_random_bytes(name: str, data: bytes) -> None:
    with contextlib.suppress(InvalidInputError):
        PARSERS[name](data)


@pytest.mark.parametrize("name", sorted(PARSERS))
@given(blob=blobs, n=shard_counts, cut=st.integers(0), junk=st.binary(min_size=1, max_size=8))
def test_parsers_reject_truncated_and_trailing_bytes(
    name: str, blob: bytes, n: int, cut: int, junk: bytes
) -> None:
    enc = encoded(blob, n)
    valid = {
        "metadata-with-id": enc.metadata.to_bcs(),
        "metadata": enc.metadata.metadata.to_bcs(),
        "primary-sliver": enc.primary_sliver(0).to_bcs(),
        "recovery-symbols": b"\x00",
        "inconsistency-proof": b"\x00\x00\x00",
    }[name]
    PARSERS[name](valid)
    with pytest.raises(InvalidInputError):
        PARSERS[name](valid + junk)
    if len(valid) > 1:
        with pytest.raises(InvalidInputError):
            PARSERS[name](valid[: cut % len(valid)])


def test_metadata_bcs_layout() -> None:
    """spec/encoding.md section 6: blob_id ‖ 0x00 ‖ 0x01 ‖ u64 ‖ ULEB128(n) ‖ n x 2 nodes."""
    enc = encoded(b"hello walrus", 4)
    wire = enc.metadata.to_bcs()
    assert wire[:32] == enc.metadata.blob_id.raw
    assert wire[32:34] == b"\x00\x01"
    assert int.from_bytes(wire[34:42], "little") == 12
    assert wire[42] == 4
    assert len(wire) == 32 + 2 + 8 + 1 + 4 * 2 * 33
    assert (
        hashlib.blake2b(
            b"\x01" + (12).to_bytes(8, "little") + enc.metadata.metadata.root_hash(), digest_size=32
        ).digest()
        == enc.metadata.blob_id.raw
    )
    assert base64.urlsafe_b64decode(str(enc.metadata.blob_id) + "=") == enc.metadata.blob_id.raw
