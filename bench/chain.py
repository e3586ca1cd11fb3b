"""Measure the chain client on the embedded devchain and on anvil, side by side.

For each operation of the blob lifecycle (reserve+register, certify with 4, 10 and 100 committee
members, extend, delete) and of staking (register a node, stake, voting_end and
initiate_epoch_change with 4 nodes and with 100 nodes on 1000 shards, epoch_sync_done, request
and withdraw stake) it prints the gas used and the median wall time of the client call as a
caller sees it (transaction, receipt and the client's own reads), on both chains; then the
transaction throughput of one account sending concurrently, and the time of an ether transfer
(transaction and receipt) idle and while three clients each run 30M-gas eth_calls in a loop (the
devchain serves calls beside transactions, walruspy.chain.devchain_calls). anvil (a native Rust
node) is the baseline measured in the same run; the last column is devchain time / anvil time.
Targets: certify with 100 members in at most 150 ms on the devchain (issue 3); voting_end and
initiate_epoch_change with 100 nodes and 1000 shards within one 30M-gas block (issue 9). The
first initiate_epoch_change into each of Staking's two Committee contracts writes fresh storage
slots; later ones rewrite them, so both are shown.

Usage: python bench/chain.py [--repeat N] [--transactions N] [--no-anvil]
Needs npm for the anvil leg (installs @foundry-rs/anvil into .cache/anvil).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.chain.backends

from eth_account import Account
from tests.chain.backends import ChainProcess, running
from web3 import Web3

from walruspy.chain.deploy import DeployParams, assign_shards, deploy, sign_deployment_pop
from walruspy.chain.deploy_staking import StakingParams, deploy_staking
from walruspy.chain.evm import EvmChain, open_evm_chain
from walruspy.chain.evm_rpc import TransactionSender
from walruspy.core.blob_id import BlobId
from walruspy.core.certificates import Certificate
from walruspy.core.committee import CommitteeMember
from walruspy.core.crypto import BlsPrivateKey
from walruspy.core.messages import (
    BlobPersistence,
    ConfirmationMessage,
    sign_proof_of_possession_evm,
)
from walruspy.core.params import RS2_ENCODING_TYPE, EncodingParams

COMMITTEE_SIZES = (4, 10, 100)
STAKING_SIZES = (4, 100)  # nodes; 10 shards per node, 1000 for 100 nodes
BLOCK_GAS_LIMIT = 30_000_000
WAL = 10**9
IN_FLIGHT = 32  # concurrent transactions in the throughput run
TARGET_CERTIFY_100_MS = 150.0


@dataclass
class Figures:
    """Gas and wall times per operation on one chain."""

    gas: dict[str, int] = field(default_factory=dict)
    times_s: dict[str, list[float]] = field(default_factory=dict)
    tx_per_s: dict[str, float] = field(default_factory=dict)

    def record(self, name: str, gas: int, seconds: float) -> None:
        self.gas[name] = gas
        self.times_s.setdefault(name, []).append(seconds)

    def median_ms(self, name: str) -> float:
        return 1000 * statistics.median(self.times_s[name])


class GasMeter:
    """Remembers the gas of the last receipt the chain client got."""

    def __init__(self, chain: EvmChain) -> None:
        self.last = 0
        sender = chain._sender
        send = sender.send

        async def metered(operation: str, **kwargs: Any) -> Any:
            receipt = await send(operation, **kwargs)
            self.last = int(receipt["gasUsed"])
            return receipt

        sender.send = metered  # type: ignore[method-assign]


def committee(n_members: int, deployer: str) -> tuple[DeployParams, list[BlsPrivateKey]]:
    n_shards = 10 * n_members if n_members < 100 else 1000
    keys = [
        BlsPrivateKey.from_seed(hashlib.sha256(b"bench %d" % i).digest()) for i in range(n_members)
    ]
    shards = assign_shards(n_members, n_shards, "round-robin")
    members = [
        CommitteeMember((i + 1).to_bytes(32, "big"), keys[i].public_key(), f"n{i}:1", shards[i])
        for i in range(n_members)
    ]
    params = DeployParams(
        members=tuple(members),
        proofs_of_possession=tuple(sign_deployment_pop(key, deployer) for key in keys),
        n_shards=n_shards,
        epoch_duration_s=3600,
        max_epochs_ahead=53,
        total_capacity_size=1 << 50,
        storage_price_per_unit_size=100_000,
        write_price_per_unit_size=20_000,
    )
    return params, keys


async def timed(figures: Figures, name: str, meter: GasMeter, call: Awaitable[Any]) -> Any:
    start = time.perf_counter()
    result = await call
    figures.record(name, meter.last, time.perf_counter() - start)
    return result


async def register(chain: EvmChain, n_shards: int, deletable: bool) -> Any:
    root_hash = secrets.token_bytes(32)
    size = 1000
    return await chain.reserve_and_register(
        blob_id=BlobId.from_metadata(RS2_ENCODING_TYPE, size, root_hash),
        root_hash=root_hash,
        unencoded_size=size,
        encoded_size=EncodingParams(n_shards).encoded_length(size),
        epochs_ahead=1,
        deletable=deletable,
    )


async def lifecycle(
    node: ChainProcess, n_members: int, repeat: int, transactions: int, figures: Figures
) -> None:
    params, keys = committee(n_members, str(Account.from_key(node.keys[0]).address))
    deployment = await deploy(node.url, node.keys[0], params)
    signers_of = params.committee()
    quorum, weight = [], 0
    for index, member in enumerate(signers_of.members):
        if signers_of.is_quorum(weight):
            break
        quorum.append(index)
        weight += member.weight
    async with open_evm_chain(node.url, deployment, node.keys[0]) as chain:
        meter = GasMeter(chain)
        await register(chain, params.n_shards, True)  # approval and first slots out of the way
        for _ in range(repeat):
            name = "reserve+register (1 epoch)"
            registration = await timed(
                figures, name, meter, register(chain, params.n_shards, deletable=True)
            )
            blob = registration.blob
            message = ConfirmationMessage(
                1, blob.blob_id.raw, BlobPersistence.deletable(blob.object_id)
            ).to_bcs()
            certificate = Certificate.from_signatures(
                message, [(i, keys[i].sign(message)) for i in quorum]
            )
            name = f"certify, {n_members} members ({len(quorum)} sign)"
            await timed(figures, name, meter, chain.certify_blob(blob.object_id, certificate))
            if n_members == COMMITTEE_SIZES[0]:
                await timed(
                    figures, "extend (+1 epoch)", meter, chain.extend_blob(blob.object_id, 1)
                )
                await timed(figures, "delete", meter, chain.delete_blob(blob.object_id))
        if n_members == COMMITTEE_SIZES[0]:
            await throughput(chain, params.n_shards, transactions, figures)


async def rate(count: int, make: Callable[[], Awaitable[Any]]) -> float:
    """Transactions per second of `count` calls, IN_FLIGHT at a time."""
    limit = asyncio.Semaphore(IN_FLIGHT)

    async def one() -> None:
        async with limit:
            await make()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return count / (time.perf_counter() - start)


async def throughput(chain: EvmChain, n_shards: int, count: int, figures: Figures) -> None:
    sink = "0x" + secrets.token_hex(20)
    figures.tx_per_s["WAL transfers"] = await rate(count, lambda: chain.transfer_wal(sink, 1))
    figures.tx_per_s["reserve+register"] = await rate(
        count // 2, lambda: register(chain, n_shards, False)
    )


async def fund_ether(node: ChainProcess, chain_id: int, addresses: list[str]) -> None:
    w3 = chain_web3(node)
    try:
        sender = TransactionSender(w3, node.url, node.keys[0], chain_id)
        await asyncio.gather(
            *(sender.send("fund", to=a, data=b"", gas=21_000, value=10**19) for a in addresses)
        )
    finally:
        await w3.provider.disconnect()


def chain_web3(node: ChainProcess) -> Any:
    from walruspy.chain.evm_rpc import open_web3

    return open_web3(node.url)


async def register_operator(
    node: ChainProcess, deployment: Any, key: bytes, index: int
) -> tuple[bytes, int]:
    """Register node `index` from its operator's account: its node ID and the gas used."""
    bls = BlsPrivateKey.from_seed(hashlib.sha256(b"staking bench %d" % index).digest())
    async with open_evm_chain(node.url, deployment, key) as operator:
        assert operator.staking is not None
        meter = GasMeter(operator)
        pop = sign_proof_of_possession_evm(bls, 0, bytes.fromhex(operator.address[2:]))
        node_id, _ = await operator.staking.register_candidate(
            name=f"n{index}", network_address=f"n{index}:1", public_key=bls.public_key(),
            proof_of_possession=pop, network_public_key=b"", commission_rate=0,
            storage_price=100_000, write_price=20_000, node_capacity=1 << 40,
        )  # fmt: skip
        return node_id, meter.last


