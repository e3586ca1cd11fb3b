"""The node's one retry pause: doubling, capped."""

from __future__ import annotations

import pytest

from walruspy.node.backoff import capped_doubling


def test_doubles_from_the_low_bound_up_to_the_high_one() -> None:
    assert [capped_doubling(step, 0.5, 3.0) for step in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert capped_doubling(10_000, 1.0, 600.0) == 600.0  # a huge step neither overflows nor grows
    with pytest.raises(ValueError, match="at least 0"):
        capped_doubling(-1, 1.0, 2.0)
