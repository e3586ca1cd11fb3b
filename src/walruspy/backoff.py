"""The one retry policy of walruspy: a pause that doubles from a low bound, capped at a high one.

Theory of operation (STYLE.md, "one `Backoff`"; spec/walrus-system.md 5, timeouts and retries).
Every loop that waits before trying again (the client's node requests and certificate posts, the
node's chain reads, event polling, epoch steps, blob and shard sync, invalidation and challenges,
the chain client's read retries, receipt polls and its wait for a chain that is not up yet, the
CLI's wait for a deletion to show) takes its pause from a `Backoff`:

- `delay_s(step)` is `low_s * 2**step`, at most `high_s`, for step 0, 1, 2, ... Each loop keeps
  its own count of failures and says which step it is at (some pause `low_s` after the first
  failure, some `2 * low_s`: the step passed is theirs to choose, and unchanged by this module);
- `jittered_s(step, rng)` is that pause times a factor drawn uniformly from [0.5, 1), so that the
  retries of many tasks after one outage spread out instead of arriving together. The random
  source is an argument: this module keeps no state, reads no clock and never sleeps;
- `max_retries` is the loop's bound, for the loops whose bound is a number of retries; a loop
  bounded otherwise (by cancellation, a deadline or the end of an epoch) leaves it None.

The values are the callers' configuration (each default says why where it is defined); this
module only checks that they make sense: a positive low bound, a high bound not below it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

#: Doubling stops here: 2**32 times any positive low bound passes every configured high bound
#: (the widest configured range, 0.001 s to 86 400 s, spans fewer than 27 doublings), and a huge
#: step neither overflows nor costs a big-integer power.
MAX_DOUBLINGS: Final = 32


@dataclass(frozen=True, slots=True)
class Backoff:
    """Doubling pauses from `low_s`, capped at `high_s`; at most `max_retries` retries if set."""

    low_s: float
    high_s: float
    max_retries: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.low_s <= self.high_s:
            raise ValueError(
                f"a backoff needs 0 < low_s <= high_s, got low_s={self.low_s}, high_s={self.high_s}"
            )
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError(f"max_retries is at least 0, got {self.max_retries}")

    def delay_s(self, step: int) -> float:
        """The pause before retry `step` (0 for the first): `low_s * 2**step`, at most `high_s`."""
        if step < 0:
            raise ValueError(f"a retry step is at least 0, got {step}")
        return float(min(self.high_s, self.low_s * 2 ** min(step, MAX_DOUBLINGS)))

    def jittered_s(self, step: int, rng: random.Random) -> float:
        """`delay_s(step)` times a factor from [0.5, 1), drawn with one `rng.random()`."""
        return jitter(self.delay_s(step), rng)


def jitter(delay_s: float, rng: random.Random) -> float:
    """`delay_s` times a factor drawn uniformly from [0.5, 1) (one `rng.random()` call).

    The same value, bit for bit, as `delay_s * rng.uniform(0.5, 1.0)`: both are
    `0.5 + 0.5 * rng.random()`, and halving a float is exact.
    """
    return delay_s * (0.5 + rng.random() / 2)
