"""Blob metadata: the per-pair sliver hashes that bind every sliver to the blob ID.

Theory of operation (spec/encoding.md sections 6 and 8): `BlobMetadata::V1` holds the encoding
type, the unencoded length and, per sliver pair i, the Merkle root of primary sliver i and of
secondary sliver n-1-i (each over the sliver expanded to n symbols). The root hash is the Merkle
root over the n leaves `primary_hash_i ‖ secondary_hash_i`, and the blob ID hashes it with the
type and length. Metadata from the network is `UnverifiedBlobMetadataWithId`; only `verify()`
(or the encoder, which computed it) makes a `VerifiedBlobMetadataWithId`, and storing, serving
and decoding accept only that.

BCS of `BlobMetadataWithId` (what nodes serve):
    blob_id[32] ‖ 0x00 (V1) ‖ encoding_type u8 ‖ unencoded_length u64 ‖ ULEB128(n)
      ‖ n × ( Node(primary) ‖ Node(secondary) ),   Node = 0x01 ‖ 32 bytes
A node's PUT body is the `BlobMetadata` alone (without the leading blob ID).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from walruspy.core.bcs import Reader, Writer
from walruspy.core.blob_id import BlobId
from walruspy.core.errors import DecodeError, VerificationError
from walruspy.core.merkle import MerkleTree, leaf_hash
from walruspy.core.params import DIGEST_LEN, MAX_N_SHARDS, RS2_ENCODING_TYPE, EncodingParams
from walruspy.core.types import SliverPairIndex, SliverType

_METADATA_V1 = 0
_NODE_DIGEST = 1


@dataclass(frozen=True, slots=True)
class SliverPairMetadata:
    """The hashes of one sliver pair: primary sliver i and secondary sliver n-1-i."""

    primary_hash: bytes
    secondary_hash: bytes

    def __post_init__(self) -> None:
        if len(self.primary_hash) != DIGEST_LEN or len(self.secondary_hash) != DIGEST_LEN:
            raise ValueError("sliver hashes are 32 bytes")

    def hash_of(self, sliver_type: SliverType) -> bytes:
        """The hash of the pair's sliver of `sliver_type`."""
        return self.primary_hash if sliver_type is SliverType.PRIMARY else self.secondary_hash


