"""Tests of the pure shard-sync rules (walruspy.node.shard_plan).

Unit tests take each rule of the module docstring in turn (Walrus's `ShardDiffCalculator` table is
ported as is); Hypothesis properties then check, over realistic committee changes made with
`apportionment.initialize`/`transition`, that the diff partitions the node's shards and names
the right previous owners, that the epoch-change plan only makes lifecycle moves the rules allow,
that a sync resumed from the progress persisted after any batch fetches every sliver exactly
once and in order, and that the source refuses requests for shards the requester does not own
or for another epoch.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from walruspy.core.apportionment import (
    NodeShards,
    ShardAssignment,
    apportionment,
    initialize,
    transition,
)
from walruspy.core.crypto import BlsPrivateKey
from walruspy.core.errors import InvalidInputError
from walruspy.core.messages import (
    SyncShardRefusal,
    SyncShardRefused,
    SyncShardRequest,
    VerifiedSyncShardRequest,
    sign_sync_shard_request,
    verify_sync_shard_request,
)
from walruspy.core.types import ShardIndex, SliverType
from walruspy.node import shard_plan as sp
from walruspy.node.store_records import RECORD_VERSION, ShardStatus, StoreCorruptionError

P, S = SliverType.PRIMARY, SliverType.SECONDARY
A, SYNC, RECOVER, LOCKED = (
    ShardStatus.ACTIVE,
    ShardStatus.ACTIVE_SYNC,
    ShardStatus.ACTIVE_RECOVER,
    ShardStatus.LOCKED_TO_MOVE,
)


def unchecked(value: object) -> Any:
    """`value` with its static type erased, to test run-time type checks."""
    return value


def nid(i: int) -> bytes:
    return i.to_bytes(32, "big")


def bid(i: int) -> bytes:
    return i.to_bytes(32, "big")


def committee(*shard_lists: list[int]) -> ShardAssignment:
    """Node i + 1 holds `shard_lists[i]`; empty lists are left out."""
    return ShardAssignment(
        tuple(
            NodeShards(nid(i + 1), tuple(ShardIndex(s) for s in shards))
            for i, shards in enumerate(shard_lists)
            if shards
        )
    )


def shards(*values: int) -> tuple[ShardIndex, ...]:
    return tuple(ShardIndex(v) for v in values)


NODE = nid(1)
EMPTY = ShardAssignment()


# --- D1, D2: Walrus's ShardDiffCalculator table (common/utils.rs), for node 0 ------------------

#: (previous, current, stored, owned now, gained, to remove, to lock)
WALRUS_DIFF_CASES = {
    "only_gain": (
        [[0, 2], [1, 3, 4, 5]],
        [[0, 1, 2, 3], [4, 5]],
        [0, 2],
        [0, 1, 2, 3],
        [1, 3],
        [],
        [],
    ),
    "only_lost": (
        [[2, 3, 4, 5], [0, 1]],
        [[2, 5], [3, 4, 0, 1]],
        [2, 3, 4, 5],
        [2, 5],
        [],
        [],
        [3, 4],
    ),
    "gain_and_lost_and_removed": (
        [[1, 2, 3], [0, 4, 5]],
        [[0, 1, 2], [3, 4, 5]],
        [0, 1, 2, 3, 4],
        [0, 1, 2],
        [0],
        [4],
        [3],
    ),
    "existing_shards_all_mismatch_assignment": (
        [[1, 2, 3], [0, 4, 5]],
        [[0, 1, 2], [3, 4, 5]],
        [3, 4, 5],
        [0, 1, 2],
        [0],
        [4, 5],
        [3],
    ),
    "removed_and_gained": (
        [[1, 2, 3], [0, 4, 5]],
        [[1, 2, 3, 4], [0, 5]],
        [1, 2, 3, 4],
        [1, 2, 3, 4],
        [4],
        [],
        [],
    ),
}


@pytest.mark.parametrize("case", sorted(WALRUS_DIFF_CASES))
def test_walrus_shard_diff_table(case: str) -> None:
    before, now, stored, owned, gained, removed, locked = WALRUS_DIFF_CASES[case]
    previous, current = committee(*before), committee(*now)
    plan = sp.decide_epoch_change(6, previous, current, NODE, dict.fromkeys(shards(*stored), A))
    assert sorted(plan.diff.owned_now) == owned
    assert list(plan.diff.gained_shards) == gained
    assert [a.shard for a in plan.actions if isinstance(a, sp.DeleteShard)] == removed
    assert [a.shard for a in plan.actions if isinstance(a, sp.LockShard)] == locked
    for shard in removed:
        assert sp.may_delete(ShardIndex(shard), previous, current, NODE)
    for shard in owned + locked:
        assert not sp.may_delete(ShardIndex(shard), previous, current, NODE)


def test_diff_names_previous_owners() -> None:
    diff = sp.shard_diff(committee([0, 1], [2, 3], [4]), committee([0, 2, 4], [1, 3]), NODE)
    assert diff.gained == (
        sp.GainedShard(ShardIndex(2), nid(2)),
        sp.GainedShard(ShardIndex(4), nid(3)),
    )
    assert diff.lost == shards(1)
    assert diff.kept == shards(0)
    assert diff.owned_now == frozenset(shards(0, 2, 4))
    assert diff.owned_before == frozenset(shards(0, 1))


def test_first_committee_has_no_previous_owner() -> None:
    diff = sp.shard_diff(EMPTY, committee([0, 1], [2]), NODE)
    assert diff.gained == (sp.GainedShard(ShardIndex(0), None), sp.GainedShard(ShardIndex(1), None))
    assert diff.lost == diff.kept == ()


def test_a_node_outside_both_committees_has_no_shards() -> None:
    diff = sp.shard_diff(committee([0], [1]), committee([1], [0]), nid(99))
    assert diff == sp.ShardDiff((), (), ())


def test_diff_rejects_misuse() -> None:
    with pytest.raises(ValueError, match="2 shards before, 3 now"):
        sp.shard_diff(committee([0], [1]), committee([0], [1, 2]), NODE)
    with pytest.raises(ValueError, match="32 bytes"):
        sp.shard_diff(EMPTY, committee([0]), b"short")
    with pytest.raises(ValueError, match="at most one"):
        sp.ShardDiff((sp.GainedShard(ShardIndex(1), None),), shards(1), ())
    with pytest.raises(ValueError, match="strictly increasing"):
        sp.ShardDiff((), shards(2, 1), ())
    with pytest.raises(ValueError, match="strictly increasing"):
        sp.ShardDiff((), (), shards(1, 1))
    with pytest.raises(TypeError):
        sp.ShardDiff(unchecked((1,)), (), ())
    with pytest.raises(ValueError, match="previous owner"):
        sp.GainedShard(ShardIndex(0), b"x")
    with pytest.raises(ValueError, match="u16"):
        sp.GainedShard(ShardIndex(1 << 16), None)


def test_owner_of() -> None:
    assert sp.owner_of(committee([0], [1, 2]), ShardIndex(2)) == nid(2)
    assert sp.owner_of(EMPTY, ShardIndex(0)) is None


# --- L1 to L5: the epoch-change plan -----------------------------------------------------------


def test_l2_first_committee_activates_at_once() -> None:
    plan = sp.decide_epoch_change(1, EMPTY, committee([0, 1], [2]), NODE, {})
    assert plan.statuses == {ShardIndex(0): A, ShardIndex(1): A}
    assert plan.actions == (sp.ActivateShard(ShardIndex(0)), sp.ActivateShard(ShardIndex(1)))
    assert plan.progress == {}


def test_l1_gained_shard_syncs_from_its_previous_owner() -> None:
    plan = sp.decide_epoch_change(
        4, committee([0], [1]), committee([0, 1]), NODE, {ShardIndex(0): A}
    )
    start = sp.ShardSyncProgress(ShardIndex(1), 4, P, None)
    assert plan.statuses == {ShardIndex(1): SYNC}
    assert plan.progress == {ShardIndex(1): start}
    assert plan.actions == (sp.StartShardSync(ShardIndex(1), nid(2), start),)


def test_l1_gained_shard_already_active_is_a_replay() -> None:
    plan = sp.decide_epoch_change(
        4, committee([0], [1]), committee([0, 1]), NODE, {ShardIndex(0): A, ShardIndex(1): A}
    )
    assert plan.statuses == {} and plan.actions == ()


@pytest.mark.parametrize("stale", [LOCKED, SYNC, RECOVER, ShardStatus.NONE])
def test_l1_a_stale_copy_of_a_gained_shard_is_synced_afresh(stale: ShardStatus) -> None:
    plan = sp.decide_epoch_change(
        4, committee([0], [1]), committee([0, 1]), NODE, {ShardIndex(0): A, ShardIndex(1): stale}
    )
    assert plan.statuses == {ShardIndex(1): SYNC}
    assert plan.progress[ShardIndex(1)] == sp.ShardSyncProgress.start(ShardIndex(1), 4)


def test_l7_deciding_again_after_a_restart_resumes_the_stored_sync() -> None:
    previous, current = committee([0], [1]), committee([0, 1])
    mid = sp.ShardSyncProgress(ShardIndex(1), 4, S, bid(9))
    stored = {ShardIndex(0): A, ShardIndex(1): SYNC}
    plan = sp.decide_epoch_change(4, previous, current, NODE, stored, stored_progress={1: mid})
    assert plan.statuses == {} and plan.progress == {}
    assert plan.actions == (sp.StartShardSync(ShardIndex(1), nid(2), mid),)
    # A transfer that fell back to recovery (progress kept) is tried again first.
    stored[ShardIndex(1)] = RECOVER
    plan = sp.decide_epoch_change(4, previous, current, NODE, stored, stored_progress={1: mid})
    assert plan.statuses == {ShardIndex(1): SYNC}
    assert plan.actions == (sp.StartShardSync(ShardIndex(1), nid(2), mid),)
    # Progress of an earlier epoch is stale: the sync starts afresh.
    old = sp.ShardSyncProgress(ShardIndex(1), 3, S, bid(9))
    plan = sp.decide_epoch_change(4, previous, current, NODE, stored, stored_progress={1: old})
    assert plan.progress == {ShardIndex(1): sp.ShardSyncProgress.start(ShardIndex(1), 4)}


@pytest.mark.parametrize(
    ("stored", "progress_deleted"),
    [(A, False), (ShardStatus.NONE, False), (SYNC, True), (RECOVER, True)],
)
def test_l3_lost_shard_is_locked(stored: ShardStatus, progress_deleted: bool) -> None:
    plan = sp.decide_epoch_change(
        4,
        committee([0, 1], [2]),
        committee([0], [1, 2]),
        NODE,
        {ShardIndex(0): A, ShardIndex(1): stored},
    )
    assert plan.statuses == {ShardIndex(1): LOCKED}
    assert plan.actions == (sp.LockShard(ShardIndex(1)),)
    assert plan.progress == ({ShardIndex(1): None} if progress_deleted else {})


def test_l3_lost_shard_not_stored_or_already_locked_needs_nothing() -> None:
    previous, current = committee([0, 1], [2]), committee([0], [1, 2])
    assert sp.decide_epoch_change(4, previous, current, NODE, {}).actions == (
        sp.RecoverShard(ShardIndex(0)),  # kept but not stored: L4
    )
    again = sp.decide_epoch_change(
        4, previous, current, NODE, {ShardIndex(0): A, ShardIndex(1): LOCKED}
    )
    assert again.statuses == {} and again.actions == ()


@pytest.mark.parametrize(
    ("stored", "recovers"),
    [(A, False), (RECOVER, False), (SYNC, True), (ShardStatus.NONE, True), (None, True)],
)
def test_l4_kept_shard(stored: ShardStatus | None, recovers: bool) -> None:
    statuses = {} if stored is None else {ShardIndex(0): stored}
    plan = sp.decide_epoch_change(5, committee([0], [1]), committee([0], [1]), NODE, statuses)
    if recovers:
        assert plan.statuses == {ShardIndex(0): RECOVER}
        assert plan.actions == (sp.RecoverShard(ShardIndex(0)),)
        assert plan.progress == {}  # an unfinished sync keeps its progress for blobs_to_recover
    else:
        assert plan.statuses == {} and plan.actions == ()


def test_d2_a_lost_shard_is_deleted_one_epoch_later() -> None:
    c0, c1, c2 = committee([0, 1], [2]), committee([0], [1, 2]), committee([0], [1, 2])
    stored: dict[ShardIndex, ShardStatus] = {ShardIndex(0): A, ShardIndex(1): A}
    first = sp.decide_epoch_change(1, c0, c1, NODE, stored)
    assert first.statuses == {ShardIndex(1): LOCKED}
    assert not sp.may_delete(ShardIndex(1), c0, c1, NODE)
    stored[ShardIndex(1)] = LOCKED
    second = sp.decide_epoch_change(2, c1, c2, NODE, stored)
    assert sp.may_delete(ShardIndex(1), c1, c2, NODE)
    assert second.statuses == {ShardIndex(1): None}
    assert second.progress == {ShardIndex(1): None}
    assert second.actions == (sp.DeleteShard(ShardIndex(1)),)


def test_d2_a_shard_regained_the_next_epoch_is_synced_not_deleted() -> None:
    c1, c2 = committee([0], [1, 2]), committee([0, 1], [2])
    plan = sp.decide_epoch_change(2, c1, c2, NODE, {ShardIndex(0): A, ShardIndex(1): LOCKED})
    assert plan.statuses == {ShardIndex(1): SYNC}
    assert not sp.may_delete(ShardIndex(1), c1, c2, NODE)
    assert sp.may_delete(ShardIndex(1), c1, committee([0], [1, 2]), NODE)


def test_a_node_leaving_the_committee_locks_everything() -> None:
    plan = sp.decide_epoch_change(
        3,
        committee([0, 1], [2]),
        committee([], [0, 1, 2]),
        NODE,
        {ShardIndex(0): A, ShardIndex(1): A},
    )
    assert plan.actions == (sp.LockShard(ShardIndex(0)), sp.LockShard(ShardIndex(1)))


def test_actions_come_locks_first_then_deletes_then_fills() -> None:
    previous = committee([0, 1, 2], [3, 4, 5])
    current = committee([0, 3, 4], [1, 2, 5])
    stored = {ShardIndex(0): SYNC, ShardIndex(1): A, ShardIndex(2): A, ShardIndex(7): LOCKED}
    plan = sp.decide_epoch_change(9, previous, current, NODE, stored)
    kinds = [type(action).__name__ for action in plan.actions]
    assert kinds == [
        "LockShard",
        "LockShard",
        "DeleteShard",
        "StartShardSync",
        "StartShardSync",
        "RecoverShard",
    ]


def test_plan_and_actions_validate() -> None:
    diff = sp.ShardDiff((), (), ())
    with pytest.raises(ValueError, match="u32 of at least 1"):
        sp.EpochShardPlan(0, diff)
    with pytest.raises(ValueError, match="not for it"):
        sp.EpochShardPlan(
            2, diff, progress={ShardIndex(1): sp.ShardSyncProgress.start(ShardIndex(1), 3)}
        )
    with pytest.raises(TypeError, match="ShardStatus"):
        sp.EpochShardPlan(2, diff, statuses={ShardIndex(1): unchecked("ACTIVE")})
    with pytest.raises(ValueError, match="source"):
        sp.StartShardSync(ShardIndex(1), b"x", sp.ShardSyncProgress.start(ShardIndex(1), 3))
    with pytest.raises(ValueError, match="of this shard"):
        sp.StartShardSync(ShardIndex(1), nid(1), sp.ShardSyncProgress.start(ShardIndex(2), 3))
    for action in (sp.LockShard, sp.DeleteShard, sp.ActivateShard, sp.RecoverShard, sp.SyncDone):
        with pytest.raises(ValueError, match="u16"):
            action(ShardIndex(-1))
    with pytest.raises(ValueError, match="u32 of at least 1"):
        sp.decide_epoch_change(0, EMPTY, committee([0]), NODE, {})


# --- L: the lifecycle table, L6 and L7 ---------------------------------------------------------


def test_lifecycle_table() -> None:
    assert sp.can_transition(None, SYNC)
    assert sp.can_transition(SYNC, A)
    assert sp.can_transition(SYNC, RECOVER)
    assert sp.can_transition(RECOVER, A)
    assert sp.can_transition(A, LOCKED)
    assert sp.can_transition(LOCKED, None)
    assert sp.can_transition(LOCKED, SYNC)  # regained
    assert not sp.can_transition(A, SYNC)
    assert not sp.can_transition(LOCKED, A)
    assert not sp.can_transition(None, LOCKED)
    assert not sp.can_transition(A, RECOVER)
    for status in ShardStatus:
        assert sp.can_transition(status, None)  # D2 deletes from any status


def test_l6_status_after_transfer() -> None:
    assert sp.status_after_transfer(pending_recovery=False) is A
    assert sp.status_after_transfer(pending_recovery=True) is RECOVER


def test_l7_status_on_restart() -> None:
    mid = sp.ShardSyncProgress(ShardIndex(1), 5, S, bid(9))
    assert sp.status_on_restart(RECOVER, mid, 5) is SYNC
    assert sp.status_on_restart(RECOVER, mid, 5, retry_transfer_first=False) is RECOVER
    assert sp.status_on_restart(RECOVER, mid, 6) is RECOVER  # the source may have deleted it
    assert sp.status_on_restart(RECOVER, None, 5) is RECOVER
    done = sp.ShardSyncProgress(ShardIndex(1), 5, None)
    assert sp.status_on_restart(RECOVER, done, 5) is RECOVER
    for status in (A, SYNC, LOCKED):
        assert sp.status_on_restart(status, mid, 5) is status


# --- P: the progress record --------------------------------------------------------------------


def test_progress_record_bytes() -> None:
    start = sp.ShardSyncProgress.start(ShardIndex(0x0102), 7)
    assert start.encode() == bytes([RECORD_VERSION, 0x02, 0x01, 7, 0, 0, 0, 0, 0])
    mid = sp.ShardSyncProgress(ShardIndex(3), 7, S, bid(0xAB))
    assert mid.encode() == bytes([RECORD_VERSION, 3, 0, 7, 0, 0, 0, 1, 1]) + bid(0xAB)
    done = sp.ShardSyncProgress(ShardIndex(3), 7, None)
    assert done.encode()[7:] == bytes([2, 0])
    for record in (start, mid, done):
        assert sp.ShardSyncProgress.decode(record.encode()) == record


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes([RECORD_VERSION + 1, 3, 0, 7, 0, 0, 0, 0, 0]),
        bytes([RECORD_VERSION, 3, 0, 7, 0, 0, 0, 3, 0]),  # axis tag 3
        bytes([RECORD_VERSION, 3, 0, 7, 0, 0, 0, 0, 2]),  # option tag 2
        bytes([RECORD_VERSION, 3, 0, 0, 0, 0, 0, 0, 0]),  # epoch 0
        bytes([RECORD_VERSION, 3, 0, 7, 0, 0, 0, 2, 1]) + bid(1),  # done with a blob ID
        bytes([RECORD_VERSION, 3, 0, 7, 0, 0, 0, 0, 0, 0]),  # trailing byte
    ],
)
def test_corrupt_progress_records(data: bytes) -> None:
    with pytest.raises(StoreCorruptionError):
        sp.ShardSyncProgress.decode(data)


def test_progress_validates() -> None:
    with pytest.raises(ValueError, match="u32 of at least 1"):
        sp.ShardSyncProgress.start(ShardIndex(0), 0)
    with pytest.raises(ValueError, match="u16"):
        sp.ShardSyncProgress.start(ShardIndex(1 << 16), 1)
    with pytest.raises(ValueError, match="32 bytes"):
        sp.ShardSyncProgress(ShardIndex(0), 1, P, b"x")
    with pytest.raises(ValueError, match="finished sync"):
        sp.ShardSyncProgress(ShardIndex(0), 1, None, bid(1))
    with pytest.raises(TypeError):
        sp.ShardSyncProgress(ShardIndex(0), 1, unchecked("primary"))


# --- P: the sync, batch by batch ---------------------------------------------------------------


def answer(request: SyncShardRequest, held: list[bytes]) -> sp.SyncBatch:
    """What a Walrus source answers: the blobs it holds from the start on, at most the count."""
    start = bisect.bisect_left(held, request.starting_blob_id)
    return sp.SyncBatch(request, tuple(held[start : start + request.sliver_count]))


def as_request(outcome: SyncShardRequest | sp.SyncDone) -> SyncShardRequest:
    assert isinstance(outcome, SyncShardRequest), outcome
    return outcome


def test_p2_first_request() -> None:
    start = sp.ShardSyncProgress.start(ShardIndex(5), 3)
    assert sp.next_request(start, 10) == SyncShardRequest(ShardIndex(5), P, sp.ZERO_BLOB_ID, 10, 3)


def test_p3_a_full_batch_moves_on_and_the_next_request_starts_after_it() -> None:
    progress = sp.ShardSyncProgress.start(ShardIndex(5), 3)
    batch = answer(as_request(sp.next_request(progress, 2)), [bid(1), bid(4), bid(6)])
    assert batch.blob_ids == (bid(1), bid(4)) and not batch.ends_axis
    progress = sp.advance(progress, batch)
    assert progress == sp.ShardSyncProgress(ShardIndex(5), 3, P, bid(4))
    assert as_request(sp.next_request(progress, 2)).starting_blob_id == bid(5)


def test_p3_a_short_batch_moves_on_and_only_an_empty_one_ends_the_axis() -> None:
    progress = sp.ShardSyncProgress(ShardIndex(5), 3, P, bid(4))
    batch = answer(as_request(sp.next_request(progress, 2)), [bid(1), bid(4), bid(6)])
    assert batch.blob_ids == (bid(6),) and not batch.ends_axis
    progress = sp.advance(progress, batch)
    assert progress == sp.ShardSyncProgress(ShardIndex(5), 3, P, bid(6))
    batch = answer(as_request(sp.next_request(progress, 2)), [bid(1), bid(4), bid(6)])
    assert batch.blob_ids == () and batch.ends_axis
    progress = sp.advance(progress, batch)
    assert progress == sp.ShardSyncProgress(ShardIndex(5), 3, S, None)
    empty = sp.SyncBatch(as_request(sp.next_request(progress, 2)), ())
    progress = sp.advance(progress, empty)
    assert progress.done
    assert sp.next_request(progress, 2) == sp.SyncDone(ShardIndex(5))
    with pytest.raises(ValueError, match="already done"):
        sp.advance(progress, empty)


def test_p3_a_batch_ending_at_the_last_blob_id_ends_the_axis() -> None:
    progress = sp.ShardSyncProgress(ShardIndex(0), 3, S, bid(7))
    batch = sp.SyncBatch(as_request(sp.next_request(progress, 1)), (sp.MAX_BLOB_ID,))
    assert batch.ends_axis
    assert sp.advance(progress, batch).done


def test_advance_checks_the_batch_answers_the_next_request() -> None:
    progress = sp.ShardSyncProgress(ShardIndex(0), 3, P, bid(7))
    other = SyncShardRequest(ShardIndex(0), P, bid(7), 5, 3)  # should start at bid(8)
    with pytest.raises(ValueError, match="not the next request"):
        sp.advance(progress, sp.SyncBatch(other, ()))


def test_batch_size_bounds() -> None:
    progress = sp.ShardSyncProgress.start(ShardIndex(0), 1)
    assert as_request(sp.next_request(progress, sp.MAX_SYNC_BATCH_SIZE)).sliver_count == 100_000
    for bad in (0, sp.MAX_SYNC_BATCH_SIZE + 1):
        with pytest.raises(ValueError, match="batch_size"):
            sp.next_request(progress, bad)
    with pytest.raises(TypeError):
        sp.next_request(progress, unchecked(True))


@pytest.mark.parametrize(
    ("blob_ids", "match"),
    [
        ((bid(1), bid(2), bid(3), bid(4)), "4 slivers in answer to a request for 3"),
        ((bid(3), bid(2)), "strictly increasing"),
        ((bid(2), bid(2)), "strictly increasing"),
        ((bid(0),), "before the requested"),
        ((b"short",), "32 bytes"),
    ],
)
def test_p3_an_invalid_answer_is_the_peers_fault(blob_ids: tuple[bytes, ...], match: str) -> None:
    request = SyncShardRequest(ShardIndex(0), P, bid(1), 3, 2)
    with pytest.raises(InvalidInputError, match=match):
        sp.SyncBatch(request, blob_ids)


def test_p5_missing_blobs_of_a_batch() -> None:
    request = SyncShardRequest(ShardIndex(0), P, bid(3), 2, 2)
    certified = [bid(i) for i in (1, 3, 4, 5, 8, 9)]
    full = sp.SyncBatch(request, (bid(5), bid(8)))
    assert sp.missing_blobs(full, certified) == (bid(3), bid(4))  # not 9: after the range
    short = sp.SyncBatch(request, (bid(5),))
    assert sp.missing_blobs(short, certified) == (bid(3), bid(4))
    last = sp.SyncBatch(SyncShardRequest(ShardIndex(0), P, bid(6), 2, 2), ())
    assert sp.missing_blobs(last, certified) == (bid(8), bid(9))
    assert sp.missing_blobs(sp.SyncBatch(request, ()), []) == ()


def test_f2_blobs_to_recover() -> None:
    certified = [bid(i) for i in (1, 3, 5)]
    start = sp.ShardSyncProgress.start(ShardIndex(0), 2)
    assert sp.blobs_to_recover(start, certified) == tuple((t, b) for t in (P, S) for b in certified)
    mid_primary = sp.ShardSyncProgress(ShardIndex(0), 2, P, bid(3))
    assert sp.blobs_to_recover(mid_primary, certified) == (
        (P, bid(5)),
        (S, bid(1)),
        (S, bid(3)),
        (S, bid(5)),
    )
    mid_secondary = sp.ShardSyncProgress(ShardIndex(0), 2, S, bid(4))
    assert sp.blobs_to_recover(mid_secondary, certified) == ((S, bid(5)),)
    assert sp.blobs_to_recover(sp.ShardSyncProgress(ShardIndex(0), 2, None), certified) == ()


# --- F: falling back to recovery ---------------------------------------------------------------


@pytest.mark.parametrize("failure", sorted(sp.RETRYABLE_FAILURES, key=lambda f: f.value))
def test_f1_retryable_failures_are_retried_within_the_window(failure: sp.SyncFailure) -> None:
    policy = sp.SyncRetryPolicy(retry_window_s=100.0)
    assert sp.decide_after_failure(
        failure, last_progress_s=10.0, now_s=110.0, policy=policy
    ) == sp.RetrySync(failure)
    assert sp.decide_after_failure(
        failure, last_progress_s=10.0, now_s=110.5, policy=policy
    ) == sp.FallBackToRecovery(failure, sp.RecoveryReason.RETRY_WINDOW_EXCEEDED)


@pytest.mark.parametrize("failure", [sp.SyncFailure.REFUSED, sp.SyncFailure.INVALID_RESPONSE])
def test_f2_other_failures_fall_back_at_once(failure: sp.SyncFailure) -> None:
    assert sp.decide_after_failure(
        failure, last_progress_s=0.0, now_s=0.0
    ) == sp.FallBackToRecovery(failure, sp.RecoveryReason.NOT_RETRYABLE)


def test_default_window_is_walrus_twelve_hours() -> None:
    unreachable = sp.SyncFailure.UNREACHABLE
    assert sp.DEFAULT_RETRY_POLICY.retry_window_s == 43_200
    assert isinstance(
        sp.decide_after_failure(unreachable, last_progress_s=0, now_s=43_200), sp.RetrySync
    )
    assert isinstance(
        sp.decide_after_failure(unreachable, last_progress_s=0, now_s=43_201), sp.FallBackToRecovery
    )


def test_failure_of_refusal() -> None:
    def refused(reason: SyncShardRefusal, **epochs: int) -> SyncShardRefused:
        return SyncShardRefused(reason, "x", **epochs)

    invalid = SyncShardRefusal.INVALID_EPOCH
    assert (
        sp.failure_of_refusal(refused(invalid, request_epoch=5, server_epoch=4))
        is sp.SyncFailure.SOURCE_BEHIND
    )
    assert (
        sp.failure_of_refusal(refused(invalid, request_epoch=4, server_epoch=5))
        is sp.SyncFailure.REFUSED
    )
    assert (
        sp.failure_of_refusal(refused(SyncShardRefusal.UNAUTHORIZED)) is sp.SyncFailure.UNAUTHORIZED
    )
    for reason in (
        SyncShardRefusal.MESSAGE_VERIFICATION_FAILED,
        SyncShardRefusal.SLIVER_COUNT_EXCEEDS_LIMIT,
    ):
        assert sp.failure_of_refusal(refused(reason)) is sp.SyncFailure.REFUSED


def test_fallback_rejects_misuse() -> None:
    with pytest.raises(ValueError, match="before"):
        sp.decide_after_failure(sp.SyncFailure.UNREACHABLE, last_progress_s=5, now_s=4)
    with pytest.raises(ValueError, match="finite"):
        sp.decide_after_failure(sp.SyncFailure.UNREACHABLE, last_progress_s=0, now_s=float("inf"))
    with pytest.raises(TypeError):
        sp.decide_after_failure(unchecked("unreachable"), last_progress_s=0, now_s=1)
    for window in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="retry_window_s"):
            sp.SyncRetryPolicy(window)
    with pytest.raises(ValueError, match="not worth a retry"):
        sp.RetrySync(sp.SyncFailure.REFUSED)
    with pytest.raises(ValueError, match="does not go with"):
        sp.FallBackToRecovery(sp.SyncFailure.REFUSED, sp.RecoveryReason.RETRY_WINDOW_EXCEEDED)


# --- properties over realistic committee changes -----------------------------------------------

node_ids = st.integers(1, 40).map(nid)


@st.composite
def committee_changes(draw: st.DrawFn) -> tuple[ShardAssignment, ShardAssignment]:
    """Two consecutive committees as Walrus makes them: D'Hondt, then a minimal transition."""
    first = draw(st.lists(node_ids, min_size=1, max_size=12, unique=True))
    joining = [n for n in draw(st.lists(node_ids, max_size=5, unique=True)) if n not in first]
    staying = [n for n in first if draw(st.booleans()) or n == first[0]]
    second = draw(st.permutations(staying + joining))
    stake = st.integers(0, 10**9)
    before = [(n, draw(stake)) for n in first]
    after = [(n, draw(stake)) for n in second]
    assume(sum(s for _, s in before) > 0 and sum(s for _, s in after) > 0)
    n_shards = draw(st.integers(1, 60))
    old = initialize(apportionment(n_shards, before))
    return old, transition(old, apportionment(n_shards, after))


