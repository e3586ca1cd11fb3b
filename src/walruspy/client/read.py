"""Reading a blob: verified metadata, then verified slivers of one axis, then decode and check.

Theory of operation (spec/walrus-system.md 1.3, 2.2 and 5; Walrus `retrieve_metadata`,
`request_slivers_and_decode` and `read_committee`):

1. Metadata. Nodes are asked in random order, `max_concurrent_metadata_reads` at a time; the
   first answer that verifies against the blob ID and the committee's shard count wins (a lying
   node cannot pass off other metadata: the blob ID is a hash of it). If nodes holding a quorum
   of shards answer "not found" (or "forbidden"), the blob does not exist (or is blocked). This
   is Walrus's code (`committees.is_quorum(n_not_found + n_forbidden)`); its doc comment and our
   spec say f+1, but a quorum is what keeps a certified blob readable while up to f faulty and
   f lagging honest nodes deny it. With fewer, `NoMetadataReceivedError` says who failed how.
   The reads that lose the race are read to their end unseen (`Tails.finish_quietly`): one
   cancelled mid-answer closes its connection, and the next read from that node would pay a
   new TLS handshake (two per read of a 1 MiB blob, measured).
2. Slivers. Primary slivers are requested by sliver index, so the systematic ones (0..n-2f-1,
   which decode without any Reed-Solomon work) come first; each is verified against the
   metadata as it arrives (a corrupted sliver fails the Merkle check and is counted as that
   node's failure) and the fan-out stops once n-2f have verified. Requests to a node go through
   its connection slots; `max_concurrent_sliver_reads` (default n-2f) are in flight at once, and
   a failed request makes room for the next sliver. Once n-2f have verified, the read waits a
   little (`MAX_SOURCE_WAIT_S` at most, less for smaller blobs) for source slivers still in
   flight, when some are missing: decoding from the source slivers is a copy, from any other set
   a Reed-Solomon decode of the whole blob (about a second for 100 MiB here).
3. Decode and check (`walruspy.core.decoding`), off the event loop: the Default check re-cuts
   the primary slivers not received and compares their hashes with the metadata; Strict
   re-encodes the whole blob. A failure is `InconsistentBlobError`: the data is never returned.
4. If too few primary slivers verify, the same is done with secondary slivers (n-f needed);
   only if nodes of a quorum of shards deny having those too is the blob reported not found.
   Before a read reports "not found" or "too few slivers", it asks for the blob's verified
   status (unless step 5 already did): nodes drop an invalid blob's data, so a blob marked
   invalid is reported as such.
5. Committees (spec/walrus-system.md 1.3 step 2, 2.2, and 5 "Epoch change"; Walrus
   `ActiveCommittees::read_committee`, `get_blob_status_and_certified_epoch`). Between
   EpochChangeStart and EpochChangeDone the new committee is still pulling its shards from the
   old owners, which keep serving them. So while `EpochCommittees.changing`, a blob certified
   before the current epoch is read from the previous committee first, then, if that fails in
   a way another committee could fix (metadata or slivers missing or unreachable, a quorum
   denying the blob), from the current one; a blob certified in the current epoch, and every
   read outside a change, from the current committee alone (`read_committees`). Walrus reads
   the one committee `read_committee` names and retries such failures after refreshing its
   committees (`retry_if_error_epoch_change`); trying the current committee next is that retry
   without the wait. If every committee fails, the last one's error is raised, with the
   earlier failure attached as a note.
   The certified epoch is the verified status's `initial_certified_epoch`. As in Walrus, the
   status is asked of the current committee only during a change (and only when there is a
   distinct previous committee), so a read outside a change costs no extra round trip; with
   no verified status, or a blob not certified, the current committee is read. A status
   "marked invalid" ends the read at once, and is reused by step 4. Unlike Walrus, a
   "nonexistent" status does not end it early: the committee's own quorum of denials reports
   that, so a read answers the same whether or not a change is underway.
6. Why not found. Nodes forget a blob once it expires or is deleted, but the chain keeps its
   history: before a read reports "not found", it reads the events that name the blob ID
   (`ChainReader.blob_events`) and says which it was (`absence`, pure): expired (with the
   epoch its storage ended, `BlobExpiredError`), deleted by its owners, registered but never
   certified, or never registered at all. A chain that cannot answer leaves the plain error.
7. Byte ranges and streams (spec/encoding.md 3, spec/walrus-system.md 1.3 step 6; Walrus
   `ByteRangeReadClient` and the aggregator's `/v1alpha/blobs/{id}/stream`). Primary source
   sliver r is row r of the blob, so `locate_blob` fetches only the verified metadata (the
   blob's size, and what every sliver is checked against) and `BlobReader.chunks` then fetches
   only the source rows holding the bytes asked for, in order, a bounded window ahead, each
   verified against the metadata, and cuts the bytes from them. A row whose node fails (in each
   committee to read from) is rebuilt from the decoding symbols of n-f secondary slivers and
   checked against its metadata hash (`rebuild_sliver`; Walrus recovers such slivers too).
   For the whole blob this is what a full read from the source rows checks (with every source
   row received, the Default check has nothing left to re-cut; padding-only rows are skipped);
   a part of a blob is checked only sliver by sliver: Walrus's docs warn that a range of an
   inconsistently encoded blob may return data a full read would refuse. Strict checks need
   the whole blob and are not offered on these paths.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from walruspy.chain.api import ChainError, EpochCommittees
from walruspy.chain.events import BlobCertified, BlobDeleted, BlobRegistered, ChainEvent
from walruspy.client.errors import (
    BlobBlockedError,
    BlobExpiredError,
    BlobInvalidError,
    BlobNotFoundError,
    BlobTooLargeError,
    InconsistentBlobError,
    InvalidArgumentError,
    NoMetadataReceivedError,
    NotEnoughSliversError,
    NoValidStatusError,
)
from walruspy.client.nodes import ClientEnv, Node, is_forbidden, is_not_found
from walruspy.client.results import Progress, ProgressCallback, VerifiedStatus
from walruspy.client.status import verified_status
from walruspy.core import errors as core_errors
from walruspy.core.blob_id import BlobId
from walruspy.core.committee import Committee
from walruspy.core.decoding import (
    ConsistencyCheck,
    decode_blob,
    primary_rows_of_range,
    slice_of_row,
)
from walruspy.core.errors import VerificationError
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.rs import decode_source
from walruspy.core.slivers import SliverData, VerifiedSliver, expected_sliver_length
from walruspy.core.types import (
    SliverIndex,
    SliverPairIndex,
    SliverType,
    pair_index_of_sliver,
    shard_of_pair,
)
from walruspy.node_api.client import NodeClient
from walruspy.node_api.decoding_symbols import DecodingSymbol
from walruspy.node_api.errors import SliverNotFoundError
from walruspy.node_api.fanout import Fanout, NodeRequest, gather_weight
from walruspy.node_api.paths import MAX_BATCH_READ_SLIVERS, DecodingSymbolsQuery
from walruspy.node_api.schemas import Invalid

T = TypeVar("T")

#: Reed-Solomon decoding speed from non-source slivers, measured here (100 MiB in 0.7-0.9 s):
#: a read waits at most what such a decode would cost for the source slivers still in flight.
DECODE_BYTES_PER_S = 150e6
#: The longest a read waits for source slivers after enough others have verified.
MAX_SOURCE_WAIT_S = 1.0


@dataclass(frozen=True, slots=True)
class SliverGroup:
    """One request for slivers: which node, which pairs, which axis (a fan-out key)."""

    node: Node
    pairs: tuple[SliverPairIndex, ...]
    sliver_type: SliverType

    def __str__(self) -> str:
        pairs = ", ".join(str(pair) for pair in self.pairs[:4])
        more = f" and {len(self.pairs) - 4} more" if len(self.pairs) > 4 else ""
        plural = "s" if len(self.pairs) > 1 else ""
        return f"{self.node}, {self.sliver_type.value} sliver{plural} of pair{plural} {pairs}{more}"


def _failed_weight(fanout: Fanout[Any, Any], test: Callable[[BaseException], bool]) -> int:
    return sum(failure.weight for failure in fanout.failures if test(failure.error))


def _denial(fanout: Fanout[Any, Any], committee: Committee) -> BlobNotFoundError | None:
    """`BlobNotFoundError` (or blocked) if a quorum of shards denies having the blob."""
    not_found = _failed_weight(fanout, is_not_found)
    forbidden = _failed_weight(fanout, is_forbidden)
    if not committee.is_quorum(not_found + forbidden):
        return None
    if forbidden > not_found:
        return BlobBlockedError(f"nodes of {forbidden} shards refuse to serve this blob (451)")
    denied_by = f"nodes of {not_found} of {committee.n_shards} shards"
    return BlobNotFoundError(
        f"{denied_by} do not know this blob: it was never stored, or it expired or was deleted",
        denied_by,
    )


async def retrieve_metadata(
    env: ClientEnv, blob_id: BlobId, committee: Committee
) -> VerifiedBlobMetadataWithId:
    """The blob's metadata from the first node whose answer verifies (see the module doc)."""
    config = env.config
    nodes = env.pool.nodes(committee)
    env.rng.shuffle(nodes)

    def ask(node: Node) -> NodeRequest[Node, VerifiedBlobMetadataWithId]:
        async def call() -> VerifiedBlobMetadataWithId:
            # The reads that lose the race finish unseen, so their connections stay open.
            return await env.tails.finish_quietly(
                node.call(lambda client: client.get_metadata(blob_id, committee.n_shards))
            )

        return NodeRequest(node, node.weight, call)

    fanout = await gather_weight(
        [ask(node) for node in nodes],
        1,
        max_concurrency=config.max_concurrent_metadata_reads,
        timeout_s=config.read_timeout_s,
        give_up=lambda so_far: _denial(so_far, committee) is not None,
    )
    if fanout.successes:
        return fanout.successes[0].value
    denial = _denial(fanout, committee)
    if denial is not None:
        raise denial
    raise NoMetadataReceivedError(
        f"no node served metadata of blob {blob_id} that verifies, and nodes of fewer than "
        f"{committee.quorum_weight} shards said they do not have it: {fanout.summary()}",
        [fanout],
    )


