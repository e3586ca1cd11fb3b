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
after an install pays the compilation, about 4 s; later ones load it in about 0.4 s. numba
itself is imported on first use, and `merkle` switches to this loop only once a process has
hashed enough to pay for that (`merkle.COMPILED_AFTER_HASHES`), or has loaded it already:
storage nodes and the daemon load it in a thread as they start (`warm_in_background`). The
loop is single-threaded (the encoder already spreads its hashing over both cores in processes,
`walruspy.workers`) and releases the GIL, so a node verifying slivers in a worker thread keeps
serving meanwhile.

Every digest is checked against `hashlib` in the tests, for every block count the encoder meets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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


def _compile() -> Callable[..., None]:
    """Compile the hashing loop (or load it from numba's cache); LLVM inlines the functions it
    calls."""
    global _g, _compress  # noqa: PLW0603 (compiled once per process, like `_kernel`)
    from numba import njit

    _g = njit(getattr(_g, "py_func", _g))
    _compress = njit(getattr(_compress, "py_func", _compress))
    kernel: Callable[..., None] = njit(cache=True, nogil=True, boundscheck=False)(_hash_blocks)
    return kernel


def is_loaded() -> bool:
    """Whether this process has the compiled loop already (a batch then costs no start-up)."""
    return _kernel is not None


def load() -> None:
    """Compile the loop, or load it from numba's cache, once per process (threads that need it
    at the same time wait for the first)."""
    global _kernel  # noqa: PLW0603 (compiled once per process)
    with _loading:
        if _kernel is None:
            _kernel = _compile()


def warm() -> None:
    """Load the loop and run it once: numba loads the compiled code from its cache at the
    first call, not at `load`. A long-running process calls this at start, in a thread (the
    loop then serves its first request without the 0.4 to 0.7 s of loading)."""
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
