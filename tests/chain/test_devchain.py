"""The embedded development chain, tested as users meet it: a real server process over HTTP.

web3.py (with explicit gas, as the network's clients use it) sends transfers, deploys Vyper
contracts, reads events and reverts; the precompiles are reached from a contract; and the
durability promise is checked by ``kill -9`` right after receipts return, a torn journal
tail, and a restart with other settings. The journal format also has in-process tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
import vyper
from eth_account import Account
from py_arkworks_bls12381 import G1Point, G2Point, Scalar
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError
from web3.types import Wei

from walruspy.chain.devchain import (
    ClockRecord,
    DevchainError,
    DevchainStateError,
    Journal,
    JournalRecord,
    MineRecord,
    TxRecord,
    dev_account_keys,
    open_devchain,
)

pytestmark = pytest.mark.timeout(120)

READY_TIMEOUT_S = 30.0  # import + replay on a slow, shared CI machine
BLAKE2B_IV = (
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
)  # fmt: skip
GAS_PRICE = {"maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9}

EVENTS_SOURCE = """
event Ping:
    who: indexed(address)
    tag: indexed(uint256)
    n: uint256

total: public(uint256)

@external
def ping(tag: uint256, n: uint256) -> uint256:
    self.total += n
    log Ping(who=msg.sender, tag=tag, n=n)
    return self.total

@external
def bounded(n: uint256):
    assert n < 10, "n too large"
    self.total = n

@external
@view
def now() -> uint256:
    return block.timestamp
"""

PRECOMPILES_SOURCE = """
verified: public(uint256)

@external
@view
def blake2f(data: Bytes[213]) -> Bytes[64]:
    return raw_call(
        0x0000000000000000000000000000000000000009, data, max_outsize=64, is_static_call=True
    )

@internal
@view
def _pairing(data: Bytes[1536]) -> bool:
    ok: bool = False
    out: Bytes[32] = b""
    ok, out = raw_call(
        0x000000000000000000000000000000000000000F, data, max_outsize=32,
        is_static_call=True, revert_on_failure=False,
    )
    assert ok, "pairing precompile failed"
    return extract32(out, 0, output_type=uint256) == 1

@external
@view
def pairing(data: Bytes[1536]) -> bool:
    return self._pairing(data)

@external
def verify(data: Bytes[1536]):
    assert self._pairing(data), "pairing check false"
    self.verified += 1