def owners(assignment: ShardAssignment) -> dict[int, bytes]:
    return {s: m.node_id for m in assignment.members for s in m.shards}


@given(committee_changes(), node_ids)
def test_diff_partitions_the_shards_and_names_previous_owners(
    change: tuple[ShardAssignment, ShardAssignment], node_id: bytes
) -> None:
    old, new = change
    diff = sp.shard_diff(old, new, node_id)
    assert diff.owned_now == frozenset(new.shards_of(node_id) or ())
    assert diff.owned_before == frozenset(old.shards_of(node_id) or ())
    assert set(diff.gained_shards) | set(diff.kept) == diff.owned_now
    assert set(diff.lost) | set(diff.kept) == diff.owned_before
    for gained in diff.gained:
        assert gained.previous_owner == owners(old)[gained.shard] != node_id
        assert gained.previous_owner == sp.owner_of(old, gained.shard)
    first = sp.shard_diff(EMPTY, old, node_id)
    assert all(g.previous_owner is None for g in first.gained)
    assert first.gained_shards == tuple(sorted(old.shards_of(node_id) or ()))


statuses = st.sampled_from(list(ShardStatus))


@given(committee_changes(), node_ids, st.data())
def test_epoch_change_plan_follows_the_lifecycle(
    change: tuple[ShardAssignment, ShardAssignment], node_id: bytes, data: st.DataObject
) -> None:
    old, new = change
    n = new.n_shards
    stored = data.draw(st.dictionaries(st.integers(0, n + 3).map(ShardIndex), statuses))
    plan = sp.decide_epoch_change(7, old, new, node_id, stored)
    for shard, status in plan.statuses.items():
        assert sp.can_transition(stored.get(shard), status), (stored.get(shard), status)
    after = {s: v for s, v in {**stored, **plan.statuses}.items() if v is not None}
    diff = plan.diff
    # D2: what remains is exactly what one of the two committees assigns to the node.
    assert set(after) <= diff.owned_now | diff.owned_before
    assert diff.owned_now <= set(after)  # every owned shard has storage and a status
    for shard in after:
        assert sp.may_delete(shard, old, new, node_id) is False
    for shard in diff.lost:
        assert after.get(shard) in (None, LOCKED)
    for shard in diff.owned_now:
        assert after[shard] in (A, SYNC, RECOVER)
    syncs = [a for a in plan.actions if isinstance(a, sp.StartShardSync)]
    assert {a.shard for a in syncs} == {s for s, v in plan.statuses.items() if v is SYNC}
    for action in syncs:
        assert action.source == owners(old)[action.shard] != node_id
        assert plan.progress[action.shard] == sp.ShardSyncProgress.start(action.shard, 7)


