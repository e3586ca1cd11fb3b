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
- `node-alive`: no node's task dies of an exception of its own.

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
    "InvariantViolation",
    "Inventory",
    "check_cursors_against_chain",
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

    def live(self, epoch: int) -> bool:
        """Whether the blob must be readable in `epoch`: not deleted, not expired."""
        return not self.deleted and epoch < self.end_epoch


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
