"""The chain client reads and writes a devchain over the simulated network, the engine inline.

The devchain runs on the event loop (`open_devchain(inline=True)`) and serves through
`SimNetwork.serve`; the deployer and the chain client reach it with the network's connectors
(`connector=`), so no socket and no thread carries a request.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from tests.chain.test_evm_chain import COMMITTEE_4
from walruspy.chain.deploy import deploy
from walruspy.chain.devchain import open_devchain
from walruspy.chain.evm import open_evm_chain
from walruspy.sim.network import SimNetwork


async def test_the_chain_client_talks_to_an_inline_devchain_over_the_network(
    tmp_path: Path,
) -> None:
    net = SimNetwork(seed=1)
    net.set_link("client", "chain", latency_s=0.002, jitter_s=0.002)
    connector = functools.partial(net.connector, "client")
    try:
        async with open_devchain(
            tmp_path / "chain", inline=True, listen=functools.partial(net.serve, "chain", 8545)
        ) as devchain:
            assert devchain.url == "http://chain:8545"
            key = devchain.account_keys[0]
            deployment = await deploy(
                devchain.url, key, COMMITTEE_4.params_for(key), connector=connector
            )
            async with open_evm_chain(devchain.url, deployment, key, connector=connector) as chain:
                committees = await chain.epoch_committees()
                assert committees.current.members == COMMITTEE_4.committee.members
                assert await chain.wal_balance(chain.address) > 0
            # The engine ran on the loop: no chain or call thread was started. (The contracts'
            # ABIs are still loaded by `asyncio.to_thread`, on the loop's default executor.)
            names = [thread.name for thread in threading.enumerate()]
            assert not [name for name in names if name.startswith("walruspy-devchain")]
    finally:
        await net.close()
