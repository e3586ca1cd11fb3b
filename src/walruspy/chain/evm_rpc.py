"""JSON-RPC plumbing of the EVM chain client: connections, errors, contract views, transactions.

Theory of operation (spec/walrus-system.md 2.9 items 5-7). The chain client and the deployer talk
to any Ethereum node through web3.py's `AsyncWeb3` over HTTP and nothing else, so the embedded
devchain, anvil or a public testnet are interchangeable. This module holds what both need:

* `open_web3` makes one pool of kept-alive connections per client (`KeepAliveHTTPProvider`, in
  place of web3's provider, which opens a connection per request and can wedge when a request
  is cancelled: web3 issue #3867), with a bounded request time and retries of transient
  connection failures limited to reads (a retried `eth_sendRawTransaction` whose first attempt
  was mined would come back as "nonce too low" and be re-signed: a double payment).
  The connections come from `aiohttp.TCPConnector` unless a `ConnectorFactory` is given: the
  seam through which the simulator (`walruspy.sim.network.SimNetwork.connector`) carries the
  chain client's JSON-RPC over its in-memory network instead of sockets.
  Concurrent reads go through `walruspy.tasks.gather_reads`, so no read outlives a failed
  sibling, and receipt waits check their deadline between polls instead of cancelling a poll
  in flight.
* `rpc_errors` translates foreign exceptions at the boundary: a revert becomes
  `ChainRevertError` with the contract's reason string, a transaction the node refuses becomes
  `ChainRejectedError`, anything else (refused connection, timeout, an error object for a read,
  a malformed answer) becomes `ChainUnavailableError` naming the URL.
* `TransactionSender` signs and sends the transactions of one account. Nonces are kept locally
  so that many tasks can send at once: one lock covers assigning the nonce, signing and sending,
  so transactions reach the node in nonce order (the devchain mines each on arrival and refuses
  gaps), while waiting for receipts happens outside the lock and overlaps. A node that says the
  nonce is wrong (another client used the account, or a send whose fate is unknown) makes the
  sender re-read the pending nonce and try again, a bounded number of times. Gas limits are
  always explicit (the caller's per-operation figures; estimation re-executes the call and is
  slow on the devchain); fees are EIP-1559, `2 * base fee + tip` from the node, cached briefly.
  A receipt with status 0 is replayed with `eth_call` on the state before its block to recover
  the contract's reason. With `confirmations` > 0 a send returns only once that many blocks
  follow the transaction's and its receipt still names the same block: a transaction that a
  reorganisation took out is waited for again (a node re-includes it from its pool), within the
  receipt timeout (walrus-system.md 3.3).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import aiohttp
from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_typing import ABIFunction, ChecksumAddress, HexStr
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_output_types
from eth_utils.hexadecimal import encode_hex
from web3 import AsyncWeb3
from web3._utils.abi import map_abi_data
from web3._utils.contracts import encode_abi
from web3._utils.normalizers import BASE_RETURN_NORMALIZERS
from web3.contract import AsyncContract
from web3.exceptions import (
    ContractLogicError,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)
from web3.providers.async_base import AsyncJSONBaseProvider
from web3.types import BlockIdentifier, RPCEndpoint, RPCResponse, TxParams, TxReceipt

from walruspy.backoff import Backoff
from walruspy.chain.api import (
    ChainRejectedError,
    ChainRevertError,
    ChainUnavailableError,
    InsufficientGasError,
)
from walruspy.clock import now
from walruspy.logs import get_logger
from walruspy.tasks import gather_reads

__all__ = [
    "DEFAULT_RECEIPT_TIMEOUT_S",
    "DEFAULT_REQUEST_TIMEOUT_S",
    "ConnectorFactory",
    "ContractHandle",
    "KeepAliveHTTPProvider",
    "TransactionSender",
    "open_web3",
    "revert_reason",
    "rpc_errors",
]

log = get_logger("walruspy.chain")

#: One JSON-RPC request: a public node answering an eth_getLogs over a few thousand blocks can
#: take seconds; anything slower than this is a node in trouble.
DEFAULT_REQUEST_TIMEOUT_S: Final = 30.0
#: Waiting for a receipt: a few blocks of a public chain (12 s each) with room for congestion.
#: The devchain and anvil (automine) have the receipt when the send returns.
DEFAULT_RECEIPT_TIMEOUT_S: Final = 120.0
# Transient connection failures of reads are retried twice, 0.1 then 0.2 s apart: enough for a
# restarting local node, short enough that an unreachable URL is reported within a second.
# Sends are never retried here: the sender decides what a send of unknown fate means.
_NOT_RETRIED: Final = frozenset({"eth_sendRawTransaction", "eth_sendTransaction"})
_READ_RETRIES: Final = 2
_READ_RETRY: Final = Backoff(low_s=0.1, high_s=0.2, max_retries=_READ_RETRIES)
# How often a sender re-reads its nonce and re-sends after the node said the nonce was wrong;
# more than one concurrent writer on one account is a misconfiguration, not a steady state.
_MAX_NONCE_ATTEMPTS: Final = 3
# Fees are re-read at most this often: a burst of sends shares one reading, and 2 x base fee
# covers six full blocks of base-fee growth (12.5% each) meanwhile.
_FEE_CACHE_S: Final = 1.0
# Receipt polling starts at once (automining nodes) and backs off to a block-time fraction:
# pauses of 5 ms, doubling up to 0.5 s.
_POLL: Final = Backoff(low_s=0.005, high_s=0.5)

_ERROR_SELECTOR: Final = bytes.fromhex("08c379a0")  # Error(string)
_PANIC_SELECTOR: Final = bytes.fromhex("4e487b71")  # Panic(uint256)
_REVERTED_PREFIX: Final = "execution reverted"
#: How nodes word a refusal for want of funds: py-evm (the devchain) "Sender ... cannot afford
#: txn gas ..." and "... does not have enough balance to cover ...", geth and anvil
#: "insufficient funds for gas * price + value".
_NO_FUNDS_MESSAGES: Final = ("cannot afford", "enough balance", "insufficient funds")


class ConnectorFactory(Protocol):
    """Makes the connector of one of a provider's sessions (`aiohttp.TCPConnector` is one)."""

    def __call__(self, *, force_close: bool) -> aiohttp.BaseConnector:
        """A new connector; `force_close`: one connection per request, never pooled."""
        ...


