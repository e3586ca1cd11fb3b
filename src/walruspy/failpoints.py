"""Named fail points: places in the node where a test can make it crash, fail or stall.

Theory of operation (STYLE.md, "faults in three tiers"; FoundationDB's buggify, the `fail` crate
of TiKV). A fail point is a call at a chosen place in the code, `failpoint(name)` in synchronous
code or `await failpoint_async(name)` in a coroutine. Disarmed, the call costs one truthiness
test of a module-level dict that is empty (plus, for an async point, making and running one
coroutine that never suspends), so points stay in production code. A test arms a point with an
action:

- `Crash()`: raise `FailPointCrash`, a `BaseException`, so no `except Exception` on the way
  swallows it and the task (and, uncaught, the process) dies as in a crash;
- `Error(exc)`: raise `exc`, a failure the code is expected to handle (a full disk, say);
- `Delay(seconds)`: sleep on the loop's clock (async points only: a sync point cannot sleep
  without blocking the loop, so arming one with a delay is refused);
- `Exit(code)`: `os._exit(code)`, a process killed on the spot: no `finally`, no store close,
  for process-level tests of what is on disk;
- a callable `fn(name)`, for anything else (count hits, set an event, crash on the third hit);
  at an async point, an awaitable it returns is awaited.

Points are armed with `arm`/`disarm`, for a block with `armed(name, action)`, or all cleared
for a block with `disarmed()`; or, for a child process (the devnet, process tests), from the
environment variable `WALRUSPY_FAILPOINTS`, read once at import:
`WALRUSPY_FAILPOINTS="node.after_sliver_write=crash;recovery.before_store=delay(0.5)"`, with the
actions `crash`, `error`, `error(message)`, `delay(seconds)` and `exit(code)` (an `error` from the
environment raises `FailPointError`). A spec that does not parse, or names an unknown point,
raises `ValueError` naming it, at import: a typo must not silently test nothing.

Only the points in `POINTS` can be armed. They are:

- `node.after_sliver_write` (sync, node/group_commit.py): a group of slivers (uploaded, recovered
  or repaired; not shard-sync pages) is committed in one transaction and none of their writers
  has been told yet (a crash here is handed to every waiting writer);
- `events.after_decide` (async, node/events.py): an event (a blob's or a storage challenge's)
  is decided and nothing is written: its records and the advanced cursor are written together,
  in one transaction, next;
- `events.after_persist` (async, node/events.py): the records and the advanced cursor are
  committed, the event's actions (syncs, epoch change, challenge start) not performed yet;
- `recovery.before_store` (async, node/recovery.py): blob sync has decoded and verified a
  sliver and not stored it yet;
- `shard_sync.after_page` (async, node/shard_sync.py): a page of a shard transfer is stored with
  its progress, the next page not requested yet;
- `epoch.after_shard_records` (async, node/epoch.py): the shard changes of a new committee are
  written, the transfers not started and the view not published yet;
- `epoch.before_sync_report` (async, node/epoch.py): the epoch's shards are held and marked
  active, `epoch_sync_done` not sent yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import os
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass

__all__ = [
    "ENV_VAR",
    "POINTS",
    "Action",
    "Crash",
    "Delay",
    "Error",
    "Exit",
    "FailPointCrash",
    "FailPointError",
    "Kind",
    "arm",
    "armed",
    "armed_points",
    "disarm",
    "disarmed",
    "failpoint",
    "failpoint_async",
    "parse_spec",
]

#: The environment variable read at import (module docstring).
ENV_VAR = "WALRUSPY_FAILPOINTS"


class Kind(enum.Enum):
    """Where a point is called from: `failpoint` (sync) or `await failpoint_async` (async)."""

    SYNC = "sync"
    ASYNC = "async"


#: Every fail point, with how it is called (the module docstring says where and when).
POINTS: Mapping[str, Kind] = {
    "node.after_sliver_write": Kind.SYNC,
    "events.after_decide": Kind.ASYNC,
    "events.after_persist": Kind.ASYNC,
    "recovery.before_store": Kind.ASYNC,
    "shard_sync.after_page": Kind.ASYNC,
    "epoch.after_shard_records": Kind.ASYNC,
    "epoch.before_sync_report": Kind.ASYNC,
}


class FailPointCrash(BaseException):
    """Raised by a point armed with `Crash()`: a `BaseException`, so handlers do not catch it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"fail point {name} crashed")
        self.name = name


class FailPointError(Exception):
    """Raised by a point armed with `error` from the environment."""


@dataclass(frozen=True, slots=True)
class Crash:
    """Raise `FailPointCrash`."""


@dataclass(frozen=True, slots=True)
class Error:
    """Raise `exception` (the same instance at every hit)."""

    exception: Exception


@dataclass(frozen=True, slots=True)
class Delay:
    """Sleep `seconds` on the loop's clock (async points only)."""

    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds >= 0:  # also refuses NaN
            raise ValueError(f"a fail point delay must be >= 0 s, not {self.seconds}")


