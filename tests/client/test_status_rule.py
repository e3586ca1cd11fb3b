"""The status decision rule (spec 1.4): the most advanced status that f+1 shards vouch for."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from walruspy.client.status import choose_status, status_weights
from walruspy.core.committee import Committee, CommitteeMember
from walruspy.core.crypto import BlsPrivateKey
from walruspy.node_api.schemas import (
    BlobStatus,
    Deletable,
    DeletableCounts,
    EventId,
    Invalid,
    Nonexistent,
    Permanent,
    blob_status_sort_key,
)

KEYS = [BlsPrivateKey.from_seed(bytes([i + 1]) * 32) for i in range(4)]
EVENT = EventId(b"\x01" * 32, 0)


def committee(shard_counts: list[int]) -> Committee:
    members, first = [], 0
    for index, count in enumerate(shard_counts):
        node_id = hashlib.blake2b(bytes([index]), digest_size=32).digest()
        shards = tuple(range(first, first + count))
        first += count
        members.append(CommitteeMember(node_id, KEYS[index].public_key(), "n:1", shards))
    return Committee(1, first, tuple(members))


STATUSES: list[BlobStatus] = [
    Nonexistent(),
    Deletable(None, DeletableCounts(1, 0)),
    Deletable(2, DeletableCounts(2, 1)),
    Permanent(5, False, EVENT, DeletableCounts(), None),
    Permanent(5, True, EVENT, DeletableCounts(), 2),
    Permanent(9, True, EVENT, DeletableCounts(), 2),
    Invalid(EVENT),
]

reports = st.lists(st.tuples(st.sampled_from(STATUSES), st.integers(1, 40)), max_size=12)


@given(reports, st.lists(st.integers(1, 30), min_size=1, max_size=4))
def test_the_chosen_status_has_f_plus_1_and_nothing_above_it_does(
    answers: list[tuple[BlobStatus, int]], shard_counts: list[int]
) -> None:
    members = committee(shard_counts)
    weights = status_weights(answers)
    assert sum(weights.values()) == sum(weight for _, weight in answers)
    chosen = choose_status(weights, members)
    trusted = [s for s, w in weights.items() if members.is_above_validity(w)]
    if chosen is None:
        assert trusted == []
        return
    assert members.is_above_validity(weights[chosen])
    above = [s for s in trusted if blob_status_sort_key(s) > blob_status_sort_key(chosen)]
    assert above == []


def test_a_minority_cannot_push_a_more_advanced_status() -> None:
    members = committee([3, 3, 2, 2])  # n = 10: validity needs 4 shards
    certified = Permanent(9, True, EVENT, DeletableCounts(), 1)
    weights = status_weights([(Nonexistent(), 5), (Invalid(EVENT), 3), (certified, 2)])
    assert choose_status(weights, members) == Nonexistent()
    weights = status_weights([(Nonexistent(), 4), (certified, 2), (certified, 2)])
    assert choose_status(weights, members) == certified
    assert choose_status({}, members) is None
