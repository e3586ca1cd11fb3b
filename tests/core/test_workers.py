"""Encoding on every core gives exactly the bytes of the single-threaded encoder."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from walruspy.core.encoding import encode_blob
from walruspy.workers import _SHM_DIR, EncoderPool


@pytest.fixture(scope="module")
def pool() -> Iterator[EncoderPool]:
    with EncoderPool(workers=2) as pool:
        yield pool


@pytest.mark.parametrize(("size", "n"), [(0, 100), (1000, 100), (300_000, 100), (70_001, 13)])
def test_parallel_encoding_equals_serial(pool: EncoderPool, size: int, n: int) -> None:
    blob = os.urandom(size)
    parallel = pool.encode(blob, n)
    serial = encode_blob(blob, n)
    assert parallel.metadata == serial.metadata
    for i in range(n):
        assert parallel.primary_sliver(i) == serial.primary_sliver(i)
        assert parallel.secondary_sliver(i) == serial.secondary_sliver(i)


def test_no_shared_memory_file_outlives_the_encoding(pool: EncoderPool) -> None:
    pool.encode(os.urandom(500_000), 100)
    leftovers = list(_SHM_DIR.glob(f"walruspy-encode-{os.getpid()}-*"))
    assert leftovers == []


def test_a_pool_without_workers_encodes_inline() -> None:
    with EncoderPool(workers=0) as pool:
        assert pool.encode(b"abc", 4).metadata == encode_blob(b"abc", 4).metadata
