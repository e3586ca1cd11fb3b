"""Many codewords in one call (core/rs.py): the same symbols as one codeword at a time."""

from __future__ import annotations

import numpy as np
import pytest

from walruspy.core import rs
from walruspy.core.errors import NotEnoughSymbolsError

#: Short symbols (elements packed densely), whole 64-byte chunks, and chunks with a tail.
SYMBOL_SIZES = [2, 4, 6, 30, 62, 64, 66, 126, 128, 130, 200, 1000]
#: (k, n) of both codes at n = 10, 100 and 1000.
CODES = [(4, 10), (7, 10), (34, 100), (67, 100), (334, 1000), (667, 1000)]


def one_by_one_repair(block: np.ndarray, n: int) -> np.ndarray:
    k, count, size = block.shape
    columns = []
    for c in range(count):
        repair = rs.repair_symbols([block[i, c].tobytes() for i in range(k)], n)
        columns.append(np.frombuffer(b"".join(repair), dtype=np.uint8).reshape(n - k, size))
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("size", SYMBOL_SIZES)
@pytest.mark.parametrize(("k", "n"), CODES)
def test_a_block_is_its_codewords(size: int, k: int, n: int) -> None:
    rng = np.random.default_rng(size * 7919 + n + k)
    count = 5
    source = rng.integers(0, 256, size=(k, count, size), dtype=np.uint8)
    repair = rs.repair_block(source, n)
    assert repair.shape == (n - k, count, size)
    assert (repair == one_by_one_repair(source, n)).all()
    codewords = np.concatenate([source, repair])
    # Any k symbols of each codeword (repair ones included) decode all of them at once.
    chosen = rng.choice(n, size=k + 2, replace=False)
    decoded = rs.decode_block(k, n, {int(i): codewords[i] for i in chosen})
    assert (decoded == source).all()
    # Every source index given: no decoding at all.
    assert (rs.decode_block(k, n, {i: codewords[i] for i in range(k)}) == source).all()


def test_blocks_larger_than_a_call_are_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rs, "BLOCK_CALL_BYTES", 1000)
    source = np.random.default_rng(1).integers(0, 256, size=(7, 23, 66), dtype=np.uint8)
    assert (rs.repair_block(source, 10) == one_by_one_repair(source, 10)).all()
    codewords = np.concatenate([source, rs.repair_block(source, 10)])
    given = {i: codewords[i] for i in (1, 3, 4, 5, 7, 8, 9)}
    assert (rs.decode_block(7, 10, given) == source).all()


def test_too_few_symbols_is_a_clear_error() -> None:
    block = np.zeros((3, 2, 4), dtype=np.uint8)
    with pytest.raises(NotEnoughSymbolsError, match="need 4 distinct symbols"):
        rs.decode_block(4, 10, {0: block[0], 1: block[1], 2: block[2]})
