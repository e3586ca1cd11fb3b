"""The one fan-out helper: thresholds, concurrency, timeouts, lingering, failures, budgets.

The client asks for quorums of shard weight with it; the node's blob sync asks for the first valid
metadata and for enough recovery symbols, counting only its own errors as a peer's failure.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walruspy.core.errors import VerificationError, WalrusError
from walruspy.node_api.fanout import (
    NodeRequest,
    NodeSuccess,
    UnfinishedRequestError,
    gather_weight,
)

#: The failures the node's blob sync counts as a peer's (walruspy.node.peer_failures.PEER_FAILURES).
PEER_FAILURES = (WalrusError, TimeoutError)


def request(key: str, weight: int, delay: float, value: object = None, error: bool = False):
    async def call() -> object:
        await asyncio.sleep(delay)
        if error:
            raise ConnectionError(f"{key} refused")
        return value if value is not None else key

    return NodeRequest(key, weight, call)


async def test_stops_once_the_threshold_is_reached_and_cancels_the_rest() -> None:
    cancelled = []

    async def slow() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise
        return "slow"

    requests = [request("a", 3, 0.0), request("b", 4, 0.01), NodeRequest("slow", 3, slow)]
    out = await gather_weight(requests, 7, max_concurrency=10, timeout_s=5)
    assert out.reached and not out.timed_out
    assert sorted(s.key for s in out.successes) == ["a", "b"]
    assert cancelled == ["slow"]
    assert [f.key for f in out.failures] == ["slow"]
    assert isinstance(out.failures[0].error, UnfinishedRequestError)


async def test_failures_are_values_and_the_summary_names_them() -> None:
    requests = [request("a", 3, 0.0), request("b", 3, 0.0, error=True), request("c", 4, 0.0)]
    out = await gather_weight(requests, 10, max_concurrency=10, timeout_s=5)
    assert not out.reached
    assert out.weight == 7
    assert "reached weight 7 of the 10 needed" in out.summary()
    assert "b: b refused" in out.summary()
    out.successes.append(NodeSuccess("d", 2, "d", 0.0))  # the weight follows what is added
    assert out.weight == 9


async def test_gives_up_when_the_threshold_is_out_of_reach() -> None:
    requests = [request("a", 5, 0.0, error=True), request("b", 5, 5.0)]
    started = asyncio.get_running_loop().time()
    out = await gather_weight(requests, 7, max_concurrency=10, timeout_s=30)
    assert asyncio.get_running_loop().time() - started < 1
    assert not out.reached


async def test_timeout_bounds_the_whole_fanout() -> None:
    out = await gather_weight([request("a", 10, 5.0)], 1, max_concurrency=1, timeout_s=0.05)
    assert out.timed_out
    assert not out.reached


async def test_timeout_returns_what_arrived() -> None:
    requests = [request("0", 1, 0.0), request("1", 1, 10.0), request("2", 1, 10.0)]
    out = await gather_weight(requests, 3, max_concurrency=3, timeout_s=0.05)
    assert out.timed_out and [s.value for s in out.successes] == ["0"]


async def test_concurrency_is_capped_and_order_is_kept() -> None:
    in_flight = 0
    peak = 0
    order = []

    def make(key: str) -> NodeRequest[str, str]:
        async def call() -> str:
            nonlocal in_flight, peak
            order.append(key)
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            return key

        return NodeRequest(key, 1, call)

    out = await gather_weight([make(str(i)) for i in range(12)], 12, max_concurrency=3, timeout_s=5)
    assert out.reached
    assert peak == 3
    assert order == [str(i) for i in range(12)]


async def test_linger_keeps_slow_nodes_for_a_bounded_time() -> None:
    requests = [request("fast", 7, 0.0), request("medium", 1, 0.05), request("slow", 2, 3.0)]
    out = await gather_weight(requests, 7, max_concurrency=10, timeout_s=5, linger_s=0.3)
    assert sorted(s.key for s in out.successes) == ["fast", "medium"]
    assert [f.key for f in out.failures] == ["slow"]
    assert not out.timed_out


async def test_settled_ends_the_linger_and_nothing_starts_while_lingering() -> None:
    started: list[str] = []

    def tracked(key: str, delay: float) -> NodeRequest[str, object]:
        inner = request(key, 1, delay)

        async def call() -> object:
            started.append(key)
            return await inner.call()

        return NodeRequest(key, 1, call)

    # "source" is slow; "a" and "b" reach the threshold of 2 first; "c" is never needed.
    requests = [tracked("source", 0.2), tracked("a", 0.0), tracked("b", 0.0), tracked("c", 0.0)]
    clock = asyncio.get_running_loop().time()
    out = await gather_weight(
        requests,
        2,
        max_concurrency=3,
        timeout_s=5,
        linger_s=3.0,
        settled=lambda so_far: any(s.key == "source" for s in so_far.successes),
    )
    assert asyncio.get_running_loop().time() - clock < 1.0, "the linger did not end when settled"
    assert sorted(s.key for s in out.successes) == ["a", "b", "source"]
    assert started == ["source", "a", "b"] and out.not_asked == ["c"]


async def test_accept_turns_answers_into_failures() -> None:
    requests = [request("a", 5, 0.0, value="not found"), request("b", 5, 0.0, value="ok")]
    out = await gather_weight(
        requests, 5, max_concurrency=10, timeout_s=5, accept=lambda v: v == "ok"
    )
    assert [s.key for s in out.successes] == ["b"]
    assert "answer not accepted" in out.failures[0].describe()


def test_bad_concurrency_is_refused() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        asyncio.run(gather_weight([], 1, max_concurrency=0, timeout_s=1))


@settings(max_examples=40)
@given(
    st.lists(st.tuples(st.integers(1, 5), st.booleans()), min_size=1, max_size=12),
    st.integers(1, 30),
    st.integers(1, 6),
)
def test_reached_iff_enough_nodes_succeed(
    nodes: list[tuple[int, bool]], threshold: int, cap: int
) -> None:
    requests = [request(str(i), w, 0.0, error=bad) for i, (w, bad) in enumerate(nodes)]
    out = asyncio.run(gather_weight(requests, threshold, max_concurrency=cap, timeout_s=5))
    good_weight = sum(w for w, bad in nodes if not bad)
    assert out.reached == (good_weight >= threshold)
    asked = {s.key for s in out.successes} | {f.key for f in out.failures} | set(out.not_asked)
    assert asked == {str(i) for i in range(len(nodes))}


async def test_give_up_ends_the_fanout_when_the_answers_settle_it() -> None:
    requests = [request(str(i), 2, 0.01 * i, error=i < 3) for i in range(6)]
    out = await gather_weight(
        requests,
        12,
        max_concurrency=1,
        timeout_s=5,
        give_up=lambda so_far: len(so_far.failures) >= 2,
    )
    assert not out.reached
    assert [f.key for f in out.failures] == ["0", "1"]
    assert out.not_asked == ["2", "3", "4", "5"]


async def test_on_reached_is_called_once_at_the_quorum_before_lingering() -> None:
    calls: list[tuple[list[str], float]] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    requests = [request("a", 4, 0.0), request("b", 3, 0.02), request("c", 3, 0.2)]
    out = await gather_weight(
        requests,
        7,
        max_concurrency=10,
        timeout_s=5,
        linger_s=lambda to_quorum: 0.5 * to_quorum + 0.5,
        on_reached=lambda so_far: calls.append(
            (sorted(s.key for s in so_far.successes), loop.time() - started)
        ),
    )
    assert len(calls) == 1
    assert calls[0][0] == ["a", "b"]
    assert calls[0][1] < 0.15  # announced at the quorum, not after the lingering
    assert sorted(s.key for s in out.successes) == ["a", "b", "c"]  # c came while lingering


async def test_on_reached_fires_when_the_last_answer_reaches_the_threshold() -> None:
    calls: list[int] = []
    out = await gather_weight(
        [request("a", 1, 0.0), request("b", 1, 0.01)],
        2,
        max_concurrency=2,
        timeout_s=5,
        linger_s=1.0,
        on_reached=lambda so_far: calls.append(so_far.weight),
    )
    assert out.reached and calls == [2]
    out = await gather_weight(
        [request("a", 1, 0.0)],
        1,
        max_concurrency=1,
        timeout_s=5,
        on_reached=lambda so_far: calls.append(so_far.weight),
    )
    assert calls == [2, 1]


async def test_a_caller_may_collect_every_answer_when_the_threshold_is_out_of_reach() -> None:
    requests = [request("a", 5, 0.0, error=True), request("b", 1, 0.05), request("c", 1, 0.1)]
    stopped = await gather_weight(requests, 7, max_concurrency=10, timeout_s=5)
    assert stopped.successes == []
    collected = await gather_weight(
        requests, 7, max_concurrency=10, timeout_s=5, stop_if_unreachable=False
    )
    assert sorted(s.key for s in collected.successes) == ["b", "c"]
    assert not collected.reached


async def test_the_callers_failures_are_values_and_all_are_tried() -> None:
    async def call(item: int) -> int:
        if item % 2:
            raise VerificationError(f"bad {item}")
        if item == 4:
            raise TimeoutError
        return item

    requests = [NodeRequest(i, 1, lambda i=i: call(i)) for i in range(6)]
    out = await gather_weight(
        requests,
        6,
        max_concurrency=2,
        timeout_s=5,
        stop_if_unreachable=False,
        failures=PEER_FAILURES,
    )
    assert not out.reached
    assert sorted(s.key for s in out.successes) == [0, 2]
    assert sorted(f.key for f in out.failures) == [1, 3, 4, 5]


async def test_a_bug_is_not_a_peer_failure() -> None:
    async def call() -> int:
        raise KeyError(1)

    with pytest.raises(KeyError):
        await gather_weight(
            [NodeRequest(1, 1, call)], 1, max_concurrency=1, timeout_s=1, failures=PEER_FAILURES
        )


async def test_no_requests() -> None:
    out = await gather_weight([], 1, max_concurrency=1, timeout_s=1)
    assert not out.successes and not out.reached


async def test_the_weight_in_flight_is_bounded_by_what_is_missing() -> None:
    """Nodes are asked only while their weight in flight is below what is missing."""
    collected: list[int] = []
    asked: list[int] = []

    async def call(item: int) -> int:
        asked.append(item)
        await asyncio.sleep(0.001)
        if item == 1:
            raise VerificationError("liar")
        collected.extend([item] * 3)  # each node brings 3 symbols
        return 3

    out = await gather_weight(
        [NodeRequest(i, 3, lambda i=i: call(i)) for i in range(10)],
        7,
        max_concurrency=10,
        timeout_s=5,
        weigh=lambda added: added,
        bound_in_flight=True,
        failures=PEER_FAILURES,
    )
    assert out.reached and len(collected) >= 7
    # 3 nodes cover 7; the liar's failure brings in exactly one more.
    assert asked == [0, 1, 2, 3]


async def test_weigh_counts_what_a_success_brought() -> None:
    requests = [request("a", 5, 0.0, value=1), request("b", 5, 0.01, value=2)]
    out = await gather_weight(requests, 3, max_concurrency=2, timeout_s=5, weigh=int)
    assert out.reached and [s.weight for s in out.successes] == [1, 2]
