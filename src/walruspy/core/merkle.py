"""Merkle trees over BLAKE2b-256, exactly as walrus-core's `merkle.rs` (spec/encoding.md section 6).

Theory of operation: a leaf of data `d` hashes to H(0x00 ‖ d), an inner node of (a, b) to
H(0x01 ‖ a ‖ b). Levels are built bottom up; a level with more than one node and an odd count
gets an all-zero 32-byte `Empty` node as the last node's sibling (used as is, not hashed). The
root of one leaf is its hash, the root of no leaves is 32 zero bytes. A proof lists the siblings
from the bottom up; padding siblings are `Empty` in the BCS form (`Node::Empty` = 0x00,
`Node::Digest` = 0x01 ‖ 32 bytes), which hash the same as 32 zero bytes.

Two APIs: the scalar one (`MerkleTree`, `MerkleProof`) for proofs and single trees, and the batched
one (`leaf_hashes`, `merkle_roots`) that hashes many same-sized trees level by level over numpy
arrays. The batched form exists because the encoder hashes n^2 leaves and about 2n^2 inner nodes per
blob, and one Python call per hash is the floor; everything else is done on whole arrays.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from walruspy.core import blake2_batch
from walruspy.core.bcs import Reader, Writer
from walruspy.core.errors import DecodeError, VerificationError
from walruspy.core.params import DIGEST_LEN

LEAF_PREFIX = b"\x00"
INNER_PREFIX = b"\x01"
EMPTY_NODE = bytes(DIGEST_LEN)
#: A proof never needs more siblings than a tree of 2^16 leaves (n_shards is a u16).
MAX_PROOF_LENGTH = 16

U8Array = npt.NDArray[np.uint8]


def leaf_hash(data: bytes) -> bytes:
    """H(0x00 ‖ data)."""
    h = hashlib.blake2b(LEAF_PREFIX, digest_size=DIGEST_LEN)
    h.update(data)
    return h.digest()


def inner_hash(left: bytes, right: bytes) -> bytes:
    """H(0x01 ‖ left ‖ right)."""
    return hashlib.blake2b(INNER_PREFIX + left + right, digest_size=DIGEST_LEN).digest()


def max_path_length(n_leaves: int) -> int:
    """ceil(log2(n_leaves)): the length of every proof in a tree of `n_leaves` leaves."""
    return max(n_leaves - 1, 0).bit_length()


class MerkleTree:
    """A Merkle tree kept level by level, for roots and proofs."""

    __slots__ = ("_levels", "n_leaves")

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        #: How many leaves the tree was built over (padding excluded).
        self.n_leaves = len(leaf_hashes)
        levels = [list(leaf_hashes)]
        while len(levels[-1]) > 1:
            level = levels[-1]
            if len(level) % 2:
                level.append(EMPTY_NODE)
            levels.append([inner_hash(level[k], level[k + 1]) for k in range(0, len(level), 2)])
        self._levels = levels

    @classmethod
    def from_leaf_array(cls, leaf_hash_array: U8Array) -> MerkleTree:
        """The tree over (L, 32) leaf hashes, each level hashed as one batch
        (`hash_rows_prefixed`): the same tree as `MerkleTree`'s, without a call per node."""
        if len(leaf_hash_array) <= 1:
            return cls([row.tobytes() for row in leaf_hash_array])
        tree = cls.__new__(cls)
        tree.n_leaves = len(leaf_hash_array)
        levels: list[list[bytes]] = []
        level = leaf_hash_array
        while len(level) > 1:
            flat = level.tobytes()
            nodes = [flat[k : k + DIGEST_LEN] for k in range(0, len(flat), DIGEST_LEN)]
            if len(nodes) % 2:
                nodes.append(EMPTY_NODE)
                level = np.concatenate([level, np.zeros((1, DIGEST_LEN), dtype=np.uint8)])
            levels.append(nodes)
            level = hash_rows_prefixed(level.reshape(-1, 2 * DIGEST_LEN), INNER_PREFIX)
        levels.append([level[0].tobytes()])
        tree._levels = levels
        return tree

    @classmethod
    def from_leaves(cls, leaves: Sequence[bytes]) -> MerkleTree:
        """Build the tree over raw leaf data (hashed with the leaf prefix)."""
        return cls([leaf_hash(leaf) for leaf in leaves])

    @property
    def root(self) -> bytes:
        """The root; 32 zero bytes for an empty tree."""
        top = self._levels[-1]
        return top[0] if top else EMPTY_NODE

    def proof(self, leaf_index: int) -> MerkleProof:
        """The proof that leaf `leaf_index` is in this tree."""
        if not 0 <= leaf_index < self.n_leaves:
            raise IndexError(f"leaf index {leaf_index} out of range for {self.n_leaves} leaves")
        path: list[bytes | None] = []
        index = leaf_index
        for level in self._levels[:-1]:
            sibling = level[index ^ 1]
            # Only the appended padding node is Walrus's `Node::Empty`.
            is_padding = index ^ 1 == len(level) - 1 and sibling is EMPTY_NODE
            path.append(None if is_padding else sibling)
            index //= 2
        return MerkleProof(tuple(path))


