"""Encoding on every core gives exactly the bytes of the single-threaded encoder."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

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


WARM = """
import threading
from walruspy.core import blake2_batch
from walruspy.workers import EncoderPool

def loaded() -> bool:
    return blake2_batch.is_loaded() and bool(blake2_batch._kernel.signatures)

if __name__ == "__main__":
    assert not blake2_batch.is_loaded()
    with EncoderPool(workers=1) as pool:
        pool.warm()  # returns at once
        for thread in threading.enumerate():
            if thread.name == "warm-blake2":
                thread.join()
        # The worker took the warm-up first: its loop is loaded, with machine code for it.
        in_worker = pool._executor.submit(loaded).result()
        print(loaded(), in_worker)
"""


def printed_by(source: str, tmp_path: Path) -> list[str]:
    """The words a script prints, run in a fresh interpreter (nothing loaded, no threads)."""
    script = tmp_path / "script.py"
    script.write_text(source)
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.split()


def test_a_warmed_pool_has_the_compiled_hashing_loaded_everywhere(tmp_path: Path) -> None:
    assert printed_by(WARM, tmp_path) == ["True", "True"]


FORKED = """
import os
from walruspy.core.encoding import encode_blob
from walruspy.workers import EncoderPool

blob = os.urandom(300_000)
with EncoderPool(workers=1, fork=True) as pool:
    method = pool._executor._mp_context.get_start_method()
    same = pool.encode(blob, 100).metadata == encode_blob(blob, 100).metadata
print(method, same)
"""


def test_a_short_command_forks_its_workers(tmp_path: Path) -> None:
    assert printed_by(FORKED, tmp_path) == ["fork", "True"]


def test_a_process_with_other_threads_spawns_its_workers() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with EncoderPool(workers=1, fork=True) as pool:
            assert pool._executor is not None
            assert pool._executor._mp_context.get_start_method() == "spawn"  # type: ignore[attr-defined]
            assert pool.encode(b"xyz" * 100_000, 100).metadata == (
                encode_blob(b"xyz" * 100_000, 100).metadata
            )
    finally:
        stop.set()
        other.join()