class KeepAliveHTTPProvider(AsyncJSONBaseProvider):
    """JSON-RPC over HTTP on one pool of kept-alive connections per event loop.

    web3's own `AsyncHTTPProvider` opens a new TCP connection for every request (its connector
    has `force_close`), calls its session cache through a thread-pool lock on every request,
    and that lock can wedge the process when a request is cancelled (web3 issue #3867). A
    storage node polls the chain several times a second, so those costs were most of its idle
    CPU. Here the pool lives as long as the provider in its loop; reads are retried on
    transient connection failures (a pooled connection the node closed, a restarting node);
    a send is not (see the module doc), and goes on a connection of its own. `connector`
    makes the sessions' connectors (default `aiohttp.TCPConnector`; the simulator's network).
    """

    def __init__(
        self,
        url: str,
        request_timeout_s: float,
        *,
        connector: ConnectorFactory | None = None,
    ) -> None:
        super().__init__()
        self.endpoint_uri = url
        self._connector: ConnectorFactory = connector or aiohttp.TCPConnector
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        # (kept-alive pool for reads, fresh connection per send), for the loop that made them
        self._sessions: tuple[aiohttp.ClientSession, aiohttp.ClientSession] | None = None
        self._sessions_loop: asyncio.AbstractEventLoop | None = None

    def __str__(self) -> str:
        return f"RPC connection {self.endpoint_uri}"

    def _session(self, *, fresh: bool) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._sessions is None or self._sessions[0].closed or self._sessions_loop is not loop:
            # A session belongs to its loop; one left in a finished loop is dropped unclosed
            # (closing needs that loop), and its sockets go with it.
            headers = {"Content-Type": "application/json"}
            self._sessions = (
                aiohttp.ClientSession(
                    timeout=self._timeout,
                    headers=headers,
                    connector=self._connector(force_close=False),
                ),
                aiohttp.ClientSession(
                    timeout=self._timeout,
                    headers=headers,
                    connector=self._connector(force_close=True),
                ),
            )
            self._sessions_loop = loop
        return self._sessions[1 if fresh else 0]

    async def _post(self, body: bytes, *, fresh: bool) -> bytes:
        session = self._session(fresh=fresh)
        async with session.post(self.endpoint_uri, data=body) as response:
            response.raise_for_status()
            return await response.read()

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        body = self.encode_rpc_request(method, params)
        # A send is never retried, so it never rides a pooled connection the node may have
        # closed meanwhile: one connection of its own (a connect costs far less than a send).
        send = method in _NOT_RETRIED
        attempts = 1 if send else 1 + _READ_RETRIES
        for attempt in range(attempts):
            try:
                raw = await self._post(body, fresh=send)
                break
            except (aiohttp.ClientConnectionError, TimeoutError):
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(_READ_RETRY.delay_s(attempt))
        return self.decode_rpc_response(raw)

    async def disconnect(self) -> None:
        sessions, self._sessions = self._sessions, None
        for session in sessions or ():
            if not session.closed:
                await session.close()


