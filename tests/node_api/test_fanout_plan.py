"""The fan-out's rule between answers (`next_step`, rules F1-F3 of walruspy.node_api.fanout),
alone: no task, no clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from walruspy.node_api.fanout import Stop, WaitUntil, next_step

times = st.floats(min_value=0, max_value=1e6, allow_nan=False)


def test_answers_that_settle_it_stop_without_a_timeout() -> None:  # F1
    step = next_step(
        reached=False, settled_otherwise=True, now=5, deadline=10, linger_deadline=None
    )
    assert step == Stop(timed_out=False)


def test_the_deadline_stops_it_as_a_timeout() -> None:  # F2
    step = next_step(
        reached=False, settled_otherwise=False, now=10, deadline=10, linger_deadline=None
    )
    assert step == Stop(timed_out=True)


def test_a_linger_that_runs_out_is_not_a_timeout() -> None:  # F2
    step = next_step(reached=True, settled_otherwise=False, now=7, deadline=10, linger_deadline=6)
    assert step == Stop(timed_out=False)
    late = next_step(reached=True, settled_otherwise=False, now=11, deadline=10, linger_deadline=12)
    assert late == Stop(timed_out=True)  # the deadline came first


def test_it_waits_until_the_earlier_of_the_deadline_and_the_linger() -> None:  # F3
    assert next_step(
        reached=False, settled_otherwise=False, now=1, deadline=10, linger_deadline=None
    ) == WaitUntil(10)
    assert next_step(
        reached=True, settled_otherwise=False, now=1, deadline=10, linger_deadline=4
    ) == WaitUntil(4)


@given(reached=st.booleans(), settled=st.booleans(), now=times, deadline=times, linger=times)
def test_it_waits_only_for_a_time_to_come_and_settles_only_below_the_threshold(
    reached: bool, settled: bool, now: float, deadline: float, linger: float
) -> None:
    linger_deadline = linger if reached else None
    step = next_step(
        reached=reached,
        settled_otherwise=settled,
        now=now,
        deadline=deadline,
        linger_deadline=linger_deadline,
    )
    if isinstance(step, WaitUntil):
        assert now < step.until <= deadline
        assert not (settled and not reached)
    else:
        ends = min(deadline, linger_deadline) if linger_deadline is not None else deadline
        assert (settled and not reached) or ends <= now
