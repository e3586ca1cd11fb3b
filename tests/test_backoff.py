"""The one retry policy: doubling pauses, capped, with jitter from the caller's random source."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from walruspy.backoff import Backoff, jitter


def test_doubles_from_the_low_bound_up_to_the_high_one() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.delay_s(step) for step in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    # A huge step neither overflows nor grows.
    assert Backoff(1.0, 600.0).delay_s(10_000) == 600.0
    with pytest.raises(ValueError, match="at least 0"):
        backoff.delay_s(-1)


@pytest.mark.parametrize(
    ("low_s", "high_s", "max_retries"), [(0.0, 1.0, None), (2.0, 1.0, None), (0.1, 1.0, -1)]
)
def test_refuses_bounds_that_make_no_sense(
    low_s: float, high_s: float, max_retries: int | None
) -> None:
    with pytest.raises(ValueError, match=r"low_s|max_retries"):
        Backoff(low_s, high_s, max_retries)


@given(
    low_s=st.floats(0.001, 3600),
    ratio=st.floats(1, 86_400_000),
    step=st.integers(0, 100),
)
def test_the_pause_is_the_doubled_low_bound_or_the_cap(
    low_s: float, ratio: float, step: int
) -> None:
    backoff = Backoff(low_s, low_s * ratio)
    delay = backoff.delay_s(step)
    assert low_s <= delay <= backoff.high_s
    assert delay == min(backoff.high_s, low_s * 2**step)  # the doubling cap is never reached
    assert backoff.delay_s(step + 1) >= delay


@given(seed=st.integers(0, 2**32), delay_s=st.floats(0.001, 1000))
def test_jitter_is_the_same_draw_as_uniform_half_to_one(seed: int, delay_s: float) -> None:
    # The client drew `delay * rng.uniform(0.5, 1.0)`, the node `delay * (0.5 + random() / 2)`:
    # one helper gives both, bit for bit, and consumes the same one draw.
    ours, theirs = random.Random(seed), random.Random(seed)
    assert jitter(delay_s, ours) == delay_s * theirs.uniform(0.5, 1.0)
    assert ours.random() == theirs.random()
    assert 0.5 * delay_s <= jitter(delay_s, ours) <= delay_s


def test_jittered_pause_draws_from_the_callers_random_source() -> None:
    backoff = Backoff(0.1, 2.0, max_retries=9)
    assert backoff.jittered_s(3, random.Random(7)) == jitter(0.8, random.Random(7))
