"""A malicious writer's forgery: a blob whose slivers verify one by one but are not one codeword.

Theory of operation (spec/walrus-system.md 2.8 and 5, "Inconsistent encoding by a malicious
writer"; spec/encoding.md 10). The writer encodes the blob honestly, then replaces one primary
sliver by noise and commits to the noise in the metadata (`tampered_encoding`): every sliver
still verifies against the metadata, and the blob ID is the hash of that metadata, but the
secondary slivers and the other primary ones were encoded from the true data, so a node that
recovers the forged sliver from its peers' symbols decodes something else and proves it
(`walruspy.core.inconsistency`), and a reader that decodes through it fails its consistency
check.

`InconsistentEncoder` is that writer as an encoder for the client's own store pipeline: it hands
out the honest slivers under the forged metadata, with the forged sliver a source row that
holds blob data. So the forged sliver itself is never uploaded (the node whose shard holds that
pair refuses the honest one, which does not match the metadata), no node can ever serve it,
and every full read (client or aggregator) must go through the honest symbols of that row and
fail the Default check: such a blob never reads as data. Shared by the tests of the core, the
node and the devnet, and by the simulator's malicious writer.
"""

from __future__ import annotations

import dataclasses
import random

from walruspy.core.encoding import EncodedBlob, EncodingLayout, encode_blob
from walruspy.core.metadata import (
    BlobMetadata,
    SliverPairMetadata,
    UnverifiedBlobMetadataWithId,
    VerifiedBlobMetadataWithId,
)
from walruspy.core.slivers import SliverData
from walruspy.core.types import SliverIndex, SliverType
from walruspy.workers import EncoderPool

__all__ = ["InconsistentEncoder", "data_rows", "tampered_encoding"]

#: Bytes of noise the writer repeats over the forged sliver.
NOISE_BYTES = 8


def tampered_encoding(
    blob: bytes, n: int, pair: int, noise: bytes
) -> tuple[EncodedBlob, VerifiedBlobMetadataWithId, SliverData]:
    """Encode `blob`, then replace primary sliver `pair` by noise and commit to it in the metadata.

    This is what a malicious writer does: every sliver still verifies against the metadata, but
    the slivers are not one codeword. Returns the honest encoding, the forged metadata and the
    forged sliver.
    """
    enc = encode_blob(blob, n)
    honest = enc.primary_sliver(pair)
    fake_data = (noise * (len(honest.data) // max(len(noise), 1) + 1))[: len(honest.data)]
    if fake_data == honest.data:
        fake_data = bytes(b ^ 0xFF for b in fake_data)
    fake = SliverData(SliverType.PRIMARY, SliverIndex(pair), honest.symbol_size, fake_data)
    hashes = list(enc.metadata.metadata.hashes)
    hashes[pair] = SliverPairMetadata(fake.merkle_root(n), hashes[pair].secondary_hash)
    forged = BlobMetadata(enc.metadata.metadata.encoding_type, len(blob), tuple(hashes))
    metadata = UnverifiedBlobMetadataWithId(forged.compute_blob_id(), forged).verify(n)
    return enc, metadata, fake


def data_rows(n_shards: int, blob_length: int) -> int:
    """How many source rows (primary source slivers) hold bytes of a blob of that length; the
    rest of the p rows are padding only."""
    layout = EncodingLayout.for_blob(n_shards, blob_length)
    row_bytes = layout.params.n_secondary_source_symbols * layout.symbol_size
    return max(1, -(-blob_length // row_bytes))


class InconsistentEncoder(EncoderPool):
    """An encoder (for `ClientEnv.encoder`) that forges one data row of every blob it encodes
    and hands out the honest slivers under the forged metadata (module docstring). The row and
    the noise are drawn from `rng`; `forged_pairs` records the row forged for each blob ID."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__(0)
        self._rng = rng
        self.forged_pairs: dict[bytes, int] = {}

    def encode(self, blob: bytes | memoryview, n_shards: int) -> EncodedBlob:
        """The honest slivers of `blob` under metadata committing to a forged data row."""
        pair = self._rng.randrange(data_rows(n_shards, len(blob)))
        noise = self._rng.randbytes(NOISE_BYTES)
        encoded, metadata, _ = tampered_encoding(bytes(blob), n_shards, pair, noise)
        self.forged_pairs[metadata.blob_id.raw] = pair
        return dataclasses.replace(encoded, metadata=metadata)
