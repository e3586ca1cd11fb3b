"""The embedded development chain: py-evm behind an Ethereum JSON-RPC server, made durable.

Theory of operation
-------------------
walruspy's control plane runs as Vyper contracts on an EVM. So that nobody has to install
a blockchain, walruspy can start its own: py-evm (through eth-tester's ``PyEVMBackend``,
Prague fork, so the EIP-2537 BLS12-381 and EIP-152 BLAKE2F precompiles are active, the
former native, see :mod:`walruspy.chain.precompiles`) behind the JSON-RPC of
:mod:`walruspy.chain.jsonrpc`. Any code that talks to it uses web3 over standard JSON-RPC
only, so geth or anvil can take its place.

Blocks. Every accepted ``eth_sendRawTransaction`` is mined at once in a block of its own,
so its receipt exists when the call returns. A block's timestamp is the wall clock (plus
the offset that ``evm_increaseTime`` adds) but at least its parent's plus one second,
since post-merge blocks must be strictly later than their parents: a burst of n
transactions in one second runs the chain clock up to n - 1 seconds ahead, and it falls
back in step with the wall clock once the chain is idle (as anvil and hardhat do). Calls
and gas estimates run in the context of the next block, with the timestamp it would get.

Durability. The chain lives in memory, and the state directory holds what is needed to
rebuild it exactly:

* ``genesis.json``: chain id, dev accounts, gas limit, genesis timestamp and hash. A start
  with other explicit settings is refused; settings left out are taken from it.
* ``journal.bin``: an append-only log of what changed the chain, in order: each mined
  transaction as (block timestamp, block hash, raw transaction), each empty block mined
  by ``evm_mine`` as (timestamp, block hash), each clock offset set by
  ``evm_increaseTime``. A record is ``length | crc32 | payload`` and is written and
  fdatasync'ed before the JSON-RPC response leaves, so anything a client was told
  survives ``kill -9``. A torn last record (a crash mid-write) fails its length or CRC
  check and is cut off at the next start; damage before the last record refuses the start.

On start the journal is replayed: same timestamps and deterministic block fields (the
``prevrandao`` of a block is the keccak of its parent's hash) give the same blocks, hashes
and receipts, and each replayed block's hash is checked against the journal.
``evm_snapshot``/``evm_revert`` work too: a revert truncates the journal back to where it
was at the snapshot, then rewinds the chain in memory.

Concurrency. py-evm is synchronous and not thread-safe, so all chain work (transactions,
the test methods and every read but calls) runs on one chain thread, one request at a time,
while the event loop keeps serving. ``eth_call`` and ``eth_estimateGas`` run on a few call
threads of their own, beside it, on the state of the block they ask for (why that is safe:
:mod:`walruspy.chain.devchain_engine`), so that a transaction never waits behind a long call;
and while the chain thread has work, running calls pause, so that it does not share the
interpreter with them. Calls are bounded by a gas cap and a time limit
(:mod:`walruspy.chain.devchain_calls`, ``--call-gas-cap`` and ``--call-timeout``). The number of
requests waiting for each kind of thread is bounded.

Inline (``open_devchain(inline=True)``, for the deterministic simulator of issue #16). The
engine runs on the event loop itself, each request to completion before the loop goes on, and
the server is handed to ``listen`` (the simulated network's ``serve``) instead of a socket. With
the simulator's ``clock`` the chain is then a deterministic function of the requests it gets, in
the order it gets them: there is no thread whose timing could reorder them. The price is that
the loop stalls for every request (a transaction costs milliseconds of py-evm), which in a
virtual-time simulation is no time at all; calls still stop at ``call_limits``'s timeout, which
reads the wall clock (a call that long is a bug in either mode).

Test methods. ``evm_increaseTime`` (add seconds to the clock of every later block),
``evm_mine`` (mine an empty block, optionally at a given timestamp), ``evm_snapshot`` (remember
the head) and ``evm_revert`` (rewind the chain, and its journal, to a snapshot) exist for tests
and devnets, and are refused (``-32601``, "method evm_mine is disabled; start the chain with
--dev-methods") unless the chain is started with ``dev_methods=True`` (``walruspy chain serve
--dev-methods``). Each is dangerous on a chain that nodes use: moving the clock ends epochs
early, so blobs expire and nodes garbage-collect their slivers, and the epoch change starts
before nodes are ready; a revert rewinds transactions that clients were told were mined and
that nodes already acted on (stored, certified, deleted), so their state no longer matches
the chain's.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

from aiohttp import web
from eth_utils.address import to_checksum_address

from walruspy.chain import jsonrpc as rpc
from walruspy.chain.devchain_calls import (
    CALL_THREADS,
    DEFAULT_CALL_GAS_CAP,
    DEFAULT_CALL_TIMEOUT_S,
    CallLimits,
    ChainThreadGate,
)
from walruspy.chain.devchain_engine import (
    Engine,
)
from walruspy.chain.devchain_state import (
    DEFAULT_ACCOUNT_BALANCE_WEI,
    DEFAULT_ACCOUNT_COUNT,
    DEFAULT_BLOCK_GAS_LIMIT,
    DEFAULT_CHAIN_ID,
    JOURNAL_FILE,
    LOCK_FILE,
    MAX_QUEUED_CALLS,
    SUGGESTED_PRIORITY_FEE_WEI,
    ClockRecord,
    DevchainError,
    DevchainGenesis,
    DevchainStateError,
    Journal,
    JournalRecord,
    MineRecord,
    TxRecord,
    dev_account_keys,
    load_genesis,
    store_genesis,
)
from walruspy.chain.jsonrpc import RpcError

__all__ = [
    "DEFAULT_ACCOUNT_BALANCE_WEI",
    "DEFAULT_ACCOUNT_COUNT",
    "DEFAULT_BLOCK_GAS_LIMIT",
    "DEFAULT_CALL_GAS_CAP",
    "DEFAULT_CALL_TIMEOUT_S",
    "DEFAULT_CHAIN_ID",
    "DEV_METHODS",
    "CallLimits",
    "ClockRecord",
    "Devchain",
    "DevchainError",
    "DevchainGenesis",
    "DevchainStateError",
    "Journal",
    "JournalRecord",
    "MineRecord",
    "TxRecord",
    "dev_account_keys",
    "open_devchain",
    "run_devchain_server",
]

_T = TypeVar("_T")
_log = logging.getLogger(__name__)


#: The test methods, refused unless the chain is started with ``dev_methods`` (module doc).
DEV_METHODS: Final = ("evm_increaseTime", "evm_mine", "evm_snapshot", "evm_revert")


class _Worker:
    """Runs work on ``threads`` threads, with a bounded wait queue.

    With a ``gate``, the gate is closed from the moment work is queued until its result is
    back in the event loop, so that calls pause for all of it (queueing, execution, and the
    event loop's hand-over, which also needs the GIL).
    """

    def __init__(self, name: str, threads: int, gate: ChainThreadGate | None = None) -> None:
        # No thread: run inline on the event loop (the module doc's "Inline").
        self._executor = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name) if threads else None
        )
        self._queued = 0
        self._gate = gate

    async def run(self, function: Callable[..., _T], *args: Any) -> _T:
        if self._queued >= MAX_QUEUED_CALLS:
            raise RpcError(rpc.LIMIT_EXCEEDED, "devchain busy: too many queued requests")
        self._queued += 1
        if self._gate is not None:
            self._gate.enter()
        try:
            if self._executor is None:
                return function(*args)
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        finally:
            self._queued -= 1
            if self._gate is not None:
                self._gate.leave()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)


class Devchain:
    """A running development chain, as :func:`open_devchain` yields it.

    ``url`` is its JSON-RPC endpoint; ``accounts`` (checksummed) and ``account_keys`` (raw
    private keys, same order) are the prefunded dev accounts; ``genesis`` its settings.
    """

    def __init__(
        self, url: str, state_dir: Path, engine: Engine, failure: asyncio.Future[None]
    ) -> None:
        self.url = url
        self.state_dir = state_dir
        self.chain_id = engine.genesis.chain_id
        self.genesis = engine.genesis
        self.account_keys: tuple[bytes, ...] = tuple(engine.account_keys)
        self.accounts: tuple[str, ...] = tuple(to_checksum_address(a) for a in engine.accounts)
        self._failure = failure

    async def wait_failed(self) -> None:
        """Return never; raise :class:`DevchainError` if the chain stops serving (disk error)."""
        await asyncio.shield(self._failure)


def _disabled(name: str) -> rpc.RpcMethod:
    """A test method of a chain started without ``dev_methods``: always refused."""

    async def method(params: list[Any]) -> Any:
        del params
        raise RpcError(
            rpc.METHOD_NOT_FOUND, f"method {name} is disabled; start the chain with --dev-methods"
        )

    return method


def _rpc_methods(  # noqa: PLR0917 - one call site, each argument a different kind
    engine: Engine,
    chain_worker: _Worker,
    call_worker: _Worker,
    failure: asyncio.Future[None],
    dev_methods: bool,
    heads: rpc.HeadFeed,
) -> dict[str, rpc.RpcMethod]:
    def on_worker(
        function: Callable[[list[Any]], Any], mutating: bool = False, worker: _Worker = chain_worker
    ) -> rpc.RpcMethod:
        async def method(params: list[Any]) -> Any:
            try:
                result = await worker.run(partial(engine.run, function, mutating=mutating), params)
                if mutating:
                    heads.changed()
                return result
            except DevchainError as exc:
                _log.error("devchain stopped: %s", exc, exc_info=exc)
                if not failure.done():
                    failure.set_exception(exc)
                raise RpcError(
                    rpc.INTERNAL_ERROR, "devchain stopped after an internal failure"
                ) from exc

        return method

    def constant(value: Any) -> rpc.RpcMethod:
        async def method(params: list[Any]) -> Any:
            del params
            return value

        return method

    from eth import __version__ as pyevm_version

    from walruspy import __version__

    methods = {
        "eth_chainId": constant(rpc.encode_quantity(engine.genesis.chain_id)),
        "net_version": constant(str(engine.genesis.chain_id)),
        "web3_clientVersion": constant(f"walruspy-devchain/{__version__}/py-evm-{pyevm_version}"),
        "eth_accounts": constant([to_checksum_address(a) for a in engine.accounts]),
        "eth_maxPriorityFeePerGas": constant(rpc.encode_quantity(SUGGESTED_PRIORITY_FEE_WEI)),
        "eth_syncing": constant(False),
        "eth_blockNumber": on_worker(engine.block_number),
        "eth_getBalance": on_worker(engine.get_balance),
        "eth_getTransactionCount": on_worker(engine.get_transaction_count),
        "eth_getCode": on_worker(engine.get_code),
        "eth_getStorageAt": on_worker(engine.get_storage_at),
        "eth_sendRawTransaction": on_worker(engine.send_raw_transaction, mutating=True),
        "eth_call": on_worker(engine.call, worker=call_worker),
        "eth_estimateGas": on_worker(engine.estimate_gas, worker=call_worker),
        "eth_getTransactionReceipt": on_worker(engine.get_transaction_receipt),
        "eth_getTransactionByHash": on_worker(engine.get_transaction_by_hash),
        "eth_getLogs": on_worker(engine.get_logs),
        "eth_getBlockByNumber": on_worker(engine.get_block_by_number),
        "eth_getBlockByHash": on_worker(engine.get_block_by_hash),
        "eth_gasPrice": on_worker(engine.gas_price),
        "eth_feeHistory": on_worker(engine.fee_history),
        "evm_increaseTime": on_worker(engine.evm_increase_time, mutating=True),
        "evm_mine": on_worker(engine.evm_mine, mutating=True),
        "evm_snapshot": on_worker(engine.evm_snapshot),
        "evm_revert": on_worker(engine.evm_revert, mutating=True),
    }
    if not dev_methods:
        methods.update({name: _disabled(name) for name in DEV_METHODS})
    return methods


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Hold the state directory's lock (released by the kernel even on kill -9)."""
    with (state_dir / LOCK_FILE).open("a+b") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise DevchainStateError(f"{state_dir} is in use by another devchain") from exc
        yield


def _start_engine(
    state_dir: Path,
    requested: dict[str, int | None],
    clock: Callable[[], float],
    abort: threading.Event,
    *,
    call_limits: CallLimits,
    gate: ChainThreadGate,
) -> tuple[Engine, Journal]:
    """Load or create the genesis, replay the journal; runs on the chain thread."""
    genesis, stored_hash = load_genesis(state_dir, requested, int(clock()))
    engine = Engine(genesis, clock, call_limits, gate)
    if stored_hash is None:
        store_genesis(state_dir, genesis, engine.genesis_hash)
    elif stored_hash != engine.genesis_hash:
        raise DevchainStateError(f"{state_dir}: the genesis block differs (py-evm changed?)")
    journal, records = Journal.open(state_dir / JOURNAL_FILE)
    try:
        engine.replay(records, abort)
    except BaseException:
        journal.close()
        raise
    engine.attach_journal(journal)
    return engine, journal


@contextlib.asynccontextmanager
async def open_devchain(
    state_dir: Path,
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    chain_id: int | None = None,
    account_count: int | None = None,
    account_balance_wei: int | None = None,
    block_gas_limit: int | None = None,
    clock: Callable[[], float] = time.time,
    dev_methods: bool = False,
    call_limits: CallLimits | None = None,
    inline: bool = False,
    listen: Callable[[web.BaseRunner], Awaitable[str]] | None = None,
) -> AsyncIterator[Devchain]:
    """Run a durable development chain in this event loop, serving JSON-RPC on ``host:port``.

    ``port=0`` picks a free port (see ``.url``). Settings left as None come from the state
    directory, or defaults for a new one; explicit settings that differ from the stored
    ones raise :class:`DevchainStateError`. ``dev_methods`` enables the test methods
    (``evm_increaseTime``, ``evm_mine``, ``evm_snapshot``, ``evm_revert``; the module doc says
    why they are off by default); ``call_limits`` bound eth_call and eth_estimateGas.
    ``inline`` runs the engine on the event loop instead of threads; ``listen``, if given,
    serves the runner and returns the URL (``host`` and ``port`` are then unused): both for the
    simulator (module doc, "Inline").
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    requested = {
        "chain_id": chain_id,
        "account_count": account_count,
        "account_balance_wei": account_balance_wei,
        "block_gas_limit": block_gas_limit,
    }
    with _locked(state_dir), contextlib.ExitStack() as closing:
        gate = ChainThreadGate()
        chain_worker = _Worker("walruspy-devchain", 0 if inline else 1, gate)
        closing.callback(chain_worker.close)
        call_worker = _Worker("walruspy-devchain-call", 0 if inline else CALL_THREADS)
        closing.callback(call_worker.close)
        abort = threading.Event()  # stops a long replay when we are cancelled meanwhile
        closing.callback(abort.set)
        start = partial(_start_engine, call_limits=call_limits or CallLimits(), gate=gate)
        engine, journal = await chain_worker.run(start, state_dir, requested, clock, abort)
        closing.callback(journal.close)
        failure: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        latest = partial(engine.run, engine.get_block_by_number, mutating=False)
        heads = rpc.HeadFeed(partial(chain_worker.run, latest, ["latest", False]))
        methods = _rpc_methods(engine, chain_worker, call_worker, failure, dev_methods, heads)
        app = rpc.make_jsonrpc_app(methods, heads=heads)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            if listen is not None:
                url = await listen(runner)
            else:
                listener = socket.create_server((host, port), reuse_port=False)
                # accepted connections inherit it
                listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                site = web.SockSite(runner, listener)
                await site.start()
                url = f"http://{host}:{listener.getsockname()[1]}"
            yield Devchain(url, state_dir, engine, failure)
        finally:
            gate.close()  # running calls end now, so the cleanup need not wait for them
            await runner.cleanup()
            if not failure.done():
                failure.cancel()
            elif not failure.cancelled():
                failure.exception()  # reported through wait_failed or the RPC errors


def run_devchain_server(
    port: int,
    state_dir: Path,
    host: str = "127.0.0.1",
    *,
    chain_id: int | None = None,
    account_count: int | None = None,
    account_balance_wei: int | None = None,
    block_gas_limit: int | None = None,
    dev_methods: bool = False,
    call_gas_cap: int = DEFAULT_CALL_GAS_CAP,
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
) -> None:
    """Serve a development chain until SIGTERM or SIGINT (the ``walruspy chain serve`` body).

    Prints exactly one line to stdout once it accepts requests:
    ``devchain listening on http://HOST:PORT chain_id=ID``. Raises
    :class:`DevchainError` if the chain cannot start or stops serving, ``ValueError`` for
    call limits out of range. ``dev_methods``, ``call_gas_cap`` and ``call_timeout_s``: see
    :func:`open_devchain`.
    """
    call_limits = CallLimits(call_gas_cap, call_timeout_s)

    async def serve() -> None:
        stop = asyncio.Event()
        starting = asyncio.current_task()

        def on_signal() -> None:
            if starting is not None and not stop.is_set():
                starting.cancel()  # still starting (a long replay): give up at once
            stop.set()

        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, on_signal)
        async with open_devchain(
            state_dir, port, host=host, chain_id=chain_id, account_count=account_count,
            account_balance_wei=account_balance_wei, block_gas_limit=block_gas_limit,
            dev_methods=dev_methods, call_limits=call_limits,
        ) as chain:  # fmt: skip
            sys.stdout.write(f"devchain listening on {chain.url} chain_id={chain.chain_id}\n")
            sys.stdout.flush()
            starting = None
            async with asyncio.TaskGroup() as tasks:
                watcher = tasks.create_task(chain.wait_failed())
                await stop.wait()
                watcher.cancel()

    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve())
    except asyncio.CancelledError:
        return  # a signal while starting
    except BaseExceptionGroup as group:  # from the TaskGroup: the chain stopped serving
        raise group.exceptions[0] from group
