"""Ethereum JSON-RPC 2.0 over HTTP: framing, value codecs and py-evm object encoding.

Theory of operation
-------------------
The embedded development chain (:mod:`walruspy.chain.devchain`) speaks the standard
Ethereum JSON-RPC so that web3.py, and any other client, can use it as if it were geth or
anvil. This module holds everything that is about the protocol rather than the chain:

* :func:`make_jsonrpc_app` builds an ``aiohttp.web`` application with one ``POST /``
  endpoint that accepts a single request or a batch (answered in order, one call after
  another), applies the limits below, and turns a :class:`RpcError` raised by a method into
  a JSON-RPC error object; any other exception becomes ``-32603 internal error`` with no
  details (they go to the log). With a :class:`HeadFeed` the same path also takes WebSocket
  connections (``GET /`` with an upgrade, as anvil serves both on one port): the same
  requests, plus ``eth_subscribe(["newHeads"])``, whose notifications carry each new head,
  so that a follower of the chain learns of a block the moment it is mined instead of at
  its next poll.
* ``parse_*`` read request parameters (hex quantities, data, addresses) and raise
  ``-32602 invalid params`` on anything malformed; ``encode_*`` render py-evm blocks,
  transactions, receipts and logs the way geth does (hex quantities, ``0x`` data,
  checksummed addresses, camelCase names).

Errors follow geth, so that web3.py reacts as it does against a real node: a reverted call
is code 3 with message ``execution reverted[: reason]`` and the revert data as ``data``;
a transaction the chain refuses is ``-32000`` with the reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeVar

from aiohttp import WSCloseCode, WSMsgType, web
from eth.abc import BlockAPI, ReceiptAPI, SignedTransactionAPI
from eth_abi.abi import decode as abi_decode
from eth_typing import Address
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

__all__ = [
    "EXECUTION_REVERTED",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "LIMIT_EXCEEDED",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "SERVER_ERROR",
    "CallRequest",
    "HeadFeed",
    "IndexedLog",
    "JsonRpcLimits",
    "RpcError",
    "RpcMethod",
    "base_fee",
    "block_logs",
    "effective_gas_price",
    "encode_block",
    "encode_data",
    "encode_log",
    "encode_quantity",
    "encode_receipt",
    "encode_transaction",
    "make_jsonrpc_app",
    "param",
    "parse_address",
    "parse_address_filter",
    "parse_call",
    "parse_data",
    "parse_hash",
    "parse_quantity",
    "parse_topic_filter",
    "revert_error",
    "topics_match",
    "transaction_type",
]

_log = logging.getLogger(__name__)

# JSON-RPC 2.0 error codes, plus the ones Ethereum nodes use.
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
SERVER_ERROR: Final = -32000  # geth: a refused transaction, a missing block, ...
LIMIT_EXCEEDED: Final = -32005  # EIP-1474: a request exceeds a limit of the node
EXECUTION_REVERTED: Final = 3  # geth/anvil: a reverted eth_call or eth_estimateGas


class RpcError(Exception):
    """An error a JSON-RPC method reports to its caller as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        """The ``error`` member of a JSON-RPC response."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


RpcMethod = Callable[[list[Any]], Awaitable[Any]]
"""A method takes the positional ``params`` and returns a JSON-serialisable result."""


@dataclass(frozen=True, slots=True)
class JsonRpcLimits:
    """Bounds on what one HTTP request may ask of the server."""

    # 32 MiB holds a full batch of raw transactions at geth's 128 KiB size cap (256 x
    # 128 KiB), and any single eth_call a Walrus contract needs, while keeping a stray
    # client from making the server buffer gigabytes.
    max_body_bytes: int = 32 * 1024 * 1024
    # web3.py batches are a handful of calls; 256 bounds the work queued by one request.
    max_batch_entries: int = 256


# -- parameters --------------------------------------------------------------------------


def _hex_body(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise RpcError(INVALID_PARAMS, f"{name}: expected a 0x-prefixed hex string")
    return value[2:]


def parse_quantity(value: object, name: str) -> int:
    """A non-negative integer given as a hex quantity (or, leniently, a JSON integer)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise RpcError(INVALID_PARAMS, f"{name}: negative quantity")
        return value
    body = _hex_body(value, name)
    if not body or len(body) > 64:
        raise RpcError(INVALID_PARAMS, f"{name}: invalid hex quantity")
    try:
        return int(body, 16)
    except ValueError as exc:
        raise RpcError(INVALID_PARAMS, f"{name}: invalid hex quantity") from exc


