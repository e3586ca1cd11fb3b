"""Reading a blob: verified metadata, then verified slivers of one axis, then decode and check.

Theory of operation (spec/walrus-system.md 1.3 and 5; Walrus `retrieve_metadata` and
`request_slivers_and_decode`):

1. Metadata. Nodes are asked in random order, `max_concurrent_metadata_reads` at a time; the
   first answer that verifies against the blob ID and the committee's shard count wins (a lying
   node cannot pass off other metadata: the blob ID is a hash of it). If nodes holding a quorum
   of shards answer "not found" (or "forbidden"), the blob does not exist (or is blocked). This
   is Walrus's code (`committees.is_quorum(n_not_found + n_forbidden)`); its doc comment and our
   spec say f+1, but a quorum is what keeps a certified blob readable while up to f faulty and
   f lagging honest nodes deny it. With fewer, `NoMetadataReceivedError` says who failed how.
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
   status: nodes drop an invalid blob's data, so a blob marked invalid is reported as such.

The read uses the current committee. Walrus reads blobs certified before an epoch change from
the previous committee until the change is done; our committee does not change hands yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from walruspy.client.errors import (
    BlobBlockedError,
    BlobInvalidError,
    BlobNotFoundError,
    BlobTooLargeError,
    InconsistentBlobError,
    NoMetadataReceivedError,
    NotEnoughSliversError,
    NoValidStatusError,
)
from walruspy.client.nodes import ClientEnv, Node, is_forbidden, is_not_found
from walruspy.client.results import Progress, ProgressCallback
from walruspy.client.status import verified_status
from walruspy.core import errors as core_errors
from walruspy.core.blob_id import BlobId
from walruspy.core.committee import Committee
from walruspy.core.decoding import ConsistencyCheck, decode_blob
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.slivers import VerifiedSliver, expected_sliver_length
from walruspy.core.types import (
    SliverIndex,
    SliverPairIndex,
    SliverType,
    pair_index_of_sliver,
    shard_of_pair,
)
from walruspy.node_api.fanout import Fanout, NodeRequest, gather_weight
from walruspy.node_api.schemas import Invalid

#: Reed-Solomon decoding speed from non-source slivers, measured here (100 MiB in 0.7-0.9 s):
#: a read waits at most what such a decode would cost for the source slivers still in flight.
DECODE_BYTES_PER_S = 150e6
#: The longest a read waits for source slivers after enough others have verified.
MAX_SOURCE_WAIT_S = 1.0


@dataclass(frozen=True, slots=True)
class SliverKey:
    """One sliver request: which node, which pair, which axis (a fan-out key)."""

    node: Node
    pair: SliverPairIndex
    sliver_type: SliverType

    def __str__(self) -> str:
        return f"{self.node}, {self.sliver_type.value} sliver of pair {self.pair}"


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
    return BlobNotFoundError(
        f"nodes of {not_found} of {committee.n_shards} shards do not know this blob: it was "
        "never stored, or it expired or was deleted"
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
            return await node.call(lambda client: client.get_metadata(blob_id, committee.n_shards))

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


async def fetch_slivers(
    env: ClientEnv,
    metadata: VerifiedBlobMetadataWithId,
    committee: Committee,
    sliver_type: SliverType,
    progress: ProgressCallback | None,
) -> Fanout[SliverKey, VerifiedSliver]:
    """Verified slivers of one axis until enough to decode (see the module doc)."""
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

    def ask(index: int) -> NodeRequest[SliverKey, VerifiedSliver]:
        pair = pair_index_of_sliver(SliverIndex(index), sliver_type, n)
        node = nodes[committee.shard_owner(shard_of_pair(pair, metadata.blob_id.raw, n))]

        async def call() -> VerifiedSliver:
            sliver = await node.call(lambda client: client.get_sliver(metadata, pair, sliver_type))
            tracker.add(len(sliver.sliver.data))
            return sliver

        return NodeRequest(SliverKey(node, pair, sliver_type), 1, call)

    def systematic(so_far: Fanout[SliverKey, VerifiedSliver]) -> bool:
        indices = {success.value.sliver.index for success in so_far.successes}
        return indices.issuperset(range(needed))

    return await gather_weight(
        [ask(index) for index in range(n)],
        needed,
        max_concurrency=env.config.max_concurrent_sliver_reads or needed,
        timeout_s=env.config.read_timeout_s,
        # Slivers 0..k-1 are the source: with all of them, decoding is a copy; with any other
        # set it is a Reed-Solomon decode of the whole blob. So once enough verified, the read
        # waits a little (at most what that decode would cost) for source slivers still coming.
        linger_s=min(MAX_SOURCE_WAIT_S, metadata.unencoded_length / DECODE_BYTES_PER_S),
        settled=systematic,
        give_up=lambda so_far: _denial(so_far, committee) is not None,
    )


async def read_blob(
    env: ClientEnv,
    blob_id: BlobId,
    committee: Committee,
    consistency: ConsistencyCheck,
    progress: ProgressCallback | None,
) -> bytes:
    """The blob's data: metadata, slivers of one axis (primary, else secondary), decode.

    Nodes drop an invalid blob's data, at different moments: whichever step finds it missing
    (the metadata, or the slivers after a lagging node served the metadata), the read asks
    whether it was marked invalid before it reports "not found" or "too few slivers".
    """
    try:
        return await _read_blob(env, blob_id, committee, consistency, progress)
    except (BlobNotFoundError, NotEnoughSliversError) as missing:
        await _raise_if_invalid(env, blob_id, committee, missing)
        raise


async def _read_blob(
    env: ClientEnv,
    blob_id: BlobId,
    committee: Committee,
    consistency: ConsistencyCheck,
    progress: ProgressCallback | None,
) -> bytes:
    metadata = await retrieve_metadata(env, blob_id, committee)
    check_read_size(metadata, env.config.max_blob_bytes)
    attempts = []
    for sliver_type in (SliverType.PRIMARY, SliverType.SECONDARY):
        fanout = await fetch_slivers(env, metadata, committee, sliver_type, progress)
        attempts.append(fanout)
        if fanout.reached:
            slivers = [success.value for success in fanout.successes]
            return await decode(metadata, slivers, consistency)
    primary, secondary = attempts
    # Nodes that lost one axis of a blob may still hold the other: only a denial on both
    # axes (the last one asked) says the blob is gone, e.g. deleted since its metadata came.
    denial = _denial(secondary, committee)
    if denial is not None:
        raise denial
    raise NotEnoughSliversError(
        f"too few slivers of blob {blob_id} verified to decode it; primary: "
        f"{primary.summary()}; secondary: {secondary.summary()}",
        attempts,
    )


async def _raise_if_invalid(
    env: ClientEnv,
    blob_id: BlobId,
    committee: Committee,
    missing: BlobNotFoundError | NotEnoughSliversError,
) -> None:
    """Nodes drop an invalid blob's data: tell "marked invalid" apart from "not found"."""
    try:
        verified = await verified_status(env, blob_id, committee)
    except NoValidStatusError:
        return
    if isinstance(verified.status, Invalid):
        raise BlobInvalidError(
            f"blob {blob_id} was marked invalid on chain: its writer encoded it inconsistently"
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