async def sync_all(node: ChainProcess, deployment: Any, keys: list[bytes], epoch: int) -> int:
    """Every operator reports its shards; the gas of the last report."""
    gas = 0
    for key in keys:
        async with open_evm_chain(node.url, deployment, key) as operator:
            meter = GasMeter(operator)
            if await operator.epoch_sync_done(epoch):
                gas = meter.last
    return gas


async def staking_lifecycle(node: ChainProcess, n_nodes: int, figures: Figures) -> None:
    """One staking deployment of `n_nodes` nodes through three epoch changes."""
    n_shards = 1000 if n_nodes >= 100 else 10 * n_nodes
    deployment = await deploy_staking(
        node.url, node.keys[0], StakingParams(n_shards=n_shards, epoch_duration_s=3600)
    )
    keys = [bytes(Account.create().key) for _ in range(n_nodes)]
    await fund_ether(node, deployment.chain_id, [Account.from_key(k).address for k in keys])
    tag = f"{n_nodes} nodes, {n_shards} shards"
    async with open_evm_chain(node.url, deployment, node.keys[0]) as chain:
        assert chain.staking is not None
        meter = GasMeter(chain)
        node_ids = []
        for index, key in enumerate(keys):
            start = time.perf_counter()
            node_id, gas = await register_operator(node, deployment, key, index)
            node_ids.append(node_id)
            figures.record("register_candidate", gas, time.perf_counter() - start)
        stakes = []
        for index, node_id in enumerate(node_ids):
            amount = (1000 + 37 * index) * WAL
            stakes.append(
                await timed(figures, "stake_with_pool", meter, chain.staking.stake(node_id, amount))
            )
        for round_ in range(3):
            due = await chain.epoch_step_due_at()
            assert due is not None
            node.rpc("evm_mine", max(due, await chain.chain_time() + 1))
            await timed(
                figures, f"voting_end ({tag}){' again' * round_}", meter, chain.advance_epoch()
            )
            due = await chain.epoch_step_due_at()
            assert due is not None
            node.rpc("evm_mine", max(due, await chain.chain_time() + 1))
            name = f"initiate_epoch_change ({tag}){' again' * round_}"
            await timed(figures, name, meter, chain.advance_epoch())
            epoch = (await chain.system_info()).epoch
            start = time.perf_counter()
            gas = await sync_all(node, deployment, keys, epoch)
            figures.record(f"epoch_sync_done x{n_nodes}", gas, time.perf_counter() - start)
        if n_nodes == STAKING_SIZES[0]:
            await timed(
                figures,
                "request_withdraw_stake",
                meter,
                chain.staking.request_withdraw_stake(stakes[0]),
            )