def parse_data(value: object, name: str, size: int | None = None) -> bytes:
    """Bytes given as 0x-prefixed hex, optionally of an exact size."""
    body = _hex_body(value, name)
    try:
        data = bytes.fromhex(body)
    except ValueError as exc:
        raise RpcError(INVALID_PARAMS, f"{name}: invalid hex data") from exc
    if size is not None and len(data) != size:
        raise RpcError(INVALID_PARAMS, f"{name}: expected {size} bytes, got {len(data)}")
    return data


def parse_address(value: object, name: str) -> Address:
    """A 20-byte address (checksum not enforced, as geth does not)."""
    return Address(parse_data(value, name, 20))


def parse_hash(value: object, name: str) -> bytes:
    """A 32-byte hash."""
    return parse_data(value, name, 32)


_ZERO_ADDRESS: Final = Address(bytes(20))
_ERROR_SELECTOR: Final = keccak(b"Error(string)")[:4]
_PANIC_SELECTOR: Final = keccak(b"Panic(uint256)")[:4]


@dataclass(frozen=True, slots=True)
class CallRequest:
    """The transaction object of eth_call and eth_estimateGas."""

    sender: Address
    to: Address
    gas: int | None
    value: int
    data: bytes


_REQUIRED: Final = object()


def param(params: list[Any], index: int, name: str, default: Any = _REQUIRED) -> Any:
    """The positional parameter ``index``; missing or null means ``default`` (if any)."""
    if index < len(params) and params[index] is not None:
        return params[index]
    if default is _REQUIRED:
        raise RpcError(INVALID_PARAMS, f"missing value for required argument {name}")
    return default


def parse_call(value: object) -> CallRequest:
    """The transaction object of eth_call/eth_estimateGas (``from`` defaults to zero)."""
    if not isinstance(value, dict):
        raise RpcError(INVALID_PARAMS, "transaction: expected an object")
    data_fields = [value[key] for key in ("input", "data") if value.get(key) is not None]
    data = [parse_data(field, "input") for field in data_fields]
    if len(data) == 2 and data[0] != data[1]:
        raise RpcError(INVALID_PARAMS, "both input and data given, and they differ")
    return CallRequest(
        sender=parse_address(value["from"], "from") if value.get("from") else _ZERO_ADDRESS,
        to=parse_address(value["to"], "to") if value.get("to") else Address(b""),
        gas=parse_quantity(value["gas"], "gas") if value.get("gas") is not None else None,
        value=parse_quantity(value.get("value") or 0, "value"),
        data=data[0] if data else b"",
    )


def revert_error(data: bytes) -> RpcError:
    """geth's answer to a reverted call: code 3, the decoded reason, the raw data."""
    reason = ""
    try:
        if data[:4] == _ERROR_SELECTOR:
            reason = ": " + abi_decode(["string"], data[4:])[0]
        elif data[:4] == _PANIC_SELECTOR:
            reason = f": panic code {abi_decode(['uint256'], data[4:])[0]:#x}"
    except Exception:  # undecodable revert data is reported as data only
        reason = ""
    return RpcError(EXECUTION_REVERTED, "execution reverted" + reason, encode_data(data))


def parse_address_filter(value: object) -> set[bytes] | None:
    """An eth_getLogs ``address``: one or a list (any of them); None matches all."""
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    return {parse_address(item, "address") for item in values} or None


def parse_topic_filter(value: object) -> list[set[bytes] | None]:
    """eth_getLogs ``topics``: per position null (any), a topic, or a list (any of them)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 4:
        raise RpcError(INVALID_PARAMS, "topics: expected at most 4 positions")
    positions: list[set[bytes] | None] = []
    for position in value:
        options = position if isinstance(position, list) else [position]
        if not options or any(option is None for option in options):
            positions.append(None)  # a wildcard
        else:
            positions.append({parse_hash(option, "topic") for option in options})
    return positions


def topics_match(criteria: list[set[bytes] | None], topics: tuple[bytes, ...]) -> bool:
    """Whether a log's topics satisfy a parsed topic filter."""
    if len(criteria) > len(topics):
        return False  # geth: a log must have at least as many topics as the filter positions
    return all(
        options is None or topic in options
        for options, topic in zip(criteria, topics, strict=False)
    )


# -- results -----------------------------------------------------------------------------


