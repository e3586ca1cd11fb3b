"""The compiled BLAKE2b loop gives hashlib's digests, for every length and block count, as
numba's JIT compiles it and as it is built ahead of time; a process takes the build only where
it may hold the GIL, and the JIT wherever the build is missing or broken."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from walruspy.core import blake2_batch, merkle

#: Around every block boundary, the encoder's leaf (1 + symbol size) and inner (65) lengths.
WIDTHS = [0, 1, 2, 31, 32, 33, 63, 64, 65, 126, 127, 128, 129, 255, 256, 257, 1000, 2047, 4096]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The loop built ahead of time (about 7 s), in a directory of this test's own; the build
    of older code that was there is gone."""
    path = blake2_batch.ahead_of_time_path()
    assert path is not None, "this machine has /proc/cpuinfo"
    directory = tmp_path_factory.mktemp("aot")
    stale = directory / "blake2_batch_aot_0123456789abcdef0123.so"
    stale.write_bytes(b"an older build")
    built = blake2_batch.build_ahead_of_time(directory / path.name)
    assert not stale.exists()
    return built


@pytest.fixture(params=["jit", "ahead of time"])
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Each way of compiling the loop, made the one this process hashes with."""
    if request.param == "jit":
        loop = blake2_batch._compile()
    else:
        loaded = blake2_batch._load_ahead_of_time(request.getfixturevalue("built"))
        assert loaded is not None
        loop = loaded
    monkeypatch.setattr(blake2_batch, "_kernel", loop)
    return loop


@pytest.mark.usefixtures("kernel")
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


@pytest.mark.usefixtures("kernel")
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
    monkeypatch.setattr(blake2_batch, "_built", False)  # no build for this machine
    assert not merkle._compiled_worthwhile(merkle.COMPILED_AFTER_HASHES - 1)
    assert merkle._compiled_worthwhile(1)


def test_with_a_build_a_process_switches_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merkle, "_hashes_asked", 0)
    monkeypatch.setattr(blake2_batch, "_kernel", None)
    monkeypatch.setattr(blake2_batch, "_built", True)
    assert merkle._compiled_worthwhile(10)


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


def test_a_process_takes_the_build_unless_it_needs_the_gil_free(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blake2_batch, "ahead_of_time_path", lambda: built)
    monkeypatch.setattr(blake2_batch, "_built", None)
    monkeypatch.setattr(blake2_batch, "_kernel", None)
    assert blake2_batch.starts_quickly()  # nothing loaded yet, and loading costs nothing
    blake2_batch.load()
    assert not hasattr(blake2_batch._kernel, "py_func")  # the C extension's function
    monkeypatch.setattr(blake2_batch, "_kernel", None)
    blake2_batch.load(releasing_gil=True)  # a node, the daemon: numba's dispatcher
    assert hasattr(blake2_batch._kernel, "py_func")


def test_without_a_build_or_with_a_broken_one_the_jit_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "blake2_batch_aot_missing.so"
    monkeypatch.setattr(blake2_batch, "ahead_of_time_path", lambda: missing)
    monkeypatch.setattr(blake2_batch, "_built", None)
    monkeypatch.setattr(blake2_batch, "_kernel", None)
    assert not blake2_batch.starts_quickly()
    broken = tmp_path / "blake2_batch_aot_broken.so"
    broken.write_bytes(b"not an ELF file")
    assert blake2_batch._load_ahead_of_time(broken) is None
    monkeypatch.setattr(blake2_batch, "ahead_of_time_path", lambda: broken)
    blake2_batch.load()
    assert hasattr(blake2_batch._kernel, "py_func")
    rows = np.arange(70, dtype=np.uint8).reshape(2, 35)
    assert blake2_batch.hash_rows_prefixed(rows, 0)[1].tobytes() == (
        hashlib.blake2b(b"\x00" + rows[1].tobytes(), digest_size=32).digest()
    )


def test_installing_builds_the_loop_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "blake2_batch_aot_test.so"
    monkeypatch.setattr(blake2_batch, "ahead_of_time_path", lambda: target)
    target.write_bytes(b"")  # there already: nothing to build
    blake2_batch.main()
    assert capsys.readouterr().out == f"the hashing loop is built: {target}\n"
    target.unlink()

    def no_compiler(path: Path | None = None) -> Path:
        raise RuntimeError("no C compiler")

    monkeypatch.setattr(blake2_batch, "build_ahead_of_time", no_compiler)
    blake2_batch.main()  # says so, and leaves the JIT: no failure
    assert "not built ahead of time (no C compiler)" in capsys.readouterr().out
