"""QuiltV1: many small blobs stored as one Walrus blob (spec/walrus-system.md section 4.5).

Theory of operation. A quilt is an ordinary RS2 blob whose bytes fill the whole p x s message
matrix (p = n-2f rows, s = n-f columns, spec/encoding.md sections 2 and 3) with a symbol size the
quilt chooses. Read column by column, the matrix is one stream of s columns of `column_size` =
p * symbol_size bytes each, and column j is exactly secondary sliver j (its first p symbols).
Every stored blob, a *patch*, starts at the top of a column and owns whole columns, so a reader
needs only the secondary slivers `start_index..end_index` of a patch to read it (Walrus's client
fetches secondary slivers for this; the spec's "primary slivers" in 4.5 is a slip).

The column stream, in order:

    columns [0, k)      0x01 ‖ index_len u32 LE ‖ BCS(QuiltIndexV1), zero-padded; 1 <= k <= 10
    columns [a_i, b_i)  per patch, sorted by identifier (UTF-8 byte order), zero-padded:
                        0x01 ‖ length u32 LE ‖ mask u8                      (the 6-byte header)
                        ‖ id_len u16 LE ‖ BCS(identifier)
                        ‖ [tags_len u16 LE ‖ BCS(tags)]   only when mask bit 0 is set
                        ‖ data
                        where `length` counts every byte after the header.
    BCS(QuiltIndexV1) = ULEB128(count) ‖ count × (end_index u16 ‖ identifier ‖ tags)

Strings are BCS `String` (ULEB128 length ‖ UTF-8); tags are a BCS map, whose entries are sorted
by the BCS bytes of their keys (so shorter keys first) and must be strictly increasing when read.
Start indices are not stored: the first patch starts at column k, each later one where the one
before ended. Unused columns at the end are zero.

The symbol size is the smallest one for which the index fits in at most 10 columns and every
part fits in whole columns, all within s; a binary search between two bounds, then rounded up to
RS2's alignment of 2 (Walrus's `compute_symbol_size`). A patch is named globally by its
`QuiltPatchId` = quilt blob ID (32 bytes) ‖ 0x01 ‖ start_index u16 LE ‖ end_index u16 LE, shown
as URL-safe base64 without padding; it depends on the whole quilt, not just the patch.

Identifiers are non-empty, at most 65535 UTF-8 bytes, without control characters (Unicode
category Cc) or trailing white space, and unique within a quilt. Decoding checks everything it
reads (versions, lengths, canonical BCS, each patch within its columns) and raises `DecodeError`;
a column that is needed but was not given raises `NotEnoughSymbolsError` naming the slivers.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from walruspy.core.bcs import Reader, Writer
from walruspy.core.blob_id import BlobId
from walruspy.core.encoding import EncodedBlob, encode_blob
from walruspy.core.errors import (
    DataTooLargeError,
    DecodeError,
    InvalidInputError,
    NotEnoughSymbolsError,
)
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.params import DIGEST_LEN, MAX_SYMBOL_SIZE, SYMBOL_ALIGNMENT, EncodingParams
from walruspy.core.slivers import VerifiedSliver
from walruspy.core.types import SliverIndex, SliverType

#: The version byte of QuiltV1: first byte of the quilt, of every patch header and patch ID.
QUILT_VERSION_V1 = 1
#: Version byte and u32 length in front of the serialized index.
INDEX_PREFIX_LEN = 5
#: Walrus reads the index from at most this many columns (`MAX_NUM_SLIVERS_FOR_QUILT_INDEX`).
MAX_INDEX_COLUMNS = 10
#: Version byte, u32 length and mask byte in front of every patch.
PATCH_HEADER_LEN = 6
#: Identifiers are at most u16::MAX bytes of UTF-8 (their size field is a u16).
MAX_IDENTIFIER_BYTES = 0xFFFF
#: The BCS form of an identifier must stay below u16::MAX bytes (Walrus's encoder check).
MAX_IDENTIFIER_BCS_BYTES = 0xFFFE
#: The BCS form of the tags has a u16 size field.
MAX_TAGS_BCS_BYTES = 0xFFFF
#: The header's u32 length field bounds everything after the header of one patch.
MAX_PATCH_BODY_BYTES = 0xFFFF_FFFF
#: Mask bit of a patch header: the tags extension follows the identifier.
TAGS_MASK_BIT = 0x01
#: Bytes of a V1 patch internal ID: version, start u16, end u16.
INTERNAL_ID_LEN = 5
#: Unicode White_Space, which Rust's `trim_end` strips (Python's `isspace` differs slightly).
_UNICODE_WHITE_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{what} {text[:60]!r} is not valid Unicode") from None


def validate_identifier(identifier: str) -> None:
    """Raise `InvalidInputError` unless `identifier` may name a quilt patch (as Walrus checks)."""
    if not isinstance(identifier, str):
        raise InvalidInputError(f"an identifier must be a string, got {type(identifier).__name__}")
    size = len(_utf8(identifier, "identifier"))
    if size > MAX_IDENTIFIER_BYTES:
        raise InvalidInputError(
            f"identifier too long: {size} bytes of UTF-8, at most {MAX_IDENTIFIER_BYTES}"
        )
    if not identifier:
        raise InvalidInputError("identifier is empty")
    if identifier[-1] in _UNICODE_WHITE_SPACE:
        raise InvalidInputError(f"identifier {identifier[:60]!r} ends with white space")
    if any(unicodedata.category(char) == "Cc" for char in identifier):
        raise InvalidInputError(f"identifier {identifier[:60]!r} contains control characters")


def _frozen_tags(tags: Mapping[str, str]) -> Mapping[str, str]:
    copied = dict(tags)
    for key, value in copied.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidInputError(f"tags map strings to strings, got {key!r}: {value!r:.60}")
        _utf8(key, "tag")
        _utf8(value, "tag value")
    return MappingProxyType(dict(sorted(copied.items())))


@dataclass(frozen=True, slots=True)
class QuiltStoreBlob:
    """One blob in a quilt: its identifier, bytes and tags (Walrus's `QuiltStoreBlob`)."""

    identifier: str
    data: bytes = field(repr=False)
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_identifier(self.identifier)
        if not isinstance(self.data, bytes):
            object.__setattr__(self, "data", bytes(self.data))
        object.__setattr__(self, "tags", _frozen_tags(self.tags))


# --- BCS of strings and tags ------------------------------------------------------------------


def _string_bcs(text: str) -> bytes:
    return Writer().bytes(text.encode("utf-8")).finish()


def _read_string(reader: Reader, what: str) -> str:
    raw = reader.bytes(what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"{what} is not valid UTF-8") from None


def _tags_bcs(tags: Mapping[str, str]) -> bytes:
    """BCS of a `BTreeMap<String, String>`: entries sorted by the BCS bytes of their keys."""
    entries = sorted((_string_bcs(key), _string_bcs(value)) for key, value in tags.items())
    return Writer().uleb128(len(entries)).fixed(b"".join(k + v for k, v in entries)).finish()


def _read_tags(reader: Reader) -> dict[str, str]:
    count = reader.uleb128("number of tags", reader.remaining)
    tags: dict[str, str] = {}
    previous = b""
    for _ in range(count):
        key = _read_string(reader, "tag")
        key_bcs = _string_bcs(key)
        if tags and key_bcs <= previous:
            raise DecodeError(f"tags are not in canonical BCS order (or repeat) at {key[:60]!r}")
        previous = key_bcs
        tags[key] = _read_string(reader, "tag value")
    return tags


# --- identifiers of patches -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class QuiltPatchInternalId:
    """The columns `[start_index, end_index)` of a patch; 5 bytes: 0x01 ‖ start u16 ‖ end u16."""

    start_index: int
    end_index: int

    def __post_init__(self) -> None:
        if not 0 <= self.start_index < self.end_index <= 0xFFFF:
            raise InvalidInputError(
                f"a patch occupies columns start < end <= 65535, got "
                f"[{self.start_index}, {self.end_index})"
            )

    def to_bytes(self) -> bytes:
        """The 5 bytes of `QuiltPatchInternalIdV1`."""
        return Writer().u8(QUILT_VERSION_V1).u16(self.start_index).u16(self.end_index).finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> QuiltPatchInternalId:
        """Parse the 5 bytes of `QuiltPatchInternalIdV1`, naming what is wrong."""
        if len(data) != INTERNAL_ID_LEN:
            raise InvalidInputError(
                f"a QuiltV1 patch internal ID is {INTERNAL_ID_LEN} bytes, got {len(data)}"
            )
        if data[0] != QUILT_VERSION_V1:
            raise InvalidInputError(
                f"quilt version mismatch in patch ID: {data[0]}, expected {QUILT_VERSION_V1}"
            )
        reader = Reader(data[1:])
        return cls(reader.u16("start index"), reader.u16("end index"))

    @property
    def sliver_indices(self) -> range:
        """The secondary slivers (columns) that hold the patch."""
        return range(self.start_index, self.end_index)


@dataclass(frozen=True, slots=True, order=True)
class QuiltPatchId:
    """A patch named globally: the quilt's blob ID and the patch's internal ID."""

    quilt_id: BlobId
    internal_id: QuiltPatchInternalId

    def to_bytes(self) -> bytes:
        """Blob ID (32 bytes) ‖ internal ID (5 bytes)."""
        return self.quilt_id.raw + self.internal_id.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> QuiltPatchId:
        """Parse the 37 bytes of a QuiltV1 patch ID."""
        if len(data) <= DIGEST_LEN:
            raise InvalidInputError(
                f"a quilt patch ID is a {DIGEST_LEN}-byte blob ID and a patch ID, got {len(data)} "
                "bytes"
            )
        internal = QuiltPatchInternalId.from_bytes(data[DIGEST_LEN:])
        return cls(BlobId(data[:DIGEST_LEN]), internal)

    @classmethod
    def parse(cls, text: str) -> QuiltPatchId:
        """Parse the URL-safe base64 form (no padding) that Walrus prints."""
        if not isinstance(text, str) or not text.isascii():
            raise InvalidInputError(f"invalid quilt patch ID {text!r:.60}: not base64")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise InvalidInputError(f"invalid quilt patch ID {text[:60]!r}: not base64") from None
        if _b64(raw) != text:
            raise InvalidInputError(
                f"invalid quilt patch ID {text[:60]!r}: expected URL-safe base64 without padding"
            )
        return cls.from_bytes(raw)

    def __str__(self) -> str:
        return _b64(self.to_bytes())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- the index --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuiltPatch:
    """An entry of the quilt index: a patch's identifier, columns and tags (`QuiltPatchV1`)."""

    identifier: str
    start_index: int
    end_index: int
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _frozen_tags(self.tags))

    @property
    def internal_id(self) -> QuiltPatchInternalId:
        """The patch's ID within the quilt."""
        return QuiltPatchInternalId(self.start_index, self.end_index)

    @property
    def sliver_indices(self) -> range:
        """The secondary slivers (columns) a reader fetches to read this patch alone."""
        return range(self.start_index, self.end_index)

    def patch_id(self, quilt_id: BlobId) -> QuiltPatchId:
        """The patch's global ID in the quilt whose blob ID is `quilt_id`."""
        return QuiltPatchId(quilt_id, self.internal_id)

    def has_tag(self, key: str, value: str) -> bool:
        """Whether the patch carries tag `key` with value `value`."""
        return self.tags.get(key) == value