def encode_quantity(value: int) -> str:
    """A hex quantity: no leading zeros, ``0x0`` for zero."""
    return hex(value)


def encode_data(value: bytes) -> str:
    """0x-prefixed hex bytes."""
    return "0x" + value.hex()


def _address(value: bytes) -> str | None:
    return to_checksum_address(value) if value else None


_V = TypeVar("_V")


def _present(value: _V | None) -> _V:
    """A header field every Prague header has (py-evm types them optional for old forks)."""
    assert value is not None
    return value


def base_fee(block: BlockAPI) -> int:
    """The base fee per gas of a (post-London) block."""
    return _present(block.header.base_fee_per_gas)


def transaction_type(transaction: SignedTransactionAPI) -> int:
    """The EIP-2718 type (0 for legacy transactions)."""
    type_id: int | None = getattr(transaction, "type_id", None)
    return type_id or 0


def effective_gas_price(transaction: SignedTransactionAPI, base_fee: int) -> int:
    """What the sender paid per unit of gas in a block of the given base fee."""
    if transaction_type(transaction) >= 2:
        return min(transaction.max_fee_per_gas, transaction.max_priority_fee_per_gas + base_fee)
    return transaction.gas_price


@dataclass(frozen=True, slots=True)
class IndexedLog:
    """One log of a mined transaction, with its position in the chain."""

    block_number: int
    block_hash: bytes
    transaction_index: int
    transaction_hash: bytes
    log_index: int  # within its block, as eth_getLogs reports it
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes


def encode_log(log: IndexedLog) -> dict[str, Any]:
    """A log as eth_getLogs and receipts report it."""
    return {
        "address": to_checksum_address(log.address),
        "topics": [encode_data(topic) for topic in log.topics],
        "data": encode_data(log.data),
        "blockNumber": encode_quantity(log.block_number),
        "blockHash": encode_data(log.block_hash),
        "transactionHash": encode_data(log.transaction_hash),
        "transactionIndex": encode_quantity(log.transaction_index),
        "logIndex": encode_quantity(log.log_index),
        "removed": False,
    }


def block_logs(block: BlockAPI, receipts: Sequence[ReceiptAPI]) -> list[IndexedLog]:
    """All logs of a mined block, in order, with block-wide log indices."""
    logs: list[IndexedLog] = []
    for tx_index, (transaction, receipt) in enumerate(
        zip(block.transactions, receipts, strict=True)
    ):
        logs.extend(
            IndexedLog(
                block_number=block.number,
                block_hash=block.hash,
                transaction_index=tx_index,
                transaction_hash=transaction.hash,
                log_index=len(logs) + i,
                address=entry.address,
                topics=tuple(topic.to_bytes(32, "big") for topic in entry.topics),
                data=entry.data,
            )
            for i, entry in enumerate(receipt.logs)
        )
    return logs


def encode_transaction(
    transaction: SignedTransactionAPI, block: BlockAPI | None, index: int | None
) -> dict[str, Any]:
    """A transaction as eth_getTransactionByHash and full blocks report it."""
    tx_type = transaction_type(transaction)
    result: dict[str, Any] = {
        "hash": encode_data(transaction.hash),
        "type": encode_quantity(tx_type),
        "nonce": encode_quantity(transaction.nonce),
        "blockHash": encode_data(block.hash) if block is not None else None,
        "blockNumber": encode_quantity(block.number) if block is not None else None,
        "transactionIndex": encode_quantity(index) if index is not None else None,
        "from": to_checksum_address(transaction.sender),
        "to": _address(transaction.to),
        "value": encode_quantity(transaction.value),
        "gas": encode_quantity(transaction.gas),
        "input": encode_data(transaction.data),
    }
    if tx_type >= 2:
        fee = base_fee(block) if block is not None else 0
        result["maxFeePerGas"] = encode_quantity(transaction.max_fee_per_gas)
        result["maxPriorityFeePerGas"] = encode_quantity(transaction.max_priority_fee_per_gas)
        result["gasPrice"] = encode_quantity(effective_gas_price(transaction, fee))
    else:
        result["gasPrice"] = encode_quantity(transaction.gas_price)
    if transaction.chain_id is not None:
        result["chainId"] = encode_quantity(transaction.chain_id)
    if tx_type >= 1:
        result["accessList"] = [
            {
                "address": to_checksum_address(address),
                "storageKeys": [encode_data(key.to_bytes(32, "big")) for key in keys],
            }
            for address, keys in transaction.access_list
        ]
        result["yParity"] = encode_quantity(transaction.y_parity)
        result["v"] = encode_quantity(transaction.y_parity)
    else:
        result["v"] = encode_quantity(transaction.v)  # type: ignore[attr-defined]
    if tx_type == 4:
        result["authorizationList"] = [
            {
                "chainId": encode_quantity(auth.chain_id),
                "address": to_checksum_address(auth.address),
                "nonce": encode_quantity(auth.nonce),
                "yParity": encode_quantity(auth.y_parity),
                "r": encode_quantity(auth.r),
                "s": encode_quantity(auth.s),
            }
            for auth in transaction.authorization_list
        ]
    result["r"] = encode_quantity(transaction.r)
    result["s"] = encode_quantity(transaction.s)
    return result