def check_read_size(metadata: VerifiedBlobMetadataWithId, max_blob_bytes: int) -> None:
    """Refuse to read a blob larger than the client's limit before fetching any sliver."""
    if metadata.unencoded_length > max_blob_bytes:
        raise BlobTooLargeError(
            f"blob {metadata.blob_id} has {metadata.unencoded_length} bytes, more than the "
            f"client's max_blob_bytes of {max_blob_bytes}"
        )


class SliverBatches:
    """Sliver reads of one axis of one blob, coalesced into one batch read per node.

    The reads a fan-out starts together reach `get` in the same turn of the event loop; the
    first one for a node schedules a flush for the end of that turn, which asks the node for
    all of them in one request (walruspy's `GET /v1/blobs/{id}/slivers`, verified as a batch)
    and hands each waiter its sliver, or SLIVER_NOT_FOUND for one the node left out. A node
    without the route (a Walrus node) gets each read alone, from its first answer on.
    """

    def __init__(self, metadata: VerifiedBlobMetadataWithId, sliver_type: SliverType) -> None:
        self.metadata = metadata
        self.sliver_type = sliver_type
        self._waiting: dict[bytes, list[tuple[SliverPairIndex, asyncio.Future[Any]]]] = {}
        # A dict, not a set: `close` cancels them, and so closes their connections, in the
        # order they started, not in the order of their addresses (a set of tasks), which no
        # two runs share (the simulator's traces differed: walruspy.sim.loop).
        self._flushes: dict[asyncio.Task[None], None] = {}

    async def get(self, node: Node, pair: SliverPairIndex) -> VerifiedSliver:
        """The node's verified sliver of `pair`."""
        if node.client.batch_read is False:
            return await self._alone(node, pair)
        future: asyncio.Future[VerifiedSliver] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault(node.member.node_id, [])
        waiting.append((pair, future))
        if len(waiting) == 1:
            asyncio.get_running_loop().call_soon(self._start_flush, node)
        return await future

    async def close(self) -> None:
        """Stop the batch reads still running (their waiters gave up)."""
        for task in self._flushes:
            task.cancel()
        await asyncio.gather(*self._flushes, return_exceptions=True)

    async def read_many(
        self, node: Node, pairs: Sequence[SliverPairIndex]
    ) -> dict[SliverPairIndex, VerifiedSliver | Exception]:
        """The node's verified slivers of `pairs`, asked at once (in batches of at most
        `MAX_BATCH_READ_SLIVERS`, each verified as one), and for each pair it did not serve the
        error that says why (SLIVER_NOT_FOUND for one a batch left out). A node without the
        batch route is asked for each sliver alone, all at once. A batch that fails raises."""
        answers: dict[SliverPairIndex, VerifiedSliver | Exception] = {}
        if node.client.batch_read is not False:
            for start in range(0, len(pairs), MAX_BATCH_READ_SLIVERS):
                part = pairs[start : start + MAX_BATCH_READ_SLIVERS]
                found = await node.call(partial(self._batch, part))
                if found is None:  # no batch route: each alone, from here on
                    break
                for pair in part:
                    answers[pair] = found[pair] if pair in found else SliverNotFoundError()
            else:
                return answers
        alone = [pair for pair in pairs if pair not in answers]
        results = await asyncio.gather(
            *(self._alone(node, pair) for pair in alone), return_exceptions=True
        )
        for pair, result in zip(alone, results, strict=True):
            if not isinstance(result, VerifiedSliver | Exception):
                raise result  # a cancellation goes on up
            answers[pair] = result
        return answers

    def _start_flush(self, node: Node) -> None:
        task = asyncio.create_task(self._flush(node, self._waiting.pop(node.member.node_id)))
        self._keep(task)

    async def _flush(
        self, node: Node, waiting: list[tuple[SliverPairIndex, asyncio.Future[Any]]]
    ) -> None:
        try:
            answers = await self.read_many(node, [pair for pair, _ in waiting])
        except Exception as exc:  # every waiter of this request learns it
            answers = dict.fromkeys((pair for pair, _ in waiting), exc)
        for pair, future in waiting:
            if future.done():  # given up meanwhile
                continue
            answer = answers[pair]
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._flushes[task] = None
        task.add_done_callback(self._flushes.pop)

    async def _batch(
        self, pairs: Sequence[SliverPairIndex], client: NodeClient
    ) -> dict[SliverPairIndex, VerifiedSliver] | None:
        return await client.get_slivers(self.metadata, pairs, self.sliver_type)

    async def _alone(self, node: Node, pair: SliverPairIndex) -> VerifiedSliver:
        return await node.call(
            lambda client: client.get_sliver(self.metadata, pair, self.sliver_type)
        )