@dataclass(frozen=True, slots=True)
class QuiltIndex:
    """`QuiltIndexV1`: the patches in column order (which is identifier order)."""

    patches: tuple[QuiltPatch, ...]

    def to_bcs(self) -> bytes:
        """The BCS bytes of `QuiltIndexV1` (start indices are not stored)."""
        writer = Writer().uleb128(len(self.patches))
        for patch in self.patches:
            writer.u16(patch.end_index).fixed(_string_bcs(patch.identifier))
            writer.fixed(_tags_bcs(patch.tags))
        return writer.finish()

    @classmethod
    def from_bcs(cls, data: bytes, first_start: int, n_columns: int) -> QuiltIndex:
        """Parse `QuiltIndexV1`, the first patch starting at column `first_start`.

        Raises `DecodeError` for non-canonical BCS, invalid identifiers, and column ranges that
        are empty, out of order or beyond the `n_columns` columns of the quilt.
        """
        reader = Reader(data)
        count = reader.uleb128("number of patches", reader.remaining)
        patches = []
        start = first_start
        for _ in range(count):
            end = reader.u16("end index")
            identifier = _read_string(reader, "identifier")
            tags = _read_tags(reader)
            if not start < end <= n_columns:
                raise DecodeError(
                    f"patch {identifier[:60]!r} has columns [{start}, {end}), not a non-empty "
                    f"range within the quilt's {n_columns} columns"
                )
            try:
                validate_identifier(identifier)
            except InvalidInputError as exc:
                raise DecodeError(f"invalid identifier in the quilt index: {exc}") from None
            patches.append(QuiltPatch(identifier, start, end, tags))
            start = end
        reader.finish("quilt index")
        return cls(tuple(patches))

    def patch(self, identifier: str) -> QuiltPatch:
        """The patch named `identifier` (the first, should a foreign quilt repeat one)."""
        return self.patches_by_identifiers([identifier])[0]

    def patches_by_identifiers(self, identifiers: Iterable[str]) -> list[QuiltPatch]:
        """The patches named `identifiers`, in index order; all must exist."""
        wanted = set(identifiers)
        found = []
        for patch in self.patches:
            if patch.identifier in wanted:
                wanted.discard(patch.identifier)
                found.append(patch)
        if wanted:
            names = ", ".join(repr(name[:60]) for name in sorted(wanted))
            raise InvalidInputError(f"no patch with identifier {names} in the quilt")
        return found

    def patches_with_tag(self, key: str, value: str) -> list[QuiltPatch]:
        """The patches whose tag `key` has the value `value` (possibly none)."""
        return [patch for patch in self.patches if patch.has_tag(key, value)]

    def patch_ids(self, quilt_id: BlobId) -> tuple[QuiltPatchId, ...]:
        """Every patch's global ID, in index order."""
        return tuple(patch.patch_id(quilt_id) for patch in self.patches)

    def sliver_indices_for_identifiers(self, identifiers: Iterable[str]) -> list[SliverIndex]:
        """The secondary slivers that hold the patches named `identifiers`."""
        return _indices(self.patches_by_identifiers(identifiers))

    def sliver_indices_for_tag(self, key: str, value: str) -> list[SliverIndex]:
        """The secondary slivers that hold the patches with tag `key` = `value`."""
        return _indices(self.patches_with_tag(key, value))


