"""Encoding on every core: the encoder's phases split across processes over shared memory.

Theory of operation. reed-solomon-leopard holds the GIL, and hashlib releases it only for inputs
over 2 KiB, so threads cannot use a second core for RS2 (measured: two threads were slower than
one). `EncoderPool` keeps worker processes alive and, per blob, allocates the encoder's buffers in
one shared-memory file. Each of the three phases of `walruspy.core.encoding` is split into equal
index ranges: the workers take all but the first, this process takes the first, then everyone
waits. Workers map the file by name, compute, and return only the (small) Merkle roots; the big
arrays never cross a pipe. The file is unlinked when encoding ends, so nothing outlives the blob
but the mapping its slivers live in, which the operating system frees with the last reference.

With one core, or for blobs too small to pay for the round trip, encoding runs inline.
"""

from __future__ import annotations

import atexit
import mmap
import os
import secrets
import signal
import tempfile
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import numpy as np

from walruspy.core import blake2_batch, encoding
from walruspy.core.encoding import EncodedBlob, EncodingBuffers, EncodingLayout
from walruspy.core.types import SliverType

#: Below this much work (symbols of the n x n matrix times their size) a pool round trip costs
#: more than it saves: a dispatch is about a millisecond, encoding 256 KiB of matrix about as much.
MIN_PARALLEL_MATRIX_BYTES = 256 * 1024
# Memory-backed where the system has it; files are created O_EXCL with mode 0600 and random names.
_SHM_DIR = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())  # noqa: S108


@dataclass(frozen=True, slots=True)
class _SharedBuffers:
    """Where the encoder's arrays sit in a shared-memory file."""

    path: str
    n_shards: int
    blob_length: int

    def layout(self) -> EncodingLayout:
        return EncodingLayout.for_blob(self.n_shards, self.blob_length)

    def open(self) -> tuple[mmap.mmap, EncodingBuffers]:
        """Map the file and build the arrays over it."""
        layout = self.layout()
        with open(self.path, "r+b") as handle:
            mapping = mmap.mmap(handle.fileno(), _buffers_size(layout))
        return mapping, _arrays_over(mapping, layout)


def _shapes(layout: EncodingLayout) -> list[tuple[int, ...]]:
    n, p, s, ss = layout.n, layout.p, layout.s, layout.symbol_size
    return [(p, s, ss), (n - p, s, ss), (n, p, ss), (n, n, 32)]


def _buffers_size(layout: EncodingLayout) -> int:
    return sum(int(np.prod(shape)) for shape in _shapes(layout))


def _arrays_over(mapping: mmap.mmap, layout: EncodingLayout) -> EncodingBuffers:
    offset = 0
    arrays = []
    for shape in _shapes(layout):
        size = int(np.prod(shape))
        arrays.append(
            np.frombuffer(mapping, dtype=np.uint8, count=size, offset=offset).reshape(shape)
        )
        offset += size
    return EncodingBuffers(*arrays)


def _run_phase(shared: _SharedBuffers, phase: str, start: int, stop: int) -> bytes | None:
    """Worker side: run one phase on one range of the shared buffers."""
    mapping, buffers = shared.open()
    try:
        layout = shared.layout()
        if phase == "rows":
            encoding.expand_rows(layout, buffers, range(start, stop))
            return None
        if phase == "columns":
            encoding.expand_columns(layout, buffers, range(start, stop))
            return None
        sliver_type = SliverType(phase)
        return encoding.sliver_roots(buffers.leaves, range(start, stop), sliver_type).tobytes()
    finally:
        del buffers
        mapping.close()


def _warm_worker() -> None:
    """Worker side of `EncoderPool.warm`."""
    blake2_batch.warm()


