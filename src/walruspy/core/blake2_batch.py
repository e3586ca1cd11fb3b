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
_U64 = np.uint64
_IV0, _IV1, _IV2, _IV3, _IV4, _IV5, _IV6, _IV7 = (_U64(word) for word in _IV)
#: The parameter block's first word for an unkeyed 32-byte digest (fanout 1, depth 1).
_PARAM_WORD0 = _U64(0x01010000 | DIGEST_LEN)
_LAST_BLOCK = ~_U64(0)

_kernel: Callable[..., None] | None = None
_loading = threading.Lock()


def _rotr(x: Any, n: int) -> Any:
    return (x >> _U64(n)) | (x << _U64(64 - n))


def _g(a: Any, b: Any, c: Any, d: Any, x: Any, y: Any) -> tuple[Any, Any, Any, Any]:  # noqa: PLR0917 (RFC 7693 G)
    """RFC 7693's G: mixes two message words into four words of the working vector."""
    a = a + b + x
    d = _rotr(d ^ a, 32)
    c = c + d
    b = _rotr(b ^ c, 24)
    a = a + b + y
    d = _rotr(d ^ a, 16)
    c = c + d
    b = _rotr(b ^ c, 63)
    return a, b, c, d


def _round(v: Any, x: Any) -> tuple[Any, ...]:
    """One round over the 16-word working vector `v`; `x`: the message words in the order of
    this round's permutation."""
    v0, v4, v8, v12 = _g(v[0], v[4], v[8], v[12], x[0], x[1])
    v1, v5, v9, v13 = _g(v[1], v[5], v[9], v[13], x[2], x[3])
    v2, v6, v10, v14 = _g(v[2], v[6], v[10], v[14], x[4], x[5])
    v3, v7, v11, v15 = _g(v[3], v[7], v[11], v[15], x[6], x[7])
    v0, v5, v10, v15 = _g(v0, v5, v10, v15, x[8], x[9])
    v1, v6, v11, v12 = _g(v1, v6, v11, v12, x[10], x[11])
    v2, v7, v8, v13 = _g(v2, v7, v8, v13, x[12], x[13])
    v3, v4, v9, v14 = _g(v3, v4, v9, v14, x[14], x[15])
    return (v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15)


def _compress(h: Any, m: Any, counter: Any, last: Any) -> tuple[Any, ...]:
    """RFC 7693's F: the chain value `h` (8 words) after the block `m` (16 words); `counter`:
    the bytes hashed so far, this block's included; `last`: all ones for the final block.

    The twelve rounds are written out, each with its message permutation (RFC 7693's SIGMA;
    rounds 10 and 11 take the first two again), so that every index is a constant and the
    compiled code keeps the state in registers: 1.6 times the speed of a loop over SIGMA."""
    v = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7],
         _IV0, _IV1, _IV2, _IV3, _IV4 ^ counter, _IV5, _IV6 ^ last, _IV7)  # fmt: skip
    v = _round(v, (m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7],
                   m[8], m[9], m[10], m[11], m[12], m[13], m[14], m[15]))  # fmt: skip
    v = _round(v, (m[14], m[10], m[4], m[8], m[9], m[15], m[13], m[6],
                   m[1], m[12], m[0], m[2], m[11], m[7], m[5], m[3]))  # fmt: skip
    v = _round(v, (m[11], m[8], m[12], m[0], m[5], m[2], m[15], m[13],
                   m[10], m[14], m[3], m[6], m[7], m[1], m[9], m[4]))  # fmt: skip
    v = _round(v, (m[7], m[9], m[3], m[1], m[13], m[12], m[11], m[14],
                   m[2], m[6], m[5], m[10], m[4], m[0], m[15], m[8]))  # fmt: skip
    v = _round(v, (m[9], m[0], m[5], m[7], m[2], m[4], m[10], m[15],
                   m[14], m[1], m[11], m[12], m[6], m[8], m[3], m[13]))  # fmt: skip
    v = _round(v, (m[2], m[12], m[6], m[10], m[0], m[11], m[8], m[3],
                   m[4], m[13], m[7], m[5], m[15], m[14], m[1], m[9]))  # fmt: skip
    v = _round(v, (m[12], m[5], m[1], m[15], m[14], m[13], m[4], m[10],
                   m[0], m[7], m[6], m[3], m[9], m[2], m[8], m[11]))  # fmt: skip
    v = _round(v, (m[13], m[11], m[7], m[14], m[12], m[1], m[3], m[9],
                   m[5], m[0], m[15], m[4], m[8], m[6], m[2], m[10]))  # fmt: skip
    v = _round(v, (m[6], m[15], m[14], m[9], m[11], m[3], m[0], m[8],
                   m[12], m[2], m[13], m[7], m[1], m[4], m[10], m[5]))  # fmt: skip
    v = _round(v, (m[10], m[2], m[8], m[4], m[7], m[6], m[1], m[5],
                   m[15], m[11], m[9], m[14], m[3], m[12], m[13], m[0]))  # fmt: skip
    v = _round(v, (m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7],
                   m[8], m[9], m[10], m[11], m[12], m[13], m[14], m[15]))  # fmt: skip
    v = _round(v, (m[14], m[10], m[4], m[8], m[9], m[15], m[13], m[6],
                   m[1], m[12], m[0], m[2], m[11], m[7], m[5], m[3]))  # fmt: skip
    return (
        h[0] ^ v[0] ^ v[8], h[1] ^ v[1] ^ v[9], h[2] ^ v[2] ^ v[10], h[3] ^ v[3] ^ v[11],
        h[4] ^ v[4] ^ v[12], h[5] ^ v[5] ^ v[13], h[6] ^ v[6] ^ v[14], h[7] ^ v[7] ^ v[15],
    )  # fmt: skip


def _hash_blocks(words: Any, length: int, out: Any) -> None:
    """`out[r]` = the first four state words of BLAKE2b-256 over row r of `words` (whole
    zero-padded blocks of 16 words) holding a message of `length` bytes (compiled)."""
    n_blocks = words.shape[1] // 16
    for r in range(words.shape[0]):
        h = (_IV0 ^ _PARAM_WORD0, _IV1, _IV2, _IV3, _IV4, _IV5, _IV6, _IV7)
        for block in range(n_blocks):
            w = words[r, 16 * block : 16 * block + 16]
            m = (w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
                 w[8], w[9], w[10], w[11], w[12], w[13], w[14], w[15])  # fmt: skip
            counter = _U64(min(BLOCK_BYTES * (block + 1), length))
            h = _compress(h, m, counter, _LAST_BLOCK if block == n_blocks - 1 else _U64(0))
        out[r, 0] = h[0]
        out[r, 1] = h[1]
        out[r, 2] = h[2]
        out[r, 3] = h[3]


def _compile() -> Callable[..., None]:
    """Compile the hashing loop (or load it from numba's cache); the functions it calls are
    compiled inline."""
    global _rotr, _g, _round, _compress
    from numba import njit

    def inline(function: Callable[..., Any]) -> Any:
        return njit(inline="always")(getattr(function, "py_func", function))

    _rotr, _g, _round, _compress = inline(_rotr), inline(_g), inline(_round), inline(_compress)
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
