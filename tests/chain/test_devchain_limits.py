"""The devchain's hardening: test methods off by default, bounded calls, calls beside transactions.

In process (``open_devchain``) for the behaviour, and once through ``walruspy chain serve`` for
the flags. A Vyper contract gives a call that runs as long as it is allowed to (``spin``), one
that reports the gas it was given (``gas_left``) and a transaction (``bump``). Nothing here
asserts a wall-clock duration: a timed-out call is recognised by its error, and "a transaction
does not wait behind a call" by the order in which the answers arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import vyper
from click.testing import CliRunner
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_utils.crypto import keccak

from tests.chain.backends import start_devchain
from walruspy.chain import devchain_calls
from walruspy.chain.devchain import DEV_METHODS, CallLimits, open_devchain
from walruspy.chain.devchain_calls import CallGuard, CallTimeout, ChainThreadGate
from walruspy.chain.devchain_engine import Engine
from walruspy.cli import chain_cmd
from walruspy.cli.chain_cmd import chain as chain_group

pytestmark = pytest.mark.timeout(120)

SOURCE = """
total: public(uint256)

@external
@view
def spin(n: uint256) -> uint256:
    x: uint256 = 0
    for i: uint256 in range(n, bound=1000000000):
        x = unsafe_add(x, i)
    return x

@external
@view
def gas_left() -> uint256:
    return msg.gas

@external
def bump(n: uint256):
    x: uint256 = 0
    for i: uint256 in range(n, bound=1000000000):
        x = unsafe_add(x, i)
    self.total += 1
"""
GAS_PRICE = {"maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9}
FOREVER = 10**8  # iterations of spin: far more than any gas cap here pays for


def calldata(signature: str, *args: int) -> str:
    types = signature[signature.index("(") + 1 : -1].split(",") if args else []
    return "0x" + (keccak(text=signature)[:4] + abi_encode(types, list(args))).hex()


@pytest.fixture(scope="module")
def bytecode() -> str:
    return str(vyper.compile_code(SOURCE, output_formats=["bytecode"])["bytecode"])


@dataclass
class Client:
    """JSON-RPC to a chain, signing with its first dev account."""

    url: str
    http: aiohttp.ClientSession
    key: bytes
    nonce: int = 0

    async def request(self, method: str, *params: Any) -> dict[str, Any]:
        payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        async with self.http.post(self.url, json=payload) as response:
            answer: dict[str, Any] = await response.json()
            return answer

    async def result(self, method: str, *params: Any) -> Any:
        answer = await self.request(method, *params)
        assert "error" not in answer, answer
        return answer["result"]

    async def transact(self, data: str, to: str | None = None, gas: int = 2_000_000) -> Any:
        tx = {"chainId": 31337, "nonce": self.nonce, "gas": gas, "data": data, **GAS_PRICE}
        if to is not None:
            tx["to"] = to
        self.nonce += 1
        signed = Account.from_key(self.key).sign_transaction(tx)
        tx_hash = await self.result("eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())
        return await self.result("eth_getTransactionReceipt", tx_hash)

    async def deploy(self, bytecode: str) -> str:
        receipt = await self.transact(bytecode)
        assert receipt["status"] == "0x1"
        return str(receipt["contractAddress"])


@pytest.fixture
def open_chain(
    tmp_path: Path, bytecode: str
) -> Callable[..., contextlib.AbstractAsyncContextManager[tuple[Client, str]]]:
    """An in-process devchain with the given settings, a client, and the contract's address."""

    @contextlib.asynccontextmanager
    async def opened(**settings: Any) -> AsyncIterator[tuple[Client, str]]:
        async with open_devchain(tmp_path, **settings) as chain, aiohttp.ClientSession() as http:
            client = Client(chain.url, http, chain.account_keys[0])
            yield client, await client.deploy(bytecode)

    return opened


# -- 1. test methods off by default ---------------------------------------------------------