def _split(total: int, parts: int) -> list[range]:
    bounds = [total * k // parts for k in range(parts + 1)]
    return [range(bounds[k], bounds[k + 1]) for k in range(parts)]


def _ignore_interrupts() -> None:
    """A worker ignores Ctrl-C: a terminal sends SIGINT to the whole process group, and the
    parent, which owns the workers, decides what an interruption means and stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class EncoderPool:
    """Worker processes that encode blobs together with the calling thread."""

    def __init__(self, workers: int | None = None, *, fork: bool = False) -> None:
        """`workers`: processes besides this one (one per further core by default). `fork`:
        start them by forking this process, which has everything imported already, where a
        spawned worker starts a new interpreter and imports numpy first (0.3 s before it can
        help, measured: `walruspy blob-id` at n = 1000 took 1.1-1.27 s spawning, 0.74-0.83 s
        forking). Only for a short command that runs no event loop: a process with other
        threads by then spawns anyway, as fork would copy their locks in whatever state."""
        cores = os.cpu_count() or 1
        self.workers = max(cores - 1, 0) if workers is None else workers
        forking = fork and threading.active_count() == 1 and "fork" in get_all_start_methods()
        self._executor = (
            ProcessPoolExecutor(
                self.workers,
                mp_context=get_context("fork" if forking else "spawn"),
                initializer=_ignore_interrupts,
            )
            if self.workers
            else None
        )
        # One blob at a time: the phases already use every core.
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Start the workers and load the compiled hashing in them and, in a thread, in this
        process, without waiting: for a long-running process (the daemon), whose first store
        would otherwise wait for all of it (1.5 s for a 1 MiB blob, measured)."""
        blake2_batch.warm_in_background()
        if self._executor is not None:
            for _ in range(self.workers):
                self._executor.submit(_warm_worker)

    def encode(self, blob: bytes | memoryview, n_shards: int) -> EncodedBlob:
        """Encode `blob` for `n_shards` shards on every core."""
        layout = EncodingLayout.for_blob(n_shards, len(blob))
        matrix_bytes = layout.n * layout.n * layout.symbol_size
        if self._executor is None or matrix_bytes < MIN_PARALLEL_MATRIX_BYTES:
            return encoding.encode_blob(blob, n_shards)
        with self._lock:
            return self._encode_shared(blob, layout)

    def _encode_shared(self, blob: bytes | memoryview, layout: EncodingLayout) -> EncodedBlob:
        path = _SHM_DIR / f"walruspy-encode-{os.getpid()}-{secrets.token_hex(8)}"
        size = _buffers_size(layout)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
            mapping = mmap.mmap(fd, size)
            os.close(fd)
            fd = -1
            buffers = _arrays_over(mapping, layout)
            shared = _SharedBuffers(str(path), layout.n, layout.blob_length)
            encoding.fill_source(buffers, blob)
            self._phase(shared, layout, buffers, "rows", layout.p)
            self._phase(shared, layout, buffers, "columns", layout.n)
            secondary = self._phase(shared, layout, buffers, SliverType.SECONDARY.value, layout.n)
            primary = self._phase(shared, layout, buffers, SliverType.PRIMARY.value, layout.n)
        finally:
            if fd >= 0:
                os.close(fd)
            path.unlink(missing_ok=True)
        assert primary is not None and secondary is not None
        return encoding.finish_encoding(layout, buffers, primary, secondary)

    def _phase(
        self,
        shared: _SharedBuffers,
        layout: EncodingLayout,
        buffers: EncodingBuffers,
        phase: str,
        total: int,
    ) -> np.ndarray | None:
        assert self._executor is not None
        ranges = _split(total, self.workers + 1)
        futures: list[Future[bytes | None]] = [
            self._executor.submit(_run_phase, shared, phase, r.start, r.stop) for r in ranges[1:]
        ]
        mine: np.ndarray | None
        if phase == "rows":
            encoding.expand_rows(layout, buffers, ranges[0])
            mine = None
        elif phase == "columns":
            encoding.expand_columns(layout, buffers, ranges[0])
            mine = None
        else:
            mine = encoding.sliver_roots(buffers.leaves, ranges[0], SliverType(phase))
        results = [future.result() for future in futures]
        if mine is None:
            return None
        parts = [mine] + [np.frombuffer(r, dtype=np.uint8).reshape(-1, 32) for r in results if r]
        return np.concatenate(parts)

    def close(self) -> None:
        """Stop the worker processes."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> EncoderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_default_pool: EncoderPool | None = None
_default_lock = threading.Lock()


def default_pool() -> EncoderPool:
    """The process-wide pool, started on first use and stopped at exit."""
    global _default_pool  # noqa: PLW0603 - one pool per process, by design
    with _default_lock:
        if _default_pool is None:
            _default_pool = EncoderPool()
            atexit.register(_default_pool.close)
        return _default_pool


def encode(blob: bytes | memoryview, n_shards: int) -> EncodedBlob:
    """Encode on every core with the process-wide pool."""
    return default_pool().encode(blob, n_shards)
