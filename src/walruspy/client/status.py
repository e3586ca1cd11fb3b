"""A blob's verified status: what nodes holding at least f+1 shards agree on (spec 1.4 and 5).

Theory of operation (Walrus `get_verified_blob_status`). A single node's status may be a lie or
stale, so the client asks every node of the current committee (the one with the latest view of
certifications) and waits until nodes holding a quorum of shards have answered, or until
`status_timeout_s` (or until every node has answered, when too many are down for a quorum), then
decides with what came back. It groups identical statuses, weighs each
by the shards of the nodes reporting it, and walks them from the most to the least advanced in
Walrus's order (`blob_status_sort_key`: nonexistent < deletable < permanent < invalid): the first
status reported by at least f+1 shards (3w >= n + 1, the contract's validity test) is trusted,
since at least one correct node vouches for it. Our nodes answer "nonexistent" as a status rather
than with 404, so "the blob does not exist" is also decided by this rule.

Walrus can instead check a status's chain event against the chain; our `ChainReader` offers no
lookup by event, so a status short of f+1 shards is not trusted: `NoValidStatusError` lists the
statuses seen with their weights and the per-node failures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from walruspy.client.errors import NoValidStatusError
from walruspy.client.nodes import ClientEnv, Node
from walruspy.client.results import VerifiedStatus
from walruspy.core.blob_id import BlobId
from walruspy.core.committee import Committee
from walruspy.node_api.fanout import NodeRequest, gather_weight
from walruspy.node_api.schemas import BlobStatus, blob_status_sort_key, blob_status_to_json


def status_weights(reports: Iterable[tuple[BlobStatus, int]]) -> dict[BlobStatus, int]:
    """The shard weight behind each distinct status among (status, weight) reports."""
    weights: dict[BlobStatus, int] = {}
    for status, weight in reports:
        weights[status] = weights.get(status, 0) + weight
    return weights


def choose_status(weights: Mapping[BlobStatus, int], committee: Committee) -> BlobStatus | None:
    """The most advanced status reported by at least f+1 shards (3w >= n + 1), if any."""
    for status in sorted(weights, key=blob_status_sort_key, reverse=True):
        if committee.is_above_validity(weights[status]):
            return status
    return None


async def verified_status(env: ClientEnv, blob_id: BlobId, committee: Committee) -> VerifiedStatus:
    """The status of `blob_id` that nodes of at least f+1 shards report (see the module doc)."""
    config = env.config
    nodes = env.pool.nodes(committee)

    def ask(node: Node) -> NodeRequest[Node, BlobStatus]:
        async def call() -> BlobStatus:
            return await node.call(
                lambda client: client.blob_status(blob_id, timeout_s=config.status_timeout_s)
            )

        return NodeRequest(node, node.weight, call)

    fanout = await gather_weight(
        [ask(node) for node in nodes],
        committee.quorum_weight,
        max_concurrency=config.max_concurrent_status_reads or len(nodes),
        timeout_s=config.status_timeout_s,
        stop_if_unreachable=False,  # short of a quorum, decide with every answer that comes
    )
    weights = status_weights((success.value, success.weight) for success in fanout.successes)
    chosen = choose_status(weights, committee)
    if chosen is not None:
        return VerifiedStatus(blob_id, chosen, weights[chosen], fanout.weight, committee.n_shards)
    seen = "; ".join(
        f"{blob_status_to_json(status)} from {weight} shards" for status, weight in weights.items()
    )
    raise NoValidStatusError(
        f"no status of blob {blob_id} is reported by nodes of f+1 = {committee.validity_weight} "
        f"shards (seen: {seen or 'none'}); {fanout.summary()}",
        [fanout],
    )
