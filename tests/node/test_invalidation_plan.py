"""The invalidation flow's pure round rule (I1-I3 of node/invalidation.py), without a node."""

from __future__ import annotations

from walruspy.chain.events import EventId
from walruspy.node.invalidation import (
    EndFlow,
    GatherAttestations,
    InvalidationOutcome,
    decide_round,
)
from walruspy.node.store_records import InvalidBlobInfo, PermanentBlobInfo, ValidBlobInfo

EVENT = EventId(1, 0)
INVALID = InvalidBlobInfo(3, EVENT)
#: A permanent blob registered until epoch 10.
REGISTERED = ValidBlobInfo(permanent_total=PermanentBlobInfo(1, 10, EVENT))


def test_an_invalid_blob_ends_the_flow() -> None:  # I1
    assert decide_round(INVALID, 5, None) == EndFlow(InvalidationOutcome.ALREADY_INVALID)
    assert decide_round(INVALID, 5, 5) == EndFlow(InvalidationOutcome.LOST_RACE)
    assert decide_round(INVALID, 6, 5) == EndFlow(InvalidationOutcome.LOST_RACE)


def test_a_blob_no_longer_registered_ends_the_flow() -> None:  # I2
    assert decide_round(None, 5, None) == EndFlow(InvalidationOutcome.SKIPPED)
    assert decide_round(ValidBlobInfo(), 5, 5) == EndFlow(InvalidationOutcome.SKIPPED)
    assert decide_round(REGISTERED, 10, 9) == EndFlow(InvalidationOutcome.SKIPPED)


def test_the_first_round_and_a_new_epoch_start_a_fresh_round() -> None:  # I3
    assert decide_round(REGISTERED, 5, None) == GatherAttestations(new_round=True)
    assert decide_round(REGISTERED, 6, 5) == GatherAttestations(new_round=True)


def test_the_same_epoch_gathers_on_in_its_round() -> None:  # I3
    assert decide_round(REGISTERED, 5, 5) == GatherAttestations(new_round=False)


def test_outcomes_are_the_metric_labels() -> None:
    labels = {"posted", "lost_race", "already_invalid", "skipped", "failed", "cancelled"}
    assert {str(outcome) for outcome in InvalidationOutcome} == labels
