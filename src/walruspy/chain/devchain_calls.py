"""Bounds on the devchain's eth_call and eth_estimateGas: a gas cap, a time limit, and priority.

Theory of operation
-------------------
A call executes a transaction without mining it, so nothing about it is bounded by what a
sender pays: any client may ask for a call with all the gas of a block, and py-evm, which
executes opcodes in Python, takes 10 s or more for 30M gas of plain computation. Three bounds
keep such calls from stalling the chain (see :mod:`walruspy.chain.devchain` for where calls
run):

* **Gas cap** (geth's ``--rpc.gascap``): a call that asks for more gas than
  :attr:`CallLimits.gas_cap`, or for none, gets the cap (and never more than the block gas
  limit), so a call does at most as much work as the heaviest transaction could; a call
  that needs more fails with "out of gas" (eth_estimateGas: "gas required exceeds
  allowance").
* **Time limit**: a call that runs past :attr:`CallLimits.timeout_s` of wall-clock time is
  aborted and answered ``execution aborted (timeout = 30s)``, as geth answers. For
  eth_estimateGas the limit covers the whole search (several executions).
* **Transactions first**: calls run on their own threads, beside the chain thread that
  mines transactions and serves the other reads; while the chain thread has work, calls
  pause at their next check (releasing the GIL), so that a transaction does not share the
  one interpreter with them (:class:`ChainThreadGate`).

How a running call is stopped. py-evm offers no hook in its interpreter loop, so the least
invasive way is the class that runs the loop: every call's state gets, on its instance (so
transactions, which use the fork's class through other state objects, are unaffected), a
computation class derived from the fork's, made for that one call (:func:`guard_state`). It
differs in two places, both checks of one :class:`CallGuard`:

* its opcode table wraps ``JUMP`` and ``JUMPI``: code that runs long must loop, and a loop
  jumps; straight-line code between two jumps is at most a contract's 24 KiB of opcodes;
* its ``apply_computation`` (entered for every message call, contract creation and
  precompile) checks first, which bounds call chains and recursion.

A check reads a monotonic clock and one flag, negligible beside an opcode's Python work. It
pauses while the chain thread is busy and raises :class:`CallTimeout` once the deadline has
passed (:class:`CallAborted` once the server stops, so that a stop does not wait for running
calls). That exception is not a py-evm ``VMError``, so py-evm does not record it as the
call's failure but unwinds it through every frame to the engine, which discards the call's
state and answers with the timeout error. A single precompile execution cannot be
interrupted, but its cost is bounded by the gas cap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from eth.abc import ComputationAPI, MessageAPI, OpcodeAPI, StateAPI, TransactionContextAPI
from eth.vm.opcode import Opcode

__all__ = [
    "CALL_THREADS",
    "DEFAULT_CALL_GAS_CAP",
    "DEFAULT_CALL_TIMEOUT_S",
    "MAX_CALL_TIMEOUT_S",
    "CallAborted",
    "CallGuard",
    "CallLimits",
    "CallTimeout",
    "ChainThreadGate",
    "guard_state",
]

# The block gas limit of the devchain, anvil and mainnet: no transaction can use more, so no
# dry run of one needs more. The heaviest calls walruspy makes are the dry runs of the epoch
# change (no gas given, so they get the cap): with 100 nodes and 1000 shards, initiate_epoch_change
# needs 20.07M gas (eth_estimateGas; 19.58M charged) and voting_end 9.06M. A lower cap would
# leave too little room for them.
DEFAULT_CALL_GAS_CAP: Final = 30_000_000
# geth uses 5 s, for a native EVM; py-evm executes opcodes in Python. Measured on a shared
# two-core machine (load 3): the dry run of initiate_epoch_change with 100 nodes takes 3.5 s
# (eth_estimateGas of it 6.0 s), and a dry run of voting_end that takes 1.25 s there took over
# 5 s while other tests loaded the machine. 30 s leaves that heaviest legitimate call a margin
# of about eight; an abusive call of plain computation reaches the 30M gas cap in 10 s (idle)
# to over 30 s (loaded), so one bound or the other ends it. Calls do not delay transactions
# (they run beside them), so the limit only bounds how long a call thread stays taken.
DEFAULT_CALL_TIMEOUT_S: Final = 30.0
# Threads serving calls. The GIL runs one of them at a time, so more threads add no
# throughput; four let short calls time-share with up to three long ones (each bounded by
# the time limit) instead of queueing behind them.
CALL_THREADS: Final = 4
# The longest time limit accepted: beyond an hour a limit protects nothing.
MAX_CALL_TIMEOUT_S: Final = 3600.0
_MIN_CALL_GAS: Final = 21_000  # the intrinsic gas of any transaction

_JUMP: Final = 0x56
_JUMPI: Final = 0x57


class CallAborted(Exception):  # noqa: N818 - geth's wording: "execution aborted"
    """A call was stopped while it ran; deliberately not a py-evm ``VMError`` (module doc)."""


class CallTimeout(CallAborted):
    """A call ran past its time limit."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"execution aborted (timeout = {timeout_s:g}s)")
        self.timeout_s = timeout_s


