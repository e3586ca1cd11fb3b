"""The devchain's engine: py-evm (via eth-tester, Prague fork) behind the JSON-RPC methods.

See `walruspy.chain.devchain` for the theory of operation. The engine is synchronous. Every
method but `call` and `estimate_gas` runs on the one chain thread, one request at a time. Every
change to the chain is appended to the journal before the call returns, and `replay` rebuilds
the chain from it.

`call` and `estimate_gas` may run on other threads, at the same time as the chain thread mines.
That is safe because of what they touch: a fresh VM and state of their own (py-evm's account
caches and journal live in the state object), the content-addressed trie nodes of a mined state
root (mining only adds nodes, it never changes or deletes one, and a dict read or write is
atomic under the GIL), and the canonical header index, which mining extends after it has stored
the header. Only `evm_revert` deletes index entries, so a call racing with it may find its
block gone and answer "header not found", as a node answers for a block lost in a reorg. The
gas cap and time limit of calls are in `walruspy.chain.devchain_calls`.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import rlp
from eth.abc import (
    BlockAPI,
    BlockHeaderAPI,
    ComputationAPI,
    SignedTransactionAPI,
    StateAPI,
    VirtualMachineAPI,
)
from eth.exceptions import HeaderNotFound, OutOfGas, Revert
from eth.vm.spoof import SpoofTransaction
from eth_keys.datatypes import PrivateKey
from eth_tester import PyEVMBackend
from eth_utils.crypto import keccak
from eth_utils.exceptions import ValidationError

from walruspy.chain import jsonrpc as rpc
from walruspy.chain.devchain_calls import (
    CallAborted,
    CallGuard,
    CallLimits,
    ChainThreadGate,
    guard_state,
)
from walruspy.chain.devchain_state import (
    MAX_FEE_HISTORY_BLOCKS,
    MAX_LOG_RESULTS,
    MAX_RAW_TRANSACTION_BYTES,
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
)
from walruspy.chain.jsonrpc import RpcError
from walruspy.chain.precompiles import install_native_precompiles

_T = TypeVar("_T")
#: Encoded blocks kept for eth_getBlockByNumber (`Engine._encoded_blocks`).
_ENCODED_BLOCKS = 64


@dataclass(frozen=True, slots=True)
class _Snapshot:
    block_hash: bytes
    block_number: int
    journal_size: int
    offset_s: int


def _execution_error(computation: ComputationAPI) -> RpcError:
    error = computation.error
    if isinstance(error, Revert):
        return rpc.revert_error(bytes(computation.output))
    if isinstance(error, OutOfGas):
        return RpcError(rpc.SERVER_ERROR, "out of gas")
    return RpcError(rpc.SERVER_ERROR, f"execution failed: {type(error).__name__}")


@dataclass(frozen=True, slots=True)
class _CallState:
    """A call thread's VM and state for one block and timestamp, kept for its next call.

    Building them is a third of a short call's time, and the state's account and storage
    caches, warm from the last call, save the trie reads and their hashing: together most of
    a view's cost. Reuse is sound for the reasons a call may run beside mining at all (module
    doc): a call leaves the state as it found it (`Engine._attempt` reverts to a snapshot, as
    eth_estimateGas's search already relies on), the state reads only the immutable nodes of
    its block's root, and the key holds the block's hash and the timestamp a new one would
    get, so a new block, a revert or the next second builds afresh. Only the thread that made
    a state uses it (py-evm's states are not thread-safe).
    """

    key: tuple[bytes, int]
    vm: VirtualMachineAPI
    state: StateAPI
    computation_class: type[ComputationAPI]
    gas_limit: int


class Engine:
    """The chain: py-evm, lookup indices, the clock and the journal (threads: module doc).

    ``call_limits`` bound eth_call and eth_estimateGas; while ``gate`` says the chain thread
    is busy, calls on other threads pause.
    """

    def __init__(
        self,
        genesis: DevchainGenesis,
        clock: Callable[[], float],
        call_limits: CallLimits | None = None,
        gate: ChainThreadGate | None = None,
    ) -> None:
        install_native_precompiles()
        self.call_limits = call_limits or CallLimits()
        self._gate = gate
        self.genesis = genesis
        self.account_keys = dev_account_keys(genesis.account_count)
        self.accounts = [PrivateKey(k).public_key.to_canonical_address() for k in self.account_keys]
        account = {"balance": genesis.account_balance_wei, "nonce": 0, "code": b"", "storage": {}}
        overrides = {"timestamp": genesis.genesis_timestamp, "gas_limit": genesis.block_gas_limit}
        self._backend = PyEVMBackend(
            genesis_parameters=PyEVMBackend.generate_genesis_params(overrides=overrides),
            genesis_state={address: dict(account) for address in self.accounts},
        )
        # eth-tester makes a chain class per backend, so this reaches this chain only.
        type(self._backend.chain).chain_id = genesis.chain_id
        self._clock = clock
        self._offset_s = 0
        self._journal: Journal | None = None  # None while replaying
        self._failed = False
        self._tx_locations: dict[bytes, tuple[int, int]] = {}
        self._logs: list[rpc.IndexedLog] = []
        self._log_blocks: list[int] = []  # block number of each entry of _logs, for bisect
        self._snapshots: dict[int, _Snapshot] = {}
        self._next_snapshot_id = 1
        # Each call thread's last VM and state, reused by its next call on the same block and
        # timestamp (`_CallState`).
        self._call_states = threading.local()
        # Mined blocks as eth_getBlockByNumber answers them, by (hash, full transactions): a
        # block never changes under its hash (chain thread only).
        self._encoded_blocks: dict[tuple[bytes, bool], dict[str, Any]] = {}

    @property
    def _chain(self) -> Any:
        return self._backend.chain

    @property
    def genesis_hash(self) -> bytes:
        return bytes(self._chain.get_canonical_block_header_by_number(0).hash)

    def _head(self) -> BlockHeaderAPI:
        header: BlockHeaderAPI = self._chain.get_canonical_head()
        return header

    def _next_timestamp(self) -> int:
        return max(int(self._clock()) + self._offset_s, self._head().timestamp + 1)

    # -- changing the chain --

    def replay(self, records: list[JournalRecord], abort: threading.Event) -> None:
        """Rebuild the chain from its journal, checking every block hash."""
        for number, record in enumerate(records):
            if abort.is_set():
                raise DevchainError("replay interrupted")
            if isinstance(record, ClockRecord):
                self._offset_s = record.offset_s
                continue
            try:
                if isinstance(record, TxRecord):
                    block = self._mine_transaction(
                        self._decode(record.raw_transaction), record.timestamp
                    )
                else:
                    block = self._mine(record.timestamp)
            except RpcError as exc:
                raise DevchainStateError(
                    f"journal record {number} does not replay: {exc.message}"
                ) from exc
            if block.hash != record.block_hash:
                raise DevchainStateError(
                    f"journal record {number} replays to another block (py-evm changed?)"
                )

    def attach_journal(self, journal: Journal) -> None:
        self._journal = journal

    def _append(self, record: JournalRecord) -> None:
        assert self._journal is not None
        try:
            self._journal.append(record)
        except OSError as exc:
            # The chain in memory is now ahead of its durable record: stop serving.
            self._failed = True
            raise DevchainError(f"journal write failed: {exc}") from exc

    def run(self, method: Callable[[list[Any]], _T], params: list[Any], *, mutating: bool) -> _T:
        """Run one JSON-RPC method; a failure while changing the chain stops the chain.

        Methods refuse bad requests (RpcError) before they change anything. Any other
        failure of a changing method may leave the chain in memory out of step with its
        journal, so from then on nothing is served (fail-stop) and the server shuts down.
        """
        if self._failed:
            raise RpcError(rpc.INTERNAL_ERROR, "devchain stopped after an internal failure")
        if not mutating:
            return method(params)
        try:
            return method(params)
        except (RpcError, DevchainError):
            raise
        except Exception as exc:
            self._failed = True
            raise DevchainError(f"internal failure while changing the chain: {exc!r}") from exc

    def _decode(self, raw: bytes) -> SignedTransactionAPI:
        if raw[:1] == b"\x03":
            raise RpcError(rpc.INVALID_PARAMS, "blob transactions are not supported")
        try:
            transaction: SignedTransactionAPI = (
                self._chain.get_vm().get_transaction_builder().decode(raw)
            )
            transaction.validate()
            transaction.sender  # noqa: B018 - recovers (and so checks) the signature
        except Exception as exc:  # any decoding failure is the client's input
            raise RpcError(rpc.INVALID_PARAMS, f"invalid raw transaction: {exc}") from exc
        if transaction.chain_id is not None and transaction.chain_id != self.genesis.chain_id:
            raise RpcError(rpc.SERVER_ERROR, f"invalid chain id {transaction.chain_id}")
        return transaction

    def _mine_transaction(self, transaction: SignedTransactionAPI, timestamp: int) -> BlockAPI:
        chain = self._chain
        chain.header = chain.header.copy(timestamp=timestamp)
        try:
            chain.apply_transaction(transaction)
        except ValidationError as exc:
            raise RpcError(rpc.SERVER_ERROR, str(exc)) from exc
        return self._mine(timestamp)

    def _mine(self, timestamp: int) -> BlockAPI:
        chain = self._chain
        parent = self._head()
        assert timestamp > parent.timestamp
        chain.header = chain.header.copy(timestamp=timestamp)
        block: BlockAPI = chain.mine_block(mix_hash=keccak(parent.hash))
        receipts = block.get_receipts(chain.chaindb)
        for index, transaction in enumerate(block.transactions):
            self._tx_locations[transaction.hash] = (block.number, index)
        logs = rpc.block_logs(block, receipts)
        self._logs.extend(logs)
        self._log_blocks.extend(log.block_number for log in logs)
        return block

    def send_raw_transaction(self, params: list[Any]) -> str:
        raw = rpc.parse_data(rpc.param(params, 0, "data"), "data")
        if not raw or len(raw) > MAX_RAW_TRANSACTION_BYTES:
            raise RpcError(rpc.INVALID_PARAMS, "raw transaction empty or too large")
        transaction = self._decode(raw)
        if transaction.hash in self._tx_locations:
            raise RpcError(rpc.SERVER_ERROR, "already known")
        timestamp = self._next_timestamp()
        block = self._mine_transaction(transaction, timestamp)
        self._append(TxRecord(timestamp, block.hash, raw))
        return rpc.encode_data(transaction.hash)

    def evm_mine(self, params: list[Any]) -> str:
        timestamp = self._next_timestamp()
        if params and params[0] is not None:
            option = params[0]
            raw = option.get("timestamp") if isinstance(option, dict) else option
            if raw is not None:
                timestamp = rpc.parse_quantity(raw, "timestamp")
                if not self._head().timestamp < timestamp < 2**63:
                    raise RpcError(rpc.INVALID_PARAMS, "timestamp not after the latest block")
        block = self._mine(timestamp)
        self._append(MineRecord(timestamp, block.hash))
        return "0x0"

    def evm_increase_time(self, params: list[Any]) -> int:
        seconds = rpc.parse_quantity(rpc.param(params, 0, "seconds"), "seconds")
        if seconds > 100 * 365 * 86400:
            raise RpcError(rpc.INVALID_PARAMS, "seconds: more than a century")
        self._offset_s += seconds
        self._append(ClockRecord(self._offset_s))
        return self._offset_s

    def evm_snapshot(self, params: list[Any]) -> str:
        del params
        assert self._journal is not None
        head = self._head()
        snapshot_id = self._next_snapshot_id
        self._next_snapshot_id += 1
        self._snapshots[snapshot_id] = _Snapshot(
            head.hash, head.block_number, self._journal.size, self._offset_s
        )
        return rpc.encode_quantity(snapshot_id)

    def evm_revert(self, params: list[Any]) -> bool:
        snapshot_id = rpc.parse_quantity(rpc.param(params, 0, "id"), "id")
        snapshot = self._snapshots.get(snapshot_id)
        if snapshot is None:
            return False
        assert self._journal is not None
        try:
            self._journal.truncate(snapshot.journal_size)  # durable first, then in memory
        except OSError as exc:
            self._failed = True
            raise DevchainError(f"journal truncation failed: {exc}") from exc
        self._backend.revert_to_snapshot(snapshot.block_hash)
        self._offset_s = snapshot.offset_s
        self._tx_locations = {
            h: loc for h, loc in self._tx_locations.items() if loc[0] <= snapshot.block_number
        }
        keep = bisect.bisect_right(self._log_blocks, snapshot.block_number)
        del self._logs[keep:], self._log_blocks[keep:]
        self._snapshots = {i: s for i, s in self._snapshots.items() if i < snapshot_id}
        return True

    # -- reading the chain --

    def _block_number(self, selector: object) -> int:
        """A block parameter (tag, number or EIP-1898 object) as a mined block number."""
        head = self._head().block_number
        if selector is None or selector in ("latest", "pending", "safe", "finalized"):
            return int(head)
        if selector == "earliest":
            return 0
        if isinstance(selector, dict):
            if "blockHash" in selector:
                number = self._canonical_number(rpc.parse_hash(selector["blockHash"], "blockHash"))
                if number is None:
                    raise RpcError(rpc.SERVER_ERROR, "header for hash not found")
                return number
            return self._block_number(selector.get("blockNumber"))
        number = rpc.parse_quantity(selector, "block")
        if number > head:
            raise RpcError(rpc.SERVER_ERROR, "header not found")
        return number

    def _canonical_number(self, block_hash: bytes) -> int | None:
        try:
            header = self._chain.get_block_header_by_hash(block_hash)
        except HeaderNotFound:
            return None
        canonical = self._chain.chaindb.get_canonical_block_hash(header.block_number)
        return int(header.block_number) if canonical == block_hash else None

    def _block(self, number: int) -> BlockAPI:
        block: BlockAPI = self._chain.get_canonical_block_by_number(number)
        return block

    def _state(self, selector: object) -> StateAPI:
        header = self._chain.get_canonical_block_header_by_number(self._block_number(selector))
        state: StateAPI = self._chain.get_vm(header).state
        return state

    def block_number(self, params: list[Any]) -> str:
        del params
        return rpc.encode_quantity(self._head().block_number)

    def get_balance(self, params: list[Any]) -> str:
        address = rpc.parse_address(rpc.param(params, 0, "address"), "address")
        return rpc.encode_quantity(
            self._state(rpc.param(params, 1, "block", None)).get_balance(address)
        )

    def get_transaction_count(self, params: list[Any]) -> str:
        address = rpc.parse_address(rpc.param(params, 0, "address"), "address")
        return rpc.encode_quantity(
            self._state(rpc.param(params, 1, "block", None)).get_nonce(address)
        )

    def get_code(self, params: list[Any]) -> str:
        address = rpc.parse_address(rpc.param(params, 0, "address"), "address")
        return rpc.encode_data(self._state(rpc.param(params, 1, "block", None)).get_code(address))

    def get_storage_at(self, params: list[Any]) -> str:
        address = rpc.parse_address(rpc.param(params, 0, "address"), "address")
        slot = rpc.parse_quantity(rpc.param(params, 1, "slot"), "slot")
        value = self._state(rpc.param(params, 2, "block", None)).get_storage(address, slot)
        return rpc.encode_data(value.to_bytes(32, "big"))

    def _encode_block(self, block: BlockAPI, full: bool) -> dict[str, Any]:
        return rpc.encode_block(block, full_transactions=full, size=len(rlp.encode(block)))

    def get_block_by_number(self, params: list[Any]) -> dict[str, Any] | None:
        selector = rpc.param(params, 0, "block")
        full = bool(rpc.param(params, 1, "full", False))
        if selector == "pending":
            pending = self._chain.get_block()
            header = pending.header.copy(timestamp=self._next_timestamp())
            return self._encode_block(pending.copy(header=header), full)
        tags = ("latest", "safe", "finalized", "earliest")
        if (
            selector not in tags
            and rpc.parse_quantity(selector, "block") > self._head().block_number
        ):
            return None  # geth answers null for a block not mined yet
        number = self._block_number(selector)
        header = (
            self._head()
            if selector in tags[:3]
            else self._chain.get_canonical_block_header_by_number(number)
        )
        key = (bytes(header.hash), full)
        encoded = self._encoded_blocks.get(key)
        if encoded is None:
            # Nodes poll the latest block many times a second: each is encoded once.
            encoded = self._encode_block(self._block(number), full)
            if len(self._encoded_blocks) >= _ENCODED_BLOCKS:
                self._encoded_blocks.pop(next(iter(self._encoded_blocks)))
            self._encoded_blocks[key] = encoded
        return encoded

    def get_block_by_hash(self, params: list[Any]) -> dict[str, Any] | None:
        number = self._canonical_number(rpc.parse_hash(rpc.param(params, 0, "hash"), "hash"))
        full = bool(rpc.param(params, 1, "full", False))
        return None if number is None else self._encode_block(self._block(number), full)

    def get_transaction_by_hash(self, params: list[Any]) -> dict[str, Any] | None:
        location = self._tx_locations.get(rpc.parse_hash(rpc.param(params, 0, "hash"), "hash"))
        if location is None:
            return None
        block = self._block(location[0])
        return rpc.encode_transaction(block.transactions[location[1]], block, location[1])

    def get_transaction_receipt(self, params: list[Any]) -> dict[str, Any] | None:
        location = self._tx_locations.get(rpc.parse_hash(rpc.param(params, 0, "hash"), "hash"))
        if location is None:
            return None
        number, index = location
        block = self._block(number)
        receipts = block.get_receipts(self._chain.chaindb)
        transaction = block.transactions[index]
        created = None
        if not transaction.to:
            created = keccak(rlp.encode([transaction.sender, transaction.nonce]))[12:]
        logs = [log for log in rpc.block_logs(block, receipts) if log.transaction_index == index]
        return rpc.encode_receipt(block, receipts, index, created, logs)

    def get_logs(self, params: list[Any]) -> list[dict[str, Any]]:
        query = rpc.param(params, 0, "filter")
        if not isinstance(query, dict):
            raise RpcError(rpc.INVALID_PARAMS, "filter: expected an object")
        head = int(self._head().block_number)
        if query.get("blockHash") is not None:
            number = self._canonical_number(rpc.parse_hash(query["blockHash"], "blockHash"))
            if number is None:
                raise RpcError(rpc.SERVER_ERROR, "unknown block")
            low = high = number
        else:
            low, high = (self._range_end(query.get(key), head) for key in ("fromBlock", "toBlock"))
        addresses = rpc.parse_address_filter(query.get("address"))
        topics = rpc.parse_topic_filter(query.get("topics"))
        start = bisect.bisect_left(self._log_blocks, low)
        stop = bisect.bisect_right(self._log_blocks, high)
        found: list[dict[str, Any]] = []
        for log in self._logs[start:stop]:
            if (addresses is None or log.address in addresses) and rpc.topics_match(
                topics, log.topics
            ):
                if len(found) == MAX_LOG_RESULTS:
                    raise RpcError(
                        rpc.LIMIT_EXCEEDED,
                        f"query returned more than {MAX_LOG_RESULTS} results; narrow the range",
                    )
                found.append(rpc.encode_log(log))
        return found

    def _range_end(self, selector: object, head: int) -> int:
        if selector is None or selector in ("latest", "pending", "safe", "finalized"):
            return head
        if selector == "earliest":
            return 0
        return min(rpc.parse_quantity(selector, "block"), head + 1)  # past the head: no logs

    # -- executing without mining --

    def _call_vm(self, selector: object) -> tuple[VirtualMachineAPI, StateAPI, int]:
        """A VM and state for the block after ``selector``, with free gas, and the gas cap.

        The state checks a new :class:`CallGuard`: the call's time limit starts here.
        """
        guard = CallGuard(self.call_limits.timeout_s, self._gate)
        chain = self._chain
        number = self._block_number(selector)
        try:
            parent = chain.get_canonical_block_header_by_number(number)
            if number == self._head().block_number:
                timestamp = self._next_timestamp()
            else:
                timestamp = chain.get_canonical_block_header_by_number(number + 1).timestamp
        except HeaderNotFound as exc:  # reverted meanwhile by evm_revert (module doc)
            raise RpcError(rpc.SERVER_ERROR, "header not found") from exc
        key = (bytes(parent.hash), timestamp)
        cached: _CallState | None = getattr(self._call_states, "last", None)
        if cached is None or cached.key != key:
            header = chain.create_header_from_parent(parent, timestamp=timestamp)
            vm: VirtualMachineAPI = chain.get_vm(header.copy(base_fee_per_gas=0))
            state = vm.state
            cached = _CallState(key, vm, state, state.computation_class, header.gas_limit)
            self._call_states.last = cached
        guard_state(cached.state, guard, cached.computation_class)
        return cached.vm, cached.state, min(self.call_limits.gas_cap, cached.gas_limit)

    def _attempt(
        self, vm: VirtualMachineAPI, state: StateAPI, call: rpc.CallRequest, gas: int
    ) -> ComputationAPI:
        unsigned = vm.create_unsigned_transaction(
            nonce=state.get_nonce(call.sender), gas_price=0, gas=gas, to=call.to,
            value=call.value, data=call.data,
        )  # fmt: skip
        snapshot = state.snapshot()
        try:
            return state.apply_transaction(SpoofTransaction(unsigned, from_=call.sender))  # type: ignore[arg-type]
        except ValidationError as exc:
            raise RpcError(rpc.SERVER_ERROR, str(exc)) from exc
        finally:
            state.revert(snapshot)

    def call(self, params: list[Any]) -> str:
        """eth_call: the call's output; asking for more gas than the cap gets the cap."""
        call = rpc.parse_call(rpc.param(params, 0, "transaction"))
        try:
            vm, state, gas_cap = self._call_vm(rpc.param(params, 1, "block", None))
            computation = self._attempt(vm, state, call, min(call.gas or gas_cap, gas_cap))
        except CallAborted as exc:
            raise RpcError(rpc.SERVER_ERROR, str(exc)) from exc
        if computation.is_error:
            raise _execution_error(computation)
        return rpc.encode_data(bytes(computation.output))

    def estimate_gas(self, params: list[Any]) -> str:
        """eth_estimateGas, at most the gas cap; one time limit for the whole search."""
        try:
            return self._estimate_gas(params)
        except CallAborted as exc:
            raise RpcError(rpc.SERVER_ERROR, str(exc)) from exc

    def _estimate_gas(self, params: list[Any]) -> str:
        """The least gas that succeeds, to within 1.5% (geth's search: a few executions)."""
        call = rpc.parse_call(rpc.param(params, 0, "transaction"))
        vm, state, gas_cap = self._call_vm(rpc.param(params, 1, "block", None))
        cap = min(call.gas or gas_cap, gas_cap)
        computation = self._attempt(vm, state, call, cap)
        if computation.is_error:
            if isinstance(computation.error, OutOfGas):
                raise RpcError(rpc.SERVER_ERROR, f"gas required exceeds allowance ({cap})")
            raise _execution_error(computation)

        def succeeds(gas: int) -> bool:
            try:
                return not self._attempt(vm, state, call, gas).is_error
            except RpcError:
                return False  # below the intrinsic gas

        used = cap - computation.get_gas_remaining()  # before refunds, with intrinsic gas
        if succeeds(used):
            return rpc.encode_quantity(used)  # the usual case: transfers, plain calls
        low, high = used, cap
        optimistic = min((used + 2300) * 64 // 63, cap)  # geth's guess: 63/64ths, a stipend
        if optimistic < high:
            low, high = (low, optimistic) if succeeds(optimistic) else (optimistic, high)
        while high - low > 1 and (high - low) * 1000 > high * 15:
            middle = (low + high) // 2
            low, high = (low, middle) if succeeds(middle) else (middle, high)
        return rpc.encode_quantity(high)

    # -- fees --

    def gas_price(self, params: list[Any]) -> str:
        del params
        return rpc.encode_quantity(self._chain.header.base_fee_per_gas + SUGGESTED_PRIORITY_FEE_WEI)

    def fee_history(self, params: list[Any]) -> dict[str, Any]:
        count = min(
            rpc.parse_quantity(rpc.param(params, 0, "blockCount"), "blockCount"),
            MAX_FEE_HISTORY_BLOCKS,
        )
        newest = self._block_number(rpc.param(params, 1, "newestBlock"))
        percentiles = rpc.param(params, 2, "rewardPercentiles", None)
        if percentiles is not None and (
            not isinstance(percentiles, list)
            or not all(isinstance(p, int | float) and 0 <= p <= 100 for p in percentiles)
            or percentiles != sorted(percentiles)
        ):
            raise RpcError(rpc.INVALID_PARAMS, "rewardPercentiles: increasing numbers in [0, 100]")
        oldest = max(0, newest - count + 1) if count else newest + 1
        blocks = [self._block(number) for number in range(oldest, newest + 1)]
        if newest == self._head().block_number:
            next_base_fee = self._chain.header.base_fee_per_gas
        else:
            next_base_fee = rpc.base_fee(self._block(newest + 1))
        result: dict[str, Any] = {
            "oldestBlock": rpc.encode_quantity(oldest),
            "baseFeePerGas": [rpc.encode_quantity(rpc.base_fee(b)) for b in blocks]
            + [rpc.encode_quantity(next_base_fee)],
            "gasUsedRatio": [b.header.gas_used / b.header.gas_limit for b in blocks],
        }
        if percentiles is not None:
            result["reward"] = [self._rewards(block, percentiles) for block in blocks]
        return result

    def _rewards(self, block: BlockAPI, percentiles: list[float]) -> list[str]:
        """geth's rule: the tip paid at each gas-weighted percentile of a block's gas."""
        if not block.transactions:
            return ["0x0"] * len(percentiles)
        receipts = block.get_receipts(self._chain.chaindb)
        base_fee = rpc.base_fee(block)
        used = [r.gas_used - (receipts[i - 1].gas_used if i else 0) for i, r in enumerate(receipts)]
        tips = sorted(
            (rpc.effective_gas_price(tx, base_fee) - base_fee, gas)
            for tx, gas in zip(block.transactions, used, strict=True)
        )
        rewards, index, total = [], 0, tips[0][1]
        for percentile in percentiles:
            while total < block.header.gas_used * percentile / 100 and index < len(tips) - 1:
                index += 1
                total += tips[index][1]
            rewards.append(rpc.encode_quantity(tips[index][0]))
        return rewards


# -- the server --------------------------------------------------------------------------