SPIN_SOURCE = """
@external
@view
def spin(n: uint256) -> uint256:
    x: uint256 = 0
    for i: uint256 in range(n, bound=1000000000):
        x = unsafe_add(x, i)
    return x
"""
HEAVY_CLIENTS = 3
HEAVY_CALL_GAS = 30_000_000  # the block gas limit, and the devchain's default call gas cap


async def heavy_call_contention(node: ChainProcess, repeat: int, figures: Figures) -> None:
    """An ether transfer's time idle, then while HEAVY_CLIENTS loop 30M-gas eth_calls."""
    import aiohttp
    import vyper

    w3 = chain_web3(node)
    try:
        chain_id = await w3.eth.chain_id
        sender = TransactionSender(w3, node.url, node.keys[0], chain_id)
        bytecode = bytes.fromhex(vyper.compile_code(SPIN_SOURCE)["bytecode"][2:])
        deployed = await sender.send("deploy", to=None, data=bytecode, gas=1_000_000)
        spin = "0x" + bytes(Web3.keccak(text="spin(uint256)")[:4]).hex() + f"{10**9:064x}"
        call = {"to": deployed["contractAddress"], "data": spin, "gas": hex(HEAVY_CALL_GAS)}
        sink = Account.create().address
        name = "ether transfer, idle"
        for _ in range(repeat):
            start = time.perf_counter()
            await sender.send("transfer", to=sink, data=b"", gas=21_000, value=1)
            figures.record(name, 21_000, time.perf_counter() - start)

        async def hammer(http: aiohttp.ClientSession) -> None:
            body = {"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [call, "latest"]}
            while True:
                async with http.post(node.url, json=body) as response:
                    await response.read()

        name = f"ether transfer, {HEAVY_CLIENTS} clients looping 30M-gas calls"
        async with aiohttp.ClientSession() as http:
            clients = [asyncio.create_task(hammer(http)) for _ in range(HEAVY_CLIENTS)]
            try:
                await asyncio.sleep(1.0)  # let the calls start
                for _ in range(repeat):
                    start = time.perf_counter()
                    await sender.send("transfer", to=sink, data=b"", gas=21_000, value=1)
                    figures.record(name, 21_000, time.perf_counter() - start)
            finally:
                for client in clients:
                    client.cancel()
                await asyncio.gather(*clients, return_exceptions=True)
    finally:
        await w3.provider.disconnect()


async def measure(node: ChainProcess, repeat: int, transactions: int) -> Figures:
    figures = Figures()
    await heavy_call_contention(node, min(repeat, 5), figures)
    for n_members in COMMITTEE_SIZES:
        await lifecycle(node, n_members, repeat, transactions, figures)
    for n_nodes in STAKING_SIZES:
        await staking_lifecycle(node, n_nodes, figures)
    return figures


def report(chains: dict[str, Figures]) -> None:
    names = list(chains)
    first = chains[names[0]]
    header = f"{'operation':<52}" + "".join(f"{n + ' gas':>14}{n + ' ms':>13}" for n in names)
    if len(names) == 2:
        header += f"{'ratio':>8}"
    print(header)
    for operation in first.gas:
        line = f"{operation:<52}"
        for name in names:
            figures = chains[name]
            line += f"{figures.gas[operation]:>14,}{figures.median_ms(operation):>13.1f}"
        if len(names) == 2:
            ratio = chains[names[0]].median_ms(operation) / chains[names[1]].median_ms(operation)
            line += f"{ratio:>7.2f}x"
        print(line)
    print(f"\nthroughput, one account, {IN_FLIGHT} in flight")
    for operation in first.tx_per_s:
        line = f"  {operation:<34}" + "".join(
            f"{chains[n].tx_per_s[operation]:>18.1f} tx/s ({n})" for n in names
        )
        print(line)
    certify_100 = next(op for op in first.gas if op.startswith("certify, 100 "))
    got = first.median_ms(certify_100)
    verdict = "meets" if got <= TARGET_CERTIFY_100_MS else "MISSES"
    target = f"the {TARGET_CERTIFY_100_MS:.0f} ms target"
    print(f"\n{names[0]}: {certify_100} {got:.1f} ms: {verdict} {target}")
    epoch_ops = [
        op for op in first.gas if op.startswith(("voting_end (100", "initiate_epoch_change (100"))
    ]
    worst = max(first.gas[op] for op in epoch_ops)
    fits = "fits in" if worst <= BLOCK_GAS_LIMIT else "EXCEEDS"
    print(f"epoch change with 100 nodes: at most {worst:,} gas: {fits} one 30M-gas block")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="runs per operation (median)")
    parser.add_argument("--transactions", type=int, default=200, help="for the tx/s figure")
    parser.add_argument("--no-anvil", action="store_true", help="the devchain only")
    args = parser.parse_args()
    chains: dict[str, Figures] = {}
    backends = ["devchain"] if args.no_anvil else ["devchain", "anvil"]
    with tempfile.TemporaryDirectory() as state:
        for name in backends:
            with running(name, Path(state) / name) as node:
                if isinstance(node, str):
                    print(f"anvil skipped: {node}")
                    continue
                started = time.perf_counter()
                chains[name] = asyncio.run(measure(node, args.repeat, args.transactions))
                print(f"{name}: measured in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    report(chains)


if __name__ == "__main__":
    main()
