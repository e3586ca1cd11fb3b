"""`discover_deployment`: a network's deployment from its System address alone, read on chain.

Theory of operation (spec/walrus-system.md 3.9: an operator joining a network is given the
chain and the system object, as Walrus's `walrus-node setup` takes `--system-object-id` and
`--staking-object-id`). A walruspy deployment file names every contract; System knows them all:
`wal()`, `staking()` and its annexes' getters are public, and Staking's
`pools()` and `committee_contracts(0)` name the pools and the first committee contract. So an
operator needs only the RPC URL and the System address.

- `start_block`, where readers begin scanning events, is the first block at which System has
  code, found by bisection with `eth_getCode` at past blocks (about log2(height) calls). A node
  that keeps no past state refuses those calls; the scan then starts at block 0, which is
  correct but slower on a long chain.
- `abi_digest` is that of this walruspy's contracts: `open_evm_chain` checks it against the
  chain's code, so a deployment made with other contracts is still refused there.
- `deployer` is not recorded on chain (nodes and clients never use it); the zero address
  stands in.
- A fixed-committee deployment (no Staking) is refused: nodes cannot join it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from eth_utils.address import is_address, to_checksum_address
from web3 import AsyncWeb3

from walruspy.chain.api import ChainUnavailableError, DeploymentError
from walruspy.chain.contracts import DEPLOYABLE, load_contract
from walruspy.chain.deploy import Deployment, abi_digest
from walruspy.chain.evm_rpc import ContractHandle, open_web3, rpc_errors
from walruspy.tasks import gather_reads

__all__ = ["UNKNOWN_DEPLOYER", "discover_deployment"]

#: The deployer of a discovered deployment (not on chain, not needed to run a node).
UNKNOWN_DEPLOYER: Final = "0x" + "00" * 20
_ZERO: Final = UNKNOWN_DEPLOYER


async def _first_block_with_code(w3: AsyncWeb3[Any], url: str, address: str, head: int) -> int:
    """The lowest block at which `address` has code (bisection); 0 if the node cannot tell."""
    low, high = 0, head
    try:
        while low < high:
            middle = (low + high) // 2
            with rpc_errors(url, "eth_getCode at a past block"):
                code = await w3.eth.get_code(AsyncWeb3.to_checksum_address(address), middle)
            if code:
                high = middle
            else:
                low = middle + 1
    except ChainUnavailableError:
        return 0  # no past state on this node: scan from the start
    return low


async def discover_deployment(rpc_url: str, system: str) -> Deployment:
    """The deployment whose System contract is at `system` on the chain at `rpc_url`.

    Raises `DeploymentError` when `system` is not an address or holds no walruspy System with
    staking, `ChainUnavailableError` when the node cannot be reached.
    """
    if not is_address(system):
        raise DeploymentError(f"--system must be an EVM address (0x and 40 hex digits): {system!r}")
    abis = dict(await asyncio.to_thread(lambda: [(n, load_contract(n)[0]) for n in DEPLOYABLE]))
    w3 = open_web3(rpc_url)
    try:
        with rpc_errors(rpc_url, "read the chain"):
            chain_id, head, code = await gather_reads(
                w3.eth.chain_id, w3.eth.block_number, w3.eth.get_code(to_checksum_address(system))
            )
        if not code:
            raise DeploymentError(f"no contract at {system} on chain {chain_id} ({rpc_url})")
        handle = ContractHandle(w3, rpc_url, system, abis["System"])
        try:
            wal, challenges, attributes, shared_blobs, staking = await gather_reads(
                handle.view("wal"),
                handle.view("challenges"),
                handle.view("attributes"),
                handle.view("shared_blobs"),
                handle.view("staking"),
            )
        except ChainUnavailableError as exc:
            raise DeploymentError(f"{system} is not a walruspy System contract: {exc}") from exc
        if staking == _ZERO:
            raise DeploymentError(
                f"the System at {system} has a fixed committee (no Staking): nodes cannot join it"
            )
        staking_handle = ContractHandle(w3, rpc_url, staking, abis["Staking"])
        # Deployment.committee of a staking deployment is the first of the two it alternates.
        pools, committee = await gather_reads(
            staking_handle.view("pools"), staking_handle.view("committee_contracts", 0)
        )
        start_block = await _first_block_with_code(w3, rpc_url, system, head)
    finally:
        await w3.provider.disconnect()
    return Deployment(
        chain_id=chain_id,
        system=to_checksum_address(system),
        wal=to_checksum_address(wal),
        committee=to_checksum_address(committee),
        deployer=UNKNOWN_DEPLOYER,
        start_block=start_block,
        abi_digest=abi_digest([abis[name] for name in DEPLOYABLE]),
        challenges=to_checksum_address(challenges),
        attributes=to_checksum_address(attributes),
        shared_blobs=to_checksum_address(shared_blobs),
        staking=to_checksum_address(staking),
        pools=to_checksum_address(pools),
    )