async def fetch_slivers(
    env: ClientEnv,
    metadata: VerifiedBlobMetadataWithId,
    committee: Committee,
    sliver_type: SliverType,
    progress: ProgressCallback | None,
) -> Fanout[SliverGroup, list[VerifiedSliver]]:
    """Verified slivers of one axis until enough to decode (see the module doc): each node is
    asked for its source slivers in one request, and for its other slivers only if some fail.
    Each success is the list of slivers one request brought (`fetched`)."""
    params = metadata.params
    n = params.n_shards
    needed = (
        params.n_primary_source_symbols
        if sliver_type is SliverType.PRIMARY
        else params.n_secondary_source_symbols
    )
    nodes = env.pool.nodes(committee)
    sliver_bytes = expected_sliver_length(params, sliver_type, metadata.symbol_size)
    tracker = Progress(progress, "download", needed * sliver_bytes)
    in_flight = env.config.max_concurrent_sliver_reads or needed
    batches = SliverBatches(metadata, sliver_type)

    def ask(
        node: Node, pairs: tuple[SliverPairIndex, ...]
    ) -> NodeRequest[SliverGroup, list[VerifiedSliver]]:
        async def call() -> list[VerifiedSliver]:
            answers = await batches.read_many(node, pairs)
            slivers = [answer for answer in answers.values() if isinstance(answer, VerifiedSliver)]
            if not slivers:
                errors = [answer for answer in answers.values() if isinstance(answer, Exception)]
                raise next((e for e in errors if not is_not_found(e)), errors[0])
            tracker.add(len(slivers) * sliver_bytes)
            return slivers

        return NodeRequest(SliverGroup(node, pairs, sliver_type), len(pairs), call)

    # The source slivers 0..needed-1 first, then the others, each wave asked a node at a time.
    requests = []
    for wave in (range(needed), range(needed, n)):
        by_node: dict[int, list[SliverPairIndex]] = {}
        for index in wave:
            pair = pair_index_of_sliver(SliverIndex(index), sliver_type, n)
            owner = committee.shard_owner(shard_of_pair(pair, metadata.blob_id.raw, n))
            by_node.setdefault(owner, []).append(pair)
        for owner, pairs in by_node.items():
            for start in range(0, len(pairs), in_flight):
                requests.append(ask(nodes[owner], tuple(pairs[start : start + in_flight])))

    def systematic(so_far: Fanout[SliverGroup, list[VerifiedSliver]]) -> bool:
        indices = {sliver.sliver.index for sliver in fetched(so_far)}
        return indices.issuperset(range(needed))

    try:
        return await gather_weight(
            requests,
            needed,
            max_concurrency=max(1, len(requests)),
            timeout_s=env.config.read_timeout_s,
            # Slivers 0..k-1 are the source: with all of them, decoding is a copy; with any
            # other set it is a Reed-Solomon decode of the whole blob. So once enough verified,
            # the read waits a little (at most what that decode would cost) for source slivers
            # still coming.
            linger_s=min(MAX_SOURCE_WAIT_S, metadata.unencoded_length / DECODE_BYTES_PER_S),
            weigh=len,
            settled=systematic,
            give_up=lambda so_far: _denial(so_far, committee) is not None,
            # Others only for what is missing, and never more than `in_flight` slivers at once.
            bound_in_flight=True,
            max_in_flight_weight=in_flight,
        )
    finally:
        await batches.close()


