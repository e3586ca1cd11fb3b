"""QuiltV1: the official vectors byte for byte, round trips, partial reads and rejected inputs.

tests/vectors/walrus-quilt-vectors.json comes from the official TypeScript SDK's `encodeQuilt`
(@mysten/walrus, RS2); its blob IDs and patch IDs from the official native encoder. The file
contents follow the rule the file states: sha256(f"{seed}:{i}") for i = 0, 1, ... concatenated
and cut to the size. The file is required: a missing file fails these tests rather than skipping.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.conftest import VECTORS_DIR
from walruspy.core.bcs import Writer
from walruspy.core.blob_id import BlobId
from walruspy.core.encoding import encode_blob
from walruspy.core.errors import (
    DataTooLargeError,
    DecodeError,
    InvalidInputError,
    InvalidParametersError,
    NotEnoughSymbolsError,
)
from walruspy.core.params import EncodingParams
from walruspy.core.quilt import (
    INDEX_PREFIX_LEN,
    MAX_INDEX_COLUMNS,
    PATCH_HEADER_LEN,
    Quilt,
    QuiltColumns,
    QuiltIndex,
    QuiltPatch,
    QuiltPatchId,
    QuiltPatchInternalId,
    QuiltReader,
    QuiltStoreBlob,
    construct_quilt,
    decode_patch,
    decode_quilt_index,
    encode_quilt,
    index_sliver_indices,
    patch_prefix,
    quilt_symbol_size,
    validate_identifier,
)
from walruspy.core.slivers import VerifiedSliver
from walruspy.core.types import SliverIndex, SliverPairIndex, SliverType

VECTORS_PATH = VECTORS_DIR / "walrus-quilt-vectors.json"


# --- the official vectors -------------------------------------------------------------------


@cache
def load_vectors() -> list[dict[str, Any]]:
    if not VECTORS_PATH.exists():
        pytest.fail(f"the Walrus quilt vectors are missing: {VECTORS_PATH}")
    vectors: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text())["vectors"]
    return vectors


def _all_vectors() -> list[dict[str, Any]]:
    try:
        return load_vectors()
    except pytest.fail.Exception:
        return [{"missing": True}]


def vector_id(vector: dict[str, Any]) -> str:
    if vector.get("missing"):
        return "missing"
    return f"n{vector['n_shards']}-{len(vector['files'])}files-{vector['quilt_len']}B"


def file_content(seed: str, size: int) -> bytes:
    """The vectors' content rule: sha256 of "seed:i" for i = 0, 1, ..., cut to `size` bytes."""
    digests = [hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(-(-size // 32))]
    return b"".join(digests)[:size]


def vector_blobs(vector: dict[str, Any]) -> list[QuiltStoreBlob]:
    return [
        QuiltStoreBlob(
            entry["identifier"], file_content(entry["seed"], entry["size"]), entry["tags"]
        )
        for entry in vector["files"]
    ]


@pytest.mark.parametrize("vector", _all_vectors(), ids=vector_id)
def test_vector_quilt_bytes_and_index(vector: dict[str, Any]) -> None:
    if vector.get("missing"):
        load_vectors()  # fails with the path
    quilt = construct_quilt(vector_blobs(vector), vector["n_shards"])
    assert len(quilt.data) == vector["quilt_len"]
    assert hashlib.sha256(quilt.data).hexdigest() == vector["quilt_sha256"]
    got = [
        {
            "identifier": patch.identifier,
            "start_index": patch.start_index,
            "end_index": patch.end_index,
            "tags": dict(patch.tags),
        }
        for patch in quilt.index.patches
    ]
    expected = [{k: v for k, v in entry.items() if k != "patch_id"} for entry in vector["index"]]
    assert got == expected
    # Parsing the bytes gives the same index back, and every patch as it went in.
    parsed = Quilt.from_bytes(quilt.data, vector["n_shards"])
    assert parsed == quilt
    by_identifier = {blob.identifier: blob for blob in vector_blobs(vector)}
    for patch in parsed.reader().all_patches():
        assert patch == by_identifier[patch.identifier]


@pytest.mark.parametrize("vector", _all_vectors(), ids=vector_id)
def test_vector_blob_id_and_patch_ids(vector: dict[str, Any]) -> None:
    if vector.get("missing"):
        load_vectors()
    encoded = encode_quilt(vector_blobs(vector), vector["n_shards"])
    assert str(encoded.blob_id) == vector["blob_id"]
    assert [str(pid) for pid in encoded.patch_ids()] == [e["patch_id"] for e in vector["index"]]
    reader = encoded.quilt.reader(encoded.blob_id)
    for entry in vector["index"]:
        patch_id = QuiltPatchId.parse(entry["patch_id"])
        assert patch_id.quilt_id == encoded.blob_id
        assert patch_id.internal_id == QuiltPatchInternalId(
            entry["start_index"], entry["end_index"]
        )
        assert reader.patch_by_id(entry["patch_id"]).identifier == entry["identifier"]


def test_vectors_cover_the_shard_counts_and_edge_sizes() -> None:
    vectors = load_vectors()
    assert {v["n_shards"] for v in vectors} == {7, 10, 16, 100, 1000}
    sizes = {entry["size"] for v in vectors for entry in v["files"]}
    assert {0, 1, 65536, 200000} <= sizes
    assert any(entry["tags"] for v in vectors for entry in v["files"])


def test_smallest_vector_byte_by_byte() -> None:
    """n = 10 (p = 4, s = 7), one 1-byte blob: symbols of 2 bytes, columns of 8 bytes."""
    content = file_content("pub-0-0", 1)
    quilt = construct_quilt([QuiltStoreBlob("img-448", content)], 10)
    assert quilt.symbol_size == 2
    assert quilt.column_size == 8
    index_bcs = b"\x01" + b"\x06\x00" + b"\x07img-448" + b"\x00"
    assert quilt.index.to_bcs() == index_bcs
    patch = b"\x01" + (2 + 8 + 1).to_bytes(4, "little") + b"\x00" + b"\x08\x00\x07img-448"
    patch += content
    stream = b"\x01" + len(index_bcs).to_bytes(4, "little") + index_bcs
    stream = stream.ljust(3 * 8, b"\x00") + patch.ljust(3 * 8, b"\x00") + bytes(8)
    assert column_major(quilt) == stream


# --- helpers --------------------------------------------------------------------------------


def column_major(quilt: Quilt) -> bytes:
    params = EncodingParams(quilt.n_shards)
    p, s = params.n_primary_source_symbols, params.n_secondary_source_symbols
    matrix = np.frombuffer(quilt.data, dtype=np.uint8).reshape(p, s, quilt.symbol_size)
    return matrix.transpose(1, 0, 2).tobytes()


def row_major(stream: bytes, n_shards: int) -> bytes:
    params = EncodingParams(n_shards)
    p, s = params.n_primary_source_symbols, params.n_secondary_source_symbols
    matrix = np.frombuffer(stream, dtype=np.uint8).reshape(s, p, -1)
    return matrix.transpose(1, 0, 2).tobytes()


def patched(quilt: Quilt, offset: int, replacement: bytes) -> bytes:
    """The quilt's bytes with the column stream overwritten at `offset`."""
    stream = bytearray(column_major(quilt))
    stream[offset : offset + len(replacement)] = replacement
    return row_major(bytes(stream), quilt.n_shards)


def secondary_slivers(quilt: Quilt, indices: Sequence[int]) -> list[VerifiedSliver]:
    encoded = _encoded(quilt.data, quilt.n_shards)
    return [encoded.secondary_sliver(j).verify(encoded.metadata) for j in indices]


@cache
def _encoded(data: bytes, n_shards: int) -> Any:
    return encode_blob(data, n_shards)


SAMPLE = (
    QuiltStoreBlob("b.txt", b"bravo" * 30, {"kind": "text", "owner": "ann"}),
    QuiltStoreBlob("a.bin", bytes(range(256)) * 3),
    QuiltStoreBlob("c", b"", {"kind": "empty"}),
    QuiltStoreBlob("d", b"delta", {"kind": "text"}),
)


# --- round trips ----------------------------------------------------------------------------

identifier_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=12
).filter(lambda text: text == text.rstrip())
tag_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
tag_maps = st.dictionaries(tag_text, tag_text, max_size=3)
round_trip_shards = st.sampled_from([4, 5, 7, 10, 13, 16])


@st.composite
def quilt_inputs(draw: st.DrawFn) -> tuple[int, list[QuiltStoreBlob]]:
    n_shards = draw(round_trip_shards)
    most = min(6, EncodingParams(n_shards).n_secondary_source_symbols - 1)
    identifiers = draw(st.lists(identifier_text, min_size=1, max_size=most, unique=True))
    blobs = [
        QuiltStoreBlob(
            identifier,
            draw(st.binary(max_size=draw(st.sampled_from([0, 1, 40, 700, 3000])))),
            draw(tag_maps),
        )
        for identifier in identifiers
    ]
    return n_shards, blobs


def by_identifier(blobs: list[QuiltStoreBlob]) -> list[QuiltStoreBlob]:
    return sorted(blobs, key=lambda blob: blob.identifier.encode())


@given(quilt_inputs())
def test_round_trip_through_the_quilt_bytes(case: tuple[int, list[QuiltStoreBlob]]) -> None:
    n_shards, blobs = case
    quilt = construct_quilt(blobs, n_shards)
    parsed = Quilt.from_bytes(quilt.data, n_shards)
    assert parsed.index == quilt.index
    reader = parsed.reader()
    assert reader.all_patches() == by_identifier(blobs)
    for blob in blobs:
        assert reader.patch(blob.identifier) == blob
        for key, value in blob.tags.items():
            assert blob in reader.patches_with_tag(key, value)
    for patch, blob in zip(quilt.index.patches, by_identifier(blobs), strict=True):
        assert reader.patch_by_internal_id(patch.internal_id.to_bytes()) == blob


@given(quilt_inputs())
def test_layout_invariants(case: tuple[int, list[QuiltStoreBlob]]) -> None:
    n_shards, blobs = case
    quilt = construct_quilt(blobs, n_shards)
    params = EncodingParams(n_shards)
    s = params.n_secondary_source_symbols
    assert len(quilt.data) == params.n_source_symbols * quilt.symbol_size
    assert quilt.symbol_size % 2 == 0
    patches = quilt.index.patches
    assert [p.identifier for p in patches] == [b.identifier for b in by_identifier(blobs)]
    index_columns = patches[0].start_index
    assert 1 <= index_columns <= MAX_INDEX_COLUMNS
    assert patches[-1].end_index <= s
    for before, after in itertools.pairwise(patches):
        assert before.end_index == after.start_index
    for patch, blob in zip(patches, by_identifier(blobs), strict=True):
        size = len(patch_prefix(blob)) + len(blob.data)
        assert len(patch.sliver_indices) == -(-size // quilt.column_size)
    # The symbol size is the smallest even one that fits: two bytes less does not.
    sizes = [INDEX_PREFIX_LEN + len(quilt.index.to_bcs())]
    sizes += [len(patch_prefix(b)) + len(b.data) for b in by_identifier(blobs)]
    assert quilt_symbol_size(sizes, s, params.n_primary_source_symbols) == quilt.symbol_size
    smaller = (quilt.symbol_size - 2) * params.n_primary_source_symbols
    if smaller > 0:
        assert not (
            sum(-(-size // smaller) for size in sizes) <= s
            and -(-sizes[0] // smaller) <= MAX_INDEX_COLUMNS
            and smaller >= INDEX_PREFIX_LEN
        )


@given(quilt_inputs(), st.data())
def test_read_a_patch_from_its_secondary_slivers_alone(
    case: tuple[int, list[QuiltStoreBlob]], data: st.DataObject
) -> None:
    n_shards, blobs = case
    encoded = encode_quilt(blobs, n_shards)
    quilt = encoded.quilt
    first = secondary_slivers(quilt, [0])[0]
    index_columns = index_sliver_indices(first.sliver.data)
    assert index_columns == range(quilt.index.patches[0].start_index)
    index_slivers = secondary_slivers(quilt, index_columns)
    reader = QuiltReader.from_slivers(encoded.encoded.metadata, index_slivers)
    assert reader.index == quilt.index
    patch = data.draw(st.sampled_from(quilt.index.patches))
    needed = quilt.index.sliver_indices_for_identifiers([patch.identifier])
    assert needed == list(patch.sliver_indices)
    partial = QuiltReader.from_slivers(
        encoded.encoded.metadata, secondary_slivers(quilt, needed), index=reader.index
    )
    expected = next(b for b in blobs if b.identifier == patch.identifier)
    assert partial.patch(patch.identifier) == expected
    assert partial.patch_by_id(patch.patch_id(encoded.blob_id)) == expected


@given(quilt_inputs())
def test_patch_ids_round_trip(case: tuple[int, list[QuiltStoreBlob]]) -> None:
    n_shards, blobs = case
    quilt = construct_quilt(blobs, n_shards)
    quilt_id = BlobId(hashlib.sha256(quilt.data).digest())
    for patch_id, patch in zip(quilt.index.patch_ids(quilt_id), quilt.index.patches, strict=True):
        text = str(patch_id)
        assert len(text) == 50
        assert QuiltPatchId.parse(text) == patch_id
        assert QuiltPatchId.from_bytes(patch_id.to_bytes()) == patch_id
        assert patch_id.internal_id.sliver_indices == patch.sliver_indices


def test_quilt_ignores_input_order() -> None:
    forward = construct_quilt(SAMPLE, 7)
    backward = construct_quilt(reversed(SAMPLE), 7)
    assert forward == backward
    assert [p.identifier for p in forward.index.patches] == ["a.bin", "b.txt", "c", "d"]


def test_identifiers_sort_by_utf8_bytes() -> None:
    # U+FF21 (3 UTF-8 bytes) sorts after U+00E9 (2 bytes) and after "z", as Rust sorts Strings.
    blobs = [QuiltStoreBlob(name, b"x") for name in ("\uff21", "z", "\u00e9", "Z")]
    order = [p.identifier for p in construct_quilt(blobs, 10).index.patches]
    assert order == ["Z", "z", "\u00e9", "\uff21"]


def test_lookups_by_tag_and_identifier() -> None:
    reader = construct_quilt(SAMPLE, 7).reader()
    assert [b.identifier for b in reader.patches_with_tag("kind", "text")] == ["b.txt", "d"]
    assert reader.patches_with_tag("kind", "none") == []
    assert [b.identifier for b in reader.patches_by_identifiers(["d", "a.bin"])] == ["a.bin", "d"]
    index = reader.index
    assert index.sliver_indices_for_tag("kind", "empty") == list(index.patch("c").sliver_indices)
    with pytest.raises(InvalidInputError, match=r"no patch with identifier 'nope', 'zz'"):
        reader.patches_by_identifiers(["a.bin", "zz", "nope"])
    with pytest.raises(InvalidInputError, match="no patch with identifier"):
        index.sliver_indices_for_identifiers(["missing"])


def test_tags_serialize_in_bcs_key_order() -> None:
    """BCS sorts map entries by their keys' bytes, length prefix included: shorter keys first."""
    blob = QuiltStoreBlob("x", b"", {"content-type": "a", "owner": "b"})
    prefix = patch_prefix(blob)
    tags_bcs = b"\x02" + b"\x05owner\x01b" + b"\x0ccontent-type\x01a"
    assert prefix.endswith(len(tags_bcs).to_bytes(2, "little") + tags_bcs)
    assert prefix[5] == 1  # the mask's tags bit
    assert patch_prefix(QuiltStoreBlob("x", b""))[5] == 0


# --- the symbol-size search (Walrus's own table for `compute_symbol_size`) -------------------


#: Case 11 of Walrus's table: 29 parts in 34 columns of 16 rows.
WALRUS_29_SIZES = [
    *(416, 253, 258, 384, 492, 303, 276, 464, 143, 251, 388, 263, 515, 433, 505),
    *(385, 346, 69, 48, 495, 329, 450, 494, 104, 539, 245, 109, 317, 60),
]


@pytest.mark.parametrize(
    ("sizes", "n_columns", "n_rows", "max_index_columns", "expected"),
    [
        ([1000, 1, 1], 4, 7, 2, 72),
        ([1], 3, 2, 1, 4),
        ([115, 80, 4], 17, 9, 3, 6),
        ([20, 20, 20], 3, 5, 2, 4),
        ([5, 5, 5], 5, 1, 1, 6),
        ([25, 35, 45], 200, 1, 3, 10),
        ([10, 0, 0, 0], 17, 9, 2, 2),
        (WALRUS_29_SIZES, 34, 16, 3, 32),
    ],
)
def test_symbol_size_table(
    sizes: list[int], n_columns: int, n_rows: int, max_index_columns: int, expected: int
) -> None:
    assert quilt_symbol_size(sizes, n_columns, n_rows, max_index_columns) == expected


def test_symbol_size_rejects_more_parts_than_columns_and_nothing() -> None:
    with pytest.raises(InvalidInputError, match="too many blobs for one quilt: 3, at most 2"):
        quilt_symbol_size([2, 1, 2, 1], 3, 3, 1)
    with pytest.raises(InvalidInputError, match="at least one blob"):
        quilt_symbol_size([], 3, 1, 1)


@given(
    sizes=st.lists(st.integers(0, 5000), min_size=1, max_size=8),
    n_columns=st.integers(1, 40),
    n_rows=st.integers(1, 20),
    max_index_columns=st.integers(1, 10),
)
def test_symbol_size_is_the_smallest_that_fits(
    sizes: list[int], n_columns: int, n_rows: int, max_index_columns: int
) -> None:
    assume(len(sizes) <= n_columns)

    def acceptable(size: int) -> bool:
        column = size * n_rows
        return (
            column >= INDEX_PREFIX_LEN
            and -(-sizes[0] // column) <= max_index_columns
            and sum(-(-part // column) for part in sizes) <= n_columns
        )

    smallest = next(size for size in range(1, 100_000) if acceptable(size))
    expected = smallest + smallest % 2
    assert quilt_symbol_size(sizes, n_columns, n_rows, max_index_columns) == expected


# --- rejected inputs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "identifier",
    ["test", "test123", "123test", "a", "A123", "_test", "-test", ".test", "test blob", "x.y-z_"],
)
def test_valid_identifiers(identifier: str) -> None:
    validate_identifier(identifier)


@pytest.mark.parametrize(
    ("identifier", "message"),
    [
        ("", "identifier is empty"),
        ("test ", "ends with white space"),
        ("test\t", "ends with white space"),
        ("test\n", "ends with white space"),
        ("test\u3000", "ends with white space"),
        ("test\u00a0", "ends with white space"),
        ("te\x08st", "control characters"),
        ("\x1btest", "control characters"),
        ("test\x00", "control characters"),
        ("test\x7f", "control characters"),
        ("test\u0080", "control characters"),
        ("test\u009f", "control characters"),
        ("x" * 65536, "identifier too long: 65536 bytes"),
        ("\u00e9" * 32768, "identifier too long: 65536 bytes"),
        ("bad\ud800", "not valid Unicode"),
    ],
)
def test_invalid_identifiers(identifier: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        validate_identifier(identifier)
    with pytest.raises(InvalidInputError, match=message):
        QuiltStoreBlob(identifier, b"data")


def test_identifier_must_be_a_string() -> None:
    with pytest.raises(InvalidInputError, match="must be a string, got int"):
        QuiltStoreBlob(7, b"")  # type: ignore[arg-type]


def test_identifier_whose_bcs_form_is_too_long_for_the_header() -> None:
    blob = QuiltStoreBlob("x" * 65533, b"")  # valid, but 3 + 65533 bytes of BCS
    with pytest.raises(InvalidInputError, match="its BCS form is 65536 bytes, at most 65534"):
        construct_quilt([blob], 10)
    construct_quilt([QuiltStoreBlob("x" * 65531, b"")], 10)


def test_empty_quilt() -> None:
    with pytest.raises(InvalidInputError, match="a quilt needs at least one blob"):
        construct_quilt([], 10)


def test_duplicate_identifiers() -> None:
    blobs = [
        QuiltStoreBlob("same", b"1"),
        QuiltStoreBlob("other", b""),
        QuiltStoreBlob("same", b"2"),
    ]
    with pytest.raises(InvalidInputError, match="duplicate identifier 'same'"):
        construct_quilt(blobs, 10)


def test_too_many_blobs_for_the_columns() -> None:
    # n = 4: s = 3 columns, one for the index, so at most two blobs.
    blobs = [QuiltStoreBlob(name, b"") for name in "abc"]
    with pytest.raises(InvalidInputError, match="too many blobs for one quilt: 3, at most 2"):
        construct_quilt(blobs, 4)
    construct_quilt(blobs[:2], 4)


def test_tags_too_large_and_of_the_wrong_type() -> None:
    with pytest.raises(InvalidInputError, match="tags of 'big' are too large: 70006 bytes"):
        construct_quilt([QuiltStoreBlob("big", b"", {"k": "v" * 70000})], 10)
    with pytest.raises(InvalidInputError, match="tags map strings to strings"):
        QuiltStoreBlob("x", b"", {"k": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError, match="not valid Unicode"):
        QuiltStoreBlob("x", b"", {"k": "\udfff"})


def test_quilt_over_the_maximum_symbol_size() -> None:
    # n = 4: p = 2 rows, s = 3 columns; one blob cannot fill two columns of 65534-byte symbols.
    blob = QuiltStoreBlob("huge", bytes(2 * 2 * 65534))
    with pytest.raises(DataTooLargeError, match="the quilt is too large"):
        construct_quilt([blob], 4)


def test_too_few_shards() -> None:
    with pytest.raises(InvalidParametersError, match="n_shards must be between 4"):
        construct_quilt([QuiltStoreBlob("a", b"")], 3)


def test_store_blob_freezes_its_inputs() -> None:
    tags = {"b": "2", "a": "1"}
    data = bytearray(b"abc")
    blob = QuiltStoreBlob("x", data, tags)  # type: ignore[arg-type]
    tags["c"] = "3"
    data[0] = 0
    assert blob.data == b"abc"
    assert dict(blob.tags) == {"a": "1", "b": "2"}
    with pytest.raises(TypeError):
        blob.tags["d"] = "4"  # type: ignore[index]


# --- rejected quilt bytes -------------------------------------------------------------------


def test_quilt_bytes_must_fill_the_matrix() -> None:
    with pytest.raises(DecodeError, match="0 bytes are not a whole, non-empty one"):
        Quilt.from_bytes(b"", 10)
    with pytest.raises(DecodeError, match="fills a 4 x 7 matrix"):
        Quilt.from_bytes(bytes(57), 10)


def test_quilt_version_byte() -> None:
    quilt = construct_quilt(SAMPLE, 7)
    with pytest.raises(DecodeError, match="not a QuiltV1: quilt version byte 2, expected 1"):
        Quilt.from_bytes(patched(quilt, 0, b"\x02"), 7)


def test_index_size_over_ten_columns() -> None:
    quilt = construct_quilt(SAMPLE, 7)
    limit = MAX_INDEX_COLUMNS * quilt.column_size - INDEX_PREFIX_LEN
    with pytest.raises(DecodeError, match=f"quilt index of {limit + 1} bytes exceeds the maximum"):
        Quilt.from_bytes(patched(quilt, 1, (limit + 1).to_bytes(4, "little")), 7)


def test_index_with_trailing_bytes_or_bad_ranges() -> None:
    quilt = construct_quilt(SAMPLE, 7)
    size = len(quilt.index.to_bcs())
    with pytest.raises(DecodeError, match="truncated input"):
        Quilt.from_bytes(patched(quilt, 1, (size - 1).to_bytes(4, "little")), 7)
    s = EncodingParams(7).n_secondary_source_symbols
    # The last patch's end index, written past the last column.
    last = quilt.index.patches[-1]
    bad = QuiltIndex((*quilt.index.patches[:-1], QuiltPatch(last.identifier, 0, s + 1)))
    with pytest.raises(DecodeError, match=r"patch 'd' has columns \[\d+, 6\), not a non-empty"):
        QuiltIndex.from_bcs(bad.to_bcs(), quilt.index.patches[0].start_index, s)
    # An end index that goes backwards.
    first = quilt.index.patches[0]
    bad = QuiltIndex((QuiltPatch(first.identifier, 0, first.start_index),))
    with pytest.raises(DecodeError, match="not a non-empty range"):
        QuiltIndex.from_bcs(bad.to_bcs(), first.start_index, s)


def test_index_with_an_invalid_identifier_or_bad_utf8() -> None:
    body = Writer().uleb128(1).u16(3).bytes(b"bad ").uleb128(0).finish()
    with pytest.raises(DecodeError, match="invalid identifier in the quilt index"):
        QuiltIndex.from_bcs(body, 1, 5)
    body = Writer().uleb128(1).u16(3).bytes(b"\xff").uleb128(0).finish()
    with pytest.raises(DecodeError, match="identifier is not valid UTF-8"):
        QuiltIndex.from_bcs(body, 1, 5)


def test_index_tags_must_be_canonical() -> None:
    entry = Writer().uleb128(1).u16(3).bytes(b"a")
    unsorted = entry.uleb128(2).bytes(b"bb").bytes(b"1").bytes(b"a").bytes(b"2").finish()
    with pytest.raises(DecodeError, match="not in canonical BCS order"):
        QuiltIndex.from_bcs(unsorted, 1, 5)
    entry = Writer().uleb128(1).u16(3).bytes(b"a")
    repeated = entry.uleb128(2).bytes(b"a").bytes(b"1").bytes(b"a").bytes(b"2").finish()
    with pytest.raises(DecodeError, match="not in canonical BCS order"):
        QuiltIndex.from_bcs(repeated, 1, 5)


def _patch_offset(quilt: Quilt, identifier: str) -> int:
    return quilt.index.patch(identifier).start_index * quilt.column_size


def test_patch_header_version_and_length() -> None:
    quilt = construct_quilt(SAMPLE, 7)
    offset = _patch_offset(quilt, "d")
    reader = Quilt.from_bytes(patched(quilt, offset, b"\x07"), 7).reader()
    with pytest.raises(DecodeError, match="header version byte 7, expected 1"):
        reader.patch("d")
    assert reader.patch("c").identifier == "c"  # the others still read
    patch = quilt.index.patch("d")
    room = len(patch.sliver_indices) * quilt.column_size - PATCH_HEADER_LEN
    data = patched(quilt, offset + 1, (room + 1).to_bytes(4, "little"))
    with pytest.raises(DecodeError, match=f"claims {room + 1} bytes, its columns hold {room}"):
        Quilt.from_bytes(data, 7).reader().patch("d")


def test_patch_identifier_overruns_its_length() -> None:
    quilt = construct_quilt(SAMPLE, 7)
    offset = _patch_offset(quilt, "d")
    # The header says 2 bytes follow, but the identifier's size field announces 2 more.
    data = patched(quilt, offset + 1, (2).to_bytes(4, "little"))
    with pytest.raises(DecodeError, match="truncated input: identifier needs 2 bytes"):
        Quilt.from_bytes(data, 7).reader().patch("d")
    # An identifier size that does not match its BCS string.
    data = patched(quilt, offset + PATCH_HEADER_LEN, (3).to_bytes(2, "little"))
    with pytest.raises(DecodeError, match="trailing bytes after identifier"):
        Quilt.from_bytes(data, 7).reader().patch("d")


def test_patch_with_an_invalid_identifier() -> None:
    quilt = construct_quilt(SAMPLE, 7)
    offset = _patch_offset(quilt, "d") + PATCH_HEADER_LEN + 3  # the identifier's one character
    data = patched(quilt, offset, b"\x01")
    with pytest.raises(DecodeError, match="contains control characters"):
        Quilt.from_bytes(data, 7).reader().patch("d")


@given(quilt_inputs(), st.data())
def test_mutated_quilts_parse_or_raise_decode_errors(
    case: tuple[int, list[QuiltStoreBlob]], data: st.DataObject
) -> None:
    """Fuzz: any byte changes give a quilt that reads, or `DecodeError`, and nothing else."""
    n_shards, blobs = case
    quilt = construct_quilt(blobs, n_shards)
    stream = bytearray(column_major(quilt))
    # Bias the changes to the index and the patch headers, where the structure is.
    hot = [0, *(patch.start_index * quilt.column_size for patch in quilt.index.patches)]
    for _ in range(data.draw(st.integers(1, 4))):
        base = data.draw(st.sampled_from(hot))
        position = min(len(stream) - 1, base + data.draw(st.integers(0, 24)))
        stream[position] = data.draw(st.integers(0, 255))
    try:
        parsed = Quilt.from_bytes(row_major(bytes(stream), n_shards), n_shards)
        parsed.reader().all_patches()
    except DecodeError:
        pass


@given(st.binary(min_size=1, max_size=64), st.integers(1, 12))
def test_random_column_bytes_raise_only_decode_errors(raw: bytes, n_columns: int) -> None:
    column_size = -(-len(raw) // n_columns)
    stream = raw.ljust(column_size * n_columns, b"\x00")
    columns = QuiltColumns.from_column_major(stream, n_columns)
    with contextlib.suppress(DecodeError):
        decode_quilt_index(columns)
    with contextlib.suppress(DecodeError):
        decode_patch(columns, QuiltPatchInternalId(0, n_columns))


# --- partial reads ----------------------------------------------------------------------------


def test_missing_slivers_are_named() -> None:
    encoded = encode_quilt(SAMPLE, 7)
    quilt = encoded.quilt
    metadata = encoded.encoded.metadata
    with pytest.raises(NotEnoughSymbolsError, match=r"secondary slivers 0 that were not given"):
        QuiltReader.from_slivers(metadata, secondary_slivers(quilt, [1, 2]))
    reader = QuiltReader.from_slivers(metadata, secondary_slivers(quilt, [0]), quilt.index)
    patch = quilt.index.patch("a.bin")
    span = f"{patch.start_index}-{patch.end_index - 1}"
    if len(patch.sliver_indices) == 1:
        span = str(patch.start_index)
    with pytest.raises(NotEnoughSymbolsError, match=f"secondary slivers {span} that were not"):
        reader.patch("a.bin")


def test_missing_columns_listed_as_runs() -> None:
    columns = QuiltColumns(4, 10, {0: bytes(4), 4: bytes(4)})
    with pytest.raises(NotEnoughSymbolsError, match=r"slivers 1-3, 5-6 that were not given"):
        columns.read(0, 0, 28, "something")
    assert columns.read(0, 1, 3, "something") == bytes(3)
    assert columns.missing(range(3)) == [SliverIndex(1), SliverIndex(2)]


def test_reads_past_the_last_column() -> None:
    columns = QuiltColumns(4, 2, {0: b"\x01\x02\x03\x04", 1: b"\x05\x06\x07\x08"})
    assert columns.read(0, 2, 4, "x") == b"\x03\x04\x05\x06"
    assert columns.read(1, 0, 0, "x") == b""
    with pytest.raises(DecodeError, match="runs past the end of the quilt: it needs column 2"):
        columns.read(1, 2, 4, "x")


def test_columns_must_match_their_shape() -> None:
    with pytest.raises(ValueError, match="column 2 is not one of 2 columns"):
        QuiltColumns(4, 2, {2: bytes(4)})
    with pytest.raises(ValueError, match="column 0 is not one of 2 columns"):
        QuiltColumns(4, 2, {0: bytes(3)})
    with pytest.raises(ValueError, match="column size must be positive"):
        QuiltColumns(0, 2, {})


def test_from_slivers_rejects_misuse_and_ignores_repair_slivers() -> None:
    encoded = encode_quilt(SAMPLE, 7)
    metadata = encoded.encoded.metadata
    n = encoded.encoded.n_shards
    primary = encoded.encoded.sliver(SliverPairIndex(0), SliverType.PRIMARY)
    with pytest.raises(ValueError, match="secondary slivers"):
        QuiltReader.from_slivers(metadata, [primary])
    other = encode_quilt(SAMPLE[:2], 7)
    foreign = other.encoded.sliver(SliverPairIndex(n - 1), SliverType.SECONDARY)
    with pytest.raises(ValueError, match="another blob"):
        QuiltReader.from_slivers(metadata, [foreign])
    s = EncodingParams(n).n_secondary_source_symbols
    everything = secondary_slivers(encoded.quilt, range(n))
    reader = QuiltReader.from_slivers(metadata, everything)
    assert sorted(reader.columns.columns) == list(range(s))
    assert reader.all_patches() == by_identifier(list(SAMPLE))


def test_index_sliver_indices_checks_the_first_column() -> None:
    with pytest.raises(DecodeError, match="at least 5 bytes"):
        index_sliver_indices(b"\x01\x00")
    with pytest.raises(DecodeError, match="quilt version byte 0"):
        index_sliver_indices(bytes(8))
    assert index_sliver_indices(b"\x01\x03\x00\x00\x00\x00\x00\x00") == range(1)
    assert index_sliver_indices(b"\x01\x04\x00\x00\x00\x00\x00\x00") == range(2)


# --- patch IDs --------------------------------------------------------------------------------


def test_patch_id_layout() -> None:
    quilt_id = BlobId(bytes(range(32)))
    patch_id = QuiltPatchId(quilt_id, QuiltPatchInternalId(3, 0x1234))
    assert patch_id.to_bytes() == bytes(range(32)) + b"\x01\x03\x00\x34\x12"
    assert patch_id.internal_id.sliver_indices == range(3, 0x1234)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not base64!", "not base64"),
        ("6i6BX9SfdhlhfszE88gGJN16g8JInnGjRxL89rLmAE4BAwAGAA==", "without padding"),
        ("6i6BX9SfdhlhfszE88gGJN16g8JInnGjRxL89rLmAE4", "got 32 bytes"),
        ("6i6BX9SfdhlhfszE88gGJN16g8JInnGjRxL89rLmAE4BAwAG", "internal ID is 5 bytes, got 4"),
        ("6i6BX9SfdhlhfszE88gGJN16g8JInnGjRxL89rLmAE4CAwAGAA", "quilt version mismatch"),
        ("6i6BX9SfdhlhfszE88gGJN16g8JInnGjRxL89rLmAE4BBgADAA", r"start < end"),
        ("6i6BX9SfdhlhfszE88gGJN16g8JInnGjRxL89rLmAE4BAwAGAB", "without padding"),
    ],
)
def test_invalid_patch_ids(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        QuiltPatchId.parse(text)


def test_patch_id_of_another_quilt() -> None:
    encoded = encode_quilt(SAMPLE, 7)
    other = encode_quilt(SAMPLE[:2], 7)
    reader = encoded.quilt.reader(encoded.blob_id)
    with pytest.raises(InvalidInputError, match="belongs to quilt"):
        reader.patch_by_id(other.patch_ids()[0])
    # Without a known quilt ID, only the columns count.
    assert encoded.quilt.reader().patch_by_id(other.patch_ids()[0]).identifier == "a.bin"


def test_internal_id_parsing() -> None:
    assert QuiltPatchInternalId.from_bytes(b"\x01\x01\x00\x02\x00") == QuiltPatchInternalId(1, 2)
    with pytest.raises(InvalidInputError, match="is 5 bytes, got 6"):
        QuiltPatchInternalId.from_bytes(b"\x01\x01\x00\x02\x00\x00")
    with pytest.raises(InvalidInputError, match="start < end"):
        QuiltPatchInternalId(2, 2)
