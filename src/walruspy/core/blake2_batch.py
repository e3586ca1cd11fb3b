"""BLAKE2b-256 of many equal-length messages in one compiled loop (RFC 7693; spec/encoding.md 6).

Theory of operation. The encoder's Merkle trees need about 3 x 10^6 hashes of 33- to 65-byte
messages per blob at n = 1000 (spec/encoding.md 6), and `hashlib` costs a Python call per
hash: 0.9 to 1.8 million a second on this machine, about 2 s per blob, whatever its size. Here
the messages are laid out as rows of one array, each zero-padded to whole 128-byte blocks and
viewed as little-endian 64-bit words, and a function compiled by numba runs RFC 7693's
compression over every row: no Python and no allocation per hash. Unkeyed, digest length 32,
so the parameter block changes only the first word of the state (`IV[0] ^ 0x01010020`). Every
row has the same length, so the byte counter of each block and the final-block flag are the
same for all rows, and so are the steps: the loop hashes `LANES` rows side by side, every step
of RFC 7693's G a loop over the lanes that LLVM compiles to vector instructions, 2.6 times the
speed of hashing one row at a time with its state in registers.

The compiled function is cached on disk by numba (`cache=True`: in `__pycache__` beside this
module, or numba's user cache directory when that is not writable), so only the first process
after an install pays the compilation, about 4 s; later ones load it in about 0.4 s (0.7 s on a
busy machine), importing numba included. A command that hashes a blob once pays that every time
(at n = 1000 it is most of `walruspy blob-id`), so `make install` also builds the loop ahead of
time (`blake2_batch.main`): numba.pycc compiles the same function for this processor into a C
extension beside the cache, keyed by this module's code, numpy's version and the processor's
features, which imports in 0.3 ms and hashes as fast (86 to 114 ns a hash, measured). It holds
the GIL while it runs (pycc cannot release it), so processes that hash in worker threads while
they serve (storage nodes, the daemon) load the JIT's loop at start (`warm_in_background`), and
only the others take the build. Without a C compiler, or for another processor, the JIT serves
alone. `merkle` switches to this loop only once a process has hashed enough to pay for loading
it (`merkle.COMPILED_AFTER_HASHES`), or at once when loading costs nothing (`starts_quickly`).
The JIT's loop is single-threaded (the encoder already spreads its hashing over both cores in
processes, `walruspy.workers`) and releases the GIL, so a node verifying slivers in a worker
thread keeps serving meanwhile.

Every digest is checked against `hashlib` in the tests, for every block count the encoder meets.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sysconfig
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from walruspy.core.params import DIGEST_LEN

U8Array = npt.NDArray[np.uint8]

BLOCK_BYTES = 128
#: Rows hashed per call of the compiled loop: bounds the padded copy to a few MiB.
CHUNK_BYTES = 8 << 20

_IV = np.array(
    [
        0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
        0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
    ],
    dtype=np.uint64,
)  # fmt: skip
_U64 = np.uint64
#: The parameter block's first word for an unkeyed 32-byte digest (fanout 1, depth 1).
_PARAM_WORD0 = _U64(0x01010000 | DIGEST_LEN)
_LAST_BLOCK = ~_U64(0)

_kernel: Callable[..., None] | None = None
_loading = threading.Lock()
#: Whether this machine's ahead-of-time build exists (looked for once, by `starts_quickly`).
_built: bool | None = None
_AOT_PREFIX = "blake2_batch_aot_"
#: The compiled loop's one signature: padded rows as words, the message length, the digests.
_SIGNATURE = "void(uint64[:, ::1], int64, uint64[:, ::1])"


#: RFC 7693's SIGMA: the message word each G of each round takes (rounds 10 and 11 take rows 0
#: and 1 again, `round % 10`).
_SIGMA = np.array(
    [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
        [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
        [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
        [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
        [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
        [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
        [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
        [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
        [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    ],
    dtype=np.intp,
)
ROUNDS = 12
#: Messages hashed side by side: each step of G is a loop over this many lanes, which LLVM turns
#: into vector instructions (4 lanes per AVX2 instruction). Measured on this machine, 400,000
#: one-block messages: 64 lanes 108 ns a hash, 128 lanes 85, 256 lanes 87 (the working vectors
#: of 128 lanes, 40 KiB, still sit in the first-level cache); the loop of one message at a time
#: before it, with the state in registers, 222 ns.
LANES = 128
#: The longest row (after its one-byte prefix) for which a whole group of lanes fits in one chunk:
#: longer rows would leave most lanes idle, and are better hashed in place (`merkle.leaf_hashes`).
LONGEST_ROW_BYTES = CHUNK_BYTES // LANES - 1
_R1, _R16, _R24, _R32, _R40, _R48, _R63 = (_U64(n) for n in (1, 16, 24, 32, 40, 48, 63))


def _g(v: Any, m: Any, a: int, b: int, c: int, d: int, x: Any, y: Any) -> None:  # noqa: PLR0917 (RFC 7693 G)
    """RFC 7693's G in every lane: mixes message words `m[x]` and `m[y]` into rows a, b, c, d of
    the working vectors `v` (16 x LANES). The rotations are written as shifts, which LLVM
    compiles to byte shuffles where it can."""
    for i in range(LANES):
        va = v[a, i] + v[b, i] + m[x, i]
        vd = v[d, i] ^ va
        vd = (vd >> _R32) | (vd << _R32)
        vc = v[c, i] + vd
        vb = v[b, i] ^ vc
        vb = (vb >> _R24) | (vb << _R40)
        va = va + vb + m[y, i]
        vd = vd ^ va
        vd = (vd >> _R16) | (vd << _R48)
        vc = vc + vd
        vb = vb ^ vc
        vb = (vb >> _R63) | (vb << _R1)
        v[a, i] = va
        v[b, i] = vb
        v[c, i] = vc
        v[d, i] = vd


def _compress(h: Any, m: Any, v: Any, counter: Any, last: Any) -> None:
    """RFC 7693's F in every lane: the chain values `h` (8 x LANES) after the blocks `m`
    (16 x LANES); `v`: room for the working vectors; `counter`: the bytes hashed so far, this
    block's included; `last`: all ones for the final block. Each G's rows of `v` are
    constants, so every lane loop compiles to straight vector code; the rounds are a loop (the
    message rows come from `_SIGMA`), which keeps the compilation to a few seconds."""
    for k in range(8):
        for i in range(LANES):
            v[k, i] = h[k, i]
            v[k + 8, i] = _IV[k]
    for i in range(LANES):
        v[12, i] ^= counter
        v[14, i] ^= last
    for r in range(ROUNDS):
        s = _SIGMA[r % 10]
        _g(v, m, 0, 4, 8, 12, s[0], s[1])
        _g(v, m, 1, 5, 9, 13, s[2], s[3])
        _g(v, m, 2, 6, 10, 14, s[4], s[5])
        _g(v, m, 3, 7, 11, 15, s[6], s[7])
        _g(v, m, 0, 5, 10, 15, s[8], s[9])
        _g(v, m, 1, 6, 11, 12, s[10], s[11])
        _g(v, m, 2, 7, 8, 13, s[12], s[13])
        _g(v, m, 3, 4, 9, 14, s[14], s[15])
    for k in range(8):
        for i in range(LANES):
            h[k, i] ^= v[k, i] ^ v[k + 8, i]


def _hash_blocks(words: Any, length: int, out: Any) -> None:
    """`out[r]` = the first four state words of BLAKE2b-256 over row r of `words` (whole
    zero-padded blocks of 16 words) holding a message of `length` bytes (compiled). Rows go
    through the lanes LANES at a time; the lanes past the last row hash stale words, and their
    digests are not kept."""
    count = words.shape[0]
    n_blocks = words.shape[1] // 16
    h = np.empty((8, LANES), dtype=np.uint64)
    m = np.zeros((16, LANES), dtype=np.uint64)
    v = np.empty((16, LANES), dtype=np.uint64)
    for start in range(0, count, LANES):
        lanes = min(LANES, count - start)
        for k in range(8):
            for i in range(LANES):
                h[k, i] = _IV[k]
        for i in range(LANES):
            h[0, i] ^= _PARAM_WORD0
        for block in range(n_blocks):
            for i in range(lanes):
                for k in range(16):
                    m[k, i] = words[start + i, 16 * block + k]
            counter = _U64(min(BLOCK_BYTES * (block + 1), length))
            _compress(h, m, v, counter, _LAST_BLOCK if block == n_blocks - 1 else _U64(0))
        for i in range(lanes):
            for k in range(4):
                out[start + i, k] = h[k, i]


def _jit_helpers() -> None:
    """Make the functions the loop calls numba's, so that LLVM inlines them into it."""
    global _g, _compress  # noqa: PLW0603 (compiled once per process, like `_kernel`)
    from numba import njit

    _g = njit(getattr(_g, "py_func", _g))
    _compress = njit(getattr(_compress, "py_func", _compress))