def fetched(fanout: Fanout[SliverGroup, list[VerifiedSliver]]) -> list[VerifiedSliver]:
    """The slivers of every successful request of `fetch_slivers`."""
    return [sliver for success in fanout.successes for sliver in success.value]


#: Failures of a read from one committee that a read from another one may not repeat: nodes
#: that do not (yet, or any more) hold the blob, or that did not answer.
OTHER_COMMITTEE_MAY_FIX = (BlobNotFoundError, NoMetadataReceivedError, NotEnoughSliversError)


def previous_read_committee(committees: EpochCommittees) -> Committee | None:
    """The previous committee if reads of older blobs go to it now, else None.

    That is during an epoch change, and only when the previous committee is a different
    assignment of shards to nodes: reading the same nodes for the same shards twice gains
    nothing.
    """
    previous, current = committees.previous, committees.current
    if not committees.changing or previous is None:
        return None
    if previous.n_shards == current.n_shards and previous.members == current.members:
        return None
    return previous


def read_committees(committees: EpochCommittees, certified_epoch: int | None) -> list[Committee]:
    """The committees to read a blob certified in `certified_epoch` from, in the order to try.

    During an epoch change, a blob certified before the current epoch is read from the previous
    committee (the new one may still be syncing its shards), then from the current one; any
    other blob, and every blob outside a change, from the current committee alone. A
    `certified_epoch` of None (unknown, or the blob is not certified) means the current one.
    """
    current = committees.current
    previous = previous_read_committee(committees)
    if previous is not None and certified_epoch is not None and certified_epoch < current.epoch:
        return [previous, current]
    return [current]


async def read_blob(
    env: ClientEnv,
    blob_id: BlobId,
    committees: EpochCommittees,
    consistency: ConsistencyCheck,
    progress: ProgressCallback | None,
) -> bytes:
    """The blob's data: from the committees `read_committees` names, in turn (module doc, 5)."""

    async def attempt(order: Sequence[Committee]) -> bytes:
        return await _read_blob(env, blob_id, order[0], consistency, progress)

    return await _read_across(env, blob_id, committees, attempt)