async def test_test_methods_are_refused_unless_enabled(open_chain: Any) -> None:
    async with open_chain() as (client, _):
        for method, params in zip(DEV_METHODS, ([60], [], [], ["0x1"]), strict=True):
            answer = await client.request(method, *params)
            assert answer["error"] == {
                "code": -32601,
                "message": f"method {method} is disabled; start the chain with --dev-methods",
            }
        assert int(await client.result("eth_blockNumber"), 16) == 1  # nothing was mined


async def test_test_methods_work_when_enabled(open_chain: Any) -> None:
    async with open_chain(dev_methods=True) as (client, _):
        snapshot = await client.result("evm_snapshot")
        assert await client.result("evm_increaseTime", 60) >= 60
        await client.result("evm_mine")
        assert await client.result("evm_revert", snapshot) is True
        assert int(await client.result("eth_blockNumber"), 16) == 1


def test_serve_help_documents_the_flags() -> None:
    result = CliRunner().invoke(chain_group, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for flag in ("--dev-methods", "--call-gas-cap", "--call-timeout"):
        assert flag in result.output
    assert "evm_increaseTime" in result.output and "evm_revert" in result.output
    refused = CliRunner().invoke(chain_group, ["serve", "--state", "unused", "--call-timeout", "0"])
    assert refused.exit_code == 2  # a usage error, before anything starts


def test_cli_defaults_are_the_library_defaults() -> None:
    # The CLI repeats them so that it starts without importing py-evm.
    assert chain_cmd._DEFAULT_CALL_GAS_CAP == devchain_calls.DEFAULT_CALL_GAS_CAP
    assert chain_cmd._DEFAULT_CALL_TIMEOUT_S == devchain_calls.DEFAULT_CALL_TIMEOUT_S
    assert chain_cmd._MAX_CALL_TIMEOUT_S == devchain_calls.MAX_CALL_TIMEOUT_S


# -- 2. gas cap and time limit --------------------------------------------------------------


async def test_call_gas_is_clamped_to_the_cap(open_chain: Any) -> None:
    async with open_chain(call_limits=CallLimits(gas_cap=100_000)) as (client, contract):
        for asked in ({"gas": hex(10_000_000)}, {}):  # more than the cap, and none at all
            call = {"to": contract, "data": calldata("gas_left()"), **asked}
            (left,) = abi_decode(["uint256"], bytes.fromhex(
                (await client.result("eth_call", call, "latest"))[2:]
            ))  # fmt: skip
            assert 50_000 < left < 100_000 - 21_000
        spin = {"to": contract, "data": calldata("spin(uint256)", FOREVER), "gas": hex(10**7)}
        answer = await client.request("eth_estimateGas", spin)
        assert answer["error"]["message"] == "gas required exceeds allowance (100000)"
        answer = await client.request("eth_call", spin, "latest")
        assert answer["error"]["message"] == "out of gas"  # after 100k gas, not 10M


async def test_a_call_past_its_time_limit_is_aborted(open_chain: Any) -> None:
    limits = CallLimits(timeout_s=0.05)
    async with open_chain(call_limits=limits) as (client, contract):
        spin = {"to": contract, "data": calldata("spin(uint256)", FOREVER)}
        for method in ("eth_call", "eth_estimateGas"):
            answer = await client.request(method, spin, "latest")
            assert answer["error"] == {
                "code": -32000,
                "message": "execution aborted (timeout = 0.05s)",
            }
        # Mined transactions are never timed: this loop runs well past 0.05 s.
        receipt = await client.transact(calldata("bump(uint256)", 5_000), to=contract)
        assert receipt["status"] == "0x1"
        total = await client.result("eth_call", {"to": contract, "data": calldata("total()")})
        assert int(total, 16) == 1


def test_call_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="gas cap"):
        CallLimits(gas_cap=20_999)
    with pytest.raises(ValueError, match="time limit"):
        CallLimits(timeout_s=0)
    with pytest.raises(ValueError, match="time limit"):
        CallLimits(timeout_s=3601)