def encode_receipt(
    block: BlockAPI,
    receipts: Sequence[ReceiptAPI],
    index: int,
    contract_address: bytes | None,
    logs: Sequence[IndexedLog],
) -> dict[str, Any]:
    """The receipt of the transaction at ``index`` of a mined block."""
    transaction = block.transactions[index]
    receipt = receipts[index]
    previous_cumulative = receipts[index - 1].gas_used if index > 0 else 0
    return {
        "transactionHash": encode_data(transaction.hash),
        "transactionIndex": encode_quantity(index),
        "blockHash": encode_data(block.hash),
        "blockNumber": encode_quantity(block.number),
        "from": to_checksum_address(transaction.sender),
        "to": _address(transaction.to),
        "cumulativeGasUsed": encode_quantity(receipt.gas_used),
        "gasUsed": encode_quantity(receipt.gas_used - previous_cumulative),
        "effectiveGasPrice": encode_quantity(effective_gas_price(transaction, base_fee(block))),
        "contractAddress": _address(contract_address or b""),
        "logs": [encode_log(log) for log in logs],
        "logsBloom": encode_data(receipt.bloom.to_bytes(256, "big")),
        "type": encode_quantity(transaction_type(transaction)),
        "status": encode_quantity(1 if receipt.state_root == b"\x01" else 0),
    }


def encode_block(block: BlockAPI, *, full_transactions: bool, size: int) -> dict[str, Any]:
    """A mined block as eth_getBlockByNumber/ByHash report it."""
    header = block.header
    if full_transactions:
        transactions: list[Any] = [
            encode_transaction(tx, block, i) for i, tx in enumerate(block.transactions)
        ]
    else:
        transactions = [encode_data(tx.hash) for tx in block.transactions]
    return {
        "number": encode_quantity(header.block_number),
        "hash": encode_data(header.hash),
        "parentHash": encode_data(header.parent_hash),
        "nonce": encode_data(header.nonce),
        "mixHash": encode_data(header.mix_hash),
        "sha3Uncles": encode_data(header.uncles_hash),
        "logsBloom": encode_data(header.bloom.to_bytes(256, "big")),
        "transactionsRoot": encode_data(header.transaction_root),
        "stateRoot": encode_data(header.state_root),
        "receiptsRoot": encode_data(header.receipt_root),
        "miner": to_checksum_address(header.coinbase),
        "difficulty": encode_quantity(header.difficulty),
        "totalDifficulty": encode_quantity(0),
        "extraData": encode_data(header.extra_data),
        "size": encode_quantity(size),
        "gasLimit": encode_quantity(header.gas_limit),
        "gasUsed": encode_quantity(header.gas_used),
        "timestamp": encode_quantity(header.timestamp),
        "baseFeePerGas": encode_quantity(base_fee(block)),
        "withdrawalsRoot": encode_data(_present(header.withdrawals_root)),
        "withdrawals": [],
        "blobGasUsed": encode_quantity(header.blob_gas_used),
        "excessBlobGas": encode_quantity(header.excess_blob_gas),
        "parentBeaconBlockRoot": encode_data(_present(header.parent_beacon_block_root)),
        "requestsHash": encode_data(header.requests_hash),  # type: ignore[attr-defined]
        "transactions": transactions,
        "uncles": [],
    }


# -- the HTTP endpoint -------------------------------------------------------------------


def _error_response(request_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_json()}


