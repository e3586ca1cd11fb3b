"""An in-process network for client tests: the node tests' cluster and fake chain, and a client.

`open_network` starts storage nodes (real `StorageNode`s serving their aiohttp API on 127.0.0.1)
over the fake chain of `tests/node/fakes.py`, and `network.client()` opens a `WalrusClient` on
them with test-speed limits. Fault injection: `stop`/`start` a node, `lie_about_slivers` makes a
node serve corrupted slivers, `refuse_slivers` makes it answer "not found" for one axis.

`ThreadedNetwork` runs the same network on an event loop in a background thread, for tests of the
synchronous CLI: the CLI's own `asyncio.run` then talks to the nodes over HTTP and to the fake
chain through `LoopBoundChain`, which runs each chain call on the network's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tests.node.cluster import Cluster, ClusterNode, open_cluster
from tests.node.fakes import FakeChain
from walruspy.chain.deploy import DEPLOYMENT_FORMAT, Deployment
from walruspy.client import WalrusClient, open_client
from walruspy.client.config import BackoffConfig, CommunicationConfig, ContextConfig
from walruspy.core.types import SliverType
from walruspy.node_api import errors as api_errors
from walruspy.workers import EncoderPool

ADDRESS = "0x" + "22" * 20

#: Limits for tests: fast retries, short timeouts, no lingering beyond a fraction of a second.
TEST_COMMUNICATION = CommunicationConfig(
    request_timeout_s=10.0,
    status_timeout_s=5.0,
    store_timeout_s=60.0,
    read_timeout_s=60.0,
    sliver_write_extra_time_base_s=0.05,
    backoff=BackoffConfig(min_backoff_s=0.01, max_backoff_s=0.1, max_retries=40),
)

DEPLOYMENT_JSON = {
    "format": DEPLOYMENT_FORMAT,
    "chain_id": 31337,
    "contracts": {
        "system": ADDRESS,
        "wal": ADDRESS,
        "committee": ADDRESS,
        "challenges": ADDRESS,
        "attributes": ADDRESS,
        "shared_blobs": ADDRESS,
    },
    "deployer": ADDRESS,
    "start_block": 0,
    "abi_digest": "0" * 64,
}


def make_context(**overrides: Any) -> ContextConfig:
    """A context whose chain is never dialled (tests pass the fake chain to open_client)."""
    context = ContextConfig(
        name="test",
        rpc_urls=("http://127.0.0.1:1",),
        deployment=Deployment.from_json(DEPLOYMENT_JSON),
        communication=TEST_COMMUNICATION,
        encoder_workers=0,
    )
    return replace(context, **overrides)


@dataclass
class Network:
    """A cluster of nodes over the fake chain, with fault injection."""

    cluster: Cluster

    @property
    def chain(self) -> FakeChain:
        return self.cluster.chain

    @property
    def nodes(self) -> list[ClusterNode]:
        return self.cluster.nodes

    @contextlib.asynccontextmanager
    async def client(self, **overrides: Any) -> AsyncIterator[WalrusClient]:
        """A client on this network (no wallet needed: the fake chain is a ChainWriter)."""
        async with open_client(
            make_context(**overrides),
            chain=self.chain,
            session=self.cluster.session,
            encoder=EncoderPool(0),
        ) as client:
            yield client

    async def stop(self, *indices: int) -> None:
        for index in indices:
            await self.cluster.stop(self.nodes[index])

    async def start(self, *indices: int) -> None:
        for index in indices:
            await self.cluster.start(self.nodes[index])

    async def settle(self) -> None:
        """Let every running node apply the chain's events so far."""
        await self.cluster.wait_for_events()

    def lie_about_slivers(self, index: int) -> None:
        """Node `index` serves every sliver with its first byte flipped."""
        service = self._service(index)
        honest = service.get_sliver

        async def lying(*args: Any) -> bytes:
            raw = bytearray(await honest(*args))
            # BCS SliverData: length prefix, data, then symbol size and index (2 bytes each).
            raw[len(raw) // 2] ^= 0xFF
            raw[-5] ^= 0xFF
            return bytes(raw)

        service.get_sliver = lying  # type: ignore[method-assign]

    def refuse_slivers(self, index: int, sliver_type: SliverType) -> None:
        """Node `index` answers SLIVER_NOT_FOUND for every sliver of `sliver_type`."""
        service = self._service(index)
        honest = service.get_sliver

        async def refusing(blob_id: Any, pair: Any, wanted: SliverType) -> bytes:
            if wanted is sliver_type:
                raise api_errors.SliverNotFoundError()
            return await honest(blob_id, pair, wanted)

        service.get_sliver = refusing  # type: ignore[method-assign]

    def _service(self, index: int) -> Any:
        node = self.nodes[index].node
        assert node is not None and node.service is not None
        return node.service


@contextlib.asynccontextmanager
async def open_network(
    tmp_path: Path, shard_counts: Sequence[int] = (3, 3, 2, 2)
) -> AsyncIterator[Network]:
    """Nodes holding `shard_counts` shards over a fake chain."""
    async with open_cluster(tmp_path, shard_counts) as cluster:
        yield Network(cluster)


class LoopBoundChain:
    """A proxy running every async call of a chain on the loop that owns it (another thread)."""

    def __init__(self, chain: FakeChain, loop: asyncio.AbstractEventLoop) -> None:
        self._chain = chain
        self._loop = loop
        self.address = chain.address

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self._chain, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            future = asyncio.run_coroutine_threadsafe(method(*args, **kwargs), self._loop)
            return await asyncio.wrap_future(future)

        return call


class ThreadedNetwork:
    """A `Network` running on its own event loop in a background thread."""

    def __init__(self, tmp_path: Path, shard_counts: Sequence[int] = (3, 3, 2, 2)) -> None:
        self._tmp_path = tmp_path
        self._shard_counts = shard_counts
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._stop: asyncio.Event | None = None
        self._done: Future[None] | None = None
        self.network: Network | None = None

    def run(self, coroutine: Awaitable[Any]) -> Any:
        """Run a coroutine on the network's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=120)  # type: ignore[arg-type]

    def __enter__(self) -> ThreadedNetwork:
        self._thread.start()
        ready: Future[Network] = Future()

        async def serve() -> None:
            self._stop = asyncio.Event()
            try:
                async with open_network(self._tmp_path, self._shard_counts) as network:
                    ready.set_result(network)
                    await self._stop.wait()
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                raise

        self._done = asyncio.run_coroutine_threadsafe(serve(), self.loop)
        self.network = ready.result(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None and self._done is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._done.result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    @property
    def chain(self) -> LoopBoundChain:
        assert self.network is not None
        return LoopBoundChain(self.network.chain, self.loop)


@contextlib.contextmanager
def threaded_network(tmp_path: Path) -> Iterator[ThreadedNetwork]:
    """A `ThreadedNetwork`, stopped on exit."""
    with ThreadedNetwork(tmp_path) as network:
        yield network
