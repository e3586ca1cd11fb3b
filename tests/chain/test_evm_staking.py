"""The staking chain client (walruspy.chain.evm_staking) against real nodes: devchain and anvil.

A staking deployment (`deploy_staking`), three storage nodes registering from their own
wallets, a staker, and the whole multi-stage epoch change driven through the client as nodes
drive it: `advance_epoch` takes `voting_end` and then `initiate_epoch_change`, every member
reports `epoch_sync_done`, and EpochChangeDone arrives on the node's event stream. Then the
committee changes: a node whose stake is withdrawn leaves at the next selection.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

import pytest
from eth_account import Account

from tests.chain.backends import ChainProcess
from walruspy.chain.api import ChainRevertError
from walruspy.chain.deploy import Deployment
from walruspy.chain.deploy_staking import StakingParams, deploy_staking
from walruspy.chain.events import EpochChangeDone, EpochChangeStart, EventCursor
from walruspy.chain.evm import EvmChain, open_evm_chain
from walruspy.chain.evm_staking import EpochState, EvmStaking
from walruspy.core.apportionment import quorum_below
from walruspy.core.blob_id import BlobId
from walruspy.core.crypto import BlsPrivateKey
from walruspy.core.messages import sign_proof_of_possession_evm
from walruspy.core.params import RS2_ENCODING_TYPE, EncodingParams

pytestmark = pytest.mark.timeout(300)

WAL = 10**9
EPOCH_S = 120
N_SHARDS = 10


@contextlib.asynccontextmanager
async def opened(node: ChainProcess, deployment: Deployment, key: bytes) -> AsyncIterator[EvmChain]:
    async with open_evm_chain(node.url, deployment, key) as chain:
        yield chain


def staking_of(chain: EvmChain) -> EvmStaking:
    assert chain.staking is not None
    return chain.staking


async def register(chain: EvmChain, index: int) -> tuple[bytes, BlsPrivateKey]:
    key = BlsPrivateKey.from_seed(bytes([index]) * 32)
    staking = staking_of(chain)
    epoch = (await staking.state()).epoch
    pop = sign_proof_of_possession_evm(key, epoch, bytes.fromhex(chain.address[2:]))
    node_id, cap_id = await staking.register_candidate(
        name=f"node{index}",
        network_address=f"127.0.0.1:{9100 + index}",
        public_key=key.public_key(),
        proof_of_possession=pop,
        network_public_key=b"\x07" * 32,
        commission_rate=500,
        storage_price=100 + index,
        write_price=20,
        node_capacity=1 << 40,
    )
    info = await staking.node_info(node_id)
    assert (info.cap_id, info.name, info.public_key) == (cap_id, f"node{index}", key.public_key())
    return node_id, key


async def move_clock(node: ChainProcess, chain: EvmChain) -> None:
    """A block at the time the next epoch step is due."""
    due = await chain.epoch_step_due_at()
    assert due is not None
    node.rpc("evm_mine", max(due, await chain.chain_time() + 1))


async def test_the_epoch_change_through_the_client(node: ChainProcess) -> None:
    deployer_key, *operator_keys = node.keys[:4]
    deployment = await deploy_staking(
        node.url, deployer_key, StakingParams(n_shards=N_SHARDS, epoch_duration_s=EPOCH_S)
    )
    assert Deployment.from_json(deployment.to_json()) == deployment
    async with opened(node, deployment, deployer_key) as chain:
        staking = staking_of(chain)
        state = await staking.state()
        assert (state.epoch, state.state, state.n_shards) == (0, EpochState.EPOCH_CHANGE_DONE, 10)
        assert (await chain.system_info()).epoch == 0
        nodes: dict[bytes, tuple[bytes, BlsPrivateKey]] = {}
        for index, key in enumerate(operator_keys):
            async with opened(node, deployment, key) as operator:
                node_id, bls = await register(operator, index)
            nodes[node_id] = (key, bls)
            await staking.stake(node_id, (index + 1) * 1000 * WAL)
        assert set(await staking.node_ids()) == set(nodes)
        assert [stake for _, stake in await staking.active_set()] == [
            1000 * WAL,
            2000 * WAL,
            3000 * WAL,
        ]
        staked = await staking.staked_wal(chain.address)
        assert sorted(s.principal for s in staked) == [1000 * WAL, 2000 * WAL, 3000 * WAL]
        assert all(s.activation_epoch == 1 and s.state == "Staked" for s in staked)

        # Epoch 0 may end at once: voting_end, then initiate_epoch_change.
        assert await chain.advance_epoch()
        _, _, upcoming = await staking.committees()
        assert set(upcoming.node_ids) == set(nodes) and upcoming.n_shards == N_SHARDS
        assert await chain.advance_epoch()
        assert await chain.epoch_step_due_at() is None  # the committee reports its shards
        assert not await chain.advance_epoch()
        committee = await chain.committee()
        assert committee.epoch == 1 and {m.node_id for m in committee.members} == set(nodes)
        for member in committee.members:
            assert member.public_key == nodes[member.node_id][1].public_key()
            assert member.network_address.startswith("127.0.0.1:91")
        info = await chain.system_info()
        votes = [
            ((await staking.node_info(m.node_id)).storage_price, len(m.shards))
            for m in committee.members
        ]
        assert info.storage_price_per_unit_size == quorum_below(votes, N_SHARDS)
        assert not await chain.epoch_sync_done(1)  # the staker runs no node

        for key, _ in nodes.values():
            async with opened(node, deployment, key) as operator:
                assert await operator.epoch_sync_done(1)
                assert not await operator.epoch_sync_done(1)  # once
        state = await staking.state()
        assert state.state is EpochState.EPOCH_CHANGE_DONE
        events = await chain.events(EventCursor(), 1000)
        assert [e.epoch for e in events if isinstance(e, EpochChangeStart)] == [1]
        assert [e.epoch for e in events if isinstance(e, EpochChangeDone)] == [1]

        # The least staked node's stake is withdrawn: it leaves at the next selection.
        leaver = min(nodes, key=lambda n: next(s.principal for s in staked if s.node_id == n))
        [leaving] = [s for s in staked if s.node_id == leaver]
        assert not await staking.can_withdraw_early(leaving.object_id)
        await staking.request_withdraw_stake(leaving.object_id)
        with pytest.raises(ChainRevertError, match="withdraw epoch not reached"):
            await staking.withdraw_stake(leaving.object_id)
        await move_clock(node, chain)
        assert await chain.advance_epoch()  # voting_end
        _, current, upcoming = await staking.committees()
        assert leaver in current.node_ids and leaver not in upcoming.node_ids
        await move_clock(node, chain)
        assert await chain.advance_epoch()  # initiate_epoch_change: epoch 2
        assert {m.node_id for m in (await chain.committee()).members} == set(nodes) - {leaver}
        pool = await staking.pool(leaver)
        assert pool.commission_rate == 500 and pool.latest_epoch == 2
        paid = await staking.withdraw_stake(leaving.object_id)
        assert paid >= 1000 * WAL
        assert leaving.object_id not in {
            s.object_id for s in await staking.staked_wal(chain.address)
        }


async def test_a_registration_with_a_foreign_proof_is_refused(node: ChainProcess) -> None:
    deployer_key, other_key = node.keys[:2]
    deployment = await deploy_staking(
        node.url, deployer_key, StakingParams(n_shards=N_SHARDS, epoch_duration_s=EPOCH_S)
    )
    key = BlsPrivateKey.from_seed(b"\x01" * 32)
    other = bytes.fromhex(Account.from_key(other_key).address[2:])
    async with opened(node, deployment, deployer_key) as chain:
        with pytest.raises(ChainRevertError, match="invalid proof of possession"):
            await staking_of(chain).register_candidate(
                name="x",
                network_address="127.0.0.1:1",
                public_key=key.public_key(),
                proof_of_possession=sign_proof_of_possession_evm(key, 0, other),
                network_public_key=b"",
                commission_rate=0,
                storage_price=1,
                write_price=1,
                node_capacity=1,
            )
        with pytest.raises(ChainRevertError, match="no stake"):
            await chain.advance_epoch()


async def test_rewards_and_commission_through_the_client(node: ChainProcess) -> None:
    """Storage fees become rewards: shares gain value, operators collect commission."""
    deployer_key, operator_key, user_key = node.keys[:3]
    deployment = await deploy_staking(
        node.url, deployer_key, StakingParams(n_shards=N_SHARDS, epoch_duration_s=EPOCH_S)
    )
    async with (
        opened(node, deployment, deployer_key) as chain,
        opened(node, deployment, operator_key) as operator,
        opened(node, deployment, user_key) as user,
    ):
        staking = staking_of(chain)
        node_id, _ = await register(operator, 7)
        await chain.transfer_wal(user.address, 10**6 * WAL)
        staked = await staking.stake(node_id, 1000 * WAL)
        await staking.stake(node_id, 1000 * WAL)  # stays, so that epochs go on
        assert await chain.advance_epoch() and await chain.advance_epoch()
        assert await operator.epoch_sync_done(1)
        # A user buys storage in epoch 1: its fees are epoch 1's rewards.
        for _ in range(3):
            blob_id, root_hash, size = new_blob(1 << 20)
            await user.reserve_and_register(
                blob_id=blob_id,
                root_hash=root_hash,
                unencoded_size=size,
                encoded_size=EncodingParams(N_SHARDS).encoded_length(size),
                epochs_ahead=1,
                deletable=False,
            )
        for _ in range(2):  # voting_end, initiate_epoch_change: epoch 2 pays epoch 1's rewards
            await move_clock(node, chain)
            assert await chain.advance_epoch()
        assert await operator.epoch_sync_done(2)
        pool = await staking.pool(node_id)
        assert pool.rewards_pool > 0 and pool.commission > 0
        assert pool.commission == pool.blocked_commission  # until the next voting_end
        assert await staking_of(operator).collect_commission(node_id) == 0
        await staking.request_withdraw_stake(staked)
        await move_clock(node, chain)
        assert await chain.advance_epoch()  # voting_end unblocks the commission
        assert await staking_of(operator).collect_commission(node_id) == pool.commission
        await move_clock(node, chain)
        assert await chain.advance_epoch()
        paid = await staking.withdraw_stake(staked)
        assert paid > 1000 * WAL  # the principal and half the rewards (half the shares)
        assert paid - 1000 * WAL <= pool.rewards_pool // 2 + 1


def new_blob(size: int) -> tuple[BlobId, bytes, int]:
    root_hash = secrets.token_bytes(32)
    return BlobId.from_metadata(RS2_ENCODING_TYPE, size, root_hash), root_hash, size
