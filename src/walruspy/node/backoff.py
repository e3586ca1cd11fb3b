"""The node's one retry pause: doubling from a low bound, capped at a high one (STYLE.md review
note "one Backoff"). Every retry loop of the node (chain reads, events, epoch steps, blob sync,
shard sync, invalidation) takes its pause from here.
"""

from __future__ import annotations

#: Doubling stops here: 2**32 times any positive low bound passes every configured high bound.
MAX_DOUBLINGS = 32


def capped_doubling(step: int, low_s: float, high_s: float) -> float:
    """The pause before retry `step` (0 for the first): `low_s * 2**step`, at most `high_s`."""
    if step < 0:
        raise ValueError(f"a retry step is at least 0, got {step}")
    return float(min(high_s, low_s * 2 ** min(step, MAX_DOUBLINGS)))