# A blob ID drawn so that the smallest and largest IDs and neighbours turn up often.
blob_ids = st.one_of(
    st.integers(0, (1 << 256) - 1),
    st.sampled_from([0, 1, 2, (1 << 256) - 2, (1 << 256) - 1]),
    st.integers(0, 40),
).map(bid)


@dataclass
class Node:
    """The requester's persisted state: progress record bytes and what was stored."""

    progress: bytes
    stored: list[tuple[SliverType, bytes]] = field(default_factory=list)
    pending_recovery: list[tuple[SliverType, bytes]] = field(default_factory=list)


@given(
    st.lists(blob_ids, unique=True, max_size=30),
    st.lists(blob_ids, unique=True, max_size=30),
    st.lists(blob_ids, unique=True, max_size=30),
    st.data(),
)
def test_a_sync_resumed_after_any_crash_fetches_every_sliver_once_in_order(
    primary: list[bytes], secondary: list[bytes], certified: list[bytes], data: st.DataObject
) -> None:
    held = {P: sorted(primary), S: sorted(secondary)}
    known = sorted(certified)
    node = Node(sp.ShardSyncProgress.start(ShardIndex(4), 9).encode())
    crashes = 0
    while True:
        # (Re)start: read the progress back from its bytes, with any batch size.
        progress = sp.ShardSyncProgress.decode(node.progress)
        batch_size = data.draw(st.integers(1, 8), label="batch size")
        restarted = False
        while not restarted:
            request = sp.next_request(progress, batch_size)
            if isinstance(request, sp.SyncDone):
                break
            assert request.epoch == 9 and request.shard_index == 4
            batch = answer(request, held[request.sliver_type])
            if crashes < 10 and data.draw(st.booleans(), label="crash before persisting"):
                crashes += 1
                restarted = True
                continue
            # One transaction: slivers, pending recoveries and the new progress.
            node.stored.extend((request.sliver_type, b) for b in batch.blob_ids)
            node.pending_recovery.extend(
                (request.sliver_type, b) for b in sp.missing_blobs(batch, known)
            )
            progress = sp.advance(progress, batch)
            node.progress = progress.encode()
            if crashes < 10 and data.draw(st.booleans(), label="crash after persisting"):
                crashes += 1
                restarted = True
        if not restarted:
            break
    assert sp.ShardSyncProgress.decode(node.progress).done
    assert node.stored == [(P, b) for b in held[P]] + [(S, b) for b in held[S]]
    expected_missing = [(t, b) for t in (P, S) for b in known if b not in set(held[t])]
    assert node.pending_recovery == expected_missing


