"""Wallet commands: `wallet address`, `wallet balance`, `wallet new`, and `get-wal` on a devnet.

Theory of operation (spec/walrus-system.md 2.7, 4.1; Walrus `walrus generate-sui-wallet`,
`walrus get-wal`). The wallet of a context is the key file its `wallet_key_path` names
(`walruspy.client.wallet`). `wallet address` reads the key and prints its address without
touching the network; `wallet balance` reads what it holds to pay with: the chain's native coin
for gas (in wei) and WAL for storage (in FROST, with its WAL value). `wallet new --path FILE`
writes a new key file, never over an existing one, and says how to use it. `get-wal` funds the
wallet (or `--address`) with WAL, and with gas when it is short of it, from a devnet's deployer
account (`walruspy.devnet.faucet`); on another network it says that it cannot.

Errors from a wallet that cannot pay name the account and what it lacks
(`walruspy.cli.output.error_text` adds where to get it).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from walruspy.cli.client_cmds import client_options, run_client
from walruspy.cli.output import emit, frost_text, json_option, wal_text

if TYPE_CHECKING:
    from walruspy.client import WalrusClient
    from walruspy.client.config import ContextConfig
    from walruspy.client.wallet import WalletBalance

__all__ = ["WALLET_COMMANDS"]

#: Wei in one unit of the native coin (18 decimals, as ether).
WEI_PER_COIN = 10**18


def _context(config_path: Path | None, context: str | None) -> ContextConfig:
    from walruspy.client import load_config

    return load_config(config_path).context(context)


def _address_of(selected: ContextConfig) -> str:
    """The address of the context's wallet; NoWalletError naming the context without one."""
    from walruspy.client.errors import NoWalletError
    from walruspy.client.wallet import wallet_address

    key = selected.read_wallet_key()
    if key is None:
        raise NoWalletError(
            f"context {selected.name!r} has no wallet: create one with `walruspy wallet new "
            "--path FILE` and set wallet_key_path: FILE in the context"
        )
    return wallet_address(key)


def _coin_text(wei: int) -> str:
    """Wei with their value in coins: "1500000000000000000 wei (1.5 coins)"."""
    whole, fraction = divmod(wei, WEI_PER_COIN)
    coins = f"{whole}.{fraction:018d}".rstrip("0").rstrip(".")
    return f"{wei} wei ({coins} coins)"


def _balance_json(balance: WalletBalance) -> dict[str, Any]:
    return {**balance.to_json(), "walBalanceWal": wal_text(balance.wal_frost)}


def _default_wallet_path() -> Path:
    """Where `wallet new` writes without --path: beside the default client configuration."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path.home() / ".config"
    return base / "walruspy" / "wallet.key"


@click.group("wallet")
def wallet() -> None:
    """The client's wallet: its address, its balances, a new key file."""


@wallet.command("address")
@client_options
def address_command(*, config_path: Path | None, context: str | None, as_json: bool) -> None:
    """The address of the context's wallet (read from its key file; no network needed)."""
    selected = _context(config_path, context)
    address = _address_of(selected)
    emit({"address": address, "context": selected.name}, as_json=as_json, lines=[address])


@wallet.command("balance")
@client_options
def balance_command(*, config_path: Path | None, context: str | None, as_json: bool) -> None:
    """What the wallet holds: the native coin that pays for gas, and WAL that pays storage."""
    from walruspy.client.wallet import BalanceReader, wallet_balance

    address = _address_of(_context(config_path, context))

    async def operation(client: WalrusClient) -> WalletBalance:
        return await wallet_balance(cast(BalanceReader, client.env.chain), address)

    balance = run_client(config_path, context, operation)
    emit(
        _balance_json(balance),
        as_json=as_json,
        lines=[
            f"Address: {balance.address}",
            f"Gas (native coin): {_coin_text(balance.gas_wei)}",
            f"WAL: {frost_text(balance.wal_frost)}",
        ],
    )


@wallet.command("new")
@click.option(
    "--path",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The key file to create (default: $XDG_CONFIG_HOME/walruspy/wallet.key, or "
    "~/.config/walruspy/wallet.key). An existing file is never overwritten.",
)
@json_option
def new_command(*, path: Path | None, as_json: bool) -> None:
    """Create a new wallet: a private key file (mode 0600) and its address."""
    from walruspy.client.wallet import create_wallet_key

    target = path if path is not None else _default_wallet_path()
    address = create_wallet_key(target)
    emit(
        {"address": address, "path": str(target)},
        as_json=as_json,
        lines=[
            f"Created wallet {address} in {target}.",
            f"Use it: set `wallet_key_path: {target}` in a context of your client configuration.",
            "Fund it: `walruspy get-wal` on a devnet; on another network, from its faucet.",
        ],
    )


@click.command("get-wal")
@click.option(
    "--amount",
    "amount_frost",
    type=click.IntRange(min=1, max=(1 << 64) - 1),
    default=None,
    help="FROST of WAL to get (default: 10,000 WAL). Gas comes too if the wallet is short of it.",
)
@click.option(
    "--address",
    "address",
    default=None,
    help="Fund this address instead of the context's wallet (0x and 40 hex digits).",
)
@client_options
def get_wal_command(
    *,
    amount_frost: int | None,
    address: str | None,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """On a walruspy devnet: send WAL (and gas if needed) to the wallet, from the deployer."""
    from web3 import Web3

    from walruspy.devnet.faucet import DEFAULT_WAL_FROST, get_wal

    selected = _context(config_path, context)
    if address is not None:
        if not Web3.is_address(address):
            raise click.BadParameter(
                f"{address[:60]!r} is not an EVM address (0x and 40 hex digits)",
                param_hint="'--address'",
            )
        receiver: str = Web3.to_checksum_address(address)
    else:
        receiver = _address_of(selected)
    wal = amount_frost if amount_frost is not None else DEFAULT_WAL_FROST
    funded = asyncio.run(get_wal(selected, receiver, wal))
    gas_line = (
        f"Gas sent: {_coin_text(funded.gas_sent_wei)}."
        if funded.gas_sent_wei
        else "No gas sent: the wallet has enough."
    )
    emit(
        {
            "address": receiver,
            "walSent": funded.wal_sent_frost,
            "gasSent": funded.gas_sent_wei,
            "balance": _balance_json(funded.balance),
        },
        as_json=as_json,
        lines=[
            f"Sent {frost_text(funded.wal_sent_frost)} to {receiver}.",
            gas_line,
            f"It now holds {frost_text(funded.balance.wal_frost)} and "
            f"{_coin_text(funded.balance.gas_wei)} for gas.",
        ],
    )


#: The commands `walruspy.cli.main` registers.
WALLET_COMMANDS = (wallet, get_wal_command)
