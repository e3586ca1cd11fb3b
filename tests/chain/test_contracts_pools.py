"""Pools.vy alone: staking, exchange rates, withdrawal timing and commission.

Ported from Walrus's Move tests (`staking_pool_tests`, `pool_direct_withdraw_tests`,
`pool_early_withdraw_tests`, `pool_commission_tests`), which drive one pool with an explicit
context: the epoch, whether the next committee is selected, and whether the pool's node is in
the current and next committee. Here a small stand-in Staking contract holds that context
(`pool_context`) and the tests call the pool's Staking-only functions from its address.
Amounts are in WAL (10^9 FROST), as `mint_wal_balance` is in Move.
"""

from __future__ import annotations

from typing import Any

import boa
import pytest

from tests.chain.conftest import WAL_SUPPLY
from tests.chain.staking_net import WAL
from walruspy.chain.contracts import CONTRACTS_DIR

CONTEXT_SOURCE = """
# pragma version ~=0.4.3
epoch: public(uint32)
selected: public(bool)
in_current: public(bool)
in_next: public(bool)
reported: public(HashMap[bytes32, uint256])

@external
def set_context(epoch: uint32, selected: bool, in_current: bool, in_next: bool):
    self.epoch = epoch
    self.selected = selected
    self.in_current = in_current
    self.in_next = in_next

@external
@view
def pool_context(node_id: bytes32) -> (uint32, bool, bool, bool):
    return self.epoch, self.selected, self.in_current, self.in_next

@external
def update_active_set(node_id: bytes32, stake: uint256):
    self.reported[node_id] = stake
"""

NODE = b"\x11" * 32


class PoolHarness:
    """One pool in epoch 0 with the Move tests' `context_runner`."""

    def __init__(self, commission_rate: int = 0) -> None:
        self.owner = boa.env.eoa
        self.wal = boa.load_partial(str(CONTRACTS_DIR / "Wal.vy")).deploy(WAL_SUPPLY)
        self.context = boa.loads(CONTEXT_SOURCE)
        self.pools = boa.load_partial(str(CONTRACTS_DIR / "Pools.vy")).deploy(
            self.wal.address, self.context.address
        )
        self.staker = boa.env.generate_address("staker")
        self.receiver = boa.env.generate_address("operator")
        with boa.env.prank(self.owner):
            self.wal.transfer(self.staker, 10**7 * WAL)
        with boa.env.prank(self.staker):
            self.wal.approve(self.pools.address, 2**256 - 1)
        self.epoch = 0
        self.selected = False
        with boa.env.prank(self.context.address):
            self.pools.create_pool(NODE, commission_rate, self.receiver, 0, 0)

    def _set(self, in_current: bool, in_next: bool) -> None:
        self.context.set_context(self.epoch, self.selected, in_current, in_next)

    def stake(self, amount_wal: int) -> bytes:
        self._set(False, False)
        with boa.env.prank(self.staker):
            return bytes(self.pools.stake_with_pool(amount_wal * WAL, NODE))

    def next_epoch(self, rewards_wal: int = 0) -> None:
        """Move `test.next_epoch()` followed by `pool.advance_epoch(rewards)`."""
        self.epoch += 1
        self.selected = False
        self._set(True, False)
        with boa.env.prank(self.owner):
            self.wal.transfer(self.pools.address, rewards_wal * WAL)
        with boa.env.prank(self.context.address):
            self.pools.advance_pool(NODE, rewards_wal * WAL, self.epoch)

    def skip_epoch(self) -> None:
        """An epoch passes without this pool advancing (its node in no committee)."""
        self.epoch += 1
        self.selected = False

    def select_committee(self) -> None:
        self.selected = True

    def request(self, staked: bytes, in_current: bool = True, in_next: bool = False) -> None:
        self._set(in_current, in_next)
        with boa.env.prank(self.staker):
            self.pools.request_withdraw_stake(staked)

    def withdraw(self, staked: bytes, in_current: bool = True, in_next: bool = False) -> int:
        self._set(in_current, in_next)
        before = self.wal.balanceOf(self.staker)
        with boa.env.prank(self.staker):
            self.pools.withdraw_stake(staked)
        return int(self.wal.balanceOf(self.staker) - before)

    def balance_at(self, epoch: int) -> int:
        self._set(True, False)
        return int(self.pools.wal_balance_at_epoch(NODE, epoch))

    def wal_balance(self) -> int:
        return int(self.pools.pools(NODE).wal_balance)

    def record(self, staked: bytes) -> Any:
        return self.pools.staked_wal(staked)


