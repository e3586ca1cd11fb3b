"""The simulator's invariants: what must hold after every operation and at every check.

Theory of operation (issue #16). The workload keeps a model of what it did (`BlobModel`: the
bytes of every blob it stored, whether the store was certified, deleted, and until which epoch
it is paid); the checks compare the network against it and raise `InvariantViolation`, naming
the invariant, on the first disagreement:

- `read-bytes`: a read never returns bytes other than the stored ones (whatever the faults,
  whether or not the blob is still live);
- `readable`: every certified, unexpired, undeleted blob reads back, byte-identical, while at
  most f nodes are faulty (`Simulation` keeps faults within f and says when that holds);
- `durable-slivers`: every sliver a node held before a crash is held after its restart, for
  every blob still live (what was committed survives; acknowledged slivers were committed);
- `event-cursor`: a node's event cursor never goes back, two nodes at the same cursor have
  applied the same number of events, and that number is the chain's count of events up to
  the cursor (a node that skipped or repeated one disagrees);
- `wal-supply`: WAL is conserved: the balances of every account that may hold WAL (the
  wallets and the contracts) sum to the total supply, which only burns lower, from the minted
  amount;
- `liveness`: a store certifies while at most f nodes are faulty, and after the faults heal
  a store certifies within a bounded virtual time;
- `node-alive`: no node's task dies of an exception of its own;
- `inconsistent-blob`: a blob a malicious writer encoded inconsistently (`ForgedBlob`,
  `walruspy.sim.forgery`) never reads as data, through the client or the aggregator; while at
  most f nodes are faulty a read fails saying the blob is inconsistent or marked invalid
  (spec/walrus-system.md 1.3 step 5 and 5, "Inconsistent encoding by a malicious writer");
- `invalidated`: once the faults have healed, every such blob that was certified and is still
  live has been marked invalid on chain, as nodes of f+1 shards report (spec 2.8: the node that
  recovers the forged sliver proves it and gathers the attestations).

Each check reads through the public interfaces (the client, the chain, the node's store as the
node itself reads it), never by bypassing what it checks.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from walruspy.core.types import SliverType
from walruspy.node.store import NodeStore
from walruspy.node.store_records import EventProgress

__all__ = [
    "BlobModel",
    "CursorWatch",
    "ForgedBlob",
    "InvariantViolation",
    "Inventory",
    "check_cursors_against_chain",
    "check_forged_read",
    "check_invalidated",
    "check_read_bytes",
    "check_slivers_survived",
    "check_wal_supply",
    "sliver_inventory",
]


class InvariantViolation(Exception):  # noqa: N818 - a finding, named as the issue names it
    """An invariant did not hold: `invariant` names it, the message says how."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


@dataclass(slots=True)
class BlobModel:
    """What the workload knows of one blob object it stored."""

    name: str
    data: bytes
    blob_id: str
    blob_raw: bytes
    object_id: bytes
    deletable: bool
    end_epoch: int
    deleted: bool = False
    #: A delete is on its way (another operation may run meanwhile): no longer owed.
    deleting: bool = False

    def live(self, epoch: int) -> bool:
        """Whether the blob must be readable in `epoch`: not deleted (nor being deleted), not
        expired."""
        return not self.deleted and not self.deleting and epoch < self.end_epoch


@dataclass(slots=True)
class ForgedBlob:
    """A blob the malicious writer stored inconsistently encoded, and certified."""

    name: str
    blob_id: str
    end_epoch: int
    #: Virtual time of its certification.
    certified_at_s: float
    #: The forged primary sliver (a data row).
    pair: int


#: How a read of a forged blob may fail: the client's errors, the aggregator's codes, and an
#: aggregator's stream cut short after its first verified rows (how it reports a row failing
#: later: the body is incomplete, never whole data).
FORGED_READ_ERRORS = frozenset(
    {"InconsistentBlobError", "BlobInvalidError", "INCONSISTENT_BLOB", "INVALID_BLOB", "truncated"}
)


def check_forged_read(
    blob: ForgedBlob, got: bytes | None, error: str | None, *, owed_error: bool
) -> None:
    """`inconsistent-blob`: a read of `blob` returned no data (`got` is None); with `owed_error`
    (at most f faulty throughout) its failure `error` names the inconsistency or invalidity."""
    if got is not None:
        raise InvariantViolation(
            "inconsistent-blob",
            f"{blob.name} ({blob.blob_id}, forged primary sliver {blob.pair}) read back"
            f" {len(got)} bytes of data",
        )
    if owed_error and error not in FORGED_READ_ERRORS:
        raise InvariantViolation(
            "inconsistent-blob",
            f"a read of {blob.name} ({blob.blob_id}) with at most f nodes faulty failed with"
            f" {error}, not with the blob's inconsistency or invalidity",
        )