@given(
    st.lists(blob_ids, unique=True, max_size=20),
    st.lists(blob_ids, unique=True, max_size=20),
    st.data(),
)
def test_falling_back_mid_sync_recovers_exactly_what_was_not_transferred(
    held_ids: list[bytes], certified: list[bytes], data: st.DataObject
) -> None:
    known = sorted(certified)
    held = sorted(set(held_ids) | set(known))  # a source holding everything the node knows
    progress = sp.ShardSyncProgress.start(ShardIndex(1), 3)
    stored: list[tuple[SliverType, bytes]] = []
    for _ in range(data.draw(st.integers(0, 12), label="batches before the source fails")):
        request = sp.next_request(progress, data.draw(st.integers(1, 4)))
        if isinstance(request, sp.SyncDone):
            break
        batch = answer(request, held)
        stored.extend((request.sliver_type, b) for b in batch.blob_ids)
        progress = sp.advance(progress, batch)
    recovered = sp.blobs_to_recover(progress, known)
    transferred = set(stored)
    assert set(recovered).isdisjoint(transferred)
    assert {(t, b) for t in (P, S) for b in known} <= transferred | set(recovered)
    assert len(set(recovered)) == len(recovered)


@cache
def protocol_key(node_id: bytes) -> BlsPrivateKey:
    return BlsPrivateKey.from_seed(node_id)