def open_web3(
    url: str,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    *,
    connector: ConnectorFactory | None = None,
) -> AsyncWeb3[Any]:
    """An `AsyncWeb3` on `url`: kept-alive connections, bounded requests, reads retried.

    `connector` makes the connectors of its sessions (`KeepAliveHTTPProvider`; default
    `aiohttp.TCPConnector`).

    No middleware: we sign transactions ourselves with explicit gas, fees and chain ID, so
    web3's defaults (ENS names, gas-price strategy, gas estimation, and a validation layer that
    asks the node for its chain ID before every `eth_call`) only cost a round trip or CPU.
    """
    provider = KeepAliveHTTPProvider(url, request_timeout_s, connector=connector)
    return AsyncWeb3(provider, middleware=[])


def revert_reason(data: bytes | str | None, message: str = "") -> str:
    """The reason of a revert: `Error(string)` decoded, a panic code, or the node's message."""
    raw = b""
    if isinstance(data, bytes):
        raw = data
    elif isinstance(data, str) and data.startswith("0x"):
        with contextlib.suppress(ValueError):
            raw = bytes.fromhex(data[2:])
    try:
        if raw[:4] == _ERROR_SELECTOR:
            reason: str = abi_decode(["string"], raw[4:])[0]
            return reason
        if raw[:4] == _PANIC_SELECTOR:
            return f"panic {abi_decode(['uint256'], raw[4:])[0]:#x}"
    except Exception:  # noqa: S110 - undecodable revert data: fall back to the message
        pass
    text = message.strip()
    if text.startswith(_REVERTED_PREFIX):
        text = text[len(_REVERTED_PREFIX) :].lstrip(": ").strip()
    return text or "reverted without a reason"


def _rpc_message(exc: Web3RPCError) -> str:
    response = exc.rpc_response
    if response is not None:
        error = response.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return str(exc.user_message or exc.message)


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """What the chain's readers take from a block: its number, hash and time (seconds)."""

    number: int
    hash: bytes
    timestamp: int
    parent_hash: bytes = b""


async def block_header(w3: AsyncWeb3[Any], number: int | None = None) -> BlockHeader | None:
    """Block `number` (the latest by default), or None if the node has no such block (yet).

    Read from the JSON-RPC answer itself: web3's `get_block` formats every field of the block
    (measured on the devchain: 0.57 ms of CPU per call against 0.23 ms), and nodes ask for the
    latest block at each poll of the chain. Call it inside `rpc_errors`: an error answer raises
    `Web3RPCError`, a malformed one `KeyError`, `TypeError` or `ValueError`.
    """
    tag = "latest" if number is None else hex(number)
    response = await w3.provider.make_request(RPCEndpoint("eth_getBlockByNumber"), [tag, False])
    if "error" in response:
        raise Web3RPCError(f"eth_getBlockByNumber: {response['error']}", rpc_response=response)
    block = response.get("result")
    if block is None:
        return None
    parent = block.get("parentHash")
    return BlockHeader(
        int(block["number"], 16),
        bytes.fromhex(block["hash"][2:]),
        int(block["timestamp"], 16),
        bytes.fromhex(parent[2:]) if isinstance(parent, str) else b"",
    )


