"""The committee as the client sees it: one handle per node, connection slots, retries, budgets.

Theory of operation (spec/walrus-system.md 5, "Timeouts and retries (client)"). Every operation
starts from the committee the chain names; `NodePool.nodes` turns its members into `Node`
handles, each with a `NodeClient` on the client's one aiohttp session and a semaphore of
`max_node_connections` slots, kept across operations so that concurrent stores and reads share
each node's limit. A request holds a slot only while it is on the wire: backoff sleeps happen
outside it.

`retrying` re-sends a request the node refused for a reason that passes: NOT_REGISTERED (the node
has not yet seen the registration event), RESOURCE_EXHAUSTED (429) and UNAVAILABLE (503), with
jittered exponential backoff and a bounded number of retries. Anything else fails at once: a
connection refused or a timeout is a node that is down, which the quorum logic already tolerates.

`ByteBudget` bounds the bytes of sliver data in flight in uploads.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from walruspy.chain.api import ChainReader, ChainWriter
from walruspy.client.config import BackoffConfig, CommunicationConfig
from walruspy.client.errors import NoWalletError
from walruspy.core.committee import Committee, CommitteeMember
from walruspy.logs import get_logger
from walruspy.node_api.client import NodeClient
from walruspy.node_api.errors import (
    ForbiddenBlobError,
    MetadataNotFoundError,
    NotRegisteredError,
    SliverNotFoundError,
    TooManyRequestsError,
    UnavailableError,
)
from walruspy.workers import EncoderPool

T = TypeVar("T")

log = get_logger("walruspy.client.nodes")

#: Node answers that may turn into success if asked again a little later.
RETRYABLE_ERRORS = (NotRegisteredError, TooManyRequestsError, UnavailableError)
#: Node answers that mean "I do not have this blob" (counted towards "the blob does not exist").
NOT_FOUND_ERRORS = (MetadataNotFoundError, SliverNotFoundError)


@dataclass(eq=False, slots=True)
class Node:
    """One committee member: its position, its identity and shards, its client and its slots."""

    index: int
    member: CommitteeMember
    client: NodeClient
    slots: asyncio.Semaphore

    @property
    def weight(self) -> int:
        """The node's shard count."""
        return self.member.weight

    def __str__(self) -> str:
        return f"node {self.index} ({self.member.network_address})"

    async def call(self, request: Callable[[NodeClient], Awaitable[T]]) -> T:
        """Run one request while holding one of the node's connection slots."""
        async with self.slots:
            return await request(self.client)


@dataclass(slots=True)
class NodePool:
    """Node handles for the committees the client meets, cached by node ID and address."""

    session: aiohttp.ClientSession
    config: CommunicationConfig
    _nodes: dict[tuple[bytes, str, bytes], tuple[NodeClient, asyncio.Semaphore]] = field(
        default_factory=dict
    )

    def nodes(self, committee: Committee) -> list[Node]:
        """The committee's members as `Node`s, in committee order."""
        handles = []
        for index, member in enumerate(committee.members):
            key = (member.node_id, member.network_address, member.network_public_key)
            cached = self._nodes.get(key)
            if cached is None:
                client = NodeClient.for_member(
                    member, self.session, timeout_s=self.config.request_timeout_s
                )
                cached = (client, asyncio.Semaphore(self.config.max_node_connections))
                self._nodes[key] = cached
            handles.append(Node(index, member, cached[0], cached[1]))
        return handles