def check_invalidated(blob: ForgedBlob, status: str) -> None:
    """`invalidated`: the verified status of `blob` (its JSON tag) says it is invalid."""
    if status != "invalid":
        raise InvariantViolation(
            "invalidated",
            f"{blob.name} ({blob.blob_id}, forged primary sliver {blob.pair}, certified at"
            f" virtual {blob.certified_at_s:.3f} s) is still {status} after the faults healed",
        )


def check_read_bytes(blob: BlobModel, got: bytes) -> None:
    """`read-bytes`: `got` is exactly what was stored."""
    if got != blob.data:
        first = next(
            (i for i, (a, b) in enumerate(zip(got, blob.data, strict=False)) if a != b), None
        )
        raise InvariantViolation(
            "read-bytes",
            f"{blob.name} ({blob.blob_id}) read back {len(got)} bytes, stored {len(blob.data)};"
            f" first difference at byte {first}",
        )


#: (shard, sliver type, blob ID) of every sliver a store holds.
Inventory = set[tuple[int, SliverType, bytes]]


def sliver_inventory(store: NodeStore) -> Inventory:
    """Every sliver `store` holds (synchronous: run it on the loop's inline executor)."""
    held: Inventory = set()
    for shard in store.shards():
        for sliver_type in SliverType:
            start: bytes | None = None
            while True:
                page = store.list_blob_ids(shard, sliver_type, start, limit=1000)
                held.update((shard, sliver_type, blob_id) for blob_id in page)
                if len(page) < 1000:
                    break
                start = page[-1] + b"\x00"
    return held


def check_slivers_survived(
    node: str, before: Inventory, after: Inventory, live_blob_ids: set[bytes]
) -> None:
    """`durable-slivers`: what `node` held of live blobs before its crash it holds after."""
    lost = sorted(
        (shard, sliver_type.value, blob_id.hex()[:16])
        for shard, sliver_type, blob_id in before - after
        if blob_id in live_blob_ids
    )
    if lost:
        raise InvariantViolation(
            "durable-slivers", f"{node} lost {len(lost)} slivers in a crash-restart: {lost[:5]}"
        )


@dataclass(slots=True)
class CursorWatch:
    """`event-cursor`: the last cursor seen of each node, checked at every look."""

    last: dict[str, EventProgress] = field(default_factory=dict)

    def forget(self, node: str) -> None:
        """The node's store was wiped: its cursor starts again from nothing."""
        self.last.pop(node, None)

    def check(self, cursors: dict[str, EventProgress]) -> None:
        """Compare the nodes' current cursors with the last seen and with each other."""
        for node, progress in cursors.items():
            previous = self.last.get(node)
            if previous is not None and (
                (progress.block_number, progress.log_index)
                < (previous.block_number, previous.log_index)
                or progress.events_applied < previous.events_applied
            ):
                raise InvariantViolation(
                    "event-cursor", f"{node}'s cursor went back from {previous} to {progress}"
                )
            self.last[node] = progress
        by_position: dict[tuple[int, int], tuple[str, int]] = {}
        for node, progress in sorted(cursors.items()):
            position = (progress.block_number, progress.log_index)
            seen = by_position.setdefault(position, (node, progress.events_applied))
            if seen[1] != progress.events_applied:
                raise InvariantViolation(
                    "event-cursor",
                    f"{seen[0]} and {node} are both at block {position[0]} log {position[1]}"
                    f" but applied {seen[1]} and {progress.events_applied} events",
                )


def check_cursors_against_chain(
    cursors: dict[str, EventProgress], positions: list[tuple[int, int]]
) -> None:
    """`event-cursor`: a node at (block, log index) has applied exactly the chain's events up
    to and including that position (`positions`, in chain order): none skipped, none twice."""
    for node, progress in sorted(cursors.items()):
        at = (progress.block_number, progress.log_index)
        expected = bisect.bisect_right(positions, at)
        if progress.events_applied != expected:
            raise InvariantViolation(
                "event-cursor",
                f"{node} is at block {at[0]} log {at[1]} having applied"
                f" {progress.events_applied} events; the chain has {expected} up to there",
            )


def check_wal_supply(supply: int, held: int, last_supply: int) -> None:
    """`wal-supply`: the holders' balances sum to the supply, which never grows."""
    if held != supply:
        raise InvariantViolation(
            "wal-supply", f"balances sum to {held} FROST but the total supply is {supply}"
        )
    if supply > last_supply:
        raise InvariantViolation(
            "wal-supply", f"the total supply grew from {last_supply} to {supply} FROST"
        )