async def _call_one(methods: Mapping[str, RpcMethod], entry: object) -> dict[str, Any] | None:
    """Answer one request object; None for a notification (a request without an id)."""
    if not isinstance(entry, dict) or entry.get("jsonrpc") != "2.0":
        return _error_response(None, RpcError(INVALID_REQUEST, "invalid request"))
    is_notification = "id" not in entry
    request_id = entry.get("id")
    if request_id is not None and (
        isinstance(request_id, bool) or not isinstance(request_id, str | int | float)
    ):
        return _error_response(None, RpcError(INVALID_REQUEST, "invalid request id"))
    name = entry.get("method")
    params = entry.get("params", [])
    try:
        if not isinstance(name, str):
            raise RpcError(INVALID_REQUEST, "method must be a string")
        method = methods.get(name)
        if method is None:
            raise RpcError(METHOD_NOT_FOUND, f"the method {name} does not exist/is not available")
        if not isinstance(params, list):
            raise RpcError(INVALID_PARAMS, "params must be an array")
        result = await method(params)
    except RpcError as error:
        return None if is_notification else _error_response(request_id, error)
    except Exception:
        _log.exception("devchain JSON-RPC method %s failed", name)
        internal = RpcError(INTERNAL_ERROR, "internal error")
        return None if is_notification else _error_response(request_id, internal)
    return None if is_notification else {"jsonrpc": "2.0", "id": request_id, "result": result}


def _json_response(payload: object, status: int = 200) -> web.Response:
    body = json.dumps(payload, separators=(",", ":"))
    return web.Response(text=body, status=status, content_type="application/json")


