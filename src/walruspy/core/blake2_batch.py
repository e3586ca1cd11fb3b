"""BLAKE2b-256 of many equal-length messages in one compiled loop (RFC 7693; spec/encoding.md 6).

Theory of operation. The encoder's Merkle trees need about 3 x 10^6 hashes of 33- to 65-byte
messages per blob at n = 1000 (spec/encoding.md 6), and `hashlib` costs a Python call per
hash: 0.9 to 1.8 million a second on this machine, about 2 s per blob, whatever its size. Here
the messages are laid out as rows of one array, each zero-padded to whole 128-byte blocks and
viewed as little-endian 64-bit words, and a function compiled by numba runs RFC 7693's
compression over every row: no Python and no allocation per hash. Unkeyed, digest length 32,
so the parameter block changes only the first word of the state (`IV[0] ^ 0x01010020`). Every
row has the same length, so the byte counter of each block and the final-block flag are the
same for all rows.

The compiled function is cached on disk by numba (`cache=True`: in `__pycache__` beside this
module, or numba's user cache directory when that is not writable), so only the first process
after an install pays the compilation, about 5 s; later ones load it in about 0.4 s. numba
itself is imported on first use, and `merkle` switches to this loop only once a process has
hashed enough to pay for that (`merkle.COMPILED_AFTER_HASHES`). The loop is single-threaded
(the encoder already spreads its hashing over both cores in processes, `walruspy.workers`) and
releases the GIL, so a node verifying slivers in a worker thread keeps serving meanwhile.

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
#: RFC 7693's ten message permutations; the 12 rounds use them in turn (rounds 10 and 11 take
#: the first two again).
_PERMUTATIONS = [
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
]
_SIGMA = np.array([_PERMUTATIONS[k % 10] for k in range(12)], dtype=np.uint8)
#: The parameter block's first word for an unkeyed 32-byte digest (fanout 1, depth 1).
_PARAM_WORD0 = 0x01010000 | DIGEST_LEN

_kernel: Callable[..., None] | None = None
_loading = threading.Lock()
_U64 = np.uint64


def _mix(v: Any, a: int, b: int, c: int, d: int, x: Any, y: Any) -> None:  # noqa: PLR0917 (RFC 7693 G)
    """RFC 7693's G on the working vector `v`, rotations 32, 24, 16 and 63 (compiled inline)."""
    v[a] = v[a] + v[b] + x
    t = v[d] ^ v[a]
    v[d] = (t >> _U64(32)) | (t << _U64(32))
    v[c] = v[c] + v[d]
    t = v[b] ^ v[c]
    v[b] = (t >> _U64(24)) | (t << _U64(40))
    v[a] = v[a] + v[b] + y
    t = v[d] ^ v[a]
    v[d] = (t >> _U64(16)) | (t << _U64(48))
    v[c] = v[c] + v[d]
    t = v[b] ^ v[c]
    v[b] = (t >> _U64(63)) | (t << _U64(1))


def _hash_blocks(words: Any, length: int, out: Any) -> None:
    """`out[r]` = the first four state words of BLAKE2b-256 over row r of `words` (whole
    zero-padded blocks of 16 words) holding a message of `length` bytes (compiled)."""
    n_blocks = words.shape[1] // 16
    h = np.empty(8, np.uint64)
    v = np.empty(16, np.uint64)
    for r in range(words.shape[0]):
        for i in range(8):
            h[i] = _IV[i]
        h[0] ^= _U64(_PARAM_WORD0)
        for block in range(n_blocks):
            m = words[r, 16 * block : 16 * block + 16]
            for i in range(8):
                v[i] = h[i]
                v[i + 8] = _IV[i]
            v[12] ^= _U64(min(BLOCK_BYTES * (block + 1), length))
            if block == n_blocks - 1:
                v[14] = ~v[14]
            for k in range(12):
                s = _SIGMA[k]
                _mix(v, 0, 4, 8, 12, m[s[0]], m[s[1]])
                _mix(v, 1, 5, 9, 13, m[s[2]], m[s[3]])
                _mix(v, 2, 6, 10, 14, m[s[4]], m[s[5]])
                _mix(v, 3, 7, 11, 15, m[s[6]], m[s[7]])
                _mix(v, 0, 5, 10, 15, m[s[8]], m[s[9]])
                _mix(v, 1, 6, 11, 12, m[s[10]], m[s[11]])
                _mix(v, 2, 7, 8, 13, m[s[12]], m[s[13]])
                _mix(v, 3, 4, 9, 14, m[s[14]], m[s[15]])
            for i in range(8):
                h[i] ^= v[i] ^ v[i + 8]
        for i in range(4):
            out[r, i] = h[i]


def _compile() -> Callable[..., None]:
    """Compile the hashing loop (or load it from numba's cache); `_mix` is compiled inline."""
    global _mix  # noqa: PLW0603 (numba resolves the global when it compiles `_hash_blocks`)
    from numba import njit

    _mix = njit(inline="always")(getattr(_mix, "py_func", _mix))  # the Python function
    kernel: Callable[..., None] = njit(cache=True, nogil=True)(_hash_blocks)
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


def hash_rows_prefixed(rows: U8Array, prefix: int) -> U8Array:
    """BLAKE2b-256 of `bytes([prefix]) + row` for every row of a 2-D uint8 array: (N, 32)."""
    load()
    assert _kernel is not None
    count, width = rows.shape
    length = width + 1
    n_blocks = max(1, -(-length // BLOCK_BYTES))
    padded_width = n_blocks * BLOCK_BYTES
    out = np.empty((count, DIGEST_LEN // 8), dtype="<u8")
    step = max(1, CHUNK_BYTES // padded_width)
    padded = np.zeros((min(step, count), padded_width), dtype=np.uint8)
    padded[:, 0] = prefix
    for start in range(0, count, step):
        stop = min(start + step, count)
        chunk = padded[: stop - start]
        chunk[:, 1:length] = rows[start:stop]
        _kernel(chunk.view("<u8"), length, out[start:stop])
    return out.view(np.uint8).reshape(count, DIGEST_LEN)
