"""The simulator end to end: a seed replays byte for byte, fixed seeds pass, a bug is caught.

`walruspy.sim.__main__.simulate` runs the whole network (devchain, four nodes, a client) under
virtual time; each run here costs tens of real seconds, hence `slow` and `sim`. CI runs the
fixed seeds below (a few minutes in all); `make sim` runs random ones for as long as asked.
"""

from __future__ import annotations

import pytest

from walruspy.sim.__main__ import main, simulate
from walruspy.sim.trace import Trace
from walruspy.sim.workload import FaultProfile

pytestmark = [pytest.mark.slow, pytest.mark.sim]

#: Eight virtual minutes: a score of operations, a fault or two, a full check at the end.
SHORT_S = 480.0


def test_the_same_seed_gives_the_same_trace_byte_for_byte() -> None:
    traces = []
    for _ in range(2):
        trace = Trace()
        result = simulate(21, SHORT_S / 2, profile=FaultProfile.MIXED, trace=trace)
        assert result.violation is None, result.violation
        traces.append(trace.text())
    assert traces[0] == traces[1]
    lines = traces[0].splitlines()
    # The set-up's network events, then the run.
    assert lines[0].split()[1] == "net"
    assert lines[1].split()[1:3] == ["start", "seed=21"]
    assert any(" store " in line for line in lines)
    assert any(" net " in line and "digest=" in line for line in lines)
    # Another seed, another run.
    other = Trace()
    simulate(22, SHORT_S / 4, profile=FaultProfile.MIXED, trace=other)
    assert other.text() != traces[0]


@pytest.mark.parametrize(
    ("profile", "seed"),
    [
        (FaultProfile.NONE, 1),
        (FaultProfile.CRASH, 5),
        (FaultProfile.PARTITION, 6),
        (FaultProfile.MIXED, 7),
        (FaultProfile.BYZANTINE, 8),
    ],
    ids=lambda value: value.value if isinstance(value, FaultProfile) else str(value),
)
def test_fixed_seeds_hold_every_invariant(profile: FaultProfile, seed: int) -> None:
    trace = Trace()
    result = simulate(seed, SHORT_S, profile=profile, trace=trace)
    assert result.violation is None, f"{result.violation}\n{trace.text()}"
    assert result.operations.get("store", 0) > 0
    assert result.checks >= 1
    if profile is not FaultProfile.NONE:
        assert result.faults, trace.text()


def test_a_planted_bug_is_reported_with_the_seed_that_replays_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["--seed", "3", "--virtual-hours", "0.05", "--corrupt-reads"])
    out = capsys.readouterr().out
    assert status == 1
    assert "VIOLATION of read-bytes" in out
    assert "replay: python -m walruspy.sim --seed 3 --virtual-hours 0.05" in out
    assert "--corrupt-reads" in out