async def raw_logs(w3: AsyncWeb3[Any], query: Mapping[str, Any]) -> list[dict[str, Any]]:
    """eth_getLogs for `query` (JSON-RPC values: hex block numbers and topics), read from the
    answer itself as `block_header` reads blocks (web3's formatters cost more CPU than the
    request, and nodes ask at every new block): each log's topics, data and hashes as bytes,
    its block number and index as ints. Errors as `block_header`'s."""
    response = await w3.provider.make_request(RPCEndpoint("eth_getLogs"), [dict(query)])
    if "error" in response:
        raise Web3RPCError(f"eth_getLogs: {response['error']}", rpc_response=response)
    found = response.get("result")
    if not isinstance(found, list):
        raise TypeError(f"eth_getLogs answered {type(found).__name__}, not a list")
    return [
        {
            "topics": [bytes.fromhex(topic[2:]) for topic in log["topics"]],
            "data": bytes.fromhex(log["data"][2:]),
            "blockNumber": int(log["blockNumber"], 16),
            "logIndex": int(log["logIndex"], 16),
            "transactionHash": bytes.fromhex(log["transactionHash"][2:]),
            "blockHash": bytes.fromhex(log["blockHash"][2:]),
        }
        for log in found
    ]


@contextlib.contextmanager
def rpc_errors(url: str, operation: str) -> Iterator[None]:
    """Translate web3, aiohttp and socket failures of `operation` into the chain error tree."""
    try:
        yield
    except ContractLogicError as exc:
        data = exc.data if isinstance(exc.data, str) else None
        raise ChainRevertError(revert_reason(data, exc.message or ""), operation) from exc
    except Web3RPCError as exc:
        raise ChainUnavailableError(
            f"{url}: {operation}: the node answered an error: {_rpc_message(exc)}"
        ) from exc
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ChainUnavailableError(
            f"{url}: {operation}: cannot reach the node: {str(exc) or type(exc).__name__}"
        ) from exc
    except (Web3Exception, ValueError, KeyError, TypeError) as exc:
        # web3 and eth-abi raise these on answers they cannot parse (BadResponseFormat, a
        # short return value); our own misuse never reaches here because callers build
        # arguments before entering.
        raise ChainUnavailableError(
            f"{url}: {operation}: malformed answer from the node: {exc}"
        ) from exc


class ContractHandle:
    """A deployed contract: calldata for transactions and views with translated errors.

    A function with one ABI entry is encoded and decoded from that entry, its selector hashed
    once: web3's contract functions validate the whole ABI, hashing every function's selector,
    on every call (about two thirds of a view's time on the client, for a contract of System's
    size). The encoding and the decoding are web3's own (`encode_abi`, its codec and its return
    normalizers), so the values are the same. An overloaded name (Vyper makes one entry per
    number of default arguments) goes through web3's lookup.
    """

    def __init__(self, w3: AsyncWeb3[Any], url: str, address: str, abi: Sequence[Any]) -> None:
        self.url = url
        self._w3 = w3
        self.address: ChecksumAddress = AsyncWeb3.to_checksum_address(address)
        self.contract: AsyncContract = w3.eth.contract(address=self.address, abi=list(abi))
        entries: dict[str, list[ABIFunction]] = {}
        for entry in abi:
            if entry.get("type") == "function":
                entries.setdefault(entry["name"], []).append(entry)
        self._single = {name: fns[0] for name, fns in entries.items() if len(fns) == 1}
        self._selectors: dict[str, HexStr] = {}

    def _encoded(self, function: str, args: Sequence[Any]) -> HexStr | None:
        """`function(*args)` as call data, or None for a name web3 must resolve."""
        fn = self._single.get(function)
        if fn is None or len(fn.get("inputs", ())) != len(args):
            return None
        selector = self._selectors.get(function)
        if selector is None:
            selector = self._selectors[function] = encode_hex(function_abi_to_4byte_selector(fn))
        return encode_abi(self._w3, fn, args, selector)

    def calldata(self, function: str, *args: Any) -> bytes:
        """ABI-encoded call of `function(*args)`."""
        data = self._encoded(function, args)
        if data is None:
            data = self.contract.encode_abi(function, args=list(args))
        return bytes.fromhex(data[2:])

    async def view(self, function: str, *args: Any, block: BlockIdentifier = "latest") -> Any:
        """Call the view `function(*args)` at `block`; a revert raises `ChainRevertError`."""
        data = self._encoded(function, args)  # our arguments: checked outside
        if data is None:
            call = self.contract.functions[function](*args)
            with rpc_errors(self.url, function):
                return await call.call(block_identifier=block)
        outputs = get_abi_output_types(self._single[function])
        with rpc_errors(self.url, function):
            raw = await self._w3.eth.call({"to": self.address, "data": data}, block)
            values = map_abi_data(
                BASE_RETURN_NORMALIZERS, outputs, self._w3.codec.decode(outputs, raw)
            )
        return values[0] if len(values) == 1 else values