@pytest.fixture
def pool() -> PoolHarness:
    return PoolHarness()


def test_stake_and_receive_rewards(pool: PoolHarness) -> None:
    staked = pool.stake(1000)
    assert pool.wal_balance() == 0
    pool.next_epoch()
    assert pool.wal_balance() == 1000 * WAL
    pool.next_epoch(1000)
    pool.request(staked)
    assert pool.wal_balance() == 2000 * WAL
    assert pool.record(staked).withdrawing
    pool.next_epoch()
    assert pool.withdraw(staked) == 2000 * WAL
    assert pool.wal_balance() == 0


def test_stake_no_rewards_different_epochs(pool: PoolHarness) -> None:
    alice = pool.stake(1000)
    pool.next_epoch()
    bob = pool.stake(1000)
    assert pool.wal_balance() == 1000 * WAL
    pool.next_epoch()
    pool.request(alice)
    assert pool.wal_balance() == 2000 * WAL
    pool.next_epoch()
    pool.request(bob)
    assert pool.withdraw(alice) == 1000 * WAL
    assert pool.wal_balance() == 1000 * WAL
    pool.next_epoch()
    assert pool.withdraw(bob) == 1000 * WAL
    assert pool.wal_balance() == 0


def test_stake_and_receive_partial_rewards(pool: PoolHarness) -> None:
    alice, bob = pool.stake(1000), pool.stake(1000)
    pool.next_epoch()
    pool.next_epoch(1000)
    pool.request(alice)
    pool.request(bob)
    pool.next_epoch()
    assert abs(pool.withdraw(alice) - 1500 * WAL) < 10
    pool.next_epoch()
    pool.next_epoch()
    assert abs(pool.withdraw(bob) - 1500 * WAL) < 10


def test_stake_split_stake(pool: PoolHarness) -> None:
    alice = pool.stake(1000)
    pool.next_epoch()
    with boa.env.prank(pool.staker):
        bob = bytes(pool.pools.split_staked_wal(alice, 500 * WAL))
    pool.next_epoch(1000)
    pool.request(alice)
    pool.next_epoch(1000)
    pool.request(bob)
    assert pool.withdraw(alice) == 1500 * WAL
    pool.next_epoch()
    assert pool.withdraw(bob) == 1500 * WAL
    assert pool.wal_balance() == 0


def test_stake_maintain_ratio(pool: PoolHarness) -> None:
    alice = pool.stake(1000)
    pool.next_epoch()
    bob = pool.stake(2000)
    pool.next_epoch(1000)
    pool.request(alice)
    pool.next_epoch(1000)
    pool.request(bob)
    assert pool.withdraw(alice) == 2500 * WAL
    pool.next_epoch()
    assert pool.withdraw(bob) == 2500 * WAL
    assert pool.wal_balance() == 0


