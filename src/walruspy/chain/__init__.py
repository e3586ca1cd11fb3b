"""The control plane: Vyper contracts, the EVM chain client, and the embedded devchain.

Keccak-256 (every storage slot, log topic, address and selector) goes through `eth_hash`, which
takes the first backend it can import: pycryptodome (which vyper and eth-keyfile install) before
safe-pysha3 (which eth-tester installs for CPython). Measured on this machine, one call on 32
bytes costs 8.2 us through pycryptodome and 1.0 us through safe-pysha3; the devchain hashes on
every storage read and write, so pysha3 is chosen here unless `ETH_HASH_BACKEND` says otherwise.
Both give the same digests; the choice is made before the first hash, which picks the backend.
"""

from __future__ import annotations

import importlib.util
import os

if importlib.util.find_spec("sha3") is not None:
    os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")