class TransactionSender:
    """Signs and sends the transactions of one account, concurrently, with local nonces."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        url: str,
        private_key: bytes,
        chain_id: int,
        receipt_timeout_s: float = DEFAULT_RECEIPT_TIMEOUT_S,
        *,
        confirmations: int = 0,
    ) -> None:
        if confirmations < 0:
            raise ValueError("confirmations cannot be negative")
        self._confirmations = confirmations
        self._w3 = w3
        self._url = url
        self._account = Account.from_key(private_key)
        self._chain_id = chain_id
        self._receipt_timeout_s = receipt_timeout_s
        self._lock = asyncio.Lock()
        self._next_nonce: int | None = None
        self._fees: tuple[int, int] | None = None
        self._fees_read_at = 0.0
        self.address: ChecksumAddress = self._account.address

    async def send(
        self, operation: str, *, to: str | None, data: bytes, gas: int, value: int = 0
    ) -> TxReceipt:
        """Send a transaction and wait for its receipt.

        Raises `ChainRevertError` (with the contract's reason) if it reverted,
        `ChainRejectedError` if the node refused it, `ChainUnavailableError` if the node could
        not be reached or no receipt came within the receipt timeout.
        """
        async with self._lock:
            tx, tx_hash = await self._sign_and_send(operation, to, data, gas, value)
        deadline = now() + self._receipt_timeout_s
        receipt = await self._wait_receipt(operation, tx_hash, deadline)
        if self._confirmations:
            receipt = await self._wait_confirmed(operation, tx_hash, receipt, deadline)
        if receipt["status"] != 1:
            raise ChainRevertError(await self._replay_reason(tx, receipt), operation)
        return receipt

    async def _sign_and_send(
        self, operation: str, to: str | None, data: bytes, gas: int, value: int
    ) -> tuple[dict[str, Any], bytes]:
        for attempt in range(_MAX_NONCE_ATTEMPTS):
            if self._next_nonce is None:
                with rpc_errors(self._url, f"{operation}: read the nonce"):
                    self._next_nonce = await self._w3.eth.get_transaction_count(
                        self.address, "pending"
                    )
            max_fee, tip = await self._current_fees(operation)
            tx: dict[str, Any] = {
                "type": 2,
                "chainId": self._chain_id,
                "nonce": self._next_nonce,
                "gas": gas,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
                "value": value,
                "data": data,
            }
            if to is not None:
                tx["to"] = to
            signed = self._account.sign_transaction(tx)
            try:
                tx_hash = bytes(await self._w3.eth.send_raw_transaction(signed.raw_transaction))
            except Web3RPCError as exc:
                message = _rpc_message(exc)
                if "nonce" in message.lower() and attempt + 1 < _MAX_NONCE_ATTEMPTS:
                    self._next_nonce = None
                    continue
                if "nonce" in message.lower():
                    self._next_nonce = None
                if any(words in message.lower() for words in _NO_FUNDS_MESSAGES):
                    raise await self._insufficient_gas(operation, gas * max_fee + value) from exc
                raise ChainRejectedError(message, operation) from exc
            except BaseException:
                self._next_nonce = None  # the node may or may not have it: re-read next time
                with rpc_errors(self._url, f"{operation}: send"):
                    raise
            self._next_nonce += 1
            return tx, tx_hash
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _insufficient_gas(self, operation: str, needed_wei: int) -> InsufficientGasError:
        """The error for a transaction refused for want of gas: which account, what it has."""
        with rpc_errors(self._url, f"{operation}: read the balance"):
            balance = int(await self._w3.eth.get_balance(self.address))
        return InsufficientGasError(self.address, needed_wei, balance, operation)

    async def _current_fees(self, operation: str) -> tuple[int, int]:
        read_at = now()
        if self._fees is None or read_at - self._fees_read_at > _FEE_CACHE_S:
            with rpc_errors(self._url, f"{operation}: read the fees"):
                block, tip = await gather_reads(
                    self._w3.eth.get_block("latest"), self._w3.eth.max_priority_fee
                )
            base = int(block.get("baseFeePerGas", 0))
            self._fees = (2 * base + int(tip), int(tip))
            self._fees_read_at = read_at
        return self._fees

    async def _wait_confirmed(
        self, operation: str, tx_hash: bytes, receipt: TxReceipt, deadline: float
    ) -> TxReceipt:
        """Wait until `confirmations` blocks follow the receipt's, which is still canonical."""
        polls = 0
        while True:
            with rpc_errors(self._url, f"{operation}: wait for confirmations"):
                head = int(await self._w3.eth.block_number)
                if head >= int(receipt["blockNumber"]) + self._confirmations:
                    try:
                        again = await self._w3.eth.get_transaction_receipt(HexStr(tx_hash.hex()))
                    except TransactionNotFound:
                        again = None
                    if again is not None and bytes(again["blockHash"]) == bytes(
                        receipt["blockHash"]
                    ):
                        return again
                    log.warning(
                        "a transaction was reorganised out of its block; waiting for it again",
                        operation=operation,
                        tx=f"0x{tx_hash.hex()}",
                    )
                    receipt = await self._wait_receipt(operation, tx_hash, deadline)
                    continue
            if now() >= deadline:
                raise ChainUnavailableError(
                    f"{self._url}: {operation}: transaction 0x{tx_hash.hex()} did not reach"
                    f" {self._confirmations} confirmations within {self._receipt_timeout_s:g} s"
                )
            await asyncio.sleep(_POLL.delay_s(polls))
            polls += 1

    async def _wait_receipt(self, operation: str, tx_hash: bytes, deadline: float) -> TxReceipt:
        # The deadline is checked between polls rather than by cancelling a poll in flight:
        # each poll is already bounded by the request timeout.
        polls = 0
        while True:
            with rpc_errors(self._url, f"{operation}: read the receipt"):
                try:
                    return await self._w3.eth.get_transaction_receipt(HexStr(tx_hash.hex()))
                except TransactionNotFound:
                    pass
            remaining = deadline - now()
            if remaining <= 0:
                raise ChainUnavailableError(
                    f"{self._url}: {operation}: transaction 0x{tx_hash.hex()} has no receipt"
                    f" after {self._receipt_timeout_s:g} s"
                )
            # The first poll that finds nothing is repeated at once (automining nodes).
            delay = _POLL.delay_s(polls - 1) if polls > 0 else 0.0
            await asyncio.sleep(min(delay, remaining))
            polls += 1

    async def _replay_reason(self, tx: dict[str, Any], receipt: TxReceipt) -> str:
        """Why a mined transaction reverted: re-run it on the state before its block."""
        if receipt["gasUsed"] >= tx["gas"]:
            return f"out of gas (limit {tx['gas']})"
        call: TxParams = {"from": self.address, "gas": tx["gas"], "data": tx["data"]}
        if "to" in tx:
            call["to"] = tx["to"]
        if tx["value"]:
            call["value"] = tx["value"]
        try:
            await self._w3.eth.call(call, block_identifier=receipt["blockNumber"] - 1)
        except ContractLogicError as exc:
            data = exc.data if isinstance(exc.data, str) else None
            return revert_reason(data, exc.message or "")
        except Web3RPCError as exc:
            return _rpc_message(exc)
        except (aiohttp.ClientError, OSError, TimeoutError, Web3Exception) as exc:
            return f"reverted (the reason could not be read: {exc})"
        return (
            "reverted (the replay succeeded: an earlier transaction of its block changed the state)"
        )