@dataclass(frozen=True, slots=True)
class BlobMetadata:
    """`BlobMetadata::V1`: encoding type, unencoded length and one entry per sliver pair."""

    encoding_type: int
    unencoded_length: int
    hashes: tuple[SliverPairMetadata, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.unencoded_length < 1 << 64:
            raise ValueError(f"unencoded length {self.unencoded_length} is not a u64")
        if not 0 <= self.encoding_type < 256:
            raise ValueError(f"encoding type {self.encoding_type} is not a u8")

    @property
    def n_shards(self) -> int:
        """The number of sliver pairs the metadata describes."""
        return len(self.hashes)

    def root_hash(self) -> bytes:
        """The Merkle root over the `primary_hash ‖ secondary_hash` leaves."""
        leaves = [leaf_hash(pair.primary_hash + pair.secondary_hash) for pair in self.hashes]
        return MerkleTree(leaves).root

    def compute_blob_id(self) -> BlobId:
        """The blob ID these metadata commit to."""
        return BlobId.from_metadata(self.encoding_type, self.unencoded_length, self.root_hash())

    def write(self, writer: Writer) -> None:
        """Append the BCS form of `BlobMetadata` (enum tag V1, then the fields)."""
        writer.uleb128(_METADATA_V1).u8(self.encoding_type).u64(self.unencoded_length)
        writer.uleb128(len(self.hashes))
        for pair in self.hashes:
            writer.u8(_NODE_DIGEST).fixed(pair.primary_hash)
            writer.u8(_NODE_DIGEST).fixed(pair.secondary_hash)

    def to_bcs(self) -> bytes:
        """The BCS bytes of `BlobMetadata` (a node's PUT metadata body)."""
        writer = Writer()
        self.write(writer)
        return writer.finish()

    @classmethod
    def read(cls, reader: Reader) -> BlobMetadata:
        """Read `BlobMetadata`, strictly (unknown versions and encoding types fail)."""
        version = reader.uleb128("metadata version", 255)
        if version != _METADATA_V1:
            raise DecodeError(f"unsupported blob metadata version {version}")
        encoding_type = reader.u8("encoding type")
        if encoding_type != RS2_ENCODING_TYPE:
            raise DecodeError(
                f"unsupported encoding type {encoding_type}: only RS2 ({RS2_ENCODING_TYPE}) exists"
            )
        length = reader.u64("unencoded length")
        count = reader.uleb128("number of sliver pairs", MAX_N_SHARDS)
        if count * _PAIR_BYTES > reader.remaining:
            raise DecodeError(f"truncated metadata: {count} sliver pairs announced")
        # Every node must be a digest (tag 1, then 32 bytes): the tags are checked at once, and
        # only a table that fails is read node by node, to name the first bad tag.
        table = reader.fixed(count * _PAIR_BYTES, "sliver hashes")
        if table[::_NODE_BYTES] == bytes([_NODE_DIGEST]) * (2 * count):
            hashes = tuple(
                SliverPairMetadata(
                    table[k + 1 : k + _NODE_BYTES], table[k + _NODE_BYTES + 1 : k + _PAIR_BYTES]
                )
                for k in range(0, len(table), _PAIR_BYTES)
            )
        else:
            nodes = Reader(table)
            hashes = tuple(
                SliverPairMetadata(_read_node(nodes), _read_node(nodes)) for _ in range(count)
            )
        return cls(encoding_type, length, hashes)

    @classmethod
    def from_bcs(cls, data: bytes) -> BlobMetadata:
        """Parse the BCS bytes of `BlobMetadata` with nothing after them."""
        reader = Reader(data)
        value = cls.read(reader)
        reader.finish("blob metadata")
        return value


#: BCS bytes of a `Node::Digest` and of a pair of them.
_NODE_BYTES = DIGEST_LEN + 1
_PAIR_BYTES = 2 * _NODE_BYTES


def _read_node(reader: Reader) -> bytes:
    tag = reader.u8("sliver hash tag")
    if tag != _NODE_DIGEST:
        raise DecodeError(f"sliver hash must be a digest node (tag 1), got tag {tag}")
    return reader.fixed(DIGEST_LEN, "sliver hash")


@dataclass(frozen=True, slots=True)
class UnverifiedBlobMetadataWithId:
    """Metadata with the blob ID it claims to belong to, as received: not yet checked."""

    blob_id: BlobId
    metadata: BlobMetadata

    def to_bcs(self) -> bytes:
        """The BCS bytes of `BlobMetadataWithId`."""
        writer = Writer().fixed(self.blob_id.raw)
        self.metadata.write(writer)
        return writer.finish()

    @classmethod
    def from_bcs(cls, data: bytes) -> UnverifiedBlobMetadataWithId:
        """Parse `BlobMetadataWithId` strictly."""
        reader = Reader(data)
        blob_id = BlobId(reader.fixed(DIGEST_LEN, "blob ID"))
        metadata = BlobMetadata.read(reader)
        reader.finish("blob metadata with ID")
        return cls(blob_id, metadata)

    def verify(self, n_shards: int) -> VerifiedBlobMetadataWithId:
        """Check the metadata for a committee of `n_shards` shards (spec/encoding.md section 8).

        Raises `VerificationError` naming the failed check.
        """
        params = EncodingParams(n_shards)
        if self.metadata.n_shards != n_shards:
            raise VerificationError(
                f"metadata has {self.metadata.n_shards} sliver pairs, the committee "
                f"{n_shards} shards"
            )
        if self.metadata.unencoded_length > params.max_blob_size:
            raise VerificationError(
                f"unencoded length {self.metadata.unencoded_length} exceeds the maximum blob size "
                f"{params.max_blob_size} for {n_shards} shards"
            )
        computed = self.metadata.compute_blob_id()
        if computed != self.blob_id:
            raise VerificationError(
                f"metadata hash to blob ID {computed}, not to the claimed {self.blob_id}"
            )
        return VerifiedBlobMetadataWithId(self.blob_id, self.metadata, _token=_VERIFIED)


_VERIFIED = object()


@dataclass(frozen=True, slots=True)
class VerifiedBlobMetadataWithId:
    """Metadata known to hash to `blob_id` for its shard count.

    Made only by `UnverifiedBlobMetadataWithId.verify()` or by the encoder that computed it.
    """

    blob_id: BlobId
    metadata: BlobMetadata
    _token: object = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._token is not _VERIFIED:
            raise TypeError("VerifiedBlobMetadataWithId is made only by verify() or the encoder")

    @property
    def params(self) -> EncodingParams:
        """The encoding parameters of the blob's shard count."""
        return EncodingParams(self.metadata.n_shards)

    @property
    def n_shards(self) -> int:
        """The number of shards (and sliver pairs)."""
        return self.metadata.n_shards

    @property
    def unencoded_length(self) -> int:
        """The blob's length in bytes."""
        return self.metadata.unencoded_length

    @property
    def symbol_size(self) -> int:
        """The symbol size of the blob's slivers."""
        return self.params.symbol_size(self.metadata.unencoded_length)

    def sliver_hash(self, pair: SliverPairIndex, sliver_type: SliverType) -> bytes:
        """The committed hash of the `sliver_type` sliver of pair `pair`."""
        return self.metadata.hashes[pair].hash_of(sliver_type)

    def to_bcs(self) -> bytes:
        """The BCS bytes of `BlobMetadataWithId`."""
        return UnverifiedBlobMetadataWithId(self.blob_id, self.metadata).to_bcs()

    def unverified(self) -> UnverifiedBlobMetadataWithId:
        """The same metadata, as it travels on the wire."""
        return UnverifiedBlobMetadataWithId(self.blob_id, self.metadata)


def trust_computed_metadata(metadata: BlobMetadata) -> VerifiedBlobMetadataWithId:
    """Wrap metadata that this process computed itself (the encoder) as verified."""
    return VerifiedBlobMetadataWithId(metadata.compute_blob_id(), metadata, _token=_VERIFIED)
