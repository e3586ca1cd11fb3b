"""Keccak-256 runs on safe-pysha3 once walruspy.chain is imported (walruspy/chain/__init__.py),
and both backends give the same digests."""

from __future__ import annotations

import os
import subprocess
import sys

from eth_hash.backends import pycryptodome, pysha3


def test_both_backends_give_the_same_digests() -> None:
    for size in (0, 1, 32, 64, 135, 136, 137, 1000):
        data = os.urandom(size)
        assert pysha3.keccak256(data) == pycryptodome.keccak256(data)
    empty = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert pysha3.keccak256(b"").hex() == empty


def test_the_chain_package_chooses_pysha3_before_the_first_hash() -> None:
    code = (
        "import web3, walruspy.chain.devchain_engine\n"
        "from eth_hash.auto import keccak\n"
        "keccak(b'')\n"
        "print(type(keccak.hasher.__self__).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ETH_HASH_BACKEND"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "PySha3Backend"
    # A choice the user made is kept.
    env["ETH_HASH_BACKEND"] = "pycryptodome"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "CryptodomeBackend"