@dataclass(frozen=True, slots=True)
class MerkleProof:
    """The siblings on the path from a leaf to the root; `None` is Walrus's `Node::Empty`."""

    path: tuple[bytes | None, ...]

    def __post_init__(self) -> None:
        if len(self.path) > MAX_PROOF_LENGTH:
            raise VerificationError(f"Merkle proof of {len(self.path)} nodes is too long")
        for node in self.path:
            if node is not None and len(node) != DIGEST_LEN:
                raise ValueError(f"Merkle node must be {DIGEST_LEN} bytes, got {len(node)}")

    def compute_root(self, leaf_data: bytes, leaf_index: int) -> bytes:
        """The root this proof implies for `leaf_data` at `leaf_index`."""
        if leaf_index >> len(self.path):
            raise VerificationError(
                f"leaf index {leaf_index} does not fit a proof of {len(self.path)} levels"
            )
        node = leaf_hash(leaf_data)
        index = leaf_index
        for sibling in self.path:
            other = EMPTY_NODE if sibling is None else sibling
            node = inner_hash(node, other) if index % 2 == 0 else inner_hash(other, node)
            index //= 2
        return node

    def verify(self, root: bytes, n_leaves: int, leaf_data: bytes, leaf_index: int) -> None:
        """Check that `leaf_data` is leaf `leaf_index` of the tree with `root`.

        Raises `VerificationError` naming the failed check.
        """
        if len(self.path) > max_path_length(n_leaves):
            raise VerificationError(
                f"Merkle proof has {len(self.path)} nodes, more than the "
                f"{max_path_length(n_leaves)} of a tree with {n_leaves} leaves"
            )
        if self.compute_root(leaf_data, leaf_index) != root:
            raise VerificationError("Merkle proof does not lead to the expected root")

    def write(self, writer: Writer) -> None:
        """Append the BCS form: `Vec<Node>`."""
        writer.uleb128(len(self.path))
        for node in self.path:
            if node is None:
                writer.u8(0)
            else:
                writer.u8(1).fixed(node)

    @classmethod
    def read(cls, reader: Reader) -> MerkleProof:
        """Read the BCS form, strictly."""
        count = reader.uleb128("Merkle proof length", MAX_PROOF_LENGTH)
        path: list[bytes | None] = []
        for _ in range(count):
            tag = reader.u8("Merkle node tag")
            if tag == 0:
                path.append(None)
            elif tag == 1:
                path.append(reader.fixed(DIGEST_LEN, "Merkle node digest"))
            else:
                raise DecodeError(f"invalid Merkle node tag {tag}")
        return cls(tuple(path))


# --- batched hashing over numpy arrays -------------------------------------------------------


def hash_rows(rows: U8Array) -> U8Array:
    """BLAKE2b-256 of every row of a 2-D uint8 array; returns an (N, 32) array."""
    count, width = rows.shape
    if count == 0:
        return np.empty((0, DIGEST_LEN), dtype=np.uint8)
    data = rows.tobytes()
    blake2b = hashlib.blake2b
    digests = [
        blake2b(data[k : k + width], digest_size=DIGEST_LEN).digest()
        for k in range(0, len(data), width)
    ]
    return np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(count, DIGEST_LEN)


