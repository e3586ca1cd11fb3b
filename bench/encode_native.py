"""walruspy's RS2 encoder against the official one, side by side in one run.

The official encoder is walrus-core compiled to native code, as the PyPI package
`pysui-fastcrypto` ships it (`redstuff_encode`, one thread): `.venv/bin/pip install
pysui-fastcrypto` (or `pip install -e '.[bench]'`). For each shard count and blob size it prints
the median time of

- an encode in this process: walruspy's encoder pool (this process and one worker process per
  further core, `walruspy.workers`), walruspy on one core, and the official encoder;
- the whole `blob-id` command, a new process each time: `walruspy blob-id FILE --n-shards N`
  against a Python process that imports the official encoder, reads FILE and prints its blob ID;

with walruspy's speed as a multiple of the official encoder's (above 1.0x: walruspy is faster).
Both must give the same blob ID, which is checked for every blob.

Usage: .venv/bin/python bench/encode_native.py [--shards 100,1000] [--sizes 1KiB,1MiB,64MiB]
       [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from walruspy.core.encoding import encode_blob
from walruspy.workers import EncoderPool

UNITS = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
NATIVE_BLOB_ID = (
    "import sys, pysui_fastcrypto as p; "
    "print(p.redstuff_encode(open(sys.argv[1], 'rb').read(), int(sys.argv[2])).blob_id.hex())"
)


def parse_size(text: str) -> int:
    for unit, factor in UNITS.items():
        if text.endswith(unit):
            return int(text[: -len(unit)]) * factor
    return int(text)


def median_s(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(command: list[str]) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", default="100,1000")
    parser.add_argument("--sizes", default="1KiB,1MiB,64MiB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    try:
        import pysui_fastcrypto as native
    except ImportError:
        sys.exit("bench/encode_native.py needs the official encoder: pip install pysui-fastcrypto")
    walruspy_cli = [str(Path(sys.executable).with_name("walruspy")), "blob-id"]
    pool = EncoderPool()
    pool.encode(os.urandom(1 << 20), 1000)  # start the workers, load the compiled hashing
    print(
        f"bench/encode_native.py: medians of {args.repeat}; {os.cpu_count()} cores; walruspy's"
        f" pool: {pool.workers + 1} processes; official: pysui-fastcrypto, 1 thread"
    )
    header = (
        f"{'n':>5} {'size':>6} | {'pool':>7} {'1 core':>7} {'official':>8} {'ratio':>6} |"
        f" {'blob-id':>7} {'official':>8} {'ratio':>6}"
    )
    print(header)
    with tempfile.TemporaryDirectory() as scratch:
        for n in map(int, args.shards.split(",")):
            for label in args.sizes.split(","):
                blob = os.urandom(parse_size(label))
                path = Path(scratch) / "blob"
                path.write_bytes(blob)
                ours = pool.encode(blob, n).metadata.blob_id
                theirs = native.redstuff_encode(blob, n).blob_id
                printed = run([*walruspy_cli, str(path), "--n-shards", str(n)])
                if ours.raw != theirs or str(ours) not in printed:
                    sys.exit(f"blob IDs differ at n={n}, {label}: {ours.raw.hex()} {theirs.hex()}")
                pool_s = median_s(lambda b=blob, n=n: pool.encode(b, n), args.repeat)
                one_s = median_s(lambda b=blob, n=n: encode_blob(b, n), 1)
                native_s = median_s(lambda b=blob, n=n: native.redstuff_encode(b, n), args.repeat)
                cli_s = median_s(
                    lambda p=path, n=n: run([*walruspy_cli, str(p), "--n-shards", str(n)]),
                    args.repeat,
                )
                native_cli_s = median_s(
                    lambda p=path, n=n: run([sys.executable, "-c", NATIVE_BLOB_ID, str(p), str(n)]),
                    args.repeat,
                )
                print(
                    f"{n:>5} {label:>6} | {pool_s:6.3f}s {one_s:6.3f}s {native_s:7.3f}s"
                    f" {native_s / pool_s:5.2f}x | {cli_s:6.3f}s {native_cli_s:7.3f}s"
                    f" {native_cli_s / cli_s:5.2f}x"
                )
    pool.close()


if __name__ == "__main__":
    main()
