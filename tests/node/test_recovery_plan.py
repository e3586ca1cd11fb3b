"""Blob sync's pure retry rule (R1-R3 of node/recovery.py), without a node."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from walruspy.node.recovery import ForgetFailures, RequeueSync, SyncOutcome, decide_retry


def test_a_sync_that_did_not_fail_forgets_its_failures() -> None:  # R1
    for outcome in (SyncOutcome.RECOVERED, SyncOutcome.SKIPPED, SyncOutcome.INCONSISTENT):
        assert decide_retry(outcome, 3, sync_retries=5, queue_full=False) == ForgetFailures()


def test_a_failed_sync_is_queued_again_with_one_failure_more() -> None:  # R3
    assert decide_retry(SyncOutcome.FAILED, 0, sync_retries=5, queue_full=False) == RequeueSync(1)
    assert decide_retry(SyncOutcome.FAILED, 4, sync_retries=5, queue_full=False) == RequeueSync(5)


def test_past_its_retries_a_failed_sync_is_left_to_the_scan() -> None:  # R2
    assert decide_retry(SyncOutcome.FAILED, 5, sync_retries=5, queue_full=False) == ForgetFailures()
    assert decide_retry(SyncOutcome.FAILED, 0, sync_retries=0, queue_full=False) == ForgetFailures()


def test_a_full_queue_leaves_a_failed_sync_to_the_scan() -> None:  # R2
    assert decide_retry(SyncOutcome.FAILED, 0, sync_retries=5, queue_full=True) == ForgetFailures()


@given(st.integers(0, 20), st.integers(0, 50))
def test_a_blob_is_queued_again_at_most_sync_retries_times_in_a_row(
    sync_retries: int, rounds: int
) -> None:
    failures, requeued = 0, 0
    for _ in range(rounds):
        decision = decide_retry(SyncOutcome.FAILED, failures, sync_retries, queue_full=False)
        if isinstance(decision, ForgetFailures):
            break
        failures, requeued = decision.failures, requeued + 1
    assert requeued == min(rounds, sync_retries)


def test_outcomes_are_the_metric_labels() -> None:
    labels = {"recovered", "skipped", "inconsistent", "failed", "cancelled"}
    assert {str(outcome) for outcome in SyncOutcome} == labels