def test_guard_raises_past_its_deadline() -> None:
    now = [100.0]
    guard = CallGuard(2.5, clock=lambda: now[0])
    guard.check()
    now[0] = 102.5
    guard.check()  # at the deadline: still in time
    now[0] = 102.6
    with pytest.raises(CallTimeout, match=r"execution aborted \(timeout = 2.5s\)"):
        guard.check()


def test_guard_pauses_while_the_chain_thread_is_busy() -> None:
    gate = ChainThreadGate()
    guard = CallGuard(60.0, gate)
    events: list[str] = []
    gate.enter()
    gate.enter()  # two requests for the chain thread
    checker = threading.Thread(target=lambda: (guard.check(), events.append("call resumed")))
    checker.start()
    gate.leave()
    checker.join(0.05)
    assert checker.is_alive()  # one request left: still paused
    events.append("chain thread idle")
    gate.leave()
    checker.join(10)
    assert events == ["chain thread idle", "call resumed"]


# -- 3. calls beside transactions -----------------------------------------------------------


@pytest.fixture
def spin_started(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set when the chain starts executing an eth_call of ``spin``."""
    started = threading.Event()
    original = Engine.call

    def call(self: Engine, params: list[Any]) -> str:
        if params[0]["data"].startswith(calldata("spin(uint256)", 0)[:10]):
            started.set()
        return original(self, params)

    monkeypatch.setattr(Engine, "call", call)
    return started


async def test_a_transaction_is_not_queued_behind_a_running_call(
    open_chain: Any, spin_started: threading.Event
) -> None:
    # Long enough that the call is still running when the transaction is done, short enough
    # to keep the test quick: the call ends by its time limit.
    async with open_chain(call_limits=CallLimits(timeout_s=3)) as (client, contract):
        spin = {"to": contract, "data": calldata("spin(uint256)", FOREVER)}
        running = asyncio.create_task(client.request("eth_call", spin, "latest"))
        assert await asyncio.to_thread(spin_started.wait, 30)
        receipt = await client.transact(calldata("bump(uint256)", 0), to=contract)
        assert receipt["status"] == "0x1"
        assert int(await client.result("eth_blockNumber"), 16) == 2
        assert not running.done()  # the transaction and the read went first
        answer = await running
        assert answer["error"]["message"] == "execution aborted (timeout = 3s)"


async def test_stopping_the_chain_aborts_running_calls(
    tmp_path: Path, bytecode: str, spin_started: threading.Event
) -> None:
    async with aiohttp.ClientSession() as http:
        # A limit the call cannot reach in this test: only the stop can end it.
        async with open_devchain(tmp_path, call_limits=CallLimits(timeout_s=3600)) as chain:
            client = Client(chain.url, http, chain.account_keys[0])
            contract = await client.deploy(bytecode)
            spin = {"to": contract, "data": calldata("spin(uint256)", FOREVER)}
            running = asyncio.create_task(client.request("eth_call", spin, "latest"))
            assert await asyncio.to_thread(spin_started.wait, 30)
        answer = await running
    assert answer["error"] == {
        "code": -32000,
        "message": "execution aborted (the devchain is stopping)",
    }


# -- through the command line -----------------------------------------------------------------


def test_chain_serve_flags(tmp_path: Path, bytecode: str) -> None:
    plain = start_devchain(
        tmp_path,
        dev_methods=False,
        options=("--call-gas-cap", "1000000", "--call-timeout", "0.05"),
    )

    async def check() -> None:
        async with aiohttp.ClientSession() as http:
            client = Client(plain.url, http, plain.keys[0])
            contract = await client.deploy(bytecode)
            answer = await client.request("evm_mine")
            assert "start the chain with --dev-methods" in answer["error"]["message"]
            gas_left = {"to": contract, "data": calldata("gas_left()"), "gas": hex(10**7)}
            assert int(await client.result("eth_call", gas_left, "latest"), 16) < 1_000_000
            spin = {"to": contract, "data": calldata("spin(uint256)", FOREVER)}
            answer = await client.request("eth_call", spin, "latest")
            assert answer["error"]["message"] == "execution aborted (timeout = 0.05s)"

    try:
        asyncio.run(check())
    finally:
        plain.stop()
