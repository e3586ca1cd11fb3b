"""`walruspy get-wal` on a devnet: WAL, and gas if the wallet is short of it, for a wallet.

Theory of operation. A devnet has no exchange and no faucet service: its deployer, the funder
(the devchain's first prefunded account, or the account given with `devnet up --chain-key` on
an external chain), minted every WAL and funds every wallet of the devnet when it starts
(`walruspy.devnet.setup.fund_wallets`). `get_wal` does the same for one wallet later, from the
same account, through the context's RPC URLs. A command given only a client configuration
finds that account's key where the devnet wrote it, `DIR/wallets/funder.key` beside the
context's wallet key (devnets made before that file existed use the devchain's account). It
works only on a deployment that account made (the deployment file names its deployer): on any
other network no key at hand is the deployer's, and the error says so instead of failing on a
transfer.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from eth_account import Account

from walruspy.chain.api import ChainUnavailableError
from walruspy.chain.evm import open_evm_chain
from walruspy.client.config import ContextConfig
from walruspy.client.wallet import WalletBalance, wallet_balance
from walruspy.devnet.errors import DevnetError
from walruspy.devnet.setup import FUNDER_KEY_FILE, devchain_funder_key, fund_wallets
from walruspy.node.errors import KeyFileError
from walruspy.node.keys import load_wallet_key

__all__ = ["DEFAULT_GAS_WEI", "DEFAULT_WAL_FROST", "MIN_GAS_WEI", "Funding", "get_wal"]

#: WAL `get-wal` sends by default: 10,000 WAL, enough for thousands of stores of a few MiB at a
#: devnet's prices (100,000 FROST per MiB and epoch).
DEFAULT_WAL_FROST: Final = 10_000 * 10**9
#: Below this much of the native coin a wallet gets gas too: one coin pays for thousands of
#: transactions at devchain prices (a store's costliest, reserve_and_register, needs 0.003).
MIN_GAS_WEI: Final = 10**18
#: The gas sent to such a wallet.
DEFAULT_GAS_WEI: Final = 10 * 10**18


@dataclass(frozen=True, slots=True)
class Funding:
    """What `get_wal` sent and what the wallet holds afterwards."""

    wal_sent_frost: int
    gas_sent_wei: int
    balance: WalletBalance


async def get_wal(
    context: ContextConfig,
    address: str,
    wal_frost: int = DEFAULT_WAL_FROST,
    gas_wei: int = DEFAULT_GAS_WEI,
) -> Funding:
    """Send `wal_frost` of WAL to `address`, and `gas_wei` if it holds under `MIN_GAS_WEI`."""
    deployment = context.deployment
    faucet_key = next(
        (
            key
            for key in _faucet_keys(context)
            if str(Account.from_key(key).address).lower() == deployment.deployer.lower()
        ),
        None,
    )
    if faucet_key is None:
        raise DevnetError(
            f"get-wal funds wallets on a walruspy devnet only: the contracts of context "
            f"{context.name!r} were deployed by {deployment.deployer}, whose key is neither "
            f"the devchain's first account nor in a {FUNDER_KEY_FILE} beside the context's "
            "wallet key; ask the network's operator for WAL and gas"
        )
    failures = []
    for url in context.rpc_urls:
        try:
            async with open_evm_chain(url, deployment) as chain:
                before = await wallet_balance(chain, address)
            gas = gas_wei if before.gas_wei < MIN_GAS_WEI else 0
            gas = await fund_wallets(
                url, deployment, [address], funder_key=faucet_key, eth_wei=gas, wal_frost=wal_frost
            )
            async with open_evm_chain(url, deployment) as chain:
                after = await wallet_balance(chain, address)
        except ChainUnavailableError as exc:
            failures.append(str(exc))
            continue
        return Funding(wal_frost, gas, after)
    raise ChainUnavailableError(
        f"no RPC URL of context {context.name!r} answered: " + "; ".join(failures)
    )


def _faucet_keys(context: ContextConfig) -> list[bytes]:
    """The keys that may be the devnet's funder: its key file beside the context's wallet, then
    the devchain's first account (module docstring)."""
    keys = []
    if context.wallet_key_path is not None:
        path = Path(context.wallet_key_path).parent / FUNDER_KEY_FILE
        # None there (another network's wallet) or unreadable: not a devnet's funder.
        with contextlib.suppress(KeyFileError):
            keys.append(load_wallet_key(path))
    return [*keys, devchain_funder_key()]