"""


# -- a server process --------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    stderr: IO[bytes]
    url: str
    startup_s: float

    def web3(self) -> Web3:
        return Web3(HTTPProvider(self.url, request_kwargs={"timeout": 60}))

    def rpc(self, method: str, *params: Any) -> Any:
        answer = post(self.url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        assert "error" not in answer, answer
        return answer["result"]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self._reap()

    def kill9(self) -> None:
        self.process.kill()
        self._reap()

    def _reap(self) -> int:
        code = self.process.wait(timeout=30)
        assert self.process.stdout is not None
        assert self.process.stdout.read() == b""  # nothing but the ready line, ever
        self.process.stdout.close()
        self.stderr.close()
        return code


def start_server(state_dir: Path, **settings: Any) -> Server:
    """Start ``run_devchain_server`` in a new process and wait for its ready line."""
    code = (
        "import json, sys; from pathlib import Path; "
        "from walruspy.chain.devchain import run_devchain_server; "
        "run_devchain_server(0, Path(sys.argv[1]), **json.loads(sys.argv[2]))"
    )
    # A file, so a chatty server can never block on it; closed by Server._reap.
    stderr = tempfile.TemporaryFile()  # noqa: SIM115
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(state_dir), json.dumps(settings)],
        stdout=subprocess.PIPE,
        stderr=stderr,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT_S)
    line = process.stdout.readline().decode() if ready else ""
    if not line.startswith("devchain listening on "):
        process.kill()
        process.wait(timeout=30)
        process.stdout.close()
        stderr.seek(0)
        message = stderr.read().decode()[-2000:]
        stderr.close()
        raise AssertionError(f"no ready line ({line!r}); stderr: {message}")
    url, chain_id = line.split()[3:5]
    assert chain_id.startswith("chain_id=")
    return Server(process, stderr, url, time.perf_counter() - started)


def run_refused(state_dir: Path, **settings: Any) -> str:
    """Start a server that must refuse to start; return its stderr."""
    code = (
        "import json, sys; from pathlib import Path; "
        "from walruspy.chain.devchain import run_devchain_server; "
        "run_devchain_server(0, Path(sys.argv[1]), **json.loads(sys.argv[2]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(state_dir), json.dumps(settings)],
        capture_output=True,
        timeout=READY_TIMEOUT_S,
        check=False,
    )
    assert result.returncode != 0
    assert result.stdout == b""
    return result.stderr.decode()


def post(url: str, payload: Any, raw: bytes | None = None) -> Any:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        body = raw if raw is not None else json.dumps(payload).encode()
        connection.request("POST", "/", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        return json.loads(data) if data else response.status
    finally:
        connection.close()


@pytest.fixture(scope="module")
def compiled() -> dict[str, dict[str, Any]]:
    return {
        name: vyper.compile_code(source, output_formats=["bytecode", "abi"])
        for name, source in (("events", EVENTS_SOURCE), ("precompiles", PRECOMPILES_SOURCE))
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("devchain"), dev_methods=True)
    yield running
    assert running.stop() == 0


class Sender:
    """Signs and sends transactions for one dev account, with explicit gas and nonces."""

    def __init__(self, w3: Web3, key: bytes) -> None:
        self.w3 = w3
        self.account = Account.from_key(key)
        self.address = self.account.address
        self.nonce: int = w3.eth.get_transaction_count(self.address, "pending")

    def send(self, tx: dict[str, Any], gas: int = 200_000) -> Any:
        full = {"chainId": 31337, "nonce": self.nonce, "gas": gas, **GAS_PRICE, **tx}
        tx_hash = self.w3.eth.send_raw_transaction(
            self.account.sign_transaction(full).raw_transaction
        )
        self.nonce += 1
        receipt: Any = self.w3.eth.get_transaction_receipt(tx_hash)  # mined on return
        assert receipt.transactionHash == tx_hash
        return receipt

    def deploy(self, artifact: dict[str, Any]) -> Any:
        receipt = self.send({"data": artifact["bytecode"]}, gas=2_000_000)
        assert receipt.status == 1
        return self.w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"])

    def call(self, function: Any, gas: int = 200_000) -> Any:
        return self.send(function.build_transaction({"from": self.address, "gas": gas}), gas)


# -- behaviour through web3 --------------------------------------------------------------


def test_transfers_blocks_and_receipts(server: Server) -> None:
    w3 = server.web3()
    keys = dev_account_keys(10)
    assert w3.eth.chain_id == 31337
    assert list(w3.eth.accounts) == [Account.from_key(k).address for k in keys]
    alice, bob = Sender(w3, keys[0]), Account.from_key(keys[1]).address
    bob_before = w3.eth.get_balance(bob)
    start = w3.eth.block_number
    receipts = [alice.send({"to": bob, "value": 10**18 + i}, gas=21_000) for i in range(5)]
    assert w3.eth.block_number == start + 5
    assert w3.eth.get_balance(bob) == bob_before + 5 * 10**18 + 10
    assert w3.eth.get_balance(bob, start) == bob_before
    for offset, receipt in enumerate(receipts, 1):
        assert (receipt.status, receipt.gasUsed, receipt.blockNumber) == (1, 21_000, start + offset)
        block: Any = w3.eth.get_block(receipt.blockNumber, full_transactions=True)
        assert block["hash"] == receipt.blockHash == w3.eth.get_block(block["hash"])["hash"]
        assert [tx["hash"] for tx in block["transactions"]] == [receipt.transactionHash]
        assert block["timestamp"] > w3.eth.get_block(block["number"] - 1)["timestamp"]
        tx: Any = w3.eth.get_transaction(receipt.transactionHash)
        assert (tx["from"], tx["to"], tx["blockNumber"]) == (alice.address, bob, block["number"])
        assert receipt.effectiveGasPrice == min(
            GAS_PRICE["maxFeePerGas"], block["baseFeePerGas"] + GAS_PRICE["maxPriorityFeePerGas"]
        )
    assert w3.eth.get_transaction_count(alice.address, "pending") == alice.nonce
    assert w3.eth.get_transaction_count(alice.address, "latest") == alice.nonce
    assert w3.eth.get_block("pending")["number"] == w3.eth.block_number + 1
    assert w3.eth.get_block("earliest")["number"] == 0
    history = w3.eth.fee_history(3, "latest", [10, 90])
    assert len(history["baseFeePerGas"]) == 4
    assert history["reward"][-1] == [10**9, 10**9]
    assert w3.eth.gas_price > w3.eth.get_block("latest")["baseFeePerGas"]
    assert w3.eth.estimate_gas({"from": alice.address, "to": bob, "value": Wei(1)}) == 21_000
    assert server.rpc("eth_getTransactionReceipt", "0x" + "ab" * 32) is None
    assert server.rpc("eth_getTransactionByHash", "0x" + "ab" * 32) is None
    assert server.rpc("eth_getBlockByNumber", hex(10**6), False) is None


def test_contract_events_logs_and_reverts(server: Server, compiled: dict[str, Any]) -> None:
    w3 = server.web3()
    keys = dev_account_keys(3)
    alice, bob = Sender(w3, keys[1]), Sender(w3, keys[2])
    contract = alice.deploy(compiled["events"])
    assert w3.eth.get_code(contract.address) != b""
    first = w3.eth.block_number + 1
    for sender, tag in ((alice, 1), (bob, 2), (alice, 3), (bob, 1)):
        receipt = sender.call(contract.functions.ping(tag, 5))
        assert receipt.status == 1
        assert len(receipt.logs) == 1
    last = w3.eth.block_number
    assert contract.functions.total().call() == 20
    assert w3.eth.get_storage_at(contract.address, 0) == (20).to_bytes(32, "big")

    signature = "0x" + Web3.keccak(text="Ping(address,uint256,uint256)").hex().removeprefix("0x")

    def topic(value: int | str) -> str:
        number = int(value, 16) if isinstance(value, str) else value
        return "0x" + number.to_bytes(32, "big").hex()

    def logs(**query: Any) -> list[tuple[str, int]]:
        query = {"fromBlock": hex(first), "toBlock": hex(last), **query}
        found = server.rpc("eth_getLogs", query)
        return [("0x" + entry["topics"][1][-40:], int(entry["topics"][2], 16)) for entry in found]

    a, b = alice.address.lower(), bob.address.lower()
    everything = [(a, 1), (b, 2), (a, 3), (b, 1)]
    assert logs(address=contract.address) == everything
    assert logs(address=[contract.address, bob.address], topics=[signature]) == everything
    assert logs(topics=[signature, None, topic(1)]) == [(a, 1), (b, 1)]
    assert logs(topics=[signature, None, [topic(1), topic(3)]]) == [(a, 1), (a, 3), (b, 1)]
    assert logs(topics=[None, topic(bob.address)]) == [(b, 2), (b, 1)]
    assert logs(topics=[[signature, topic(7)], [topic(alice.address)], []]) == [(a, 1), (a, 3)]
    assert logs(topics=[signature, None, None, None]) == []  # more positions than topics
    assert logs(address=bob.address) == []
    assert logs(fromBlock=hex(first + 1), toBlock=hex(first + 2)) == [(b, 2), (a, 3)]
    assert logs(fromBlock=hex(last + 100), toBlock="latest") == []
    block_hash = w3.eth.get_block(first + 1)["hash"].hex()
    assert server.rpc("eth_getLogs", {"blockHash": "0x" + block_hash.removeprefix("0x")}) != []
    events = contract.events.Ping().get_logs(from_block=first, argument_filters={"tag": 1})
    assert [(e.args.who, e.args.n) for e in events] == [(alice.address, 5), (bob.address, 5)]
    assert events[0].logIndex == 0
    assert events[0].transactionIndex == 0

    with pytest.raises(ContractLogicError, match="n too large"):
        contract.functions.bounded(11).call()
    with pytest.raises(ContractLogicError, match="n too large"):
        contract.functions.bounded(11).estimate_gas({"from": alice.address})
    estimate = contract.functions.bounded(3).estimate_gas({"from": alice.address})
    assert 21_000 < estimate < 60_000
    assert alice.call(contract.functions.bounded(3), gas=estimate).status == 1
    failed = alice.call(contract.functions.bounded(12), gas=100_000)  # mined, reverted
    assert failed.status == 0
    assert contract.functions.total().call() == 3
    answer = post(
        server.url,
        {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "eth_call",
            "params": [{"to": contract.address, "data": "0xdeadbeef"}, "latest"],
        },
    )
    assert answer["error"]["code"] == 3
    assert answer["error"]["data"] == "0x"


def test_calls_on_one_block_share_a_state_that_keeps_nothing(
    server: Server, compiled: dict[str, Any]
) -> None:
    """A call thread reuses its VM and state for the next call on the same block: a call's
    writes, and the accounts and slots it warmed, must not reach the next call, and a new
    block must be seen at once."""
    w3 = server.web3()
    alice = Sender(w3, dev_account_keys(2)[1])
    contract = alice.deploy(compiled["events"])
    before = contract.functions.total().call()
    ping = contract.functions.ping(9, 4)
    # Executed, never mined: each sees the total the block holds, not the last call's write.
    assert [ping.call({"from": alice.address}) for _ in range(3)] == [before + 4] * 3
    estimates = [ping.estimate_gas({"from": alice.address}) for _ in range(3)]
    assert len(set(estimates)) == 1  # a warm slot left behind would make later ones cheaper
    assert alice.call(ping, gas=estimates[0]).status == 1
    assert contract.functions.total().call() == before + 4  # the mined block, not a cached one
    assert ping.call({"from": alice.address}) == before + 8


def test_precompiles_from_a_contract(server: Server, compiled: dict[str, Any]) -> None:
    w3 = server.web3()
    sender = Sender(w3, dev_account_keys(4)[3])
    contract = sender.deploy(compiled["precompiles"])
    # EIP-152 test vector 5: one final compression (12 rounds) of "abc" is BLAKE2b-512("abc").
    h = list(BLAKE2B_IV)
    h[0] ^= 0x01010040  # parameter block: digest length 64, no key, fanout and depth 1
    blake_input = (
        (12).to_bytes(4, "big")
        + b"".join(word.to_bytes(8, "little") for word in h)
        + b"abc".ljust(128, b"\0")
        + (3).to_bytes(16, "little")  # bytes hashed so far
        + b"\x01"  # the final block
    )
    assert len(blake_input) == 213
    assert contract.functions.blake2f(blake_input).call() == hashlib.blake2b(b"abc").digest()

    def pad(xy: bytes) -> bytes:
        return b"".join(bytes(16) + xy[i : i + 48] for i in range(0, len(xy), 48))

    p = G1Point() * Scalar(1234567)
    q = G2Point() * Scalar(7654321)
    balanced = pad(p.to_xy_bytes_be()) + pad(q.to_xy_bytes_be())
    balanced += pad((-p).to_xy_bytes_be()) + pad(q.to_xy_bytes_be())
    unbalanced = (pad(p.to_xy_bytes_be()) + pad(q.to_xy_bytes_be())) * 2
    assert contract.functions.pairing(balanced).call() is True
    assert contract.functions.pairing(unbalanced).call() is False
    with pytest.raises(ContractLogicError, match="pairing precompile failed"):
        contract.functions.pairing(b"\x01" * 384).call()  # not a field element
    started = time.perf_counter()
    receipt = sender.call(contract.functions.verify(balanced), gas=500_000)
    assert receipt.status == 1
    assert time.perf_counter() - started < 1.0  # native: py-evm's own takes seconds
    assert receipt.gasUsed > 32_600 * 2 + 37_700
    assert contract.functions.verified().call() == 1


def test_jsonrpc_protocol_edges(server: Server) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": "two", "method": "net_version"},
        {"jsonrpc": "2.0", "method": "eth_blockNumber", "params": []},  # a notification
        {"jsonrpc": "2.0", "id": 3, "method": "no_such_method", "params": []},
        {"jsonrpc": "2.0", "id": 4, "method": "eth_getBalance", "params": ["0x12"]},
        {"id": 5, "method": "eth_chainId"},
    ]
    answers = post(server.url, batch)
    assert [a.get("id") for a in answers] == [1, "two", 3, 4, None]
    assert answers[0]["result"] == hex(31337)
    assert answers[1]["result"] == "31337"
    assert answers[2]["error"]["code"] == -32601
    assert answers[3]["error"]["code"] == -32602
    assert answers[4]["error"]["code"] == -32600
    assert post(server.url, None, raw=b"{not json")["error"]["code"] == -32700
    # Nested arrays crashed the process (py-evm lifts the recursion limit past the C stack).
    deep = post(server.url, None, raw=b"[" * 100_000 + b"]" * 100_000)
    assert deep["error"]["code"] == -32005  # too many arrays to even measure
    nested = post(server.url, None, raw=b"[" * 5_000 + b"]" * 5_000)
    assert nested["error"]["code"] == -32700 and "nested deeper than" in nested["error"]["message"]
    in_strings = post(server.url, None, raw=b'["[[[[", {"a": "]]]}\\"["}]')  # not nesting
    assert [a["error"]["code"] for a in in_strings] == [-32600, -32600]
    digits = post(server.url, None, raw=b'{"jsonrpc": "2.0", "id": ' + b"9" * 5000 + b"}")
    assert digits["error"]["code"] == -32700 and "4300" in digits["error"]["message"]
    assert post(server.url, [])["error"]["code"] == -32600
    too_many = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(257)]
    assert post(server.url, too_many)["error"]["code"] == -32005
    huge = post(server.url, None, raw=b"[" + b" " * (33 * 1024 * 1024) + b"]")
    assert huge["error"]["code"] == -32005
    bad_tx = post(
        server.url,
        {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": ["0x02c0"]},
    )
    assert bad_tx["error"]["code"] == -32602
    assert server.rpc("web3_clientVersion").startswith("walruspy-devchain/")


def test_responses_do_not_stall_on_nagle(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}).encode()
    timings = []
    for _ in range(40):  # one keep-alive connection, like web3's session
        started = time.perf_counter()
        connection.request("POST", "/", body, {"Content-Type": "application/json"})
        assert json.loads(connection.getresponse().read())["result"].startswith("0x")
        timings.append(time.perf_counter() - started)
    connection.close()
    assert statistics.median(timings) < 0.02  # a Nagle/delayed-ACK stall costs 40 ms


def test_time_travel_and_snapshots(server: Server, compiled: dict[str, Any]) -> None:
    w3 = server.web3()
    sender = Sender(w3, dev_account_keys(6)[5])
    contract = sender.deploy(compiled["events"])
    before = int(time.time())  # blocks may run ahead of the wall clock, never behind
    offset = server.rpc("evm_increaseTime", 3600)
    assert offset >= 3600
    assert contract.functions.now().call() >= before + 3600  # calls see the next block's time
    server.rpc("evm_mine")
    assert w3.eth.get_block("latest")["timestamp"] >= before + 3600
    snapshot = server.rpc("evm_snapshot")
    height, nonce = w3.eth.block_number, sender.nonce
    kept = w3.eth.get_block("latest")
    undone = sender.call(contract.functions.ping(1, 1))
    assert w3.eth.get_block("latest")["hash"] == undone.blockHash  # answered afresh per block
    assert server.rpc("evm_revert", snapshot) is True
    assert server.rpc("evm_revert", snapshot) is False  # used up
    assert w3.eth.block_number == height
    assert w3.eth.get_block("latest") == kept == w3.eth.get_block(height)
    assert server.rpc("eth_getTransactionReceipt", undone.transactionHash.to_0x_hex()) is None
    assert w3.eth.get_transaction_count(sender.address) == nonce
    sender.nonce = nonce
    redone = sender.call(contract.functions.ping(2, 2))
    assert redone.blockNumber == height + 1
    assert w3.eth.get_block(height + 1)["hash"] == redone.blockHash != undone.blockHash
    assert w3.eth.get_block("latest", full_transactions=True)["transactions"][0]["hash"] == (
        redone.transactionHash
    )
    assert contract.functions.total().call() == 2


# -- durability --------------------------------------------------------------------------


def chain_view(server: Server, tx_hashes: list[str], addresses: list[str]) -> dict[str, Any]:
    """Everything a client could have seen: receipts, balances, nonces, blocks."""
    height = int(server.rpc("eth_blockNumber"), 16)
    return {
        "height": height,
        "receipts": [server.rpc("eth_getTransactionReceipt", h) for h in tx_hashes],
        "balances": [server.rpc("eth_getBalance", a, "latest") for a in addresses],
        "nonces": [server.rpc("eth_getTransactionCount", a, "pending") for a in addresses],
        "blocks": [server.rpc("eth_getBlockByNumber", hex(n), False) for n in range(height + 1)],
    }


def test_kill9_loses_nothing_acknowledged(tmp_path: Path, compiled: dict[str, Any]) -> None:
    first = start_server(tmp_path, dev_methods=True)
    w3 = first.web3()
    keys = dev_account_keys(3)
    alice, bob = Sender(w3, keys[0]), Sender(w3, keys[1])
    contract = alice.deploy(compiled["events"])
    hashes: list[str] = []
    first.rpc("evm_increaseTime", 7200)
    snapshot = first.rpc("evm_snapshot")
    alice.call(contract.functions.ping(9, 9))
    assert first.rpc("evm_revert", snapshot) is True  # undone for good, also on disk
    alice.nonce -= 1
    for i in range(8):
        sender = (alice, bob)[i % 2]
        receipt = sender.call(contract.functions.ping(i, i), gas=100_000)
        hashes.append(receipt.transactionHash.to_0x_hex())
    receipt = bob.send({"to": alice.address, "value": 12345}, gas=21_000)
    hashes.append(receipt.transactionHash.to_0x_hex())
    addresses = [alice.address, bob.address, contract.address]
    seen = chain_view(first, hashes, addresses)
    first.kill9()  # right after the last receipt came back

    second = start_server(tmp_path)
    try:
        assert chain_view(second, hashes, addresses) == seen
        assert seen["height"] == 10  # the deployment, 8 pings and a transfer
        w3 = second.web3()
        view = w3.eth.contract(address=contract.address, abi=compiled["events"]["abi"])
        assert view.functions.total().call() == sum(range(8))
        assert view.functions.now().call() >= time.time() + 7200 - 5  # the clock offset too
        carol = Sender(w3, keys[2])
        assert carol.send({"to": bob.address, "value": 1}, gas=21_000).blockNumber == 11
    finally:
        assert second.stop() == 0


def test_torn_journal_tail_is_cut_off(tmp_path: Path) -> None:
    first = start_server(tmp_path)
    sender = Sender(first.web3(), dev_account_keys(1)[0])
    receipts = [sender.send({"to": sender.address, "value": 1}, gas=21_000) for _ in range(3)]
    assert first.stop() == 0
    journal = tmp_path / "journal.bin"
    intact = journal.read_bytes()
    with journal.open("ab") as file:  # a crash in the middle of writing a record
        file.write(b"\x00\x00\x01\x00\xde\xad\xbe\xef" + b"\x02" * 40)

    second = start_server(tmp_path)
    try:
        assert journal.read_bytes() == intact
        w3 = second.web3()
        assert w3.eth.block_number == 3
        assert w3.eth.get_transaction_receipt(receipts[-1].transactionHash)["status"] == 1
        again = Sender(w3, dev_account_keys(1)[0])
        assert again.send({"to": again.address, "value": 1}, gas=21_000).blockNumber == 4
    finally:
        assert second.stop() == 0


def test_restart_with_other_settings_or_corruption_is_refused(tmp_path: Path) -> None:
    first = start_server(tmp_path, account_count=2)
    sender = Sender(first.web3(), dev_account_keys(1)[0])
    for _ in range(3):
        sender.send({"to": sender.address, "value": 1}, gas=21_000)
    assert first.stop() == 0
    assert "chain_id=31337, not 5" in run_refused(tmp_path, chain_id=5)
    journal = tmp_path / "journal.bin"
    data = bytearray(journal.read_bytes())
    data[20] ^= 0xFF  # inside the first record, with more records after it
    journal.write_bytes(bytes(data))
    assert "corrupt record at offset 8" in run_refused(tmp_path)


# -- the journal, in process -------------------------------------------------------------


def test_journal_round_trip_and_torn_tails(tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    records: list[JournalRecord] = [
        TxRecord(1_700_000_001, b"\x11" * 32, b"\x02raw transaction"),
        ClockRecord(-5),
        MineRecord(1_700_000_002, b"\x22" * 32),
        ClockRecord(3600),
    ]
    journal, found = Journal.open(path)
    assert found == []
    for record in records:
        journal.append(record)
    size = journal.size
    journal.close()
    assert path.stat().st_size == size
    intact = path.read_bytes()
    for cut in range(8, len(intact)):
        path.write_bytes(intact[:cut])  # every possible crash point of the writes
        journal, found = Journal.open(path)
        assert found == records[: len(found)]
        assert path.stat().st_size == journal.size <= cut
        journal.close()
    path.write_bytes(intact + bytes(100))  # a tail of zeros, as some file systems leave
    journal, found = Journal.open(path)
    assert found == records
    journal.truncate(len(intact) - 9 - 8)  # drop the last record (clock: 9-byte payload)
    journal.close()
    journal, found = Journal.open(path)
    journal.close()
    assert found == records[:-1]
    path.write_bytes(b"not a journal")
    with pytest.raises(DevchainStateError, match="not a walruspy devchain journal"):
        Journal.open(path)
    os.remove(path)


# -- in process: the clock, and fail-stop ------------------------------------------------


async def test_clock_and_fail_stop_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = 1_800_000_000.5
    async with (
        open_devchain(tmp_path, clock=lambda: now, dev_methods=True) as chain,
        aiohttp.ClientSession() as http,
    ):

        async def rpc(method: str, *params: Any) -> Any:
            payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
            async with http.post(chain.url, json=payload) as response:
                return await response.json()

        account = Account.from_key(chain.account_keys[0])

        def transfer(nonce: int) -> str:
            tx = {"to": chain.accounts[1], "value": 1, "gas": 21_000, "nonce": nonce}
            signed = account.sign_transaction({**tx, **GAS_PRICE, "chainId": chain.chain_id})
            return "0x" + bytes(signed.raw_transaction).hex()

        async def timestamp(number: str) -> int:
            block = await rpc("eth_getBlockByNumber", number, False)
            return int(block["result"]["timestamp"], 16)

        assert await timestamp("0x0") == 1_800_000_000
        for nonce in range(2):  # a burst within one second: one second apart anyway
            assert "result" in await rpc("eth_sendRawTransaction", transfer(nonce))
        assert [await timestamp(n) for n in ("0x1", "0x2")] == [1_800_000_001, 1_800_000_002]
        assert (await rpc("evm_increaseTime", 100))["result"] == 100
        assert "result" in await rpc("evm_mine")
        assert await timestamp("latest") == 1_800_000_100

        def broken_disk(self: Journal, record: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(Journal, "append", broken_disk)
        answer = await rpc("eth_sendRawTransaction", transfer(2))
        assert answer["error"] == {
            "code": -32603,
            "message": "devchain stopped after an internal failure",
        }
        with pytest.raises(DevchainError, match="journal write failed"):
            await asyncio.wait_for(chain.wait_failed(), 10)
        assert (await rpc("eth_blockNumber"))["error"]["code"] == -32603  # fail-stop
