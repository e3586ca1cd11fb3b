"""Fail points: disarmed they do nothing; armed they crash, fail, delay or call; env specs."""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from walruspy import clock, failpoints, sim
from walruspy.failpoints import (
    Crash,
    Delay,
    Error,
    Exit,
    FailPointCrash,
    FailPointError,
    arm,
    armed,
    disarm,
    disarmed,
    failpoint,
    failpoint_async,
    parse_spec,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "walruspy"
SYNC_POINT = "node.after_sliver_write"
ASYNC_POINT = "recovery.before_store"


@pytest.fixture(autouse=True)
def _nothing_armed() -> Iterator[None]:
    with disarmed():
        yield


def test_disarmed_points_do_nothing() -> None:
    failpoint(SYNC_POINT)
    asyncio.run(failpoint_async(ASYNC_POINT))
    assert failpoints.armed_points() == {}


def _guarded(name: str) -> str:
    """A fail point behind the handler a crash must get past."""
    try:
        failpoint(name)
    except Exception:
        return "caught"
    return "passed"


def test_a_crash_is_not_caught_by_except_exception() -> None:
    arm(SYNC_POINT, Crash())
    with pytest.raises(FailPointCrash, match=SYNC_POINT) as raised:
        _guarded(SYNC_POINT)
    assert raised.value.name == SYNC_POINT
    assert _guarded("epoch.after_shard_records") == "passed"  # other points stay quiet


def test_an_async_crash_ends_the_task() -> None:
    async def main() -> None:
        await failpoint_async(ASYNC_POINT)

    arm(ASYNC_POINT, Crash())
    with pytest.raises(FailPointCrash):
        asyncio.run(main())


def test_an_error_raises_the_given_exception() -> None:
    error = OSError(28, "No space left on device")
    arm(SYNC_POINT, Error(error))
    with pytest.raises(OSError, match="No space") as raised:
        failpoint(SYNC_POINT)
    assert raised.value is error
    arm(ASYNC_POINT, Error(error))
    with pytest.raises(OSError, match="No space"):
        asyncio.run(failpoint_async(ASYNC_POINT))


def test_a_delay_sleeps_on_the_loop_clock() -> None:
    async def main() -> float:
        await failpoint_async(ASYNC_POINT)
        return clock.now()

    arm(ASYNC_POINT, Delay(30.0))
    assert sim.run(main()) == 30.0


def test_a_delay_cannot_be_armed_on_a_sync_point() -> None:
    with pytest.raises(ValueError, match="synchronous"):
        arm(SYNC_POINT, Delay(1.0))
    with pytest.raises(ValueError, match=">= 0"):
        Delay(-1.0)


def test_a_callable_gets_the_name_and_async_points_await_what_it_returns() -> None:
    hits: list[str] = []
    arm(SYNC_POINT, hits.append)
    failpoint(SYNC_POINT)
    failpoint(SYNC_POINT)

    async def later(name: str) -> None:
        await asyncio.sleep(2)
        hits.append(f"{name} after {clock.now()}")

    async def main() -> None:
        await failpoint_async(ASYNC_POINT)

    arm(ASYNC_POINT, later)
    sim.run(main())
    assert hits == [SYNC_POINT, SYNC_POINT, f"{ASYNC_POINT} after 2.0"]


def test_a_sync_point_refuses_an_async_callable() -> None:
    async def later(_name: str) -> None:
        await asyncio.sleep(1)

    arm(SYNC_POINT, later)
    with pytest.raises(TypeError, match="synchronous"):
        failpoint(SYNC_POINT)


def test_only_known_points_can_be_armed() -> None:
    with pytest.raises(ValueError, match=r"unknown fail point 'node\.typo'"):
        arm("node.typo", Crash())


def test_disarm_and_the_context_managers_restore_what_was_armed() -> None:
    arm(SYNC_POINT, Crash())
    disarm(SYNC_POINT)
    disarm(SYNC_POINT)  # no-op
    failpoint(SYNC_POINT)

    arm(ASYNC_POINT, Crash())
    with disarmed():
        asyncio.run(failpoint_async(ASYNC_POINT))  # disarmed inside
        arm(SYNC_POINT, Crash())  # armed only inside
    assert failpoints.armed_points() == {ASYNC_POINT: Crash()}

    error = Error(RuntimeError("inner"))
    with armed(ASYNC_POINT, error):
        assert failpoints.armed_points() == {ASYNC_POINT: error}
    assert failpoints.armed_points() == {ASYNC_POINT: Crash()}
    with armed(SYNC_POINT, Crash()):
        pass
    assert SYNC_POINT not in failpoints.armed_points()


def test_specs_parse_every_action() -> None:
    spec = (
        f" {SYNC_POINT}=crash ; events.after_decide=error;events.after_persist=error(disk full);"
        f"{ASYNC_POINT}=delay(0.5);shard_sync.after_page=exit(3);epoch.before_sync_report=exit;"
    )
    actions = parse_spec(spec)
    assert actions[SYNC_POINT] == Crash()
    assert actions[ASYNC_POINT] == Delay(0.5)
    assert actions["shard_sync.after_page"] == Exit(3)
    assert actions["epoch.before_sync_report"] == Exit(1)
    for name, message in [
        ("events.after_decide", "fail point error"),
        ("events.after_persist", "disk full"),
    ]:
        action = actions[name]
        assert isinstance(action, Error)
        assert isinstance(action.exception, FailPointError)
        assert str(action.exception) == message
    assert parse_spec("") == {}
    assert parse_spec(" ; ") == {}


@pytest.mark.parametrize(
    ("spec", "bad"),
    [
        (f"{SYNC_POINT}", SYNC_POINT),
        (f"=crash;{SYNC_POINT}=crash", "=crash"),
        (f"{SYNC_POINT}=boom", f"{SYNC_POINT}=boom"),
        (f"{ASYNC_POINT}=delay", f"{ASYNC_POINT}=delay"),
        (f"{ASYNC_POINT}=delay(soon)", f"{ASYNC_POINT}=delay(soon)"),
        (f"{ASYNC_POINT}=delay(-1)", f"{ASYNC_POINT}=delay(-1)"),
        (f"{ASYNC_POINT}=crash(now)", f"{ASYNC_POINT}=crash(now)"),
        (f"{ASYNC_POINT}=exit(x)", f"{ASYNC_POINT}=exit(x)"),
        (f"{SYNC_POINT}=delay(1)", f"{SYNC_POINT}=delay(1)"),
        (f"{ASYNC_POINT}=crash;node.typo=crash", "node.typo=crash"),
    ],
)
def test_a_bad_spec_is_named(spec: str, bad: str) -> None:
    with pytest.raises(ValueError, match="WALRUSPY_FAILPOINTS") as raised:
        parse_spec(spec)
    assert repr(bad) in str(raised.value)


def _child(code: str, spec: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, failpoints.ENV_VAR: spec, "PYTHONPATH": str(SRC.parent)}
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_child_process_is_armed_from_the_environment() -> None:
    code = (
        "from walruspy.failpoints import armed_points, failpoint\n"
        "print(sorted(armed_points()))\n"
        f"failpoint({SYNC_POINT!r})\n"
    )
    result = _child(code, f"{SYNC_POINT}=crash;{ASYNC_POINT}=delay(1)")
    assert result.stdout.strip() == repr(sorted([ASYNC_POINT, SYNC_POINT]))
    assert result.returncode != 0
    assert "FailPointCrash" in result.stderr


def test_exit_ends_the_process_at_once() -> None:
    code = (
        "from walruspy.failpoints import failpoint\n"
        "try:\n"
        f"    failpoint({SYNC_POINT!r})\n"
        "finally:\n"
        "    print('finally ran')\n"
    )
    result = _child(code, f"{SYNC_POINT}=exit(7)")
    assert result.returncode == 7
    assert "finally ran" not in result.stdout


def test_a_bad_environment_spec_fails_the_import() -> None:
    result = _child("import walruspy.failpoints", f"{SYNC_POINT}=explode")
    assert result.returncode != 0
    assert f"bad fail point spec '{SYNC_POINT}=explode'" in result.stderr


def _points_called_in_source() -> dict[str, set[str]]:
    """`failpoint(...)` and `failpoint_async(...)` calls in walruspy, by name: sync or async."""
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("failpoint", "failpoint_async")
            ):
                argument = node.args[0]
                assert isinstance(argument, ast.Constant), f"a computed point name in {path}"
                kind = "sync" if node.func.id == "failpoint" else "async"
                found.setdefault(str(argument.value), set()).add(kind)
    return found


def test_every_point_is_placed_once_known_and_called_its_way() -> None:
    called = _points_called_in_source()
    assert set(called) == set(failpoints.POINTS)
    for name, kinds in called.items():
        assert kinds == {failpoints.POINTS[name].value}, name
