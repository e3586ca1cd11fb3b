"""Real processes of a devnet: starting them with their logs in files, signalling, waiting.

Theory of operation (STYLE.md 6: explicit readiness, never a sleep). Every devnet component is a
separate OS process started from a command line (`ProcessSpec`) with stdout and stderr appended to
one log file (never a pipe nobody drains). `ManagedProcess` holds one we started: it can be
killed (SIGKILL), paused (SIGSTOP), resumed (SIGCONT), stopped (SIGTERM, then SIGKILL after a
bound) and started again from the same spec. `wait_ready` polls a readiness check with a bounded
total time and fails early, with the tail of the log, if the process exits meanwhile.

Processes of a detached devnet (`walruspy devnet up`) outlive the command that started them; a
later command finds them by the pid and command line recorded in the state file.
`same_process` checks both, so a recycled pid is never signalled, and `stop_pids` stops such
processes with the same SIGTERM-then-SIGKILL bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from walruspy.devnet.errors import ProcessError

__all__ = [
    "LOG_TAIL_BYTES",
    "ManagedProcess",
    "ProcessError",
    "ProcessSpec",
    "pid_alive",
    "same_process",
    "stop_pids",
]

#: How much of a log is quoted when a process fails to start.
LOG_TAIL_BYTES: Final = 3000
#: A process asked to stop (SIGTERM) gets this long before SIGKILL: a node closes its store
#: and its in-flight requests within GRACEFUL_SHUTDOWN_S (5 s), the devchain syncs its journal.
STOP_TIMEOUT_S: Final = 15.0
#: After SIGKILL the kernel reaps at once; this bounds the wait for it.
KILL_TIMEOUT_S: Final = 10.0
#: Pause between readiness polls: short against start-up times of seconds, long enough not to
#: load a two-core machine.
POLL_INTERVAL_S: Final = 0.1


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """How to start one process: its name, its arguments (Python module form) and its log."""

    name: str
    args: tuple[str, ...]
    log_path: Path
    #: The network namespace to run in (a host of a `--hosts` devnet); None: this one.
    netns: str | None = None
    #: How much lower its scheduling priority is than this process's (`nice`); 0: the same.
    nice: int = 0

    @property
    def command(self) -> list[str]:
        """The full command line: this interpreter, then the arguments."""
        return [sys.executable, *self.args]

    @property
    def argv(self) -> list[str]:
        """What is executed: the command, through `ip netns exec` into its namespace if it
        has one (which executes the command in place: same pid, and the command line the
        state file records)."""
        if self.netns is None:
            return self.command
        return ["ip", "netns", "exec", self.netns, *self.command]


def _log_tail(path: Path) -> str:
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - LOG_TAIL_BYTES))
            return log.read().decode(errors="replace")
    except OSError:
        return ""


class ManagedProcess:
    """A process this program started from `spec`."""

    def __init__(self, spec: ProcessSpec, *, detached: bool = False) -> None:
        self.spec = spec
        self.detached = detached
        self.popen: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def pid(self) -> int | None:
        """The pid of the running incarnation, or None."""
        return self.popen.pid if self.popen is not None else None

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        """Start (or start again) the process; a running one is an error."""
        if self.running:
            raise ProcessError(f"{self.spec.name} is already running (pid {self.pid})")
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spec.log_path.open("ab") as log:
            # A detached process gets a session of its own, so it outlives the command that
            # started it and a Ctrl-C in that terminal does not reach it.
            self.popen = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                self.spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.detached,
            )
        if self.spec.nice:
            # Set before the process starts its threads, which inherit it; one that exited at
            # once is reported by whoever waits for it.
            with contextlib.suppress(OSError):
                current = os.getpriority(os.PRIO_PROCESS, 0)
                os.setpriority(os.PRIO_PROCESS, self.popen.pid, current + self.spec.nice)
        self.paused = False

    def _signal(self, signum: signal.Signals) -> None:
        if not self.running:
            raise self.not_running()
        assert self.popen is not None
        self.popen.send_signal(signum)

    def not_running(self) -> ProcessError:
        """The error for a process found not running: its exit status and the tail of its log."""
        if self.popen is None:
            return ProcessError(f"{self.spec.name} is not running (never started)")
        return ProcessError(
            f"{self.spec.name} is not running (exit status {self.popen.returncode});"
            f" the end of {self.spec.log_path}:\n{_log_tail(self.spec.log_path)}"
        )

    async def kill(self) -> None:
        """SIGKILL, and wait until the kernel has reaped it."""
        self._signal(signal.SIGKILL)
        assert self.popen is not None
        await asyncio.to_thread(self.popen.wait, KILL_TIMEOUT_S)
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP: the process stops answering, its sockets stay open."""
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT."""
        self._signal(signal.SIGCONT)
        self.paused = False

    async def stop(self) -> int | None:
        """SIGTERM (and SIGCONT if paused), SIGKILL after `STOP_TIMEOUT_S`; the exit status."""
        popen = self.popen
        if popen is None:
            return None
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            if self.paused:
                popen.send_signal(signal.SIGCONT)
            try:
                await asyncio.to_thread(popen.wait, STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                popen.kill()
                await asyncio.to_thread(popen.wait, KILL_TIMEOUT_S)
        self.paused = False
        return popen.returncode

    async def wait_ready(self, check: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
        """Poll `check` until it returns True; fail if the process exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.running:
                code = self.popen.returncode if self.popen is not None else None
                raise ProcessError(
                    f"{self.spec.name} exited with status {code} before it was ready; "
                    f"its log {self.spec.log_path} ends with:\n{_log_tail(self.spec.log_path)}"
                )
            if await check():
                return
            if time.monotonic() >= deadline:
                raise ProcessError(
                    f"{self.spec.name} was not ready within {timeout_s:.0f} s; its log "
                    f"{self.spec.log_path} ends with:\n{_log_tail(self.spec.log_path)}"
                )
            await asyncio.sleep(POLL_INTERVAL_S)  # polling another process: no event to await


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not a zombie, where /proc tells)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    return True


def same_process(pid: int, command: Sequence[str]) -> bool:
    """Whether `pid` still runs `command` (a recycled pid runs something else).

    Where /proc is missing (not Linux) only the pid can be checked.
    """
    if not pid_alive(pid):
        return False
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return False
    return raw.rstrip(b"\0").split(b"\0") == [part.encode() for part in command]


def stop_pids(processes: Sequence[tuple[int, Sequence[str]]]) -> list[int]:
    """Stop processes we did not start (a detached devnet's): SIGTERM, then SIGKILL.

    Only processes that still run their recorded command are signalled; they are signalled
    together and waited for with one deadline. Returns the pids stopped. Blocks for at most
    the stop bounds; `ProcessError` if one survives SIGKILL.
    """
    ours = [pid for pid, command in processes if same_process(pid, command)]
    for pid in ours:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)  # a paused process handles SIGTERM once continued
    for timeout_s, then_kill in ((STOP_TIMEOUT_S, True), (KILL_TIMEOUT_S, False)):
        deadline = time.monotonic() + timeout_s
        alive = [pid for pid in ours if pid_alive(pid)]
        while alive and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL_S)  # another session's processes: only polling can tell
            alive = [pid for pid in alive if pid_alive(pid)]
        if not alive:
            return ours
        if then_kill:
            for pid in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    raise ProcessError(f"processes {alive} did not exit after SIGKILL")