def test_wal_balance_at_epoch(pool: PoolHarness) -> None:
    """Move `staking_pool_tests::wal_balance_at_epoch`, every assertion."""
    a = pool.stake(1000)
    assert pool.wal_balance() == 0
    assert (pool.balance_at(1), pool.balance_at(2)) == (1000 * WAL, 1000 * WAL)
    pool.select_committee()
    b = pool.stake(1000)
    assert [pool.balance_at(e) for e in (0, 1, 2)] == [0, 1000 * WAL, 2000 * WAL]

    pool.next_epoch()
    assert [pool.balance_at(e) for e in (1, 2, 3)] == [w * WAL for w in (1000, 2000, 2000)]
    c = pool.stake(2000)
    assert [pool.balance_at(e) for e in (1, 2, 3)] == [w * WAL for w in (1000, 4000, 4000)]
    pool.select_committee()
    d = pool.stake(2000)
    assert [pool.balance_at(e) for e in (1, 2, 3)] == [w * WAL for w in (1000, 4000, 6000)]

    pool.next_epoch(1000)
    assert [pool.balance_at(e) for e in (2, 3, 4)] == [w * WAL for w in (5000, 7000, 7000)]
    pool.request(a, True, False)
    assert [pool.balance_at(e) for e in (2, 3, 4)] == [w * WAL for w in (5000, 5000, 5000)]
    pool.select_committee()
    pool.request(b, True, True)
    assert [pool.balance_at(e) for e in (2, 3, 4)] == [w * WAL for w in (5000, 5000, 4000)]

    pool.next_epoch(5000)
    assert [pool.balance_at(e) for e in (3, 4, 5)] == [w * WAL for w in (8000, 6000, 6000)]
    pool.request(c, True, False)
    assert [pool.balance_at(e) for e in (3, 4, 5)] == [w * WAL for w in (8000, 2000, 2000)]
    pool.select_committee()
    pool.request(d, True, True)
    assert [pool.balance_at(e) for e in (3, 4, 5)] == [w * WAL for w in (8000, 2000, 0)]

    pool.next_epoch(4000)
    assert [pool.balance_at(e) for e in (4, 5, 6)] == [3000 * WAL, 0, 0]
    pool.next_epoch()
    assert pool.balance_at(5) == 0
    assert [pool.withdraw(s) for s in (a, b, c, d)] == [w * WAL for w in (4000, 3000, 6000, 3000)]
    assert pool.wal_balance() == 0


def test_withdraw_same_epoch(pool: PoolHarness) -> None:
    staked = pool.stake(1000)
    assert pool.record(staked).activation_epoch == 1
    assert pool.balance_at(1) == 1000 * WAL
    assert pool.withdraw(staked, True, False) == 1000 * WAL
    assert pool.balance_at(1) == 0


def test_withdraw_from_a_pool_in_no_committee_is_immediate(pool: PoolHarness) -> None:
    """Move `withdraw_after_committee_selection`: the node never joined a committee."""
    staked = pool.stake(1000)
    pool.skip_epoch()
    pool.skip_epoch()
    assert pool.withdraw(staked, False, False) == 1000 * WAL
    assert pool.balance_at(3) == 0


def test_withdraw_after_the_pool_became_inactive(pool: PoolHarness) -> None:
    """Move `pool_direct_withdraw_tests::withdraw_after_the_pool_became_inactive`."""
    alice, bob = pool.stake(1000), pool.stake(1000)
    pool.next_epoch()
    pool.next_epoch(1000)
    pool.request(bob, True, False)
    pool.next_epoch()
    assert pool.withdraw(bob, False, False) == 1500 * WAL
    pool.skip_epoch()
    # Alice leaves in one step with the rewards of her active epochs.
    assert pool.withdraw(alice, False, False) == 1500 * WAL


def test_early_withdrawal_mechanics(pool: PoolHarness) -> None:
    """Move `pool_early_withdraw_tests::withdraw_processing_at_different_epochs`."""
    alice = pool.stake(1000)
    assert pool.withdraw(alice, True, False) == 1000 * WAL
    assert pool.balance_at(1) == 0
    bob = pool.stake(1000)
    pool.select_committee()
    pool.request(bob, True, True)
    assert pool.balance_at(1) == 1000 * WAL
    assert pool.record(bob).withdraw_epoch == 2
    charlie, dave = pool.stake(1000), pool.stake(1000)
    assert pool.record(charlie).activation_epoch == 2
    pool.next_epoch()
    assert pool.withdraw(charlie, True, False) == 1000 * WAL
    pool.select_committee()
    pool.request(dave, True, True)
    assert pool.record(dave).withdraw_epoch == 3
    pool.next_epoch(1000)  # Bob's only active epoch earns all of it
    assert pool.withdraw(bob, True, True) == 2000 * WAL
    pool.next_epoch(1000)  # Dave's only active epoch
    assert pool.withdraw(dave, True, False) == 2000 * WAL
    assert pool.wal_balance() == 0