@dataclass(frozen=True, slots=True)
class Exit:
    """End the process at once with `os._exit(code)`."""

    code: int = 1


#: What an armed point does; a callable gets the point's name.
Action = Crash | Error | Delay | Exit | Callable[[str], object]

# The armed points. Empty when nothing is armed: the disarmed cost is one truthiness test.
_armed: dict[str, Action] = {}


def failpoint(name: str) -> None:
    """A synchronous fail point: nothing unless `name` is armed."""
    if not _armed:
        return
    action = _armed.get(name)
    if action is None:
        return
    if isinstance(action, Delay):  # refused by arm(); kept for a point called the wrong way
        raise TypeError(f"fail point {name} is synchronous and cannot delay")
    result = _fire(name, action)
    if inspect.isawaitable(result):
        _discard(result)
        raise TypeError(f"fail point {name} is synchronous; its action returned an awaitable")


async def failpoint_async(name: str) -> None:
    """An asynchronous fail point: nothing unless `name` is armed."""
    if not _armed:
        return
    action = _armed.get(name)
    if action is None:
        return
    if isinstance(action, Delay):
        await asyncio.sleep(action.seconds)
        return
    result = _fire(name, action)
    if inspect.isawaitable(result):
        await result


def _fire(name: str, action: Action) -> object:
    if isinstance(action, Crash):
        raise FailPointCrash(name)
    if isinstance(action, Error):
        raise action.exception
    if isinstance(action, Exit):
        os._exit(action.code)
    assert not isinstance(action, Delay)
    return action(name)


def _discard(awaitable: Awaitable[object]) -> None:
    """Close a coroutine that will never be awaited (no "never awaited" warning)."""
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


def arm(name: str, action: Action) -> None:
    """Arm the point `name` with `action` (replacing any); `name` must be in `POINTS`."""
    kind = POINTS.get(name)
    if kind is None:
        raise ValueError(f"unknown fail point {name!r}; the points are {', '.join(POINTS)}")
    if isinstance(action, Delay) and kind is Kind.SYNC:
        raise ValueError(f"fail point {name} is synchronous and cannot be armed with a delay")
    _armed[name] = action


def disarm(name: str) -> None:
    """Disarm the point `name` (no-op if it is not armed)."""
    _armed.pop(name, None)


def armed_points() -> dict[str, Action]:
    """The points armed now, with their actions (a copy)."""
    return dict(_armed)


@contextlib.contextmanager
def armed(name: str, action: Action) -> Iterator[None]:
    """Arm `name` with `action` for the block, then restore what it was armed with before."""
    before = _armed.get(name)
    arm(name, action)
    try:
        yield
    finally:
        if before is None:
            disarm(name)
        else:
            _armed[name] = before


@contextlib.contextmanager
def disarmed() -> Iterator[None]:
    """Disarm every point for the block, then restore the points armed before it.

    Points armed inside the block are disarmed at its end, so a test can arm freely.
    """
    before = dict(_armed)
    _armed.clear()
    try:
        yield
    finally:
        _armed.clear()
        _armed.update(before)


_ACTION = re.compile(r"(?P<verb>[a-z]+)(?:\((?P<argument>[^()]*)\))?")


def parse_spec(spec: str) -> dict[str, Action]:
    """The points and actions of a `WALRUSPY_FAILPOINTS` value (module docstring).

    Raises `ValueError` naming the first part that does not parse or names an unknown point.
    """
    actions: dict[str, Action] = {}
    for raw_part in spec.split(";"):
        part = raw_part.strip()
        if not part:
            continue
        name, sep, text = (piece.strip() for piece in part.partition("="))
        if not sep or not name:
            raise ValueError(f"{ENV_VAR}: {part!r} is not name=action")
        try:
            action = _parse_action(text)
            arm_check = POINTS.get(name)
            if arm_check is None:
                raise ValueError(f"unknown fail point; the points are {', '.join(POINTS)}")
            if isinstance(action, Delay) and arm_check is Kind.SYNC:
                raise ValueError("a synchronous fail point cannot delay")
        except ValueError as exc:
            raise ValueError(f"{ENV_VAR}: bad fail point spec {part!r}: {exc}") from None
        actions[name] = action
    return actions


def _parse_action(text: str) -> Action:
    match = _ACTION.fullmatch(text)
    if match is None:
        raise ValueError(_ACTIONS_HELP)
    verb, argument = match["verb"], match["argument"]
    if verb == "crash" and argument is None:
        return Crash()
    if verb == "error":
        return Error(FailPointError(argument or "fail point error"))
    if verb == "delay" and argument is not None:
        return Delay(float(argument))  # ValueError if not a number
    if verb == "exit":
        return Exit(int(argument) if argument else 1)
    raise ValueError(_ACTIONS_HELP)


_ACTIONS_HELP = "the actions are crash, error, error(message), delay(seconds) and exit(code)"


def _arm_from_environment() -> None:
    _armed.update(parse_spec(os.environ.get(ENV_VAR, "")))


_arm_from_environment()