def _indices(patches: Iterable[QuiltPatch]) -> list[SliverIndex]:
    return [SliverIndex(j) for patch in patches for j in patch.sliver_indices]


# --- the symbol-size search ---------------------------------------------------------------------


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _fits(sizes: Sequence[int], n_columns: int, column_size: int) -> bool:
    return sum(_ceil_div(size, column_size) for size in sizes) <= n_columns


def quilt_symbol_size(
    sizes: Sequence[int],
    n_columns: int,
    n_rows: int,
    max_index_columns: int = MAX_INDEX_COLUMNS,
) -> int:
    """The smallest even symbol size at which every part fits in whole columns.

    `sizes[0]` is the index with its prefix, which may use at most `max_index_columns` columns;
    the others are the patches with their headers. Raises `InvalidInputError` for no parts or
    more parts than columns, `DataTooLargeError` above the maximum symbol size.
    """
    if not sizes:
        raise InvalidInputError("a quilt needs at least one blob")
    if len(sizes) > n_columns:
        raise InvalidInputError(
            f"too many blobs for one quilt: {len(sizes) - 1}, at most {n_columns - 1} with "
            f"{n_columns} columns (the index takes at least one)"
        )
    low = max(
        _ceil_div(sum(sizes), n_columns * n_rows),
        _ceil_div(sizes[0], n_rows * max_index_columns),
        _ceil_div(INDEX_PREFIX_LEN, n_rows),
    )
    # With this size every part fits in an equal share of the columns.
    high = _ceil_div(max(sizes), n_columns // len(sizes) * n_rows)
    while low < high:
        middle = (low + high) // 2
        if _fits(sizes, n_columns, middle * n_rows):
            high = middle
        else:
            low = middle + 1
    symbol_size = _ceil_div(low, SYMBOL_ALIGNMENT) * SYMBOL_ALIGNMENT
    assert _fits(sizes, n_columns, symbol_size * n_rows)
    if symbol_size > MAX_SYMBOL_SIZE:
        raise DataTooLargeError(
            f"the quilt is too large: it needs symbols of {symbol_size} bytes, more than the "
            f"maximum of {MAX_SYMBOL_SIZE}; store fewer or smaller blobs"
        )
    return symbol_size


# --- encoding -----------------------------------------------------------------------------------


def patch_prefix(blob: QuiltStoreBlob) -> bytes:
    """The 6-byte header and the identifier and tags extensions written before a patch's data."""
    identifier = _string_bcs(blob.identifier)
    if len(identifier) > MAX_IDENTIFIER_BCS_BYTES:
        raise InvalidInputError(
            f"identifier too long for a quilt: its BCS form is {len(identifier)} bytes, at most "
            f"{MAX_IDENTIFIER_BCS_BYTES}"
        )
    extensions = Writer().u16(len(identifier)).fixed(identifier)
    mask = 0
    if blob.tags:
        tags = _tags_bcs(blob.tags)
        if len(tags) > MAX_TAGS_BCS_BYTES:
            raise InvalidInputError(
                f"tags of {blob.identifier[:60]!r} are too large: {len(tags)} bytes of BCS, at "
                f"most {MAX_TAGS_BCS_BYTES}"
            )
        extensions.u16(len(tags)).fixed(tags)
        mask |= TAGS_MASK_BIT
    body = extensions.finish()
    length = len(body) + len(blob.data)
    if length > MAX_PATCH_BODY_BYTES:
        raise DataTooLargeError(
            f"blob {blob.identifier[:60]!r} is too large for a quilt: {length} bytes with its "
            f"identifier and tags, at most {MAX_PATCH_BODY_BYTES} (the header's u32 length)"
        )
    header = Writer().u8(QUILT_VERSION_V1).u32(length).u8(mask).finish()
    return header + body


@dataclass(frozen=True, slots=True)
class Quilt:
    """A QuiltV1: the blob bytes (row-major p x s matrix), its symbol size and its index."""

    data: bytes = field(repr=False)
    n_shards: int
    symbol_size: int
    index: QuiltIndex

    @property
    def column_size(self) -> int:
        """Bytes per column (per secondary sliver): p symbols."""
        return EncodingParams(self.n_shards).n_primary_source_symbols * self.symbol_size

    @classmethod
    def from_bytes(cls, data: bytes, n_shards: int) -> Quilt:
        """Parse a quilt from the bytes of its blob, decoding and checking the index."""
        params = EncodingParams(n_shards)
        p, s = params.n_primary_source_symbols, params.n_secondary_source_symbols
        if not data or len(data) % (p * s):
            raise DecodeError(
                f"a quilt for {n_shards} shards fills a {p} x {s} matrix of symbols; "
                f"{len(data)} bytes are not a whole, non-empty one"
            )
        symbol_size = len(data) // (p * s)
        columns = QuiltColumns.from_column_major(_transpose(data, p, s, symbol_size), s)
        return cls(bytes(data), n_shards, symbol_size, decode_quilt_index(columns))

    def columns(self) -> QuiltColumns:
        """The quilt's columns, every one present."""
        params = EncodingParams(self.n_shards)
        p, s = params.n_primary_source_symbols, params.n_secondary_source_symbols
        return QuiltColumns.from_column_major(_transpose(self.data, p, s, self.symbol_size), s)

    def reader(self, quilt_id: BlobId | None = None) -> QuiltReader:
        """A reader of this quilt's patches (`quilt_id` lets it check patch IDs)."""
        return QuiltReader(self.index, self.columns(), quilt_id)


def _transpose(data: bytes, rows: int, columns: int, symbol_size: int) -> bytes:
    """Swap row-major and column-major order of a matrix of symbols."""
    matrix = np.frombuffer(data, dtype=np.uint8).reshape(rows, columns, symbol_size)
    return matrix.transpose(1, 0, 2).tobytes()


def construct_quilt(blobs: Iterable[QuiltStoreBlob], n_shards: int) -> Quilt:
    """Lay out `blobs` as a QuiltV1 for `n_shards` shards (Walrus's `construct_quilt`).

    Raises `InvalidInputError` for no blobs, duplicate identifiers, too many blobs or oversized
    identifiers or tags, and `DataTooLargeError` when the quilt exceeds the maximum symbol size.
    """
    params = EncodingParams(n_shards)
    p, s = params.n_primary_source_symbols, params.n_secondary_source_symbols
    ordered = sorted(blobs, key=lambda blob: blob.identifier)
    if not ordered:
        raise InvalidInputError("a quilt needs at least one blob")
    for before, after in itertools.pairwise(ordered):
        if before.identifier == after.identifier:
            raise InvalidInputError(
                f"duplicate identifier {before.identifier[:60]!r}: every blob in a quilt needs "
                "its own identifier"
            )
    prefixes = [patch_prefix(blob) for blob in ordered]
    # End indices are fixed-width u16, so the index's size does not depend on them.
    draft = QuiltIndex(tuple(QuiltPatch(b.identifier, 0, 1, b.tags) for b in ordered))
    index_size = INDEX_PREFIX_LEN + len(draft.to_bcs())
    sizes = [index_size] + [
        len(pre) + len(b.data) for pre, b in zip(prefixes, ordered, strict=True)
    ]
    symbol_size = quilt_symbol_size(sizes, s, p)
    column_size = p * symbol_size
    stream = bytearray(s * column_size)
    start = _ceil_div(index_size, column_size)
    assert start <= MAX_INDEX_COLUMNS
    patches = []
    for prefix, blob, size in zip(prefixes, ordered, sizes[1:], strict=True):
        offset = start * column_size
        stream[offset : offset + len(prefix)] = prefix
        stream[offset + len(prefix) : offset + size] = blob.data
        end = start + _ceil_div(size, column_size)
        patches.append(QuiltPatch(blob.identifier, start, end, blob.tags))
        start = end
    index = QuiltIndex(tuple(patches))
    serialized = index.to_bcs()
    prefix = Writer().u8(QUILT_VERSION_V1).u32(len(serialized)).finish()
    stream[:index_size] = prefix + serialized
    data = _transpose(bytes(stream), s, p, symbol_size)
    return Quilt(data, n_shards, symbol_size, index)


@dataclass(frozen=True, slots=True)
class EncodedQuilt:
    """A quilt encoded as a Walrus blob: its layout, its slivers and metadata, its patch IDs."""

    quilt: Quilt
    encoded: EncodedBlob = field(repr=False)

    @property
    def blob_id(self) -> BlobId:
        """The quilt's blob ID (the quilt ID)."""
        return self.encoded.metadata.blob_id

    def patch_ids(self) -> tuple[QuiltPatchId, ...]:
        """Every patch's global ID, in index order."""
        return self.quilt.index.patch_ids(self.blob_id)


def encode_quilt(blobs: Iterable[QuiltStoreBlob], n_shards: int) -> EncodedQuilt:
    """Construct the quilt of `blobs` and RS2-encode it (Walrus's `encode_with_metadata`)."""
    quilt = construct_quilt(blobs, n_shards)
    encoded = encode_blob(quilt.data, n_shards)
    assert encoded.layout.symbol_size == quilt.symbol_size
    return EncodedQuilt(quilt, encoded)


# --- decoding -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuiltColumns:
    """Some columns of a quilt (secondary slivers by index), read as one column-major stream."""

    column_size: int
    n_columns: int
    columns: Mapping[int, bytes | memoryview] = field(repr=False)

    def __post_init__(self) -> None:
        if self.column_size <= 0:
            raise ValueError(f"column size must be positive, got {self.column_size}")
        for index, column in self.columns.items():
            if not 0 <= index < self.n_columns or len(column) != self.column_size:
                raise ValueError(f"column {index} is not one of {self.n_columns} columns")

    @classmethod
    def from_column_major(cls, stream: bytes, n_columns: int) -> QuiltColumns:
        """All `n_columns` columns of a quilt given in column-major order."""
        size = len(stream) // n_columns
        view = memoryview(stream)
        return cls(size, n_columns, {j: view[j * size : (j + 1) * size] for j in range(n_columns)})

    def missing(self, indices: Iterable[int]) -> list[SliverIndex]:
        """The secondary slivers among `indices` that were not given."""
        return [SliverIndex(j) for j in indices if j not in self.columns]

    def read(self, start_column: int, skip: int, count: int, what: str) -> bytes:
        """`count` bytes from column `start_column` on, after skipping `skip` bytes."""
        if count == 0:
            return b""
        first = start_column + skip // self.column_size
        stop = start_column + _ceil_div(skip + count, self.column_size)
        if stop > self.n_columns:
            raise DecodeError(
                f"{what} runs past the end of the quilt: it needs column {stop - 1} of "
                f"{self.n_columns}"
            )
        missing = self.missing(range(first, stop))
        if missing:
            raise NotEnoughSymbolsError(
                f"reading {what} needs secondary slivers {_ranges(missing)} that were not given"
            )
        joined = b"".join(self.columns[j] for j in range(first, stop))
        offset = skip % self.column_size
        return joined[offset : offset + count]


def _ranges(indices: Sequence[int]) -> str:
    """Sliver indices for people: "0-3, 7"."""
    parts: list[str] = []
    run_start = previous = indices[0]
    for index in [*indices[1:], None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        parts.append(str(run_start) if run_start == previous else f"{run_start}-{previous}")
        if index is not None:
            run_start = previous = index
    return ", ".join(parts)


def _index_prefix(prefix: bytes, column_size: int) -> int:
    """Check the quilt version and return the serialized index's size."""
    if prefix[0] != QUILT_VERSION_V1:
        raise DecodeError(
            f"not a QuiltV1: quilt version byte {prefix[0]}, expected {QUILT_VERSION_V1}"
        )
    size = int.from_bytes(prefix[1:INDEX_PREFIX_LEN], "little")
    limit = MAX_INDEX_COLUMNS * column_size - INDEX_PREFIX_LEN
    if size > limit:
        raise DecodeError(
            f"quilt index of {size} bytes exceeds the maximum of {limit} "
            f"({MAX_INDEX_COLUMNS} columns of {column_size} bytes less the prefix)"
        )
    return size


def index_sliver_indices(first_column: bytes) -> range:
    """The secondary slivers that hold the quilt index, from secondary sliver 0 alone."""
    if len(first_column) < INDEX_PREFIX_LEN:
        raise DecodeError(f"a quilt's first column holds at least {INDEX_PREFIX_LEN} bytes")
    size = _index_prefix(first_column[:INDEX_PREFIX_LEN], len(first_column))
    return range(_ceil_div(INDEX_PREFIX_LEN + size, len(first_column)))


def decode_quilt_index(columns: QuiltColumns) -> QuiltIndex:
    """Decode the index from the quilt's first columns (Walrus's `decode_quilt_index`)."""
    prefix = columns.read(0, 0, INDEX_PREFIX_LEN, "the quilt index prefix")
    size = _index_prefix(prefix, columns.column_size)
    data = columns.read(0, INDEX_PREFIX_LEN, size, "the quilt index")
    first_start = _ceil_div(INDEX_PREFIX_LEN + size, columns.column_size)
    return QuiltIndex.from_bcs(data, first_start, columns.n_columns)


def decode_patch(columns: QuiltColumns, internal_id: QuiltPatchInternalId) -> QuiltStoreBlob:
    """Decode the patch in columns `internal_id`, which must hold it entirely."""
    start, end = internal_id.start_index, internal_id.end_index
    header = columns.read(start, 0, PATCH_HEADER_LEN, "a patch header")
    if header[0] != QUILT_VERSION_V1:
        raise DecodeError(
            f"patch at column {start}: header version byte {header[0]}, expected {QUILT_VERSION_V1}"
        )
    length = int.from_bytes(header[1:5], "little")
    room = (end - start) * columns.column_size - PATCH_HEADER_LEN
    if length > room:
        raise DecodeError(
            f"patch at columns [{start}, {end}) claims {length} bytes, its columns hold {room}"
        )
    body = columns.read(start, PATCH_HEADER_LEN, length, "a patch")
    reader = Reader(body)
    id_size = reader.u16("identifier size")
    identifier_reader = Reader(reader.fixed(id_size, "identifier"))
    identifier = _read_string(identifier_reader, "identifier")
    identifier_reader.finish("identifier")
    tags: dict[str, str] = {}
    if header[5] & TAGS_MASK_BIT:
        tags_reader = Reader(reader.fixed(reader.u16("tags size"), "tags"))
        tags = _read_tags(tags_reader)
        tags_reader.finish("tags")
    data = reader.fixed(reader.remaining, "patch data")
    try:
        return QuiltStoreBlob(identifier, data, tags)
    except InvalidInputError as exc:
        raise DecodeError(f"patch at column {start}: {exc}") from None


@dataclass(frozen=True, slots=True)
class QuiltReader:
    """Reads patches from a quilt's index and (some of) its columns.

    Made from a whole quilt (`Quilt.reader`) or from verified secondary slivers (`from_slivers`),
    which need only the columns of the patches read (and of the index, unless it is given).
    """

    index: QuiltIndex
    columns: QuiltColumns = field(repr=False)
    quilt_id: BlobId | None = None

    @classmethod
    def from_slivers(
        cls,
        metadata: VerifiedBlobMetadataWithId,
        slivers: Iterable[VerifiedSliver],
        index: QuiltIndex | None = None,
    ) -> QuiltReader:
        """A reader over verified secondary slivers of the quilt `metadata` describes.

        Slivers past the s source columns (repair slivers) are ignored. Without `index`, the
        index is decoded from the slivers, which then must include `index_sliver_indices`.
        """
        params = metadata.params
        s = params.n_secondary_source_symbols
        given: dict[int, bytes] = {}
        for verified in slivers:
            if verified.blob_id != metadata.blob_id.raw:
                raise ValueError("a sliver of another blob was passed to QuiltReader")
            if verified.sliver.sliver_type is not SliverType.SECONDARY:
                raise ValueError("a quilt's columns are its secondary slivers")
            if verified.sliver.index < s:
                given[verified.sliver.index] = verified.sliver.data
        column_size = params.n_primary_source_symbols * metadata.symbol_size
        columns = QuiltColumns(column_size, s, given)
        if index is None:
            index = decode_quilt_index(columns)
        return cls(index, columns, metadata.blob_id)

    def patch(self, identifier: str) -> QuiltStoreBlob:
        """The patch named `identifier`."""
        return decode_patch(self.columns, self.index.patch(identifier).internal_id)

    def patches_by_identifiers(self, identifiers: Iterable[str]) -> list[QuiltStoreBlob]:
        """The patches named `identifiers`, in index order."""
        found = self.index.patches_by_identifiers(identifiers)
        return [decode_patch(self.columns, patch.internal_id) for patch in found]

    def patches_with_tag(self, key: str, value: str) -> list[QuiltStoreBlob]:
        """The patches with tag `key` = `value`, in index order (possibly none)."""
        found = self.index.patches_with_tag(key, value)
        return [decode_patch(self.columns, patch.internal_id) for patch in found]

    def all_patches(self) -> list[QuiltStoreBlob]:
        """Every patch, in index order."""
        return [decode_patch(self.columns, patch.internal_id) for patch in self.index.patches]

    def patch_by_internal_id(self, internal_id: QuiltPatchInternalId | bytes) -> QuiltStoreBlob:
        """The patch in the columns of `internal_id` (5 bytes or parsed)."""
        if isinstance(internal_id, bytes):
            internal_id = QuiltPatchInternalId.from_bytes(internal_id)
        return decode_patch(self.columns, internal_id)

    def patch_by_id(self, patch_id: QuiltPatchId | str) -> QuiltStoreBlob:
        """The patch named by a global patch ID, which must belong to this quilt if known."""
        if isinstance(patch_id, str):
            patch_id = QuiltPatchId.parse(patch_id)
        if self.quilt_id is not None and patch_id.quilt_id != self.quilt_id:
            raise InvalidInputError(
                f"patch ID {patch_id} belongs to quilt {patch_id.quilt_id}, not {self.quilt_id}"
            )
        return decode_patch(self.columns, patch_id.internal_id)