async def _read_across(
    env: ClientEnv,
    blob_id: BlobId,
    committees: EpochCommittees,
    attempt: Callable[[Sequence[Committee]], Awaitable[T]],
) -> T:
    """`attempt` on each committee `read_committees` names in turn, and why it failed.

    `attempt` gets the committees left to try, the one to read from first. Nodes drop an
    invalid blob's data, at different moments: whichever step finds it missing (the metadata,
    or the slivers after a lagging node served the metadata), the read asks whether it was
    marked invalid before it reports "not found" or "too few slivers"; and a read that
    decodes it from nodes that have not dropped it yet, and finds it inconsistent, says it was
    marked invalid if it was.
    """
    known: VerifiedStatus | None = None
    certified_epoch: int | None = None
    if previous_read_committee(committees) is not None:
        known = await _status_if_verified(env, blob_id, committees.current)
        if known is not None:
            _raise_if_marked_invalid(known, None)
            certified_epoch = known.initial_certified_epoch
    failures: list[tuple[Committee, Exception]] = []
    order = read_committees(committees, certified_epoch)
    for position, committee in enumerate(order):
        try:
            return await attempt(order[position:])
        except OTHER_COMMITTEE_MAY_FIX as exc:
            failures.append((committee, exc))
        except InconsistentBlobError as exc:
            await _raise_if_invalid(env, blob_id, committees.current, known, exc)
            raise
    _, last = failures[-1]
    for committee, earlier in failures[:-1]:
        last.add_note(
            f"before that, the read from the previous committee (epoch {committee.epoch}) "
            f"failed: {earlier}"
        )
    if isinstance(last, BlobNotFoundError | NotEnoughSliversError):
        await _raise_if_invalid(env, blob_id, committees.current, known, last)
    if type(last) is BlobNotFoundError:
        try:
            history = await env.chain.blob_events(blob_id)
        except ChainError as exc:
            last.add_note(f"the blob's history on chain could not be read: {exc}")
        else:
            explained = absence(blob_id, history, committees.current.epoch, last)
            if explained is not last:
                raise explained from last
    raise last


@dataclass
class _ObjectHistory:
    end_epoch: int
    certified: bool = False
    deleted: bool = False


def absence(
    blob_id: BlobId, history: Sequence[ChainEvent], epoch: int, denial: BlobNotFoundError
) -> BlobNotFoundError:
    """Why nodes deny a blob, from the events that name it on chain (module doc, 6).

    Returns `BlobExpiredError` if a certified object of it was never deleted and its storage
    ended; otherwise a `BlobNotFoundError` whose message says what the chain shows. A blob the
    chain says nodes should hold keeps the nodes' `denial`.
    """
    objects: dict[bytes, _ObjectHistory] = {}
    for event in history:
        if isinstance(event, BlobRegistered):
            objects[event.object_id] = _ObjectHistory(event.end_epoch)
        elif isinstance(event, BlobCertified) and event.object_id in objects:
            record = objects[event.object_id]
            record.certified, record.end_epoch = True, event.end_epoch
        elif isinstance(event, BlobDeleted) and event.object_id in objects:
            objects[event.object_id].deleted = True
    kept = [o for o in objects.values() if o.certified and not o.deleted]
    nodes_say = f" ({denial.denied_by} do not know it)" if denial.denied_by else ""
    if not objects:
        return BlobNotFoundError(f"blob {blob_id} was never registered on this chain{nodes_say}")
    if any(o.end_epoch > epoch for o in kept):
        return denial
    if kept:
        end = max(o.end_epoch for o in kept)
        return BlobExpiredError(
            f"blob {blob_id} expired: it was stored until epoch {end} and the current epoch is"
            f" {epoch}; store it again to make it available",
            end,
            denial.denied_by,
        )
    if any(o.certified for o in objects.values()):
        return BlobNotFoundError(
            f"blob {blob_id} was deleted: every certified object of it was deleted by its"
            f" owner{nodes_say}",
            denial.denied_by,
        )
    end = max(o.end_epoch for o in objects.values())
    state = "has expired" if end <= epoch else f"lasts until epoch {end}"
    return BlobNotFoundError(
        f"blob {blob_id} was registered but never certified (its registration {state}):"
        f" its upload did not complete{nodes_say}",
        denial.denied_by,
    )


async def _read_blob(
    env: ClientEnv,
    blob_id: BlobId,
    committee: Committee,
    consistency: ConsistencyCheck,
    progress: ProgressCallback | None,
) -> bytes:
    """The blob's data from one committee: metadata, slivers of one axis, decode."""
    metadata = await retrieve_metadata(env, blob_id, committee)
    check_read_size(metadata, env.config.max_blob_bytes)
    attempts = []
    for sliver_type in (SliverType.PRIMARY, SliverType.SECONDARY):
        fanout = await fetch_slivers(env, metadata, committee, sliver_type, progress)
        attempts.append(fanout)
        if fanout.reached:
            return await decode(metadata, fetched(fanout), consistency)
    primary, secondary = attempts
    # Nodes that lost one axis of a blob may still hold the other: only a denial on both
    # axes (the last one asked) says the blob is gone, e.g. deleted since its metadata came.
    denial = _denial(secondary, committee)
    if denial is not None:
        raise denial
    raise NotEnoughSliversError(
        f"too few slivers of blob {blob_id} verified to decode it from the committee of epoch "
        f"{committee.epoch}; primary: {primary.summary()}; secondary: {secondary.summary()}",
        attempts,
    )


