"""The client's wallet: its key file, its address, and what it holds to pay with.

Theory of operation (spec/walrus-system.md 2.7, 4.1). A wallet is one EVM private key in a file
of hex (what `wallet_key_path` of a context names, as `walruspy node keygen` writes for nodes).
It pays twice: gas for every transaction, in the chain's native coin (wei), and storage, in WAL
(FROST), which the System contract pulls. `create_wallet_key` writes a new key file, readable
by its owner only, and never replaces an existing file: a key that is overwritten is money
lost. `wallet_balance` reads both balances at one moment of the chain.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from eth_account import Account

from walruspy.client.errors import ConfigError

__all__ = [
    "BalanceReader",
    "WalletBalance",
    "create_wallet_key",
    "wallet_address",
    "wallet_balance",
]

#: FROST in one WAL (WAL has 9 decimals), wei in one unit of the native coin (18 decimals).
FROST_PER_WAL = 10**9
WEI_PER_COIN = 10**18


def wallet_address(key: bytes) -> str:
    """The checksummed EVM address of a 32-byte private key."""
    return str(Account.from_key(key).address)


def create_wallet_key(path: str | os.PathLike[str]) -> str:
    """Write a new private key to `path` (mode 0600) and return its address.

    Refuses (ConfigError) if `path` exists: the file is created exclusively, so a key is never
    overwritten, even by a concurrent call.
    """
    path = Path(path)
    account = Account.create()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"{path} already exists; a wallet key file is never overwritten (choose another path)"
        ) from None
    with os.fdopen(fd, "w") as handle:
        handle.write(bytes(account.key).hex() + "\n")
    return str(account.address)


class BalanceReader(Protocol):
    """What `wallet_balance` reads: the EVM chain client (`walruspy.chain.evm`)."""

    async def native_balance(self, owner: str) -> int:
        """Native coin held by `owner`, in wei."""
        ...

    async def wal_balance(self, owner: str) -> int:
        """WAL held by `owner`, in FROST."""
        ...


@dataclass(frozen=True, slots=True)
class WalletBalance:
    """What the wallet `address` holds: `gas_wei` of the native coin, `wal_frost` of WAL."""

    address: str
    gas_wei: int
    wal_frost: int

    def to_json(self) -> dict[str, Any]:
        """`{"address", "gasBalance", "walBalance"}`: wei and FROST, as integers."""
        return {"address": self.address, "gasBalance": self.gas_wei, "walBalance": self.wal_frost}


async def wallet_balance(chain: BalanceReader, address: str) -> WalletBalance:
    """Both balances of `address`."""
    gas, wal = await asyncio.gather(chain.native_balance(address), chain.wal_balance(address))
    return WalletBalance(address, gas, wal)
