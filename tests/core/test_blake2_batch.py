"""The compiled BLAKE2b loop gives hashlib's digests, for every length and block count."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from walruspy.core import blake2_batch, merkle

#: Around every block boundary, the encoder's leaf (1 + symbol size) and inner (65) lengths.
WIDTHS = [0, 1, 2, 31, 32, 33, 63, 64, 65, 126, 127, 128, 129, 255, 256, 257, 1000, 2047, 4096]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("prefix", [0, 1, 0xFF])
def test_digests_are_hashlib_s(width: int, prefix: int) -> None:
    rng = np.random.default_rng(width * 256 + prefix)
    rows = rng.integers(0, 256, size=(9, width), dtype=np.uint8)
    digests = blake2_batch.hash_rows_prefixed(rows, prefix)
    assert digests.shape == (9, 32)
    for row, digest in zip(rows, digests, strict=True):
        expected = hashlib.blake2b(bytes([prefix]) + row.tobytes(), digest_size=32).digest()
        assert digest.tobytes() == expected


def test_many_rows_cross_the_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blake2_batch, "CHUNK_BYTES", 1024)  # one group of lanes per chunk
    rows = np.random.default_rng(7).integers(0, 256, size=(300, 64), dtype=np.uint8)
    digests = blake2_batch.hash_rows_prefixed(rows, 1)
    assert [d.tobytes() for d in digests] == [
        hashlib.blake2b(b"\x01" + r.tobytes(), digest_size=32).digest() for r in rows
    ]


def test_no_rows() -> None:
    assert blake2_batch.hash_rows_prefixed(np.empty((0, 64), np.uint8), 1).shape == (0, 32)


def test_merkle_roots_agree_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    leaves = np.random.default_rng(3).integers(0, 256, size=(3, 1000, 5), dtype=np.uint8)
    roots = {}
    for compiled in (False, True):
        monkeypatch.setattr(merkle, "_compiled_worthwhile", lambda count, c=compiled: c)
        roots[compiled] = merkle.merkle_roots(merkle.leaf_hashes(leaves)).tobytes()
    assert roots[False] == roots[True]
    tree = merkle.MerkleTree.from_leaves([leaf.tobytes() for leaf in leaves[1]])
    assert roots[True][32:64] == tree.root


def test_a_process_switches_after_enough_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merkle, "_hashes_asked", 0)
    monkeypatch.setattr(blake2_batch, "_kernel", None)
    assert not merkle._compiled_worthwhile(merkle.COMPILED_AFTER_HASHES - 1)
    assert merkle._compiled_worthwhile(1)


def test_threads_that_need_the_loop_at_once_load_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A node verifies batches in worker threads: the first two may ask for the loop together.
    monkeypatch.setattr(blake2_batch, "_kernel", None)
    rows = np.zeros((10, 64), dtype=np.uint8)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: blake2_batch.hash_rows_prefixed(rows, 1), range(8)))
    assert all((r == results[0]).all() for r in results)


@pytest.mark.parametrize("n_leaves", [0, 1, 2, 3, 4, 5, 7, 8, 9, 1000, 1001])
def test_a_tree_hashed_level_by_level_is_the_same_tree(n_leaves: int) -> None:
    leaves = np.random.default_rng(n_leaves).integers(0, 256, size=(n_leaves, 6), dtype=np.uint8)
    one_by_one = merkle.MerkleTree.from_leaves([leaf.tobytes() for leaf in leaves])
    batched = merkle.MerkleTree.from_leaf_array(merkle.leaf_hashes(leaves))
    assert (batched.root, batched.n_leaves) == (one_by_one.root, one_by_one.n_leaves)
    for index in range(n_leaves):
        assert batched.proof(index) == one_by_one.proof(index)


@pytest.mark.parametrize("width", [1, 127, 128, 200, 201, 2000])
@pytest.mark.parametrize("compiled", [False, True])
def test_leaf_hashes_of_every_symbol_length(
    monkeypatch: pytest.MonkeyPatch, width: int, compiled: bool
) -> None:
    # Symbols longer than LONGEST_ROW_BYTES (200 here) are hashed in place by hashlib.
    monkeypatch.setattr(blake2_batch, "LONGEST_ROW_BYTES", 200)
    monkeypatch.setattr(merkle, "_compiled_worthwhile", lambda count: compiled)
    symbols = np.random.default_rng(width).integers(0, 256, size=(2, 5, width), dtype=np.uint8)
    digests = merkle.leaf_hashes(symbols)
    assert digests.shape == (2, 5, 32)
    for symbol, digest in zip(symbols.reshape(-1, width), digests.reshape(-1, 32), strict=True):
        assert digest.tobytes() == merkle.leaf_hash(symbol.tobytes())