async def _status_if_verified(
    env: ClientEnv, blob_id: BlobId, committee: Committee
) -> VerifiedStatus | None:
    """The verified status of the blob, or None when no status has f+1 shards behind it."""
    try:
        return await verified_status(env, blob_id, committee)
    except NoValidStatusError:
        return None


async def _raise_if_invalid(
    env: ClientEnv,
    blob_id: BlobId,
    committee: Committee,
    known: VerifiedStatus | None,
    failure: Exception,
) -> None:
    """`BlobInvalidError` from `failure` if the blob was marked invalid (by the status `known`
    already, else by a verified status asked of `committee`)."""
    if known is None:
        known = await _status_if_verified(env, blob_id, committee)
    if known is not None:
        _raise_if_marked_invalid(known, failure)


def _raise_if_marked_invalid(verified: VerifiedStatus, missing: Exception | None) -> None:
    """Nodes drop an invalid blob's data: tell "marked invalid" apart from "not found"."""
    if isinstance(verified.status, Invalid):
        raise BlobInvalidError(
            f"blob {verified.blob_id} was marked invalid on chain: its writer encoded it "
            "inconsistently"
        ) from missing


async def decode(
    metadata: VerifiedBlobMetadataWithId,
    slivers: list[VerifiedSliver],
    consistency: ConsistencyCheck,
) -> bytes:
    """Decode off the event loop; an inconsistent blob raises, never returns data."""
    try:
        return await asyncio.to_thread(decode_blob, metadata, slivers, consistency)
    except core_errors.InconsistentBlobError as exc:
        raise InconsistentBlobError(str(exc)) from exc


# --- byte ranges and streams (module doc, 7) --------------------------------------------------