def _compile() -> Callable[..., None]:
    """Compile the hashing loop (or load it from numba's cache)."""
    from numba import njit

    _jit_helpers()
    kernel: Callable[..., None] = njit(cache=True, nogil=True, boundscheck=False)(_hash_blocks)
    return kernel


def is_loaded() -> bool:
    """Whether this process has the compiled loop already (a batch then costs no start-up)."""
    return _kernel is not None


def load(*, releasing_gil: bool = False) -> None:
    """Load the loop once per process (threads that need it at the same time wait for the
    first): the ahead-of-time build if there is one for this machine, else numba's JIT (from
    its cache, or compiled). `releasing_gil`: the JIT's loop, whatever else there is, for a
    process that hashes in threads while it serves (the ahead-of-time build holds the GIL)."""
    global _kernel  # noqa: PLW0603 (compiled once per process)
    with _loading:
        if _kernel is None:
            built = None if releasing_gil else _load_ahead_of_time(ahead_of_time_path())
            _kernel = built or _compile()


def starts_quickly() -> bool:
    """Whether the loop is loaded, or loads in a millisecond (an ahead-of-time build)."""
    global _built  # noqa: PLW0603 (looked for once per process)
    if _built is None:
        path = ahead_of_time_path()
        _built = path is not None and path.exists()
    return _kernel is not None or _built


