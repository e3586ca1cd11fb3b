"""What the node currently believes about the network: its committee view and its progress.

Theory of operation (spec/walrus-system.md 3.1, 3.3 and 3.5): a node accepts slivers only for the
shards it owns in the *current* committee and signs confirmations for the current epoch, so every
request reads one `CommitteeView`: the epoch, the committee, this node's position in it and the
shards it owns. The view is replaced as a whole (never mutated), only by the epoch code
(`epoch.EpochChanges`), when the event processor applies an `EpochChangeStart` or when the node
starts; every other part only reads it, so a request sees a consistent snapshot. The node
finds itself in the committee by its protocol public key. A node that is not a member owns no
shard (Walrus's Standby): it serves what it still stores but accepts no new slivers.

`CommitteeViews` holds the current view: the epoch code publishes, subscribers (the epoch-sync
reporter) are told, everyone else reads it through `NodeState`, the small record the node's tasks
share on the event loop (the view, read-only; how far the event processor got; the blob-sync
backlog and the shards being transferred, for the health answer and metrics).
`RegistrationWaiters` lets confirmation requests long-poll for a registration event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from walruspy.core.committee import Committee, CommitteeMember
from walruspy.core.crypto import BlsPublicKey
from walruspy.core.types import ShardIndex, SliverPairIndex, pair_of_shard, shard_of_pair


@dataclass(frozen=True, slots=True)
class CommitteeView:
    """The committee of the node's current epoch, the one before, and this node's part in both.

    `previous` is the committee of epoch - 1 while the chain still has it (None before the first
    epoch change, and with a fixed committee). `previous_shards` are the shards this node held in
    it: those it lost stay readable (LOCKED_TO_MOVE) through this epoch, for their new owners'
    shard sync and for reads of the previous epoch.
    """

    committee: Committee
    member_index: int | None
    owned_shards: frozenset[ShardIndex]
    previous: Committee | None = None
    previous_shards: frozenset[ShardIndex] = frozenset()
    #: The node's ID in either committee (its staking pool), None if it is in neither.
    node_id: bytes | None = None

    @classmethod
    def of(
        cls, committee: Committee, public_key: BlsPublicKey, previous: Committee | None = None
    ) -> CommitteeView:
        """The view of `committee` (and `previous`) for the node with protocol key `public_key`."""
        index, member = _find(committee, public_key)
        _, before = _find(previous, public_key)
        node_id = member.node_id if member is not None else None
        if node_id is None and before is not None:
            node_id = before.node_id
        return cls(
            committee,
            index,
            _shards_of(member),
            previous,
            _shards_of(before),
            node_id,
        )

    @property
    def epoch(self) -> int:
        """The committee's epoch: the node's current epoch."""
        return self.committee.epoch

    @property
    def n_shards(self) -> int:
        """The number of shards of the system."""
        return self.committee.n_shards

    @property
    def is_member(self) -> bool:
        """Whether this node holds shards in the current committee."""
        return self.member_index is not None

    @property
    def readable_shards(self) -> frozenset[ShardIndex]:
        """Shards whose stored slivers the node serves: owned now, or in the previous epoch."""
        return self.owned_shards | self.previous_shards

    def owns_pair(self, blob_id: bytes, pair: SliverPairIndex) -> bool:
        """Whether the shard storing `pair` of `blob_id` is this node's."""
        return shard_of_pair(pair, blob_id, self.n_shards) in self.owned_shards

    def owned_pairs(self, blob_id: bytes) -> list[tuple[ShardIndex, SliverPairIndex]]:
        """(shard, sliver pair) of `blob_id` for each owned shard, in shard order."""
        return [
            (shard, pair_of_shard(shard, blob_id, self.n_shards))
            for shard in sorted(self.owned_shards)
        ]

    def peers(self) -> list[CommitteeMember]:
        """The other members of the committee, then those of the previous committee that left.

        Members that left still hold their lost shards through this epoch, so they can give
        metadata and recovery symbols too.
        """
        current = [m for i, m in enumerate(self.committee.members) if i != self.member_index]
        if self.previous is None:
            return current
        seen = {m.node_id for m in self.committee.members}
        if self.node_id is not None:
            seen.add(self.node_id)
        return current + [m for m in self.previous.members if m.node_id not in seen]

    def previous_owner(self, shard: ShardIndex) -> CommitteeMember | None:
        """The member of the previous committee that held `shard`, if there is one."""
        if self.previous is None:
            return None
        return self.previous.members[self.previous.shard_owner(shard)]