class ByteRangeError(InvalidArgumentError):
    """A byte range the blob cannot satisfy (empty, or past its end); `blob_size` says why."""

    def __init__(self, message: str, blob_size: int) -> None:
        super().__init__(message)
        self.blob_size = blob_size


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes of a blob, in HTTP's three forms, before the blob's size is known.

    `ByteRange(start, length)`: `length` bytes from `start`; `ByteRange(start)`: from `start` to
    the end; `ByteRange(suffix=n)`: the last n bytes (all of a shorter blob).
    """

    start: int = 0
    length: int | None = None
    suffix: int | None = None

    def __post_init__(self) -> None:
        if self.start < 0 or (self.length is not None and self.length < 0):
            raise InvalidArgumentError(
                f"a byte range has a non-negative start and length, got {self.start}, {self.length}"
            )
        if self.suffix is not None and (self.suffix < 0 or self.start or self.length is not None):
            raise InvalidArgumentError("a suffix range is a non-negative count without a start")

    def resolve(self, blob_size: int) -> tuple[int, int]:
        """(start, length) within a blob of `blob_size` bytes, or `ByteRangeError`."""
        if self.suffix is not None:
            length = min(self.suffix, blob_size)
            start = blob_size - length
        else:
            start = self.start
            length = blob_size - start if self.length is None else self.length
        if length < 1 or start + length > blob_size:
            shown = f"last {self.suffix}" if self.suffix is not None else f"{length} from {start}"
            raise ByteRangeError(
                f"byte range ({shown} bytes) is empty or out of range: the blob has "
                f"{blob_size} bytes",
                blob_size,
            )
        return start, length


#: Bytes of primary slivers a streamed read holds at once (fetched ahead, or being sent): its
#: memory bound whatever the blob's size. 64 MiB keeps 20 slivers of a 100 MiB blob on 100
#: shards in flight (enough to keep every node of a small committee busy) and 1-2 slivers of
#: the largest blob on 1000 shards (40 MiB each).
STREAM_BUFFER_BYTES = 64 << 20
#: Slivers a stream fetches ahead at least, whatever their size: one to send, one in flight.
MIN_STREAM_WINDOW = 2


class BlobReader:
    """A blob's verified metadata, and its bytes read row by row (module doc, 7)."""

    def __init__(
        self, env: ClientEnv, metadata: VerifiedBlobMetadataWithId, committees: Sequence[Committee]
    ) -> None:
        self.env = env
        self.metadata = metadata
        #: The committees to read slivers from, in order: the first one served the metadata.
        self.committees = tuple(committees)
        #: Primary slivers fetched or rebuilt so far, and their bytes.
        self.rows_read: list[int] = []
        self.sliver_bytes_read = 0
        #: The whole blob, decoded once a row could be neither fetched nor rebuilt.
        self._decoded: asyncio.Task[bytes] | None = None
        #: Rows fetched together from one node go in one batch read, verified off the loop.
        self._batches = SliverBatches(metadata, SliverType.PRIMARY)

    @property
    def blob_id(self) -> BlobId:
        """The blob's ID."""
        return self.metadata.blob_id

    @property
    def size(self) -> int:
        """The blob's length in bytes (its unencoded length, from the verified metadata)."""
        return self.metadata.unencoded_length

    def check_range(self, start: int, length: int) -> None:
        """Refuse a range past the blob's end, or longer than the client's `max_blob_bytes`.

        Raises `ByteRangeError` (naming the blob's size) or `BlobTooLargeError`.
        """
        if start < 0 or length < 0 or start + length > self.size:
            raise ByteRangeError(
                f"bytes [{start}, {start + length}) are not within blob {self.blob_id}, which has"
                f" {self.size} bytes",
                self.size,
            )
        if length > self.env.config.max_blob_bytes:
            raise BlobTooLargeError(
                f"{length} bytes of blob {self.blob_id} were asked for, more than the client's "
                f"max_blob_bytes of {self.env.config.max_blob_bytes}"
            )

    async def read_range(self, start: int, length: int) -> bytes:
        """Bytes [start, start + length) of the blob, from the primary slivers holding them."""
        return b"".join([chunk async for chunk in self.chunks(start, length)])

    async def chunks(
        self, start: int = 0, length: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        """Bytes [start, start + length) (default: to the end), one source row's part at a time.

        Fetches only the rows holding the range, at most `STREAM_BUFFER_BYTES` of them ahead
        (`MIN_STREAM_WINDOW` at least). Raises `ByteRangeError` for a range past the end,
        `BlobTooLargeError` for one over `max_blob_bytes`, and `NotEnoughSliversError` when a
        row can be neither fetched nor rebuilt (possibly after some chunks were yielded).
        """
        length = self.size - start if length is None else length
        self.check_range(start, length)
        params, symbol_size = self.metadata.params, self.metadata.symbol_size
        rows = primary_rows_of_range(params, symbol_size, start, length)
        row_bytes = params.primary_sliver_length(symbol_size)
        window = max(
            MIN_STREAM_WINDOW,
            min(
                self.env.config.max_concurrent_sliver_reads or params.n_primary_source_symbols,
                STREAM_BUFFER_BYTES // row_bytes,
            ),
        )
        async with contextlib.aclosing(self._rows_in_order(rows, window)) as slivers:
            async for sliver in slivers:
                yield slice_of_row(self.metadata, sliver, start, length)

    async def _rows_in_order(
        self, rows: range, window: int
    ) -> AsyncGenerator[VerifiedSliver, None]:
        """The verified source rows `rows` in order, `window` of them fetched ahead.

        Every task started here is awaited or cancelled and awaited before this returns, also
        when the consumer stops early (`aclosing`) or a row fails.
        """
        pending: collections.deque[asyncio.Task[VerifiedSliver]] = collections.deque()
        upcoming = iter(rows)
        try:
            while True:
                while len(pending) < window and (row := next(upcoming, None)) is not None:
                    pending.append(asyncio.ensure_future(self._fetch_row(row)))
                if not pending:
                    return
                sliver = await pending.popleft()
                self.rows_read.append(sliver.sliver.index)
                self.sliver_bytes_read += len(sliver.sliver.data)
                yield sliver
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self._batches.close()

    async def _fetch_row(self, row: int) -> VerifiedSliver:
        """Source row `row`: from its shard's owner in each committee, else rebuilt, else cut
        from the whole blob, decoded once from any p primary slivers (as `read` does).

        Rebuilding needs other nodes' decoding symbols, which they withhold during a storage
        challenge of the blob; the whole blob needs only slivers, which they serve. A whole
        blob that fails its consistency check raises `InconsistentBlobError`, as a full read
        does: its slivers all verified, so no retry will read it.
        """
        try:
            return await fetch_sliver(
                self.env,
                self.metadata,
                self.committees,
                SliverType.PRIMARY,
                row,
                batches=self._batches,
            )
        except NotEnoughSliversError as exc:
            if self._decoded is None:
                self._decoded = asyncio.ensure_future(self._decode_whole())
            try:
                data = await asyncio.shield(self._decoded)
            except NotEnoughSliversError as whole:
                missing = NotEnoughSliversError(f"{exc}; nor decoded whole: {whole}")
                await self._raise_if_marked_invalid(missing)
                raise missing from exc
        metadata = self.metadata
        row_bytes = metadata.params.primary_sliver_length(metadata.symbol_size)
        cut = data[row * row_bytes : (row + 1) * row_bytes].ljust(row_bytes, b"\0")
        sliver = SliverData(SliverType.PRIMARY, SliverIndex(row), metadata.symbol_size, cut)
        return await asyncio.to_thread(sliver.verify, metadata)

    async def _raise_if_marked_invalid(self, missing: NotEnoughSliversError) -> None:
        """Nodes drop an invalid blob's data, so a stream that finds too few slivers asks the
        current committee whether the blob was marked invalid, as a whole read does
        (`_read_across`): "invalid" is final, "too few slivers" says to retry."""
        current = max(self.committees, key=lambda committee: committee.epoch)
        await _raise_if_invalid(self.env, self.blob_id, current, None, missing)

    async def _decode_whole(self) -> bytes:
        failures = []
        for committee in self.committees:
            if committee.n_shards != self.metadata.n_shards:
                continue
            fanout = await fetch_slivers(
                self.env, self.metadata, committee, SliverType.PRIMARY, None
            )
            if fanout.reached:
                return await decode(self.metadata, fetched(fanout), ConsistencyCheck.DEFAULT)
            failures.append(fanout.summary())
        raise NotEnoughSliversError(
            f"too few primary slivers of blob {self.blob_id}: {'; '.join(failures)}",
        )


async def fetch_sliver(
    env: ClientEnv,
    metadata: VerifiedBlobMetadataWithId,
    committees: Sequence[Committee],
    sliver_type: SliverType,
    index: int,
    *,
    batches: SliverBatches | None = None,
) -> VerifiedSliver:
    """Sliver `index` of `sliver_type`, verified: from its shard's owner in each committee (of
    the blob's shard count) in turn, else rebuilt from decoding symbols (`rebuild_sliver`).
    With `batches` (of this blob and axis), reads from the current committee started together
    go to each node as one batch."""
    n = metadata.n_shards
    pair = pair_index_of_sliver(SliverIndex(index), sliver_type, n)
    shard = shard_of_pair(pair, metadata.blob_id.raw, n)
    failures: list[str] = []
    usable = [c for c in committees if c.n_shards == n]
    for attempt, committee in enumerate(usable):
        node = env.pool.nodes(committee)[committee.shard_owner(shard)]
        try:
            if batches is not None and attempt == 0:
                return await batches.get(node, pair)
            return await node.call(lambda client: client.get_sliver(metadata, pair, sliver_type))
        except Exception as exc:  # a node's failure, as in every fan-out
            failures.append(f"{node}: {str(exc) or type(exc).__name__}")
    for committee in usable:
        try:
            return await rebuild_sliver(env, metadata, committee, sliver_type, index)
        except NotEnoughSliversError as exc:
            failures.append(str(exc))
    raise NotEnoughSliversError(
        f"{sliver_type.value} sliver {index} of blob {metadata.blob_id} could be neither "
        f"fetched nor rebuilt: {'; '.join(failures)}"
    )


async def rebuild_sliver(
    env: ClientEnv,
    metadata: VerifiedBlobMetadataWithId,
    committee: Committee,
    sliver_type: SliverType,
    index: int,
) -> VerifiedSliver:
    """Sliver `index` of `sliver_type` rebuilt from the decoding symbols of the other axis.

    Symbol `index` of secondary sliver j is symbol j of primary sliver `index`'s codeword (and
    the other way round), so any s = n-f of them rebuild a primary (source) sliver and any
    p = n-2f a secondary one (a quilt's column). Walrus's node API `decodingSymbols` carries no
    proofs, so the rebuilt sliver is checked against the metadata instead, as the Default
    consistency check does.
    """
    params, n = metadata.params, metadata.n_shards
    needed = (
        params.n_secondary_source_symbols
        if sliver_type is SliverType.PRIMARY
        else params.n_primary_source_symbols
    )
    query = DecodingSymbolsQuery((SliverIndex(index),), sliver_type)
    nodes = env.pool.nodes(committee)

    def ask(node: Node) -> NodeRequest[Node, list[DecodingSymbol]]:
        async def call() -> list[DecodingSymbol]:
            answer = await node.call(
                lambda client: client.decoding_symbols(metadata.blob_id, query)
            )
            return answer.get(SliverIndex(index), [])

        return NodeRequest(node, node.weight, call)

    fanout = await gather_weight(
        [ask(node) for node in nodes],
        needed,
        max_concurrency=len(nodes),
        timeout_s=env.config.read_timeout_s,
        weigh=len,
    )
    symbols: dict[int, bytes] = {}
    for success in fanout.successes:
        for symbol in success.value:
            if symbol.target_type is sliver_type and symbol.index < n:
                symbols.setdefault(symbol.index, symbol.data)
    what = f"{sliver_type.value} sliver {index}"
    if len(symbols) < needed or any(len(d) != metadata.symbol_size for d in symbols.values()):
        raise NotEnoughSliversError(
            f"too few decoding symbols to rebuild {what} from the committee of "
            f"epoch {committee.epoch}: {fanout.summary()}",
            [fanout],
        )
    try:
        return await asyncio.to_thread(_decode_sliver, metadata, sliver_type, index, symbols)
    except VerificationError as exc:
        raise NotEnoughSliversError(
            f"{what} rebuilt from decoding symbols does not match its metadata "
            f"hash: a node sent wrong symbols, or the blob is inconsistently encoded ({exc})",
            [fanout],
        ) from exc


def _decode_sliver(
    metadata: VerifiedBlobMetadataWithId,
    sliver_type: SliverType,
    index: int,
    symbols: dict[int, bytes],
) -> VerifiedSliver:
    params = metadata.params
    count = (
        params.n_secondary_source_symbols
        if sliver_type is SliverType.PRIMARY
        else params.n_primary_source_symbols
    )
    source = decode_source(count, params.n_shards, symbols)
    sliver = SliverData(sliver_type, SliverIndex(index), metadata.symbol_size, b"".join(source))
    return sliver.verify(metadata)


async def locate_blob(env: ClientEnv, blob_id: BlobId, committees: EpochCommittees) -> BlobReader:
    """The blob's verified metadata, from the committees `read_committees` names (module doc, 5).

    Failures are explained as a read's are (marked invalid, expired, deleted, ...).
    """

    async def attempt(order: Sequence[Committee]) -> BlobReader:
        return BlobReader(env, await retrieve_metadata(env, blob_id, order[0]), order)

    return await _read_across(env, blob_id, committees, attempt)