@given(committee_changes(), st.data())
def test_the_source_refuses_unowned_shards_and_other_epochs(
    change: tuple[ShardAssignment, ShardAssignment], data: st.DataObject
) -> None:
    old, new = change
    server_epoch = 12
    requester = data.draw(st.sampled_from(sorted(set(old.node_ids) | set(new.node_ids))))
    shard = ShardIndex(data.draw(st.integers(0, new.n_shards - 1)))
    epoch = data.draw(st.sampled_from([server_epoch, server_epoch - 1, server_epoch + 1, 0]))
    key = protocol_key(requester)
    signed = sign_sync_shard_request(key, SyncShardRequest(shard, P, bid(0), 100, epoch))
    owned = new.shards_of(requester)
    outcome = verify_sync_shard_request(
        signed,
        key.public_key(),
        server_epoch=server_epoch,
        # A member of the previous or the new committee is a storage node to the source.
        requester_shards=frozenset(owned or ()),
    )
    owns = shard in (owned or ())
    if epoch != server_epoch:
        assert isinstance(outcome, SyncShardRefused)
        assert outcome.reason is SyncShardRefusal.INVALID_EPOCH
        assert (outcome.request_epoch, outcome.server_epoch) == (epoch, server_epoch)
    elif not owns:
        assert isinstance(outcome, SyncShardRefused)
        assert outcome.reason is SyncShardRefusal.UNAUTHORIZED
    else:
        assert isinstance(outcome, VerifiedSyncShardRequest)
        assert outcome.request.shard_index == shard
        # The diff agrees: the requester gained or kept the shard it may sync.
        assert shard in sp.shard_diff(old, new, requester).owned_now