def _find(
    committee: Committee | None, public_key: BlsPublicKey
) -> tuple[int | None, CommitteeMember | None]:
    if committee is not None:
        for index, member in enumerate(committee.members):
            if member.public_key == public_key:
                return index, member
    return None, None


def _shards_of(member: CommitteeMember | None) -> frozenset[ShardIndex]:
    return frozenset() if member is None else frozenset(ShardIndex(s) for s in member.shards)


class CommitteeViews:
    """The node's current committee view: published by the epoch code, read by everyone else.

    `publish` replaces the view as a whole and tells the subscribers; no other part of the node
    holds a reference through which it could change it.
    """

    def __init__(self, view: CommitteeView) -> None:
        self._view = view
        self._subscribers: list[Callable[[], None]] = []
        self._published = asyncio.Event()

    @property
    def current(self) -> CommitteeView:
        """The view of the node's current epoch."""
        return self._view

    def publish(self, view: CommitteeView) -> None:
        """Make `view` current, then call each subscriber (the epoch code only)."""
        self._view = view
        self._published.set()
        self._published = asyncio.Event()
        for subscriber in self._subscribers:
            subscriber()

    async def wait_for_epoch(self, epoch: int) -> None:
        """Wait until the current view is of `epoch` or later."""
        while self._view.epoch < epoch:
            await self._published.wait()

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call `callback` after each new view."""
        self._subscribers.append(callback)


@dataclass(slots=True)
class NodeState:
    """Shared state of a running node, on the event loop only: the committee view (read-only
    here) and the progress counters its tasks publish for the health answer and metrics."""

    views: CommitteeViews
    public_key: BlsPublicKey
    started_at_ns: int = field(default_factory=time.monotonic_ns)
    events_applied: int = 0
    latest_block: int | None = None
    pending_syncs: int = 0
    #: Gained shards whose transfer from the previous owner is queued or running: blob sync
    #: leaves their blobs certified before this epoch to the transfer.
    syncing_shards: frozenset[ShardIndex] = frozenset()

    @property
    def view(self) -> CommitteeView:
        """The current committee view."""
        return self.views.current

    @property
    def epoch(self) -> int:
        """The node's current epoch."""
        return self.view.epoch

    @property
    def n_shards(self) -> int:
        """The number of shards."""
        return self.view.n_shards


class RegistrationWaiters:
    """Requests waiting for a blob's registration event, bounded in number."""

    def __init__(self, max_waiters: int) -> None:
        self._max = max_waiters
        self._waiting = 0
        #: blob ID -> (event, number of waiters); an entry lives while someone waits.
        self._events: dict[bytes, tuple[asyncio.Event, int]] = {}
        #: Set when a request starts waiting for a blob nobody waited for: the event processor
        #: polls the chain at once instead of at its next interval (`EventProcessor.idle`).
        self.wanted = asyncio.Event()

    def notify(self, blob_id: bytes) -> None:
        """The blob was registered: wake its waiters."""
        entry = self._events.get(blob_id)
        if entry is not None:
            entry[0].set()

    @property
    def waiting(self) -> int:
        """How many requests wait now."""
        return self._waiting

    def has_room(self) -> bool:
        """Whether one more request may wait."""
        return self._waiting < self._max

    async def wait(self, blob_id: bytes, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for `notify(blob_id)`; False on timeout or when full."""
        if not self.has_room():
            return False
        event, count = self._events.get(blob_id, (asyncio.Event(), 0))
        self._events[blob_id] = (event, count + 1)
        if count == 0:
            self.wanted.set()
        self._waiting += 1
        try:
            async with asyncio.timeout(timeout_s):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self._waiting -= 1
            event, count = self._events[blob_id]
            if count == 1:
                del self._events[blob_id]
            else:
                self._events[blob_id] = (event, count - 1)