#: Once a process has asked for this many hashes, it switches to the compiled loop
#: (`blake2_batch`), whose first use costs about 0.4 s (importing numba, loading the compiled code
#: from its cache): hashlib does this many in about 0.1 s. A process that hashes this much (an
#: encoder at n = 1000, a node verifying slivers, a reader) goes on hashing, and the loop is
#: about ten times faster than a Python call per hash; a short command at n = 100 never pays for
#: it. With the loop built ahead of time for this machine, loading it is free: no waiting then.
COMPILED_AFTER_HASHES = 100_000
_hashes_asked = 0


def _compiled_worthwhile(count: int) -> bool:
    """Whether `count` more hashes go to the compiled loop (see `COMPILED_AFTER_HASHES`)."""
    global _hashes_asked  # noqa: PLW0603 (a per-process tally; a lost update only delays it)
    _hashes_asked += count
    return _hashes_asked >= COMPILED_AFTER_HASHES or blake2_batch.starts_quickly()


def hash_rows_prefixed(rows: U8Array, prefix: bytes) -> U8Array:
    """BLAKE2b-256 of `prefix + row` for every row of a 2-D uint8 array (a one-byte prefix)."""
    return _hash_prefixed(rows, prefix, compiled=_compiled_worthwhile(rows.shape[0]))


def _hash_prefixed(rows: U8Array, prefix: bytes, *, compiled: bool) -> U8Array:
    """`hash_rows_prefixed` by the compiled loop, or by hashlib over prefixed copies."""
    if compiled:
        return blake2_batch.hash_rows_prefixed(rows, prefix[0])
    count, width = rows.shape
    prefixed = np.empty((count, width + 1), dtype=np.uint8)
    prefixed[:, 0] = prefix[0]
    prefixed[:, 1:] = rows
    return hash_rows(prefixed)


def leaf_hashes(symbols: U8Array) -> U8Array:
    """Leaf hashes of symbols: `symbols` has shape (..., symbol_size); returns (..., 32).

    The compiled loop takes symbols of every length up to `blake2_batch.LONGEST_ROW_BYTES`
    (measured on this machine, 130-byte symbols 476 MB/s against hashlib's 165, 2,000 bytes 1,112
    against 651, 46,000 bytes 983 against 771). Without it, and for longer symbols, hashlib
    hashes a symbol of at least a block in place: the call then costs less than the hashing, and
    copying the symbols into padded rows would cost more than it saves."""
    shape = symbols.shape
    width = shape[-1]
    flat = np.ascontiguousarray(symbols.reshape(-1, width))
    compiled = width <= blake2_batch.LONGEST_ROW_BYTES and _compiled_worthwhile(flat.shape[0])
    if compiled or width < blake2_batch.BLOCK_BYTES:
        digests = _hash_prefixed(flat, LEAF_PREFIX, compiled=compiled)
    else:
        data = memoryview(flat.data).cast("B")  # slices of it are views, not copies
        base = hashlib.blake2b(LEAF_PREFIX, digest_size=DIGEST_LEN)
        hashed = []
        for k in range(0, flat.size, width):
            h = base.copy()
            h.update(data[k : k + width])
            hashed.append(h.digest())
        digests = np.frombuffer(b"".join(hashed), dtype=np.uint8)
    return digests.reshape(*shape[:-1], DIGEST_LEN)


def merkle_roots(leaf_hash_array: U8Array) -> U8Array:
    """Roots of many trees at once: input (trees, leaves, 32) leaf hashes, output (trees, 32)."""
    level = leaf_hash_array
    n_trees = level.shape[0]
    if level.shape[1] == 0:
        return np.zeros((n_trees, DIGEST_LEN), dtype=np.uint8)
    while level.shape[1] > 1:
        width = level.shape[1]
        if width % 2:
            level = np.concatenate(
                [level, np.zeros((n_trees, 1, DIGEST_LEN), dtype=np.uint8)], axis=1
            )
            width += 1
        pairs = np.ascontiguousarray(level).reshape(-1, 2 * DIGEST_LEN)
        level = hash_rows_prefixed(pairs, INNER_PREFIX).reshape(n_trees, width // 2, DIGEST_LEN)
    return np.ascontiguousarray(level[:, 0, :])