def test_withdrawal_timing_is_enforced(pool: PoolHarness) -> None:
    staked = pool.stake(1000)
    pool.next_epoch()
    with boa.env.prank(pool.staker), boa.reverts("not withdrawing"):
        pool.context.set_context(pool.epoch, False, True, False)
        pool.pools.withdraw_stake(staked)
    pool.select_committee()
    pool.request(staked, True, True)  # in the next committee: leaves at E + 2
    assert pool.record(staked).withdraw_epoch == 3
    pool.next_epoch()
    with boa.env.prank(pool.staker), boa.reverts("withdraw epoch not reached"):
        pool.context.set_context(pool.epoch, False, True, False)
        pool.pools.withdraw_stake(staked)
    with boa.env.prank(pool.staker), boa.reverts("not staked"):
        pool.pools.request_withdraw_stake(staked)
    pool.next_epoch()
    assert pool.withdraw(staked) == 1000 * WAL


def test_stake_that_can_leave_at_once_cannot_request(pool: PoolHarness) -> None:
    staked = pool.stake(1000)
    with boa.env.prank(pool.staker), boa.reverts("withdraw directly"):
        pool.pools.request_withdraw_stake(staked)
    assert pool.pools.can_withdraw_staked_wal_early(staked)


def test_stakes_below_one_wal_and_unpaid_stakes_are_refused(pool: PoolHarness) -> None:
    with boa.env.prank(pool.staker), boa.reverts("stake below threshold"):
        pool.pools.stake_with_pool(WAL - 1, NODE)
    with boa.env.prank(pool.staker), boa.reverts("unknown node"):
        pool.pools.stake_with_pool(WAL, b"\x22" * 32)
    poor = boa.env.generate_address("poor")
    with boa.env.prank(poor), boa.reverts():
        pool.pools.stake_with_pool(WAL, NODE)


def test_split_and_join_keep_one_wal_and_matching_metadata(pool: PoolHarness) -> None:
    staked = pool.stake(3)
    with boa.env.prank(pool.staker), boa.reverts("stake below threshold"):
        pool.pools.split_staked_wal(staked, WAL - 1)
    with boa.env.prank(pool.staker), boa.reverts("invalid amount"):
        pool.pools.split_staked_wal(staked, 3 * WAL)
    with boa.env.prank(pool.staker):
        part = bytes(pool.pools.split_staked_wal(staked, WAL))
    pool.next_epoch()
    other = pool.stake(1)  # activation epoch 2, not 1
    with boa.env.prank(pool.staker), boa.reverts("metadata mismatch"):
        pool.pools.join_staked_wal(staked, other)
    with boa.env.prank(pool.staker):
        pool.pools.join_staked_wal(staked, part)
    assert pool.record(staked).principal == 3 * WAL
    assert pool.pools.kind_of(part) == 0
    stranger = boa.env.generate_address("stranger")
    with boa.env.prank(stranger), boa.reverts("not the owner"):
        pool.pools.transfer_staked_wal(staked, stranger)
    with boa.env.prank(pool.staker):
        pool.pools.transfer_staked_wal(staked, stranger)
    assert pool.pools.owner_of(staked) == stranger
    assert pool.pools.staked_wal_ids_of(stranger, 0, 10) == [staked]


def test_the_active_set_hears_of_every_stake_change(pool: PoolHarness) -> None:
    staked = pool.stake(1000)
    assert pool.context.reported(NODE) == 1000 * WAL
    pool.select_committee()
    pool.stake(500)  # counts from E + 2, which is also the next vote's
    assert pool.context.reported(NODE) == 1500 * WAL
    pool.withdraw(staked, True, False)
    assert pool.context.reported(NODE) == 500 * WAL


