"""System storage resources: buying, the storage fund, and splitting/fusing/transferring.

Move `system::reserve_space(_for_epochs)` and `storage_resource` (spec/walrus-system.md 1.2).
"""

from __future__ import annotations

from typing import Any

import boa
import pytest

from tests.chain.conftest import (
    FIRST_EPOCH,
    MAX_EPOCHS_AHEAD,
    MIB,
    STORAGE_PRICE,
    TOTAL_CAPACITY,
    Deployment,
    deploy_system,
    events,
    storage_units,
)

ZERO = "0x" + "00" * 20


def reserve(d: Deployment, size: int, epochs_ahead: int, account: Any = None) -> bytes:
    with boa.env.prank(account or d.user):
        return bytes(d.system.reserve_space(size, epochs_ahead))


def record(system: Any, storage_id: bytes) -> tuple[int, int, int]:
    s = system.storage(storage_id)
    return s.start_epoch, s.end_epoch, s.storage_size


def test_reserve_space_creates_an_owned_resource(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    storage_id = reserve(deployment, 3 * MIB, 4)
    [created] = events(system, "ObjectTransferred")
    assert (created.object_id, created.from_owner, created.to_owner) == (storage_id, ZERO, user)
    assert record(system, storage_id) == (FIRST_EPOCH, FIRST_EPOCH + 4, 3 * MIB)
    assert system.owner_of(storage_id) == user
    assert system.kind_of(storage_id) == 1
    assert system.storage_count_of(user) == 1
    assert list(system.storage_ids_of(user, 0, 10)) == [storage_id]


def test_reserve_space_charges_per_unit_and_epoch(deployment: Deployment) -> None:
    system, wal, user = deployment.system, deployment.wal, deployment.user
    size, epochs = 2 * MIB + 1, 5
    expected = STORAGE_PRICE * storage_units(size) * epochs
    assert system.storage_cost(size, epochs) == expected == STORAGE_PRICE * 3 * 5
    before = wal.balanceOf(user)
    reserve(deployment, size, epochs)
    assert before - wal.balanceOf(user) == expected
    assert wal.balanceOf(system.address) == expected
    # Each epoch's slot of the ring buffer holds that epoch's share and used capacity.
    for offset in range(MAX_EPOCHS_AHEAD):
        slot = system.future_accounting(offset)
        assert slot.epoch == FIRST_EPOCH + offset
        inside = offset < epochs
        assert slot.used_capacity == (size if inside else 0)
        assert slot.rewards_to_distribute == (STORAGE_PRICE * 3 if inside else 0)
    assert system.used_capacity_size() == size
    with boa.reverts("too far in the future"):
        system.future_accounting(MAX_EPOCHS_AHEAD)


def test_reserve_space_bounds(deployment: Deployment) -> None:
    with boa.env.prank(deployment.user):
        with boa.reverts("invalid epochs ahead"):
            deployment.system.reserve_space(MIB, 0)
        with boa.reverts("invalid epochs ahead"):
            deployment.system.reserve_space(MIB, MAX_EPOCHS_AHEAD + 1)
        with boa.reverts("invalid storage size"):
            deployment.system.reserve_space(0, 1)
        with boa.reverts("storage capacity exceeded"):
            deployment.system.reserve_space(2**64 - 1, 1)
        deployment.system.reserve_space(MIB, MAX_EPOCHS_AHEAD)


def test_capacity_is_enforced_per_epoch(deployment: Deployment) -> None:
    system = deployment.system
    reserve(deployment, TOTAL_CAPACITY - MIB, 2)
    with boa.env.prank(deployment.user), boa.reverts("storage capacity exceeded"):
        system.reserve_space(MIB + 1, 1)
    reserve(deployment, MIB, 1)  # exactly full in the current epoch
    # The next epoch has MiB free again; the one after has all capacity.
    with boa.env.prank(deployment.user), boa.reverts("storage capacity exceeded"):
        system.reserve_space_for_epochs(MIB + 1, FIRST_EPOCH + 1, FIRST_EPOCH + 2)
    with boa.env.prank(deployment.user):
        later = bytes(system.reserve_space_for_epochs(MIB, FIRST_EPOCH + 1, FIRST_EPOCH + 3))
    assert record(system, later) == (FIRST_EPOCH + 1, FIRST_EPOCH + 3, MIB)
    assert system.used_capacity_size() == TOTAL_CAPACITY


def test_reserve_space_for_epochs(deployment: Deployment) -> None:
    system = deployment.system
    with boa.env.prank(deployment.user):
        # A start in the past is moved to the current epoch.
        past = bytes(system.reserve_space_for_epochs(MIB, 0, FIRST_EPOCH + 2))
        assert record(system, past) == (FIRST_EPOCH, FIRST_EPOCH + 2, MIB)
        future = bytes(system.reserve_space_for_epochs(MIB, FIRST_EPOCH + 3, FIRST_EPOCH + 5))
        assert record(system, future) == (FIRST_EPOCH + 3, FIRST_EPOCH + 5, MIB)
        assert system.future_accounting(3).rewards_to_distribute == STORAGE_PRICE
        assert system.future_accounting(2).rewards_to_distribute == 0
        with boa.reverts("invalid epochs ahead"):
            system.reserve_space_for_epochs(MIB, FIRST_EPOCH + 2, FIRST_EPOCH + 2)
        with boa.reverts("invalid epochs ahead"):
            system.reserve_space_for_epochs(MIB, FIRST_EPOCH, FIRST_EPOCH + MAX_EPOCHS_AHEAD + 1)
        with boa.reverts("invalid epochs ahead"):
            system.reserve_space_for_epochs(MIB, 0, 0)


def test_reserving_needs_payment(deployment: Deployment) -> None:
    system, wal = deployment.system, deployment.wal
    stranger = boa.env.generate_address("stranger")
    with boa.env.prank(stranger), boa.reverts("unpaid"):
        system.reserve_space(MIB, 1)
    with boa.env.prank(stranger):
        wal.approve(system.address, 10**18)
    with boa.env.prank(stranger), boa.reverts("unpaid"):
        system.reserve_space(MIB, 1)  # approved, but no WAL
    with boa.env.prank(deployment.owner):
        wal.transfer(stranger, STORAGE_PRICE - 1)
    with boa.env.prank(stranger), boa.reverts("unpaid"):
        system.reserve_space(MIB, 1)
    with boa.env.prank(deployment.owner):
        wal.transfer(stranger, 1)
    reserve(deployment, MIB, 1, stranger)
    assert wal.balanceOf(stranger) == 0


def test_free_storage_needs_no_approval(
    system_deployer: Any, wal: Any, committee_contract: Any
) -> None:
    system = deploy_system(system_deployer, wal, committee_contract, storage_price=0, write_price=0)
    with boa.env.prank(boa.env.generate_address()):
        assert system.reserve_space(MIB, 2) != bytes(32)


def test_split_by_epoch(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    storage_id = reserve(deployment, MIB, 5)
    with boa.env.prank(user):
        later = bytes(system.split_by_epoch(storage_id, FIRST_EPOCH + 2))
        [created] = events(system, "ObjectTransferred")
        assert created.object_id == later
        assert record(system, storage_id) == (FIRST_EPOCH, FIRST_EPOCH + 2, MIB)
        assert record(system, later) == (FIRST_EPOCH + 2, FIRST_EPOCH + 5, MIB)
        for bad_epoch in [FIRST_EPOCH, FIRST_EPOCH + 2, FIRST_EPOCH + 7]:
            with boa.reverts("invalid split epoch"):
                system.split_by_epoch(storage_id, bad_epoch)
    assert system.storage_count_of(user) == 2


def test_split_by_size(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    storage_id = reserve(deployment, 10 * MIB, 2)
    with boa.env.prank(user):
        rest = bytes(system.split_by_size(storage_id, 4 * MIB))
        assert record(system, storage_id) == (FIRST_EPOCH, FIRST_EPOCH + 2, 4 * MIB)
        assert record(system, rest) == (FIRST_EPOCH, FIRST_EPOCH + 2, 6 * MIB)
        with boa.reverts("invalid split size"):
            system.split_by_size(storage_id, 4 * MIB + 1)
        # As in Move, splitting off everything or nothing is allowed.
        empty = bytes(system.split_by_size(storage_id, 4 * MIB))
        assert record(system, empty)[2] == 0


def test_fuse_periods_in_either_order(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    first = reserve(deployment, MIB, 6)
    with boa.env.prank(user):
        second = bytes(system.split_by_epoch(first, FIRST_EPOCH + 3))
        system.fuse_periods(first, second)
        assert record(system, first) == (FIRST_EPOCH, FIRST_EPOCH + 6, MIB)
        with boa.reverts("unknown storage"):
            system.storage(second)
        later = bytes(system.split_by_epoch(first, FIRST_EPOCH + 2))
        system.fuse_periods(later, first)
        assert record(system, later) == (FIRST_EPOCH, FIRST_EPOCH + 6, MIB)
    assert system.storage_count_of(user) == 1


def test_fuse_periods_rejects_mismatches(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    a = reserve(deployment, MIB, 2)
    b = reserve(deployment, 2 * MIB, 2)
    with boa.env.prank(user):
        c = bytes(system.reserve_space_for_epochs(MIB, FIRST_EPOCH + 3, FIRST_EPOCH + 4))
        with boa.reverts("incompatible sizes"):
            system.fuse_periods(a, b)
        with boa.reverts("incompatible epochs"):
            system.fuse_periods(a, c)  # a gap between the periods
        with boa.reverts("cannot fuse a storage with itself"):
            system.fuse_periods(a, a)


def test_fuse_amount(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    a = reserve(deployment, MIB, 3)
    b = reserve(deployment, 2 * MIB, 3)
    c = reserve(deployment, MIB, 2)
    with boa.env.prank(user):
        system.fuse_amount(a, b)
        assert record(system, a) == (FIRST_EPOCH, FIRST_EPOCH + 3, 3 * MIB)
        with boa.reverts("incompatible epochs"):
            system.fuse_amount(a, c)


def test_fuse_picks_amount_or_period(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    a = reserve(deployment, MIB, 2)
    b = reserve(deployment, MIB, 2)
    with boa.env.prank(user):
        system.fuse(a, b)  # same start: by amount
        assert record(system, a) == (FIRST_EPOCH, FIRST_EPOCH + 2, 2 * MIB)
        c = bytes(system.reserve_space_for_epochs(2 * MIB, FIRST_EPOCH + 2, FIRST_EPOCH + 4))
        system.fuse(a, c)  # different starts: by period
        assert record(system, a) == (FIRST_EPOCH, FIRST_EPOCH + 4, 2 * MIB)
        with boa.reverts("unknown storage"):
            system.fuse(a, c)


def test_only_the_owner_may_change_a_resource(deployment: Deployment) -> None:
    system = deployment.system
    mine = reserve(deployment, MIB, 4)
    other_user = boa.env.generate_address("other")
    deployment.fund(other_user)
    theirs = reserve(deployment, MIB, 4, other_user)
    with boa.env.prank(deployment.user):
        for call in [
            lambda: system.split_by_epoch(theirs, FIRST_EPOCH + 1),
            lambda: system.split_by_size(theirs, 1),
            lambda: system.fuse_amount(theirs, mine),
            lambda: system.fuse_amount(mine, theirs),
            lambda: system.fuse_periods(mine, theirs),
            lambda: system.fuse(mine, theirs),
            lambda: system.transfer_storage(theirs, deployment.user),
            lambda: system.destroy_storage(theirs),
        ]:
            with boa.reverts("not the owner"):
                call()
        with boa.reverts("unknown storage"):
            system.split_by_size(bytes(32), 1)
        with boa.reverts("unknown storage"):
            system.destroy_storage(b"\x01" * 32)


def test_transfer_storage(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    ids = [reserve(deployment, MIB, 1) for _ in range(3)]
    other = boa.env.generate_address("other")
    with boa.env.prank(user):
        system.transfer_storage(ids[0], other)
        [moved] = events(system, "ObjectTransferred")
        assert (moved.object_id, moved.from_owner, moved.to_owner) == (ids[0], user, other)
        with boa.reverts("zero address"):
            system.transfer_storage(ids[1], ZERO)
    assert system.owner_of(ids[0]) == other
    assert list(system.storage_ids_of(other, 0, 5)) == [ids[0]]
    assert sorted(system.storage_ids_of(user, 0, 5)) == sorted(ids[1:])
    with boa.env.prank(other):
        system.split_by_size(ids[0], 1)  # the new owner may use it
    assert system.storage_count_of(other) == 2


def test_destroy_storage_keeps_its_capacity_reserved(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    storage_id = reserve(deployment, MIB, 2)
    with boa.env.prank(user):
        system.destroy_storage(storage_id)
        [gone] = events(system, "ObjectTransferred")
        assert (gone.object_id, gone.from_owner, gone.to_owner) == (storage_id, user, ZERO)
    assert system.storage_count_of(user) == 0
    assert system.owner_of(storage_id) == ZERO
    assert system.used_capacity_size() == MIB
    with boa.reverts("unknown storage"):
        system.storage(storage_id)


def test_listing_pages(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    ids = [reserve(deployment, MIB, 1) for _ in range(5)]
    assert list(system.storage_ids_of(user, 0, 2)) == ids[:2]
    assert list(system.storage_ids_of(user, 3, 10)) == ids[3:]
    assert list(system.storage_ids_of(user, 5, 10)) == []
    with boa.env.prank(user):
        system.destroy_storage(ids[1])  # swap-remove: the last one takes its place
    assert list(system.storage_ids_of(user, 0, 10)) == [ids[0], ids[4], ids[2], ids[3]]
    assert system.blob_count_of(user) == 0


@pytest.mark.parametrize("size", [1, MIB, MIB + 1, 10 * MIB])
def test_storage_cost_view(system: Any, size: int) -> None:
    assert system.storage_cost(size, 3) == STORAGE_PRICE * storage_units(size) * 3