@dataclass(frozen=True, slots=True)
class CallLimits:
    """The gas cap and time limit of eth_call and eth_estimateGas (module doc)."""

    gas_cap: int = DEFAULT_CALL_GAS_CAP
    timeout_s: float = DEFAULT_CALL_TIMEOUT_S

    def __post_init__(self) -> None:
        if not _MIN_CALL_GAS <= self.gas_cap < 2**63:
            raise ValueError(f"call gas cap {self.gas_cap} out of range [{_MIN_CALL_GAS}, 2**63)")
        if not 0 < self.timeout_s <= MAX_CALL_TIMEOUT_S:
            raise ValueError(
                f"call time limit {self.timeout_s} s out of range (0, {MAX_CALL_TIMEOUT_S:g}]"
            )


class ChainThreadGate:
    """Whether the chain thread has work; calls pause while it does.

    The server brackets each request for the chain thread with :meth:`enter` and
    :meth:`leave` (in a ``try``/``finally``, so a failing request cannot leave the gate
    closed); any thread may call them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = 0
        self._idle = threading.Event()
        self._idle.set()
        self.closed = False

    def close(self) -> None:
        """The server stops: every running call ends at its next check (not at its limit)."""
        self.closed = True
        self._idle.set()

    def enter(self) -> None:
        """A request for the chain thread arrived."""
        with self._lock:
            self._busy += 1
            if not self.closed:
                self._idle.clear()

    def leave(self) -> None:
        """A request for the chain thread has its answer."""
        with self._lock:
            self._busy -= 1
            assert self._busy >= 0
            if self._busy == 0 or self.closed:
                self._idle.set()

    def is_idle(self) -> bool:
        """True while the chain thread has nothing to do."""
        return self._idle.is_set()

    def wait_idle(self, timeout_s: float) -> bool:
        """Block (releasing the GIL) until the chain thread is idle; False on timeout."""
        return self._idle.wait(timeout_s)


class CallGuard:
    """The deadline of one call, and the gate it yields to; checked during execution."""

    __slots__ = ("_clock", "_deadline", "_gate", "timeout_s")

    def __init__(
        self,
        timeout_s: float,
        gate: ChainThreadGate | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self._gate = gate
        self._clock = clock
        self._deadline = clock() + timeout_s

    def check(self) -> None:
        """Pause while the chain thread is busy; raise :class:`CallTimeout` past the deadline.

        Raises :class:`CallAborted` once the gate is closed (the server stops).
        """
        gate = self._gate
        if gate is not None:
            if not gate.is_idle():
                gate.wait_idle(max(0.0, self._deadline - self._clock()))
            if gate.closed:
                raise CallAborted("execution aborted (the devchain is stopping)")
        if self._clock() > self._deadline:
            raise CallTimeout(self.timeout_s)


class _CheckedOpcode(OpcodeAPI):
    """An opcode that checks the guard before it runs (for the jumps)."""

    __slots__ = ("_check", "_inner", "gas_cost", "mnemonic")

    def __init__(self, inner: OpcodeAPI, check: Callable[[], None]) -> None:
        self._inner = inner
        self._check = check
        self.mnemonic = inner.mnemonic
        self.gas_cost: int = getattr(inner, "gas_cost", 0)
        self.__wrapped__ = inner  # py-evm's debug log looks for the mnemonic there too

    def __call__(self, computation: ComputationAPI) -> None:
        self._check()
        self._inner(computation)

    @classmethod
    def as_opcode(cls, logic_fn: Callable[..., Any], mnemonic: str, gas_cost: int) -> OpcodeAPI:
        """`OpcodeAPI`'s constructor from a logic function: a plain py-evm opcode (a checked one
        exists only around an opcode and a guard, `_guarded_class`)."""
        return Opcode.as_opcode(logic_fn, mnemonic, gas_cost)


def _guarded_class(base: type[ComputationAPI], guard: CallGuard) -> type[ComputationAPI]:
    """A computation class like ``base`` that checks ``guard`` at jumps and message calls."""
    opcodes: dict[int, OpcodeAPI] = dict(base.opcodes)
    for opcode in (_JUMP, _JUMPI):
        opcodes[opcode] = _CheckedOpcode(opcodes[opcode], guard.check)

    def apply_computation(
        cls: type[ComputationAPI],
        state: StateAPI,
        message: MessageAPI,
        transaction_context: TransactionContextAPI,
        parent_computation: ComputationAPI | None = None,
    ) -> ComputationAPI:
        guard.check()
        parent: Any = super(guarded, cls)  # the fork's class, bound to this one
        computation: ComputationAPI = parent.apply_computation(
            state, message, transaction_context, parent_computation
        )
        return computation

    namespace = {"opcodes": opcodes, "apply_computation": classmethod(apply_computation)}
    guarded: type[ComputationAPI] = type(f"Guarded{base.__name__}", (base,), namespace)
    return guarded


def guard_state(
    state: StateAPI, guard: CallGuard, base: type[ComputationAPI] | None = None
) -> None:
    """Make every execution on ``state`` (one call's, never a mined block's) check ``guard``.

    ``base`` is the fork's own computation class, for a state reused from an earlier call
    (whose class is that call's guarded one); by default the state's class.
    """
    state.computation_class = _guarded_class(base or state.computation_class, guard)
