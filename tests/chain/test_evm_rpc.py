"""The chain client's plumbing against scripted nodes: errors, nonces, receipts, log paging.

What a real node rarely does on demand (refuse a nonce, drop a connection mid-send, never mine,
refuse a log range for its size) is scripted here with small fakes of web3's `eth` module; the
suite in test_evm_chain.py runs the same code against the devchain and anvil.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from eth_abi.abi import encode as abi_encode
from eth_account.typed_transactions import TypedTransaction
from eth_utils.address import to_checksum_address
from web3.exceptions import BadResponseFormat, ContractLogicError, TransactionNotFound, Web3RPCError

from walruspy.chain.api import (
    ChainRejectedError,
    ChainRevertError,
    ChainUnavailableError,
    InsufficientGasError,
)
from walruspy.chain.contracts import compile_contract
from walruspy.chain.events import (
    BlobCertified,
    BlobRegistered,
    ChallengeCertified,
    ChallengeScheduled,
    ChallengeStart,
    EpochChangeStart,
    EventCursor,
    InvalidBlobId,
)
from walruspy.chain.evm_events import BlockRef, EventDecoder, LogReader, event_topic
from walruspy.chain.evm_rpc import (
    KeepAliveHTTPProvider,
    TransactionSender,
    open_web3,
    revert_reason,
    rpc_errors,
)
from walruspy.core.blob_id import BlobId
from walruspy.tasks import gather_reads

pytestmark = pytest.mark.timeout(60)

URL = "http://node.test:8545"
KEY = bytes(range(1, 33))
SYSTEM = to_checksum_address("0x" + "5a" * 20)


def error_data(reason: str) -> str:
    return "0x08c379a0" + abi_encode(["string"], [reason]).hex()


def rpc_error(message: str, code: int = -32000) -> Web3RPCError:
    return Web3RPCError(message, rpc_response={"error": {"code": code, "message": message}})  # type: ignore[typeddict-item]


# -- revert reasons and error translation ---------------------------------------------------


def test_revert_reasons() -> None:
    assert revert_reason(error_data("storage too small")) == "storage too small"
    panic = "0x4e487b71" + abi_encode(["uint256"], [0x11]).hex()
    assert revert_reason(panic) == "panic 0x11"
    assert revert_reason(None, "execution reverted: not the owner") == "not the owner"
    assert revert_reason("0x08c379a0ff", "execution reverted") == "reverted without a reason"
    assert revert_reason(b"", "") == "reverted without a reason"


@pytest.mark.parametrize(
    ("raised", "expected", "text"),
    [
        (
            ContractLogicError("execution reverted: x", error_data("expired")),
            ChainRevertError,
            "expired",
        ),
        (
            rpc_error("header not found"),
            ChainUnavailableError,
            "answered an error: header not found",
        ),
        (aiohttp.ClientConnectionError("refused"), ChainUnavailableError, "cannot reach the node"),
        (TimeoutError(), ChainUnavailableError, "cannot reach the node: TimeoutError"),
        (BadResponseFormat("garbage"), ChainUnavailableError, "malformed answer"),
    ],
)
def test_rpc_errors_translate(raised: Exception, expected: type[Exception], text: str) -> None:
    with pytest.raises(expected, match=text) as caught, rpc_errors(URL, "read"):
        raise raised
    assert URL in str(caught.value) or isinstance(caught.value, ChainRevertError)
    assert caught.value.__cause__ is raised


# -- the provider under cancellation ---------------------------------------------------------


async def test_cancelled_requests_do_not_wedge_the_provider() -> None:
    """Requests cancelled at any moment leave later requests working (web3 issue #3867)."""
    assert isinstance(open_web3(URL).provider, KeepAliveHTTPProvider)

    async with chain_id_node() as w3:
        rng = random.Random(7)
        for _ in range(200):  # without the fix, this wedges within a few dozen rounds
            tasks = [asyncio.create_task(_chain_id(w3)) for _ in range(8)]
            await asyncio.sleep(rng.random() * 0.002)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        async with asyncio.timeout(10):
            assert await w3.eth.chain_id == 31337
            assert await gather_reads(_chain_id(w3), _chain_id(w3)) == [31337, 31337]


async def _chain_id(w3: Any) -> int:
    return int(await w3.eth.chain_id)


@contextlib.asynccontextmanager
async def chain_id_node(
    before: Callable[[web.Request], None] | None = None,
) -> AsyncIterator[Any]:
    """A JSON-RPC server answering every request with chain ID 31337, and a web3 on it.

    `before` sees each request first (to record or drop its connection).
    """

    async def answer(request: web.Request) -> web.Response:
        if before is not None:
            before(request)
        body = await request.json()
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": "0x7a69"})

    app = web.Application()
    app.router.add_post("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    w3 = open_web3(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}")  # type: ignore[union-attr]
    try:
        yield w3
    finally:
        await w3.provider.disconnect()
        await runner.cleanup()


async def test_gather_reads_raises_the_first_failure_and_stops_the_rest() -> None:
    finished: list[str] = []

    async def slow() -> None:
        await asyncio.sleep(5)
        finished.append("slow")

    async def failing() -> None:
        raise ChainUnavailableError("node gone")

    with pytest.raises(ChainUnavailableError, match="node gone"):
        await gather_reads(slow(), failing())
    assert finished == []
    assert await gather_reads(asyncio.sleep(0, "a"), asyncio.sleep(0, "b")) == ["a", "b"]


# -- the transaction sender -----------------------------------------------------------------


class FakeEth:
    """web3's `eth` module as TransactionSender uses it, with scripted failures."""

    def __init__(self) -> None:
        self.chain_nonce = 0
        self.sent: list[dict[str, Any]] = []
        self.send_failures: list[Exception] = []
        self.status = 1
        self.gas_used = 21_000
        self.mined = True
        self.replay: Exception | None = None

    async def get_balance(self, address: str) -> int:
        return 12_345

    async def get_transaction_count(self, address: str, block: str) -> int:
        assert block == "pending"
        return self.chain_nonce

    async def get_block(self, tag: str) -> dict[str, int]:
        return {"baseFeePerGas": 7, "timestamp": 0}

    @property
    def max_priority_fee(self) -> Any:
        async def tip() -> int:
            return 2

        return tip()

    async def send_raw_transaction(self, raw: bytes) -> bytes:
        await asyncio.sleep(0)  # let other senders run, as a real round trip would
        if self.send_failures:
            raise self.send_failures.pop(0)
        tx = TypedTransaction.from_bytes(raw).as_dict()
        if tx["nonce"] != self.chain_nonce:
            raise rpc_error(f"nonce too low: next nonce {self.chain_nonce}")
        self.chain_nonce += 1
        self.sent.append(tx)
        return tx["nonce"].to_bytes(32, "big")

    async def get_transaction_receipt(self, tx_hash: str) -> dict[str, Any]:
        if not self.mined:
            raise TransactionNotFound("not yet")
        return {"status": self.status, "gasUsed": self.gas_used, "blockNumber": 9, "logs": []}

    async def call(self, tx: dict[str, Any], block_identifier: int) -> bytes:
        assert block_identifier == 8  # the state before the receipt's block
        if self.replay is not None:
            raise self.replay
        return b""


class FakeWeb3:
    def __init__(self) -> None:
        self.eth = FakeEth()


def sender(w3: FakeWeb3, receipt_timeout_s: float = 5.0) -> TransactionSender:
    return TransactionSender(w3, URL, KEY, 31337, receipt_timeout_s)  # type: ignore[arg-type]


async def send(s: TransactionSender, gas: int = 50_000) -> Any:
    return await s.send("op", to=SYSTEM, data=b"\x01", gas=gas)


async def test_concurrent_sends_take_consecutive_nonces_in_order() -> None:
    w3 = FakeWeb3()
    w3.eth.chain_nonce = 40
    await send(sender(w3))  # another client instance of the account first
    s = sender(w3)
    await asyncio.gather(*(send(s) for _ in range(12)))
    nonces = [tx["nonce"] for tx in w3.eth.sent]
    assert nonces == list(range(40, 53))
    tx = w3.eth.sent[-1]
    assert (tx["maxFeePerGas"], tx["maxPriorityFeePerGas"], tx["gas"]) == (2 * 7 + 2, 2, 50_000)
    assert tx["chainId"] == 31337 and tx["type"] == 2


async def test_a_wrong_nonce_is_re_read_a_bounded_number_of_times() -> None:
    w3 = FakeWeb3()
    s = sender(w3)
    await send(s)
    w3.eth.chain_nonce += 3  # another client used the account meanwhile
    await send(s)
    assert [tx["nonce"] for tx in w3.eth.sent] == [0, 4]
    w3.eth.send_failures = [rpc_error("nonce too low")] * 3
    with pytest.raises(ChainRejectedError, match="op: refused by the node: nonce too low"):
        await send(s)
    await send(s)  # re-reads again afterwards
    assert w3.eth.sent[-1]["nonce"] == 5


async def test_refusals_and_lost_connections() -> None:
    w3 = FakeWeb3()
    s = sender(w3)
    w3.eth.send_failures = [rpc_error("replacement transaction underpriced")]
    with pytest.raises(ChainRejectedError, match="underpriced") as refused:
        await send(s)
    assert refused.value.operation == "op"
    # A refusal for want of funds names the account, its balance and the most the gas costs
    # (gas limit x fee cap): py-evm's wording (the devchain), then geth's and anvil's.
    for message in (
        "Sender b'\\x96f.L' cannot afford txn gas 2000 with account balance 0",
        "insufficient funds for gas * price + value",
    ):
        w3.eth.send_failures = [rpc_error(message)]
        with pytest.raises(InsufficientGasError) as poor:
            await send(s)
        assert poor.value.address == s.address and poor.value.balance_wei == 12_345
        assert poor.value.needed_wei > 0 and poor.value.operation == "op"
        assert f"account {s.address} cannot pay for gas: it holds 12345 wei" in str(poor.value)
        assert "b'" not in str(poor.value)
    w3.eth.send_failures = [aiohttp.ServerDisconnectedError()]
    with pytest.raises(ChainUnavailableError, match=r"node\.test:8545: op: send: cannot reach"):
        await send(s)
    w3.eth.chain_nonce = 7  # whatever the node did with it, the next send asks again
    await send(s)
    assert w3.eth.sent[-1]["nonce"] == 7


async def test_no_receipt_within_the_timeout() -> None:
    w3 = FakeWeb3()
    w3.eth.mined = False
    with pytest.raises(ChainUnavailableError, match=r"has no receipt after 0\.05 s"):
        await send(sender(w3, receipt_timeout_s=0.05))


@pytest.mark.parametrize(
    ("replay", "gas_used", "reason"),
    [
        (ContractLogicError("execution reverted", error_data("unpaid")), 30_000, "unpaid"),
        (None, 50_000, "out of gas (limit 50000)"),
        (None, 30_000, "the replay succeeded"),
        (rpc_error("missing trie node"), 30_000, "missing trie node"),
    ],
)
async def test_reverted_receipts_are_replayed_for_the_reason(
    replay: Exception | None, gas_used: int, reason: str
) -> None:
    w3 = FakeWeb3()
    w3.eth.status, w3.eth.gas_used, w3.eth.replay = 0, gas_used, replay
    with pytest.raises(ChainRevertError) as caught:
        await send(sender(w3))
    assert reason in caught.value.reason and caught.value.operation == "op"


# -- events from logs -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def system_abi() -> list[dict[str, Any]]:
    """System's ABI and Challenges' (whose logs the reader also decodes)."""
    return compile_contract("System")[0] + compile_contract("Challenges")[0]


class LogFactory:
    """System logs encoded by the ABI, as eth_getLogs returns them."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self.events = {e["name"]: e for e in abi if e["type"] == "event"}

    def __call__(self, name: str, block: int, index: int, **values: Any) -> dict[str, Any]:
        entry = self.events[name]
        topics = [event_topic(entry)]
        topics += [
            abi_encode([i["type"]], [values[i["name"]]]) for i in entry["inputs"] if i["indexed"]
        ]
        data_inputs = [i for i in entry["inputs"] if not i["indexed"]]
        data = abi_encode(
            [i["type"] for i in data_inputs], [values[i["name"]] for i in data_inputs]
        )
        return {
            "address": SYSTEM,
            "blockNumber": block,
            "logIndex": index,
            "topics": topics,
            "data": data,
            "transactionHash": bytes([block, index]) * 16,
            "blockHash": block_hash_of(block),
        }


def block_hash_of(number: int) -> bytes:
    """The hash of block `number` on the fake chain of these tests."""
    return number.to_bytes(32, "big")


def tip(number: int) -> BlockRef:
    """Block `number` as the reader's tip."""
    return BlockRef(number, block_hash_of(number))


class FakeLogs:
    """eth_getLogs over a fixed list, refusing ranges wider than `max_span` blocks; blocks and
    logs are read from the JSON-RPC answers themselves (`evm_rpc.block_header`, `raw_logs`)."""

    def __init__(self, logs: list[dict[str, Any]], max_span: int) -> None:
        self.logs = logs
        self.max_span = max_span
        self.queries: list[tuple[int, int]] = []
        self.blocks_read: list[int] = []
        self.fail: Web3RPCError | None = None

    async def make_request(self, method: str, params: list[Any]) -> dict[str, Any]:
        if method == "eth_getLogs":
            return self._get_logs(params[0])
        assert method == "eth_getBlockByNumber" and params[1] is False
        number = int(params[0], 16)
        self.blocks_read.append(number)
        block = {"number": hex(number), "hash": "0x" + block_hash_of(number).hex()}
        return {"jsonrpc": "2.0", "id": 1, "result": block | {"timestamp": "0x0"}}

    def _get_logs(self, query: dict[str, Any]) -> dict[str, Any]:
        low, high = int(query["fromBlock"], 16), int(query["toBlock"], 16)
        self.queries.append((low, high))
        if self.fail is not None:
            return {"jsonrpc": "2.0", "id": 1, **(self.fail.rpc_response or {})}
        if high - low + 1 > self.max_span:
            error = {"code": -32005, "message": "query exceeds max block range"}
            return {"jsonrpc": "2.0", "id": 1, "error": error}
        found = [log for log in self.logs if low <= log["blockNumber"] <= high]
        encoded = [
            {
                "address": log["address"],
                "topics": ["0x" + bytes(topic).hex() for topic in log["topics"]],
                "data": "0x" + bytes(log["data"]).hex(),
                "blockNumber": hex(log["blockNumber"]),
                "logIndex": hex(log["logIndex"]),
                "transactionHash": "0x" + log["transactionHash"].hex(),
                "blockHash": "0x" + log["blockHash"].hex(),
            }
            for log in reversed(found)  # any order: the reader sorts
        ]
        return {"jsonrpc": "2.0", "id": 1, "result": encoded}


def reader_over(logs: FakeLogs, abi: Any, start_block: int = 0, span: int = 64) -> LogReader:
    w3: Any = type("W3", (), {"eth": logs, "provider": logs})()
    decoder = EventDecoder(abi)
    return LogReader(w3, URL, SYSTEM, decoder, start_block=start_block, max_span_blocks=span)


def sample_logs(make: LogFactory) -> list[dict[str, Any]]:
    blob = bytes(range(32))
    logs = [make("EpochChangeStart", 3, 0, epoch=1)]
    for block in range(10, 200, 7):
        logs.append(
            make(
                "BlobRegistered",
                block,
                0,
                epoch=1,
                blob_id=blob,
                size=block,
                encoding_type=1,
                end_epoch=5,
                deletable=True,
                object_id=bytes(32),
            )
        )
        logs.append(
            make(
                "ObjectTransferred",
                block,
                1,
                object_id=bytes(32),
                from_owner="0x" + "00" * 20,
                to_owner=SYSTEM,
            )
        )
        logs.append(
            make(
                "BlobCertified",
                block,
                2,
                epoch=1,
                blob_id=blob,
                end_epoch=5,
                deletable=True,
                object_id=bytes(32),
                is_extension=False,
            )
        )
    logs.append(make("InvalidBlobID", 250, 3, epoch=1, blob_id=blob))
    return logs


async def test_decoding_paging_and_resuming(system_abi: Any) -> None:
    make = LogFactory(system_abi)
    logs = FakeLogs(sample_logs(make), max_span=5)
    everything = await reader_over(logs, system_abi).read(EventCursor(), 10_000, tip(260))
    assert len(everything) == 1 + 2 * 28 + 1
    keys = [(e.event_id.block_number, e.event_id.log_index) for e in everything]
    assert keys == sorted(set(keys))
    first, registered, certified, last = everything[0], everything[1], everything[2], everything[-1]
    assert isinstance(first, EpochChangeStart) and first.epoch == 1
    assert isinstance(registered, BlobRegistered) and registered.size == 10
    assert registered.blob_id == BlobId(bytes(range(32))) and registered.event_id.tx_hash
    assert isinstance(certified, BlobCertified) and not certified.is_extension
    assert isinstance(last, InvalidBlobId) and last.event_id.block_number == 250
    assert max(high - low + 1 for low, high in logs.queries) <= 64
    # a fresh reader per page, resuming after the last event, sees each event once
    seen, cursor = [], EventCursor()
    while page := await reader_over(logs, system_abi).read(cursor, 3, tip(260)):
        seen.extend(page)
        cursor = page[-1].event_id.cursor_after
    assert seen == everything
    inside = await reader_over(logs, system_abi).read(EventCursor(10, 1), 2, tip(260))
    assert [(e.event_id.block_number, e.event_id.log_index) for e in inside] == [(10, 2), (17, 0)]


async def test_challenge_events_are_decoded_in_order_with_the_others(system_abi: Any) -> None:
    make = LogFactory(system_abi)
    seed, node_id = bytes(range(32)), bytes(range(32, 64))
    logs = [
        make("EpochChangeStart", 3, 0, epoch=2),
        make("ChallengeScheduled", 4, 0, epoch=2, seed_block=5),
        make("ChallengeStart", 6, 0, epoch=2, seed=seed),
        make("ChallengeCertified", 7, 0, epoch=2, node_id=node_id, blobs_checked=640),
    ]
    events = await reader_over(FakeLogs(logs, 1000), system_abi).read(EventCursor(), 10, tip(10))
    assert [type(e) for e in events] == [
        EpochChangeStart,
        ChallengeScheduled,
        ChallengeStart,
        ChallengeCertified,
    ]
    scheduled, started, certified = events[1], events[2], events[3]
    assert isinstance(scheduled, ChallengeScheduled) and scheduled.seed_block == 5
    assert isinstance(started, ChallengeStart) and isinstance(certified, ChallengeCertified)
    assert (started.epoch, started.seed, started.event_id.block_number) == (2, seed, 6)
    assert type(started.seed) is bytes and type(certified.node_id) is bytes
    assert (certified.epoch, certified.node_id, certified.blobs_checked) == (2, node_id, 640)


async def test_the_next_block_proves_the_last_one_scanned_by_its_parent_hash(
    system_abi: Any,
) -> None:
    """A poller reads each new block as it comes: the tip's parent hash shows the block it
    scanned last is still on the chain, so it is not asked for again; a tip whose parent is
    another block is a reorganisation, and the reader checks its cursor as usual."""
    logs = FakeLogs(sample_logs(LogFactory(system_abi)), max_span=1000)
    reader = reader_over(logs, system_abi)
    everything = await reader.read(EventCursor(), 10_000, tip(260))
    cursor = everything[-1].event_id.cursor_after
    after = BlockRef(261, block_hash_of(261), parent_hash=block_hash_of(260))
    assert await reader.read(cursor, 10, after) == []
    assert logs.blocks_read == [] and logs.queries[-1] == (261, 261)
    forked = BlockRef(262, b"\x01" * 32, parent_hash=b"\x02" * 32)
    await reader.read(cursor, 10, forked)
    assert logs.blocks_read == [cursor.block_number]  # the cursor's block, checked by hash


async def test_a_polling_reader_does_not_rescan_blocks(system_abi: Any) -> None:
    make = LogFactory(system_abi)
    logs = FakeLogs(sample_logs(make), max_span=1000)
    reader = reader_over(logs, system_abi)
    everything = await reader.read(EventCursor(), 10_000, tip(252))
    cursor = everything[-1].event_id.cursor_after
    logs.queries.clear()
    assert await reader.read(cursor, 10_000, tip(252)) == []
    assert logs.queries == [], "an idle poll asked for logs it had already scanned"
    logs.logs.append(make("InvalidBlobID", 254, 0, epoch=1, blob_id=bytes(32)))
    assert await reader.read(cursor, 10_000, tip(253)) == []
    assert logs.queries == [(253, 253)]
    (new,) = await reader.read(cursor, 10_000, tip(255))
    assert new.event_id.block_number == 254 and logs.queries[-1] == (254, 255)
    # a cursor other than the one the reader led to (a restart, a truncated page) rescans
    logs.queries.clear()
    again = await reader.read(EventCursor(250), 10_000, tip(255))
    assert len(again) == 2 and logs.queries == [(250, 255)]
    truncated = await reader.read(EventCursor(), 1, tip(255))
    assert len(truncated) == 1
    logs.queries.clear()
    rest = await reader.read(truncated[0].event_id.cursor_after, 10_000, tip(255))
    assert len(rest) == len(everything) and logs.queries[0][0] == 3


async def test_spans_halve_on_refusal_and_grow_back(system_abi: Any) -> None:
    logs = FakeLogs(sample_logs(LogFactory(system_abi)), max_span=4)
    reader = reader_over(logs, system_abi, span=32)
    await reader.read(EventCursor(), 10_000, tip(260))
    spans = [high - low + 1 for low, high in logs.queries]
    assert spans[:4] == [32, 16, 8, 4]  # refused three times, then accepted
    assert 8 in spans[4:]  # after a success the span doubles and is refused again
    logs.max_span = 1000
    logs.queries.clear()
    await reader.read(EventCursor(), 10_000, tip(260))
    assert max(high - low + 1 for low, high in logs.queries) == 32


async def test_log_reader_edges(system_abi: Any) -> None:
    logs = FakeLogs(sample_logs(LogFactory(system_abi)), max_span=1000)
    assert (
        await reader_over(logs, system_abi, start_block=300).read(EventCursor(), 5, tip(260)) == []
    )
    assert logs.queries == []  # nothing to ask below the deployment block or past the head
    with pytest.raises(ValueError, match="limit must be positive"):
        await reader_over(logs, system_abi).read(EventCursor(), 0, tip(260))
    logs.fail = rpc_error("internal error", code=-32603)
    with pytest.raises(ChainUnavailableError, match="read events"):
        await reader_over(logs, system_abi).read(EventCursor(), 5, tip(260))
    logs.fail = None
    logs.logs.append(
        {**logs.logs[0], "blockNumber": 255, "topics": logs.logs[0]["topics"] + [b"x" * 32]}
    )
    with pytest.raises(ChainUnavailableError, match="undecodable log at block 255"):
        await reader_over(logs, system_abi).read(EventCursor(251), 5, tip(260))


def test_decoder_checks_the_abi_against_the_event_types(system_abi: Any) -> None:
    def renamed(entry: dict[str, Any]) -> dict[str, Any]:
        if entry.get("name") != "EpochChangeDone":
            return entry
        inputs = [{**i, "name": "era"} if i["name"] == "epoch" else i for i in entry["inputs"]]
        return {**entry, "inputs": inputs}

    with pytest.raises(ValueError, match="event EpochChangeDone has fields"):
        EventDecoder([renamed(e) for e in system_abi])
    with pytest.raises(ValueError, match="no event BlobDeleted"):
        EventDecoder([e for e in system_abi if e.get("name") != "BlobDeleted"])


async def test_the_provider_keeps_connections_and_retries_reads_only() -> None:
    """Reads share one connection, and a dropped one costs a read a retry; a send goes on a
    connection of its own (never a pooled one the node may have closed) and is not retried."""
    peers: list[object] = []
    drop_next = False

    def watch(request: web.Request) -> None:
        nonlocal drop_next
        peers.append(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        if drop_next:
            drop_next = False
            request.transport.close()  # type: ignore[union-attr]

    async with chain_id_node(watch) as w3:
        for _ in range(20):
            assert await _chain_id(w3) == 31337
        assert len(set(peers)) == 1, "every request opened a connection of its own"
        drop_next = True
        assert await _chain_id(w3) == 31337  # retried on a new connection
        send = w3.provider.make_request
        peers.clear()
        for _ in range(2):
            await send("eth_sendRawTransaction", ["0x00"])
            await _chain_id(w3)
        assert len(set(peers)) == 3, "sends used the reads' pooled connection"
        drop_next = True
        with pytest.raises(aiohttp.ClientConnectionError):
            await send("eth_sendRawTransaction", ["0x00"])
