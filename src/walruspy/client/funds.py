"""What a payment costs, and the error that says who cannot pay it.

Theory of operation (spec/walrus-system.md 2.7). Storage is paid in WAL, pulled from the wallet
by the System contract, which reverts with `UNPAID_REASON` when the pull fails: the client has
approved System for an unlimited allowance before paying (`walruspy.chain.evm_wal`), so a
failed pull means too little WAL. The revert names neither the account nor the amount; this
module turns it into an `InsufficientWalError` that names both, with the wallet's balance read
after the fact. Gas is the other thing a wallet pays: the chain client refuses it with
`InsufficientGasError` (walruspy.chain.api), which already names the account and the amounts.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Final, TypeVar

from walruspy.chain.api import ChainRevertError, ChainWriter, SystemInfo
from walruspy.client.errors import InsufficientWalError
from walruspy.client.results import storage_units

T = TypeVar("T")

#: System.vy's reason when it cannot pull a payment in WAL (`assert success, "unpaid"`).
UNPAID_REASON: Final = "unpaid"


def storage_cost(info: SystemInfo, encoded_length: int, epochs: int) -> int:
    """FROST that reserving `encoded_length` bytes for `epochs` epochs and writing them costs at
    the current prices (System.vy: storage per unit and epoch, plus the write price per unit)."""
    units = storage_units(encoded_length)
    return units * (info.storage_price_per_unit_size * epochs + info.write_price_per_unit_size)


def extension_cost(info: SystemInfo, storage_size: int, epochs: int) -> int:
    """FROST that keeping `storage_size` bytes for `epochs` more epochs costs (extend_blob)."""
    return info.storage_price_per_unit_size * storage_units(storage_size) * epochs


async def paying(writer: ChainWriter, transaction: Awaitable[T], needed: int) -> T:
    """`transaction`'s result; a payment the contract refused as unpaid becomes the
    `InsufficientWalError` that names the account, the `needed` FROST and its balance."""
    try:
        return await transaction
    except ChainRevertError as exc:
        if exc.reason == UNPAID_REASON:
            raise await insufficient_wal(writer, needed, exc.operation) from exc
        raise


async def insufficient_wal(
    writer: ChainWriter, needed: int, operation: str
) -> InsufficientWalError:
    """The error for a payment of `needed` FROST the contract refused as unpaid."""
    balance = await writer.wal_balance()
    return InsufficientWalError(writer.address, needed, balance, operation)