def warm() -> None:
    """Load the loop that releases the GIL and run it once: numba loads the compiled code from
    its cache at the first call, not at `load`. A long-running process calls this at start, in
    a thread (the loop then serves its first request without the 0.4 to 0.7 s of loading)."""
    load(releasing_gil=True)
    hash_rows_prefixed(np.zeros((1, 1), dtype=np.uint8), 0)


def warm_in_background() -> threading.Thread:
    """`warm` in a daemon thread, started; its GIL-holding part (importing numba) is about
    0.3 s."""
    thread = threading.Thread(target=warm, name="warm-blake2", daemon=True)
    thread.start()
    return thread


def hash_rows_prefixed(rows: U8Array, prefix: int) -> U8Array:
    """BLAKE2b-256 of `bytes([prefix]) + row` for every row of a 2-D uint8 array: (N, 32)."""
    load()
    assert _kernel is not None
    count, width = rows.shape
    length = width + 1
    n_blocks = max(1, -(-length // BLOCK_BYTES))
    padded_width = n_blocks * BLOCK_BYTES
    out = np.empty((count, DIGEST_LEN // 8), dtype="<u8")
    step = max(1, CHUNK_BYTES // padded_width // LANES) * LANES  # whole groups of lanes
    padded = np.zeros((min(step, count), padded_width), dtype=np.uint8)
    padded[:, 0] = prefix
    for start in range(0, count, step):
        stop = min(start + step, count)
        chunk = padded[: stop - start]
        chunk[:, 1:length] = rows[start:stop]
        _kernel(chunk.view("<u8"), length, out[start:stop])
    return out.view(np.uint8).reshape(count, DIGEST_LEN)


# --- the ahead-of-time build ----------------------------------------------------------------


def _machine_key() -> str | None:
    """What an ahead-of-time build depends on: this module's code, numpy's version (its C API)
    and the processor's features (the build uses every one, as the JIT does). None where they
    cannot be read (no /proc/cpuinfo): the JIT then serves."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), None)
    except OSError:
        return None
    if flags is None:
        return None
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(np.__version__.encode())
    digest.update(flags.encode())
    return digest.hexdigest()[:20]


def ahead_of_time_path() -> Path | None:
    """Where this machine's ahead-of-time build lives (beside numba's cache of the JIT), or
    None where there can be none."""
    key = _machine_key()
    if key is None:
        return None
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    return Path(__file__).with_name("__pycache__") / f"{_AOT_PREFIX}{key}{suffix}"


def _load_ahead_of_time(path: Path | None) -> Callable[..., None] | None:
    """The loop from the build at `path`; None if there is none or it does not load."""
    if path is None or not path.exists():
        return None
    name = path.name.split(".")[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return None
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except ImportError:
        return None
    kernel: Callable[..., None] = module.hash_blocks
    return kernel


def build_ahead_of_time(path: Path | None = None) -> Path:
    """Build the loop ahead of time into a C extension at `path` (this machine's by default)
    with numba.pycc and the system's C compiler: about 7 s, once per machine and version. The
    build is written beside its final place and renamed, so a reader never sees half of it."""
    target = path or ahead_of_time_path()
    if target is None:
        raise RuntimeError("no ahead-of-time build on this system (no /proc/cpuinfo)")
    from numba.core.errors import NumbaPendingDeprecationWarning

    with warnings.catch_warnings():
        # numba 0.68 marks pycc "pending deprecation" with no replacement yet; if a later numba
        # drops it, the build fails here and the JIT serves (`main`).
        warnings.simplefilter("ignore", NumbaPendingDeprecationWarning)
        from numba.pycc import CC  # type: ignore[attr-defined]

    _jit_helpers()
    name = target.name.split(".")[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        compiler = CC(name)  # type: ignore[no-untyped-call]
        compiler.output_dir = scratch
        compiler.output_file = target.name
        compiler.target_cpu = "host"
        compiler.verbose = False
        compiler.export("hash_blocks", _SIGNATURE)(_hash_blocks)  # type: ignore[no-untyped-call]
        compiler.compile()
        os.replace(Path(scratch) / target.name, target)
    for stale in target.parent.glob(f"{_AOT_PREFIX}*"):  # builds of older code or numpy
        if stale != target:
            stale.unlink(missing_ok=True)
    return target


def main() -> None:
    """Build this machine's loop ahead of time, unless it is there; say where it is. A machine
    without a C compiler keeps the JIT (`make install` runs this)."""
    path = ahead_of_time_path()
    if path is not None and path.exists():
        print(f"the hashing loop is built: {path}")
        return
    try:
        built = build_ahead_of_time(path)
    except Exception as exc:  # any failure leaves the JIT, which always works
        print(f"the hashing loop was not built ahead of time ({exc}); numba's JIT serves")
        return
    print(f"the hashing loop is built: {built}")
