"""The one fan-out helper: ask many storage nodes, gather weight until a threshold is reached.

Theory of operation (spec/walrus-system.md 1.2, 1.3, 3.4 and 5; Walrus `committee/
request_futures.rs`; STYLE.md 7). Every step that talks to the committee has the same shape: send
one request per node, weigh each success (by default by the shards the node holds), and stop once
the successes reach a threshold: a quorum 2f+1 for the client's confirmations, n-2f slivers for a
read, f+1 for a trusted status, the first valid metadata or enough distinct recovery symbols for a
node's blob sync. `gather_weight` is that one helper, shared by the client and the node:

- requests start in the caller's order, at most `max_concurrency` at once and, with
  `bound_in_flight`, only while the weight in flight is below the weight still missing (Walrus
  asks nodes until their shards cover what it needs, and more only when some fail), and
  below `max_in_flight_weight` (a read's cap on slivers in flight, asked a node at a time);
- it returns as soon as the success weight reaches `threshold` and, after an optional `linger_s`
  (Walrus keeps uploading to slow nodes for a while after the quorum, so that more honest nodes
  get their slivers directly; a read waits a little for the slivers that decode without
  Reed-Solomon work), cancels what is still running; no request starts while it lingers, and
  `settled` can end the linger early;
- it stops early when the weight still outstanding can no longer reach the threshold (unless
  `stop_if_unreachable` is False: a caller deciding with whatever comes back), or when
  the caller's `give_up` predicate says the answers so far settle the question another way (for
  example a quorum of "not found" answers: the blob does not exist);
- `on_reached` is called once, the moment the threshold is reached, so the caller can act on the
  quorum (certify a blob) while the fan-out lingers for the slower nodes;
- `timeout_s` bounds the whole fan-out.

Per-node successes and failures are values in the returned `Fanout`, never exceptions, so the
caller can say exactly which nodes failed and why, and how much weight it reached of how much it
needed. Which exceptions count as a node's failure is the caller's choice (`failures`): the
client counts any `Exception`; the node counts only its own errors and timeouts, so that a bug
propagates instead of being silently counted as a peer's failure.

What the loop does between answers is decided by a pure rule, `next_step` (the rules F1-F3
there, in the style of `walruspy.node.blob_state`): stop, and whether that is a timeout, or wait
for answers until a given instant. `gather_weight` gathers the facts, asks, and acts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from walruspy import clock

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class NodeRequest(Generic[K, T]):
    """One request to one node: its key (node id or URL), its shard weight, the call to make."""

    key: K
    weight: int
    call: Callable[[], Awaitable[T]]


@dataclass(frozen=True, slots=True)
class NodeSuccess(Generic[K, T]):
    """A node that answered, with its value, the weight it counts for and how long it took."""

    key: K
    weight: int
    value: T
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class NodeFailure(Generic[K]):
    """A node that failed, with the error (or a timeout/cancellation note)."""

    key: K
    weight: int
    error: BaseException
    elapsed_s: float

    def describe(self) -> str:
        """One line naming the node and what went wrong."""
        reason = str(self.error) or type(self.error).__name__
        return f"{self.key}: {reason}"


@dataclass(slots=True)
class Fanout(Generic[K, T]):
    """What a fan-out gathered."""

    threshold: int
    successes: list[NodeSuccess[K, T]] = field(default_factory=list)
    failures: list[NodeFailure[K]] = field(default_factory=list)
    not_asked: list[K] = field(default_factory=list)
    timed_out: bool = False
    # The weight of successes[:_counted]: successes are only ever appended, and the weight is
    # asked after every answer (a read of 334 slivers summed them 55,000 times).
    _counted: int = field(default=0, repr=False, compare=False)
    _weight: int = field(default=0, repr=False, compare=False)

    @property
    def weight(self) -> int:
        """The weight of the successful nodes."""
        if self._counted != len(self.successes):
            self._weight += sum(s.weight for s in self.successes[self._counted :])
            self._counted = len(self.successes)
        return self._weight

    @property
    def reached(self) -> bool:
        """Whether the successes reached the threshold."""
        return self.weight >= self.threshold

    def summary(self, max_failures: int = 10) -> str:
        """A readable account: weight reached of needed, and the first failures."""
        parts = [f"reached weight {self.weight} of the {self.threshold} needed"]
        if self.timed_out:
            parts.append("the fan-out timed out")
        if self.failures:
            shown = "; ".join(f.describe() for f in self.failures[:max_failures])
            more = len(self.failures) - max_failures
            parts.append(f"failed: {shown}" + (f" (and {more} more)" if more > 0 else ""))
        return ", ".join(parts)


# --- pure: what the fan-out does between answers ----------------------------------------------
#
# F1. Below the threshold, with its weight out of reach or the caller giving up: stop (not a
#     timeout: the answers settled it).
# F2. Past the deadline, or, once the threshold is reached, past the linger's end: stop; it timed
#     out unless the linger ended first (a linger that runs out is the plan, not a timeout).
# F3. Otherwise wait for answers until the earlier of the deadline and the linger's end.


@dataclass(frozen=True, slots=True)
class Stop:
    """End the fan-out (rules F1, F2); `timed_out` if the deadline, not the answers, ended it."""

    timed_out: bool


@dataclass(frozen=True, slots=True)
class WaitUntil:
    """Wait for the next answer, at most until `until` (rule F3)."""

    until: float


def next_step(
    *,
    reached: bool,
    settled_otherwise: bool,
    now: float,
    deadline: float,
    linger_deadline: float | None,
) -> Stop | WaitUntil:
    """What the fan-out does next. `settled_otherwise`: the threshold is out of reach or the
    caller gives up; `linger_deadline` is None until the threshold is reached."""
    if not reached and settled_otherwise:
        return Stop(timed_out=False)
    until = deadline if linger_deadline is None else min(deadline, linger_deadline)
    if until <= now:
        return Stop(timed_out=linger_deadline is None or deadline <= linger_deadline)
    return WaitUntil(until)


class UnfinishedRequestError(TimeoutError):
    """Recorded for a node whose request was still running when the fan-out ended."""


async def gather_weight(
    requests: Iterable[NodeRequest[K, T]],
    threshold: int,
    *,
    max_concurrency: int,
    timeout_s: float,
    linger_s: float | Callable[[float], float] = 0.0,
    accept: Callable[[T], bool] | None = None,
    weigh: Callable[[T], int] | None = None,
    give_up: Callable[[Fanout[K, T]], bool] | None = None,
    on_reached: Callable[[Fanout[K, T]], None] | None = None,
    settled: Callable[[Fanout[K, T]], bool] | None = None,
    stop_if_unreachable: bool = True,
    bound_in_flight: bool = False,
    max_in_flight_weight: int | None = None,
    failures: tuple[type[BaseException], ...] = (Exception,),
) -> Fanout[K, T]:
    """Run `requests` until the success weight reaches `threshold` (see the module docstring).

    `linger_s` is a number of seconds, or a function of the time it took to reach the threshold
    (Walrus's extra time: 0.5 x that time + 0.5 s). `accept` can turn a returned value into a
    failure (for example a "not found" answer that must not count towards the threshold).
    `weigh` gives the weight a success counts for, when that is not its request's weight (a
    peer's answer may bring fewer new symbols than the shards it holds). `give_up` is asked
    after each answer while the threshold is not reached; True ends the fan-out. `on_reached`
    is called once with the outcome so far when the threshold is reached (it must not block: it
    runs on the event loop, between answers). `settled` is asked after each answer while the
    fan-out lingers; True ends the linger. With `bound_in_flight`, a request starts only while
    the weight of the requests in flight is below `threshold` minus the weight reached. An
    exception that is not one of `failures` is raised once the stragglers are cancelled. With
    `max_in_flight_weight`, a request starts only while the weight in flight is below it.
    """
    if max_concurrency < 1:
        raise ValueError("max_concurrency must be at least 1")
    pending_requests: list[NodeRequest[K, T]] = list(requests)
    pending_requests.reverse()  # pop() from the end keeps the caller's order
    outcome: Fanout[K, T] = Fanout(threshold)
    remaining_weight = sum(r.weight for r in pending_requests)
    running: dict[asyncio.Task[T], tuple[NodeRequest[K, T], float]] = {}
    start = clock.now()
    deadline = start + timeout_s
    linger_deadline: float | None = None
    announced = False

    def launch() -> None:
        while (
            pending_requests
            and not outcome.reached  # nothing new starts while lingering
            and len(running) < max_concurrency
            # with a bound: only while the requests in flight cannot bring what is missing
            and not (bound_in_flight and _in_flight(running) >= threshold - outcome.weight)
            and not (
                max_in_flight_weight is not None and _in_flight(running) >= max_in_flight_weight
            )
        ):
            request = pending_requests.pop()
            running[asyncio.ensure_future(request.call())] = (request, clock.now())

    def announce() -> None:
        nonlocal announced
        if outcome.reached and not announced:
            announced = True
            if on_reached is not None:
                on_reached(outcome)

    try:
        launch()
        while running:
            reached = outcome.reached
            if reached and linger_deadline is None:
                announce()
                extra = linger_s(clock.now() - start) if callable(linger_s) else linger_s
                linger_deadline = clock.now() + extra
            out_of_reach = stop_if_unreachable and outcome.weight + remaining_weight < threshold
            now = clock.now()
            step = next_step(
                reached=reached,
                settled_otherwise=not reached
                and (out_of_reach or (give_up is not None and give_up(outcome))),
                now=now,
                deadline=deadline,
                linger_deadline=linger_deadline,
            )
            if isinstance(step, Stop):
                outcome.timed_out = step.timed_out
                break
            done, _ = await asyncio.wait(
                running, timeout=step.until - now, return_when=asyncio.FIRST_COMPLETED
            )
            # In the order they were launched, not the `done` set's (their addresses'), so
            # that two runs of one simulation record the same answers in the same order.
            for task in [task for task in running if task in done]:
                request, started = running.pop(task)
                remaining_weight -= request.weight
                _record(outcome, request, task, clock.now() - started, accept, weigh, failures)
            if outcome.reached and (linger_s == 0 or (settled is not None and settled(outcome))):
                break
            launch()
        announce()  # the threshold may have been reached by the very last answers
    finally:
        await _cancel(running, outcome)
    outcome.not_asked = [r.key for r in reversed(pending_requests)]
    return outcome


def _in_flight(running: dict[asyncio.Task[T], tuple[NodeRequest[K, T], float]]) -> int:
    return sum(request.weight for request, _ in running.values())


def _record(  # noqa: PLR0917 (the options of gather_weight that judge one answer)
    outcome: Fanout[K, T],
    request: NodeRequest[K, T],
    task: asyncio.Task[T],
    elapsed_s: float,
    accept: Callable[[T], bool] | None,
    weigh: Callable[[T], int] | None,
    failures: tuple[type[BaseException], ...],
) -> None:
    error = task.exception()
    if error is not None:
        if not isinstance(error, failures):
            raise error  # a bug, not the node's failure
        outcome.failures.append(NodeFailure(request.key, request.weight, error, elapsed_s))
        return
    value = task.result()
    if accept is not None and not accept(value):
        rejected = ValueError(f"answer not accepted: {value!r:.200}")
        outcome.failures.append(NodeFailure(request.key, request.weight, rejected, elapsed_s))
        return
    weight = request.weight if weigh is None else weigh(value)
    outcome.successes.append(NodeSuccess(request.key, weight, value, elapsed_s))


async def _cancel(
    running: dict[asyncio.Task[T], tuple[NodeRequest[K, T], float]], outcome: Fanout[K, T]
) -> None:
    for task in running:
        task.cancel()
    if running:
        await asyncio.gather(*running, return_exceptions=True)
    now = clock.now()
    for request, started in running.values():
        note = UnfinishedRequestError("still running when the fan-out ended")
        outcome.failures.append(NodeFailure(request.key, request.weight, note, now - started))
    running.clear()