class Tails:
    """Requests that go on after their caller returned: upload fan-outs lingering for slower
    nodes once their store is certified, and reads that lost a race (`finish_quietly`)."""

    def __init__(self) -> None:
        # Each task, and whether closing the client cancels it rather than waiting for it.
        self._running: dict[asyncio.Task[Any], bool] = {}

    def __len__(self) -> int:
        return len(self._running)

    def keep(self, task: asyncio.Task[Any], *, cancel_on_close: bool = False) -> None:
        """Let `task` finish on its own (its linger or timeout bounds it); its outcome is only
        logged. With `cancel_on_close`, closing the client stops it instead of waiting."""
        self._running[task] = cancel_on_close
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._running.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.debug("a request left to finish failed", error=str(task.exception()))

    async def finish_quietly(self, request: Awaitable[T]) -> T:
        """`request`'s answer; if the caller gives up first, the request still runs to its end
        in the background. A node answer read to the end leaves its connection open for the
        next request, where one cancelled mid-answer closes it (and the next request to that
        node pays a new TCP and TLS handshake). For small answers only: the rest is read."""
        task = asyncio.ensure_future(request)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self.keep(task, cancel_on_close=True)
            raise

    async def settled(self) -> None:
        """Wait until every request left to finish has finished."""
        await asyncio.gather(*self._running, return_exceptions=True)

    async def close(self) -> None:
        """Wait for the upload tails still running (each ends with its linger); stop the rest."""
        for task, cancel in self._running.items():
            if cancel:
                task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)


@dataclass(slots=True)
class ClientEnv:
    """What every flow of one client needs: the chain, the nodes, the limits, the encoder."""

    chain: ChainReader
    writer: ChainWriter | None
    pool: NodePool
    config: CommunicationConfig
    encoder: EncoderPool
    rng: random.Random
    #: Bounds the sliver uploads in flight over all nodes.
    write_slots: asyncio.Semaphore
    #: Bounds the bytes of sliver data in flight in uploads.
    write_bytes: ByteBudget
    #: Uploads to the slower nodes that go on after a store returned (`detach_tails`).
    tails: Tails = field(default_factory=Tails)
    #: Whether a store returns once certified, leaving the uploads to the slower nodes to
    #: finish on their own (Walrus's detached tail handling: the daemon), or waits for them.
    detach_tails: bool = False
    #: Owned storage resources that stores of this client are registering on now: a
    #: concurrent store picks another one (`client/store.py`, step 2 of its module doc).
    claimed_storage: set[bytes] = field(default_factory=set)
    #: The System's `max_epochs_ahead`, fixed when it was deployed: read once (`epochs_limit`).
    _max_epochs_ahead: int | None = None

    async def epochs_limit(self) -> int:
        """The most epochs ahead a blob may be stored for (the System's `max_epochs_ahead`,
        a constant of the deployment: read on first use, then remembered)."""
        if self._max_epochs_ahead is None:
            self._max_epochs_ahead = (await self.chain.system_info()).max_epochs_ahead
        return self._max_epochs_ahead

    def require_writer(self, operation: str) -> ChainWriter:
        """The chain writer, or `NoWalletError` naming what needed it."""
        if self.writer is None:
            raise NoWalletError(
                f"{operation} sends a transaction, and this client has no wallet: set "
                "wallet_key_path in the client configuration's context"
            )
        return self.writer


class ByteBudget:
    """At most `limit` bytes held at once; one item larger than the limit runs alone."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a byte budget needs a positive limit, got {limit}")
        self.limit = limit
        self.used = 0
        self._changed = asyncio.Event()

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        """Hold `size` bytes of the budget while the block runs."""
        size = min(size, self.limit)
        while self.used + size > self.limit:
            self._changed.clear()
            await self._changed.wait()
        self.used += size
        try:
            yield
        finally:
            self.used -= size
            self._changed.set()


async def retrying(
    request: Callable[[], Awaitable[T]], backoff: BackoffConfig, rng: random.Random
) -> T:
    """Run `request`, retrying the answers in `RETRYABLE_ERRORS` with bounded backoff."""
    for attempt in range(backoff.max_retries):
        try:
            return await request()
        except RETRYABLE_ERRORS:
            # Jitter spreads the retries of many uploads to one lagging node.
            await asyncio.sleep(backoff.policy.jittered_s(attempt, rng))
    return await request()


def is_not_found(error: BaseException) -> bool:
    """Whether a node's failure says it does not have the blob."""
    return isinstance(error, NOT_FOUND_ERRORS)


def is_forbidden(error: BaseException) -> bool:
    """Whether a node refused to serve the blob (451: on its blocklist)."""
    return isinstance(error, ForbiddenBlobError)
