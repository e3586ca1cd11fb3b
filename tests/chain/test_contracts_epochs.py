"""System epochs: the permissionless epoch change and the settlement of the storage fund.

Move `staking::initiate_epoch_change_v2` + `system_state_inner::advance_epoch` with a fixed
committee (spec/walrus-system.md 2.2, 2.5).
"""

from __future__ import annotations

from typing import Any

import boa

from tests.chain.conftest import (
    EPOCH_DURATION_S,
    FIRST_EPOCH,
    MAX_EPOCHS_AHEAD,
    MIB,
    STORAGE_PRICE,
    TOTAL_CAPACITY,
    WRITE_PRICE,
    ZERO_ADDRESS,
    BlobSpec,
    Deployment,
    deploy_system,
    events,
)


def test_system_parameters(deployment: Deployment) -> None:
    system = deployment.system
    assert system.wal() == deployment.wal.address
    assert system.epoch() == FIRST_EPOCH
    assert system.max_epochs_ahead() == MAX_EPOCHS_AHEAD
    assert system.storage_price_per_unit_size() == STORAGE_PRICE
    assert system.write_price_per_unit_size() == WRITE_PRICE
    assert system.total_capacity_size() == TOTAL_CAPACITY
    assert system.used_capacity_size() == 0


def test_system_constructor_checks(system_deployer: Any, wal: Any, committee_contract: Any) -> None:
    with boa.reverts("zero epoch duration"):
        deploy_system(system_deployer, wal, committee_contract, epoch_duration_s=0)
    for bad in (0, 1001):
        with boa.reverts("invalid max epochs ahead"):
            deploy_system(system_deployer, wal, committee_contract, max_epochs_ahead=bad)
    with boa.reverts("zero address"):
        system_deployer.deploy(
            ZERO_ADDRESS, committee_contract.address, 60, 10, 1, 1, 1, ZERO_ADDRESS, ZERO_ADDRESS,
            ZERO_ADDRESS, ZERO_ADDRESS,
        )  # fmt: skip
    assert deploy_system(system_deployer, wal, committee_contract, max_epochs_ahead=1000)


def test_advance_epoch_waits_for_the_duration(deployment: Deployment) -> None:
    system = deployment.system
    started = system.epoch_start_s()
    assert system.epoch_duration_s() == EPOCH_DURATION_S
    with boa.reverts("epoch not over"):
        system.advance_epoch()
    boa.env.time_travel(seconds=EPOCH_DURATION_S - 12)
    with boa.reverts("epoch not over"):
        system.advance_epoch()
    boa.env.time_travel(seconds=12)
    # Anyone may call it.
    with boa.env.prank(boa.env.generate_address("anyone")):
        system.advance_epoch()
    names = [(type(e).__name__, e.epoch) for e in events(system)]
    assert names == [("EpochChangeStart", FIRST_EPOCH + 1), ("EpochChangeDone", FIRST_EPOCH + 1)]
    assert system.epoch() == FIRST_EPOCH + 1
    assert system.epoch_start_s() == started + EPOCH_DURATION_S
    with boa.reverts("epoch not over"):
        system.advance_epoch()


def test_the_committee_carries_over(deployment: Deployment) -> None:
    committee_address = deployment.system.committee()
    deployment.next_epoch()
    assert deployment.system.committee() == committee_address
    assert deployment.system.n_shards() == deployment.committee.n_shards


def test_settlement_burns_and_credits_the_committee(deployment: Deployment) -> None:
    system, wal, committee = deployment.system, deployment.wal, deployment.committee
    size = 5 * MIB
    with boa.env.prank(deployment.user):
        system.reserve_space(size, 2)
    epoch_rewards = 5 * STORAGE_PRICE
    supply = wal.totalSupply()
    deployment.next_epoch()

    burnt = epoch_rewards * 3 // 100
    distributed = epoch_rewards - burnt
    assert wal.totalSupply() == supply - burnt
    assert wal.balanceOf(system.address) == 2 * epoch_rewards - burnt
    credited = 0
    for member in committee.members:
        # weight x used / (n_shards x used) of what is distributed, rounded down.
        expected = len(member.shards) * size * distributed // (committee.n_shards * size)
        assert system.node_rewards(member.node_id) == expected
        credited += expected
    # The rounding remainder moves to the new current epoch, on top of its own payment.
    assert (
        system.future_accounting(0).rewards_to_distribute == epoch_rewards + distributed - credited
    )
    assert system.future_accounting(0).epoch == FIRST_EPOCH + 1
    assert system.used_capacity_size() == size

    deployment.next_epoch()
    assert system.used_capacity_size() == 0
    assert system.future_accounting(0).rewards_to_distribute == 0


def test_write_fees_go_to_the_current_epoch(deployment: Deployment) -> None:
    system = deployment.system
    deployment.reserve_and_register(BlobSpec.random(), epochs_ahead=1)
    paid = system.future_accounting(0).rewards_to_distribute
    assert system.future_accounting(1).rewards_to_distribute == 0
    deployment.next_epoch()
    total = sum(system.node_rewards(m.node_id) for m in deployment.committee.members)
    assert total + paid * 3 // 100 + system.future_accounting(0).rewards_to_distribute == paid


def test_an_idle_epoch_settles_nothing(deployment: Deployment) -> None:
    supply = deployment.wal.totalSupply()
    deployment.next_epoch()
    assert deployment.wal.totalSupply() == supply
    assert all(deployment.system.node_rewards(m.node_id) == 0 for m in deployment.committee.members)


def test_the_ring_buffer_wraps(deployment: Deployment) -> None:
    system = deployment.system
    for _ in range(MAX_EPOCHS_AHEAD + 3):
        deployment.next_epoch()
    epoch = system.epoch()
    assert epoch == FIRST_EPOCH + MAX_EPOCHS_AHEAD + 3
    with boa.env.prank(deployment.user):
        storage_id = bytes(system.reserve_space(MIB, MAX_EPOCHS_AHEAD))
    s = system.storage(storage_id)
    assert (s.start_epoch, s.end_epoch) == (epoch, epoch + MAX_EPOCHS_AHEAD)
    for offset in range(MAX_EPOCHS_AHEAD):
        slot = system.future_accounting(offset)
        assert (slot.epoch, slot.used_capacity) == (epoch + offset, MIB)
    # Capacity is released epoch by epoch as the reservation runs out.
    for remaining in range(MAX_EPOCHS_AHEAD - 1, 0, -1):
        deployment.next_epoch()
        assert system.used_capacity_size() == MIB
        assert system.future_accounting(remaining).used_capacity == 0
    deployment.next_epoch()
    assert system.used_capacity_size() == 0


def test_total_capacity_is_reapplied_each_epoch(deployment: Deployment) -> None:
    system: Any = deployment.system
    capacity = system.total_capacity_size()
    deployment.next_epoch()
    assert system.total_capacity_size() == capacity