#: The deepest nesting of arrays and objects a request may have: JSON-RPC requests nest three or
#: four deep. The parser recurses per level, and py-evm raises the interpreter's recursion
#: limit far above what the C stack holds, so a body nested 100,000 deep crashed the process.
MAX_JSON_DEPTH = 64
#: Brackets (outside strings) a body may hold before its depth is measured: a full batch of 256
#: calls has a few thousand.
MAX_JSON_BRACKETS = 100_000
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def parse_body(body: bytes) -> Any:
    """The request's JSON, or the `RpcError` that says why it is refused (bounded work)."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if len(brackets) > MAX_JSON_BRACKETS:
        return RpcError(LIMIT_EXCEEDED, f"more than {MAX_JSON_BRACKETS} arrays and objects")
    depth = deepest = 0
    for bracket in brackets:
        depth += 1 if bracket in b"[{" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_JSON_DEPTH:
        return RpcError(PARSE_ERROR, f"parse error: nested deeper than {MAX_JSON_DEPTH}")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return RpcError(PARSE_ERROR, "parse error")
    except ValueError as exc:
        # A number past int()'s 4,300-digit bound (no JSON-RPC value comes near it).
        return RpcError(PARSE_ERROR, f"parse error: {str(exc)[:100]}")


async def _answer(
    methods: Mapping[str, RpcMethod], payload: object, bounds: JsonRpcLimits
) -> object | None:
    """The answer to a parsed body: one request or a batch (None: nothing to answer)."""
    if isinstance(payload, RpcError):
        return _error_response(None, payload)
    if not isinstance(payload, list):
        return await _call_one(methods, payload)
    if not payload:
        return _error_response(None, RpcError(INVALID_REQUEST, "empty batch"))
    if len(payload) > bounds.max_batch_entries:
        too_many = RpcError(
            LIMIT_EXCEEDED, f"batch of more than {bounds.max_batch_entries} requests"
        )
        return _error_response(None, too_many)
    answers = [answer for entry in payload if (answer := await _call_one(methods, entry))]
    return answers or None


class HeadFeed:
    """The ``newHeads`` subscriptions of the WebSocket endpoint (``eth_subscribe``, as geth and
    anvil serve it): each head the chain reaches is pushed to every subscriber.

    ``changed`` is called after anything that may have mined or rewound a block; the head is
    then read through ``latest`` (a block as eth_getBlockByNumber gives it) and pushed once
    per new block hash. A subscriber that cannot take a message is dropped.
    """

    def __init__(self, latest: Callable[[], Awaitable[dict[str, Any] | None]]) -> None:
        self._latest = latest
        self._subscribers: dict[str, web.WebSocketResponse] = {}
        self._pushed_hash: str | None = None
        self._pushing: asyncio.Task[None] | None = None
        self._again = False

    def subscribe(self, socket: web.WebSocketResponse) -> str:
        subscription = "0x" + secrets.token_hex(16)
        self._subscribers[subscription] = socket
        return subscription

    def unsubscribe(self, subscription: str) -> bool:
        return self._subscribers.pop(subscription, None) is not None

    def changed(self) -> None:
        """The head may have moved: push it (soon, in a task of its own)."""
        if not self._subscribers:
            return
        if self._pushing is not None and not self._pushing.done():
            self._again = True  # read the head once more when this push is done
            return
        self._pushing = asyncio.create_task(self._push())

    async def _push(self) -> None:
        self._again = True
        while self._again and self._subscribers:
            self._again = False
            try:
                block = await self._latest()
            except (RpcError, RuntimeError) as exc:  # stopped or stopping: requests say so
                _log.warning("cannot read the head for newHeads subscribers: %s", exc)
                return
            if block is None or block["hash"] == self._pushed_hash:
                continue
            self._pushed_hash = block["hash"]
            header = {k: v for k, v in block.items() if k not in _NOT_IN_HEADERS}
            for subscription, socket in list(self._subscribers.items()):
                message = {
                    "jsonrpc": "2.0",
                    "method": "eth_subscription",
                    "params": {"subscription": subscription, "result": header},
                }
                try:
                    await socket.send_str(json.dumps(message, separators=(",", ":")))
                except (ConnectionError, RuntimeError):
                    self._subscribers.pop(subscription, None)


#: Fields of a block that a newHeads notification leaves out (geth sends the header only).
_NOT_IN_HEADERS: Final = frozenset(
    {"transactions", "uncles", "withdrawals", "size", "totalDifficulty"}
)


def make_jsonrpc_app(
    methods: Mapping[str, RpcMethod],
    limits: JsonRpcLimits | None = None,
    heads: HeadFeed | None = None,
) -> web.Application:
    """An aiohttp application answering JSON-RPC 2.0 requests with ``methods``: over HTTP
    (``POST /``) and, with ``heads``, over a WebSocket (``GET /``), which also takes
    ``eth_subscribe(["newHeads"])`` and ``eth_unsubscribe``."""
    bounds = limits or JsonRpcLimits()

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            too_large = RpcError(LIMIT_EXCEEDED, f"request body over {bounds.max_body_bytes} bytes")
            return _json_response(_error_response(None, too_large), status=413)
        answer = await _answer(methods, parse_body(body), bounds)
        return web.Response(status=204) if answer is None else _json_response(answer)

    app = web.Application(client_max_size=bounds.max_body_bytes)
    app.router.add_post("/", handle)
    if heads is not None:
        sockets: set[web.WebSocketResponse] = set()
        app.router.add_get("/", partial(_websocket, methods, bounds, heads, sockets))

        async def close_sockets(app: web.Application) -> None:
            # Open WebSockets would hold the shutdown for aiohttp's whole shutdown timeout.
            for socket in list(sockets):
                await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

        app.on_shutdown.append(close_sockets)
    return app


async def _websocket(
    methods: Mapping[str, RpcMethod],
    bounds: JsonRpcLimits,
    heads: HeadFeed,
    sockets: set[web.WebSocketResponse],
    request: web.Request,
) -> web.StreamResponse:
    """One WebSocket connection: JSON-RPC requests in text frames, answered in order, and the
    notifications of its subscriptions, which end with it."""
    socket = web.WebSocketResponse(max_msg_size=bounds.max_body_bytes, heartbeat=30.0)
    if not socket.can_prepare(request).ok:
        return web.Response(status=400, text="GET / takes a WebSocket upgrade; POST JSON-RPC")
    await socket.prepare(request)
    sockets.add(socket)
    own: set[str] = set()

    async def subscribe(params: list[Any]) -> str:
        kind = param(params, 0, "subscription")
        if kind != "newHeads":
            raise RpcError(INVALID_PARAMS, f"unsupported subscription {kind!r} (only newHeads)")
        subscription = heads.subscribe(socket)
        own.add(subscription)
        return subscription

    async def unsubscribe(params: list[Any]) -> bool:
        subscription = param(params, 0, "subscription")
        if subscription not in own:
            return False
        own.discard(subscription)
        return heads.unsubscribe(subscription)

    served = {**methods, "eth_subscribe": subscribe, "eth_unsubscribe": unsubscribe}
    try:
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue  # close and error frames end the loop; binary frames carry no JSON-RPC
            answer = await _answer(served, parse_body(message.data.encode()), bounds)
            if answer is not None:
                await socket.send_str(json.dumps(answer, separators=(",", ":")))
    finally:
        sockets.discard(socket)
        for subscription in own:
            heads.unsubscribe(subscription)
    return socket