def test_collect_commission_with_rewards() -> None:
    """Move `pool_commission_tests::collect_commission_with_rewards`."""
    pool = PoolHarness(commission_rate=10_00)
    staked = pool.stake(1000)
    pool.next_epoch()
    pool.request(staked)
    pool.next_epoch(10_000)
    assert pool.withdraw(staked) == 10_000 * WAL
    assert pool.pools.pools(NODE).commission == 1000 * WAL
    with boa.env.prank(pool.receiver):
        assert pool.pools.collect_commission(NODE) == 0  # blocked until voting_end
    with boa.env.prank(pool.context.address):
        pool.pools.clear_blocked_commission([NODE])
    with boa.env.prank(pool.staker), boa.reverts("not the commission receiver"):
        pool.pools.collect_commission(NODE)
    with boa.env.prank(pool.receiver):
        assert pool.pools.collect_commission(NODE) == 1000 * WAL
    assert pool.wal.balanceOf(pool.receiver) == 1000 * WAL
    assert pool.wal.balanceOf(pool.pools.address) == 0


def test_commission_rate_changes_two_epochs_later() -> None:
    pool = PoolHarness(commission_rate=10_00)
    pool.stake(1000)
    pool.next_epoch()
    with boa.env.prank(pool.context.address):
        pool.pools.set_next_commission(NODE, 50_00, pool.epoch)
    pool.next_epoch(100)  # E2: still 10%
    assert pool.pools.pools(NODE).commission == 10 * WAL
    pool.next_epoch(100)  # E3: the rate becomes 50%, after E2's rewards paid 10%
    assert pool.pools.pools(NODE).commission_rate == 50_00
    assert pool.pools.pools(NODE).commission == 20 * WAL
    pool.next_epoch(100)  # E4: E3's rewards pay 50%
    assert pool.pools.pools(NODE).commission == 70 * WAL
    with boa.env.prank(pool.context.address), boa.reverts("incorrect commission rate"):
        pool.pools.set_next_commission(NODE, 10_001, pool.epoch)


def test_change_commission_receiver(pool: PoolHarness) -> None:
    new = boa.env.generate_address("new receiver")
    with boa.env.prank(pool.staker), boa.reverts("not the commission receiver"):
        pool.pools.set_commission_receiver(NODE, new)
    with boa.env.prank(pool.receiver):
        pool.pools.set_commission_receiver(NODE, new)
    assert pool.pools.pools(NODE).commission_receiver == new
    with boa.env.prank(new):
        assert pool.pools.collect_commission(NODE) == 0


def test_only_staking_drives_the_pools(pool: PoolHarness) -> None:
    with boa.reverts("not the staking contract"):
        pool.pools.advance_pool(NODE, 0, 5)
    with boa.reverts("not the staking contract"):
        pool.pools.create_pool(b"\x33" * 32, 0, pool.staker, 0, 0)
    with boa.env.prank(pool.context.address), boa.reverts("pool already advanced"):
        pool.pools.advance_pool(NODE, 0, 0)
    with boa.env.prank(pool.context.address), boa.reverts("pool exists"):
        pool.pools.create_pool(NODE, 0, pool.staker, 0, 0)


def test_exchange_rates_are_found_for_any_later_epoch(pool: PoolHarness) -> None:
    """Rates are recorded only at epochs the pool advanced; later epochs use the last one."""
    pool.stake(1000)
    pool.next_epoch()
    pool.next_epoch(1000)
    for _ in range(5):
        pool.skip_epoch()
    pool.next_epoch(2000)
    assert pool.pools.exchange_rate_at(NODE, 0) == (0, 0)
    assert pool.pools.exchange_rate_at(NODE, 2) == (2000 * WAL, 1000 * WAL)
    assert pool.pools.exchange_rate_at(NODE, 6) == (2000 * WAL, 1000 * WAL)
    assert pool.pools.exchange_rate_at(NODE, 8) == (4000 * WAL, 1000 * WAL)
    assert pool.pools.exchange_rate_at(NODE, 10**6) == (4000 * WAL, 1000 * WAL)
    assert pool.pools.calculate_rewards(NODE, 1000 * WAL, 1, 8) == 3000 * WAL
