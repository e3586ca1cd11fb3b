"""WAL payments of the chain client: one unlimited allowance per spender, amounts from logs.

Theory of operation (spec/walrus-system.md 2.5, 2.9). System and Pools pull WAL from the caller
with `transferFrom`. The client approves each of them once for an unlimited allowance (the
ERC-20 maximum, which Wal.vy never decrements): exact approvals would cost a second transaction
per paid call and would race between concurrent calls, since `approve` sets the allowance
rather than adding to it; the contracts only ever pull the prices they compute. What a call
paid or received is read from the WAL Transfer logs of its receipt, not from a dry run before
it, whose answer concurrent transactions of the account could make stale.
"""

from __future__ import annotations

import asyncio
from typing import Final

from web3.types import TxReceipt

from walruspy.chain.evm_rpc import ContractHandle, TransactionSender

__all__ = ["UNLIMITED_ALLOWANCE", "WalAllowance", "wal_transferred"]

#: The ERC-20 "unlimited" allowance, which Wal.vy never decrements.
UNLIMITED_ALLOWANCE: Final = (1 << 256) - 1
#: ERC-20 approve: 46,162 gas measured.
_APPROVE_GAS: Final = 65_000


class WalAllowance:
    """The account's unlimited allowance for `spender`, approved at most once."""

    def __init__(self, wal: ContractHandle, sender: TransactionSender, spender: str) -> None:
        self._wal = wal
        self._sender = sender
        self._spender = spender
        self._approved = False
        self._lock = asyncio.Lock()

    async def ensure(self) -> None:
        """Approve `spender` for unlimited WAL unless it already may pull at will."""
        if self._approved:
            return
        async with self._lock:
            if self._approved:
                return
            owner = self._sender.address
            allowance = int(await self._wal.view("allowance", owner, self._spender))
            if allowance < UNLIMITED_ALLOWANCE // 2:
                data = self._wal.calldata("approve", self._spender, UNLIMITED_ALLOWANCE)
                await self._sender.send(
                    "approve WAL", to=self._wal.address, data=data, gas=_APPROVE_GAS
                )
            self._approved = True


def wal_transferred(
    receipt: TxReceipt, wal: str, transfer_topic: bytes, sender: str, receiver: str
) -> int:
    """FROST moved from `sender` to `receiver` in the transaction (its WAL Transfer logs)."""
    from_topic, to_topic = (bytes.fromhex(a[2:]).rjust(32, b"\0") for a in (sender, receiver))
    return sum(
        int.from_bytes(bytes(log["data"]), "big")
        for log in receipt["logs"]
        if log["address"] == wal
        and bytes(log["topics"][0]) == transfer_topic
        and bytes(log["topics"][1]) == from_topic
        and bytes(log["topics"][2]) == to_topic
    )
