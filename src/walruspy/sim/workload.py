"""`simulate`: a seeded workload and fault schedule on a `SimCluster`, checked as it runs.

Theory of operation (issue #16; TigerBeetle's VOPR, FoundationDB's simulation). Tasks run on
the cluster's loop, each drawing from its own generator derived from the seed:

- the **workload**, in `lanes` tasks at once (so operations overlap, as a daemon's users'
  do; each lane pauses `lanes` times longer, so the rate stays one operation per `OP_MEAN_S`),
  waits an exponential pause, then does one operation: store a random blob of a few KiB
  (deletable or not, for 1-3 epochs) with the client or through the publisher
  (`PUT /v1/blobs`), read a known blob with the client or, for a share `AGGREGATOR_READS`,
  through the aggregator, delete a deletable one, or extend one; in the byzantine and mixed
  profiles also `forge`: the malicious writer stores an inconsistently encoded blob
  (`walruspy.sim.byzantine`), which reads (a share `FORGED_READS`) and full checks read back.
  The result is checked against the model (`walruspy.sim.invariants.BlobModel`) at once; a
  blob being deleted is no longer owed to another lane's read;
- the **fault schedule** of the profile starts one fault at a time (exponential gaps, mean
  `FAULT_MEAN_S`) and heals it after a drawn duration. Profiles: `none`; `crash` (a node
  crashes and restarts on its store; or a fail point, `node.after_sliver_write`, is armed and
  the node that hits it crashes right after committing slivers it has not acknowledged yet);
  `partition` (a node is cut off from every other host, or a link turns lossy); `byzantine`
  (a node discards the slivers it stores, or, behind the devnet's lying proxy, serves corrupted
  slivers and recovery symbols, signs with a wrong key, or lies about blob statuses:
  `walruspy.sim.byzantine.PROXY_LIES`); `churn` (stake moves, a node joins, a node leaves: the
  committee changes at the next epoch through the staking contracts, `walruspy.sim.churn`);
  `mixed` (all of those, plus disk wipes).

At most f = (n-1)/3 nodes are faulty at once: a fault starts only when no node is faulty, and a
node counts as faulty until `SETTLE_S` after its fault heals (time to catch up and recover what it
missed; after discarding its slivers, time for the periodic scan that finds them missing,
`rescan_interval_s`, as well), so that every invariant that is promised "with at most f faulty" is
owed at every instant. Under churn, nodes whose shards move count as faulty while they sync them,
and the nodes count by the shards they hold (`Churn.within_f`), since an elected committee's shares
differ. Every `CHECK_INTERVAL_S` a full check runs: every live blob reads back identical, the event
cursors, the WAL supply. At the end every fault heals, the nodes settle, and a last store must
certify within `LIVENESS_S` (`liveness`), then a full check runs, and every forged blob old
enough must be invalid on chain (`invalidated`).

The first violation ends the run (`SimResult.violation`); so does an exception nobody expected
(reported as `crash-of-simulator`, since a simulator that dies has found something too).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import sys
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

from walruspy import failpoints
from walruspy.chain.events import EventCursor
from walruspy.client.client import WalrusClient
from walruspy.client.errors import RegistrationExpiredError
from walruspy.clock import now
from walruspy.core.blob_id import BlobId
from walruspy.core.errors import WalrusError
from walruspy.node.faults import FaultMode, write_fault
from walruspy.node.group_commit import SliverWriter
from walruspy.node.store_records import EventProgress, StoreError
from walruspy.sim.byzantine import PROXY_LIES, MaliciousWriter
from walruspy.sim.churn import CHURN_KINDS, Churn
from walruspy.sim.cluster import CHAIN_HOST, CLIENT_HOST, SimCluster, SimNode, derive_rng
from walruspy.sim.invariants import (
    BlobModel,
    CursorWatch,
    InvariantViolation,
    Inventory,
    check_cursors_against_chain,
    check_read_bytes,
    check_slivers_survived,
    check_wal_supply,
    sliver_inventory,
)
from walruspy.sim.trace import Trace

__all__ = ["PROFILES", "FaultProfile", "SimResult", "Simulation", "churns"]

#: Mean virtual seconds between two operations.
OP_MEAN_S: Final = 20.0
#: Mean virtual seconds between the end of one fault and the start of the next.
FAULT_MEAN_S: Final = 120.0
#: A fault lasts between these (virtual seconds).
FAULT_DURATION_S: Final = (20.0, 300.0)
#: After its fault heals a node counts as faulty for this long: it catches up with the chain
#: and recovers what it missed (the nodes' recovery deferral is 5 s, its backoff seconds).
SETTLE_S: Final = 120.0
#: Virtual seconds between two full checks.
CHECK_INTERVAL_S: Final = 600.0
#: A store after every fault healed must certify within this (virtual seconds).
LIVENESS_S: Final = 300.0
#: Bound on one operation of the workload (virtual seconds): far above a store's few seconds.
OP_TIMEOUT_S: Final = 600.0
#: Blob sizes drawn (bytes): a few KiB, so encoding stays cheap.
BLOB_BYTES: Final = (1, 8 << 10)
#: Chain events read per request by the cursor check.
EVENTS_PER_PAGE: Final = 1000
#: The workload's mix: (operation, weight).
OPERATIONS: Final = (("store", 3), ("publish", 1), ("read", 4), ("delete", 1), ("extend", 1))
#: Share of reads made through the aggregator (HTTP) rather than the client.
AGGREGATOR_READS: Final = 0.3
#: Share of reads that read a forged blob, once the malicious writer has certified one.
FORGED_READS: Final = 0.2


class FaultProfile(enum.Enum):
    """Which faults the schedule draws from (module docstring)."""

    NONE = "none"
    CRASH = "crash"
    PARTITION = "partition"
    MIXED = "mixed"
    BYZANTINE = "byzantine"
    CHURN = "churn"


PROFILES: Final = tuple(p.value for p in FaultProfile)

_FAULT_KINDS: Final[dict[FaultProfile, tuple[str, ...]]] = {
    FaultProfile.NONE: (),
    FaultProfile.CRASH: ("crash", "crash", "failpoint-crash"),
    FaultProfile.PARTITION: ("partition", "lossy-links"),
    FaultProfile.MIXED: (
        "crash",
        "failpoint-crash",
        "partition",
        "lossy-links",
        "wipe",
        "byzantine-discard",
        "byzantine-corrupt",
        "byzantine-signatures",
        "byzantine-status",
        *CHURN_KINDS,
    ),
    FaultProfile.BYZANTINE: (
        "byzantine-discard",
        "byzantine-corrupt",
        "byzantine-signatures",
        "byzantine-status",
    ),
    FaultProfile.CHURN: CHURN_KINDS,
}
#: The profiles with a malicious writer among the users, and how often it forges a blob.
_FORGE_WEIGHT: Final[dict[FaultProfile, int]] = {FaultProfile.MIXED: 1, FaultProfile.BYZANTINE: 1}


def churns(profile: FaultProfile) -> bool:
    """Whether `profile` changes the committee (its cluster must elect it: `churn_settings`)."""
    return any(kind in CHURN_KINDS for kind in _FAULT_KINDS[profile])


@dataclass(slots=True)
class SimResult:
    """What a run did, and the first violation if one was found."""

    operations: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    checks: int = 0
    virtual_s: float = 0.0
    violation: InvariantViolation | None = None
    violation_at_s: float | None = None


class Simulation:
    """One run's workload, faults and checks on `cluster` (module docstring)."""

    def __init__(
        self,
        cluster: SimCluster,
        trace: Trace,
        profile: FaultProfile,
        *,
        corrupt_reads: bool = False,
        skip_forged_checks: bool = False,
        lanes: int = 1,
    ) -> None:
        self.cluster = cluster
        self.trace = trace
        self.profile = profile
        #: A deliberate bug for the simulator's own test: reads return one flipped byte.
        self.corrupt_reads = corrupt_reads
        self.blobs: list[BlobModel] = []
        self.result = SimResult()
        self.cursors = CursorWatch()
        self.faulty_until: dict[str, float] = {}
        self._ops_rng = derive_rng(cluster.seed, "workload")
        self._fault_rng = derive_rng(cluster.seed, "faults")
        self._last_supply: int | None = None
        self._stored = 0
        self._failpoint_hit: SimNode | None = None
        self._down: dict[str, SimNode] = {}
        self.churn = Churn(cluster, trace, self.faulty_until) if churns(profile) else None
        cluster.on_node_died = self._node_died
        #: The malicious writer (byzantine and mixed profiles); `skip_forged_checks` plants a
        #: bug: its reads skip the consistency check.
        self.writer = MaliciousWriter(self, skip_consistency_check=skip_forged_checks)
        #: Workload tasks running at once, each drawing its pauses and operations from its own
        #: generator (lane 0's is the one a single lane always used).
        self.lanes = lanes

    @property
    def client(self) -> WalrusClient:
        """The workload's client."""
        assert self.cluster.client is not None
        return self.cluster.client

    def faulty(self) -> list[str]:
        """Nodes faulty now: down, cut off, lying, or not settled since their fault healed."""
        t = now()
        return sorted(name for name, until in self.faulty_until.items() if until > t)

    def _within_f(self, faulty: list[str]) -> bool:
        """Whether `faulty` (the nodes faulty at any time during an operation) are at most f."""
        if self.churn is not None:
            return self.churn.within_f(faulty)
        return len(faulty) <= self.cluster.settings.max_faulty

    def _node_died(self, node: SimNode, exc: BaseException) -> None:
        self._fail(InvariantViolation("node-alive", f"node{node.index} died: {exc!r}"))

    def _fail(self, violation: InvariantViolation) -> None:
        if self.result.violation is None:
            self.result.violation = violation
            self.result.violation_at_s = self.trace.elapsed_s()
            self.trace.log(f"VIOLATION {violation}")

    # -- the run --

    async def run(self, virtual_s: float) -> SimResult:
        """Run the workload and faults for `virtual_s` virtual seconds, then heal and check."""
        if self.churn is None:
            return await self._run(virtual_s)
        # The churn watch runs to the very end: the last checks are owed its holds too.
        async with self.churn.watching(self._guarded):
            return await self._run(virtual_s)

    async def _run(self, virtual_s: float) -> SimResult:
        start = now()
        deadline = start + virtual_s
        self.trace.log(
            f"start seed={self.cluster.seed} nodes={len(self.cluster.nodes)}"
            f" shards={self.cluster.settings.n_shards} faults={self.profile.value}"
            f" virtual_s={virtual_s:g}"
        )
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    *(
                        group.create_task(self._guarded(self._workload(deadline, lane)))
                        for lane in range(self.lanes)
                    ),
                    group.create_task(self._guarded(self._faults(deadline))),
                    group.create_task(self._guarded(self._checker(deadline))),
                ]
                pending = set(tasks)
                while pending and self.result.violation is None:
                    _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in tasks:
                    task.cancel()
            if self.result.violation is None:
                if now() < deadline:
                    await asyncio.sleep(deadline - now())
                await self._guarded(self._finish())
        finally:
            failpoints.disarm("node.after_sliver_write")
        self.result.virtual_s = now() - start
        self.trace.log(
            f"end operations={_counts(self.result.operations)}"
            f" faults={_counts(self.result.faults)} checks={self.result.checks}"
            f" violation={self.result.violation.invariant if self.result.violation else 'none'}"
        )
        return self.result

    async def _guarded(self, work: Awaitable[None]) -> None:
        try:
            await work
        except InvariantViolation as violation:
            self._fail(violation)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(InvariantViolation("crash-of-simulator", f"{type(exc).__name__}: {exc}"))

    async def _finish(self) -> None:
        await self._heal_all()
        # A churn hold may end early, once its node holds its shards: look again after each nap.
        settle_until = max(self.faulty_until.values(), default=now())
        while settle_until > now():
            await asyncio.sleep(min(settle_until - now(), SETTLE_S))
            settle_until = max(self.faulty_until.values(), default=now())
        self.trace.log("healed: every fault is over and the nodes have settled")
        try:
            async with asyncio.timeout(LIVENESS_S):
                await self._store(liveness=True)
        except TimeoutError:
            raise InvariantViolation(
                "liveness", f"a store after healing did not certify within {LIVENESS_S:g} s"
            ) from None
        await self._full_check()
        await self.writer.check_invalidated()

    # -- workload --

    async def _workload(self, deadline: float, lane: int = 0) -> None:
        rng = self._ops_rng if lane == 0 else derive_rng(self.cluster.seed, f"workload/{lane}")
        operations = list(OPERATIONS)
        if self.profile in _FORGE_WEIGHT:
            operations.append(("forge", _FORGE_WEIGHT[self.profile]))
        names = [name for name, _ in operations]
        weights = [weight for _, weight in operations]
        while True:
            # Each lane pauses `lanes` times longer: the lanes together keep the one rate.
            pause = rng.expovariate(1 / (OP_MEAN_S * self.lanes))
            if now() + pause >= deadline:
                return
            await asyncio.sleep(pause)
            [operation] = rng.choices(names, weights)
            self.result.operations[operation] = self.result.operations.get(operation, 0) + 1
            async with asyncio.timeout(OP_TIMEOUT_S):
                if operation == "store":
                    await self._store()
                elif operation == "publish":
                    await self._publish()
                elif operation == "read":
                    await self._read_one()
                elif operation == "delete":
                    await self._delete_one()
                elif operation == "forge":
                    await self.writer.forge(self._draw_blob)
                else:
                    await self._extend_one()

    def _draw_blob(self) -> tuple[str, bytes, int, bool]:
        """The next blob to store: its name, bytes, epochs and kind, from the operations' rng."""
        rng = self._ops_rng
        data = rng.randbytes(rng.randint(*BLOB_BYTES))
        epochs = rng.randint(1, 3)
        deletable = rng.random() < 0.5
        self._stored += 1
        return f"b{self._stored}", data, epochs, deletable

    def _keep(self, operation: str, blob: BlobModel) -> None:
        self.blobs.append(blob)
        self.trace.log(
            f"{operation} {blob.name} size={len(blob.data)} deletable={blob.deletable}"
            f" blob={blob.blob_id} end_epoch={blob.end_epoch}"
        )

    async def _store(self, *, liveness: bool = False) -> None:
        name, data, epochs, deletable = self._draw_blob()
        size = len(data)
        faulty = self.faulty()
        try:
            result = await self.client.store(data, epochs, deletable=deletable)
        except RegistrationExpiredError:
            # Paid until an epoch that ended before it certified: nothing was promised (a
            # store of one epoch near its end). The liveness store tries again with another.
            self.trace.log(f"store {name} size={size} expired while being stored")
            if liveness:
                await self._store(liveness=True)
            return
        except WalrusError as exc:
            self.trace.log(f"store {name} size={size} failed: {type(exc).__name__} {faulty=}")
            faulty = sorted({*faulty, *self.faulty()})
            if liveness or self._within_f(faulty):
                raise InvariantViolation(
                    "liveness",
                    f"store of {name} failed with at most f nodes faulty ({faulty}): {exc}",
                ) from exc
            return
        assert result.blob is not None
        blob = BlobModel(
            name,
            data,
            str(result.blob_id),
            result.blob_id.raw,
            result.blob.object_id,
            deletable,
            result.end_epoch,
        )
        self._keep("store", blob)

    async def _publish(self) -> None:
        """Store through the publisher's `PUT /v1/blobs`, as a user of the daemon would."""
        name, data, epochs, deletable = self._draw_blob()
        size = len(data)
        faulty = self.faulty()
        session = self.cluster.user_session
        assert session is not None
        query = f"epochs={epochs}&{'deletable' if deletable else 'permanent'}=true"
        url = f"{self.cluster.publisher_url}/v1/blobs?{query}"
        async with session.put(url, data=data) as response:
            status = response.status
            answer = await response.read()
        if status != 200:
            self.trace.log(f"publish {name} size={size} failed: HTTP {status}")
            faulty = sorted({*faulty, *self.faulty()})
            if self._within_f(faulty) and b"REGISTRATION_EXPIRED" not in answer:
                raise InvariantViolation(
                    "liveness",
                    f"publishing {name} failed with at most f nodes faulty ({faulty}):"
                    f" HTTP {status} {answer[:200]!r}",
                )
            return
        created: dict[str, Any] = json.loads(answer)["newlyCreated"]["blobObject"]
        blob = BlobModel(
            name,
            data,
            created["blobId"],
            BlobId.parse(created["blobId"]).raw,
            bytes.fromhex(created["id"].removeprefix("0x")),
            bool(created["deletable"]),
            int(created["storage"]["endEpoch"]),
        )
        self._keep("publish", blob)

    async def _epoch(self) -> int:
        chain = self.cluster.client_chain
        assert chain is not None
        return (await chain.system_info()).epoch

    async def epoch(self) -> int:
        """The chain's current epoch, as the client sees it."""
        return await self._epoch()

    async def _read(self, blob: BlobModel) -> bytes:
        if self._ops_rng.random() < AGGREGATOR_READS:
            data = await self._aggregator_read(blob)
        else:
            read = await self.client.read(blob.blob_id)
            assert isinstance(read, bytes)
            data = read
        if self.corrupt_reads and data:
            data = bytes([data[0] ^ 1]) + data[1:]
        return data

    async def _aggregator_read(self, blob: BlobModel) -> bytes:
        """`GET /v1/blobs/{blob_id}` of the aggregator; an error answer raises
        `AggregatorError` (a `WalrusError`, as the client's own failures)."""
        session = self.cluster.user_session
        assert session is not None
        url = f"{self.cluster.publisher_url}/v1/blobs/{blob.blob_id}"
        try:
            async with session.get(url) as answer:
                body = await answer.read()
                status = answer.status
        except aiohttp.ClientError as exc:  # e.g. a stream the aggregator had to cut short
            raise AggregatorError(f"aggregator: {type(exc).__name__}: {exc}") from exc
        if status != 200:
            raise AggregatorError(f"aggregator: HTTP {status} {body[:200]!r}")
        return body

    async def _read_one(self) -> None:
        forged = self.writer.choose()
        if forged is not None and self._ops_rng.random() < FORGED_READS:
            await self.writer.read(forged, "read")
            return
        if not self.blobs:
            return
        blob = self._ops_rng.choice(self.blobs)
        await self._check_readable(blob, "read")

    async def _check_readable(self, blob: BlobModel, what: str) -> None:
        faulty = self.faulty()
        try:
            data = await self._read(blob)
        except WalrusError as exc:
            # Owed only if live at the end of the read and no node was faulty throughout.
            after = await self._epoch()
            owed = blob.live(after) and self._within_f(sorted({*faulty, *self.faulty()}))
            self.trace.log(f"{what} {blob.name} failed: {type(exc).__name__} owed={owed}")
            if owed:
                raise InvariantViolation(
                    "readable",
                    f"{blob.name} ({blob.blob_id}, live until epoch {blob.end_epoch}, now"
                    f" {after}) could not be read with at most f nodes faulty: {exc}",
                ) from exc
            return
        check_read_bytes(blob, data)
        self.trace.log(f"{what} {blob.name} ok size={len(data)}")

    async def _delete_one(self) -> None:
        epoch = await self._epoch()
        candidates = [b for b in self.blobs if b.deletable and b.live(epoch)]
        if not candidates:
            return
        blob = self._ops_rng.choice(candidates)
        blob.deleting = True  # another lane's read of it is no longer owed
        try:
            await self.client.delete(object_id=blob.object_id)
        except WalrusError as exc:
            self.trace.log(f"delete {blob.name} failed: {type(exc).__name__}")
            return
        finally:
            blob.deleting = False
        blob.deleted = True
        self.trace.log(f"delete {blob.name}")

    async def _extend_one(self) -> None:
        epoch = await self._epoch()
        candidates = [b for b in self.blobs if b.live(epoch + 1)]
        if not candidates:
            return
        blob = self._ops_rng.choice(candidates)
        epochs = self._ops_rng.randint(1, 2)
        try:
            result = await self.client.extend(blob.object_id, epochs)
        except WalrusError as exc:
            self.trace.log(f"extend {blob.name} failed: {type(exc).__name__}")
            return
        blob.end_epoch = result.end_epoch
        self.trace.log(f"extend {blob.name} by {epochs} to end_epoch={blob.end_epoch}")

    # -- checks --

    async def _checker(self, deadline: float) -> None:
        while now() + CHECK_INTERVAL_S < deadline:
            await asyncio.sleep(CHECK_INTERVAL_S)
            await self._full_check()

    async def _full_check(self) -> None:
        self.result.checks += 1
        epoch = await self._epoch()
        live = [b for b in self.blobs if b.live(epoch)]
        for blob in live:
            await self._check_readable(blob, "check-read")
        for forged in list(self.writer.forged):
            if epoch < forged.end_epoch:
                await self.writer.read(forged, "check-read")
        await self._check_cursors()
        chain = self.cluster.client_chain
        assert chain is not None
        supply, held = await self.cluster.wal_supply()
        check_wal_supply(supply, held, supply if self._last_supply is None else self._last_supply)
        self._last_supply = supply
        self.trace.log(
            f"check epoch={epoch} live_blobs={len(live)} wal_supply={supply}"
            f" faulty={','.join(self.faulty()) or '-'}"
        )

    async def _check_cursors(self) -> None:
        cursors: dict[str, EventProgress] = {}
        for node in self.cluster.nodes:
            if node.node is not None and node.node.processor is not None and node.running:
                progress = node.node.processor.progress
                if progress is not None:
                    cursors[node.host] = progress
        self.cursors.check(cursors)
        chain = self.cluster.client_chain
        assert chain is not None
        positions: list[tuple[int, int]] = []
        cursor = EventCursor()
        while True:
            page = await chain.events(cursor, EVENTS_PER_PAGE)
            positions += [(e.event_id.block_number, e.event_id.log_index) for e in page]
            if len(page) < EVENTS_PER_PAGE:
                break
            cursor = EventCursor(positions[-1][0], positions[-1][1] + 1)
        check_cursors_against_chain(cursors, positions)

    # -- faults --

    async def _faults(self, deadline: float) -> None:
        kinds = _FAULT_KINDS[self.profile]
        if not kinds:
            return
        rng = self._fault_rng
        while True:
            gap = rng.expovariate(1 / FAULT_MEAN_S)
            settled = max(self.faulty_until.values(), default=now())
            start = max(now() + gap, settled)
            duration = rng.uniform(*FAULT_DURATION_S)
            kind = rng.choice(kinds)
            node = rng.choice(self.cluster.nodes)
            if start + duration >= deadline:
                return
            await asyncio.sleep(start - now())
            self.result.faults[kind] = self.result.faults.get(kind, 0) + 1
            await self._inject(kind, node, duration)

    async def _inject(self, kind: str, node: SimNode, duration_s: float) -> None:
        host = node.host
        if kind in CHURN_KINDS:
            assert self.churn is not None
            await self.churn.step(kind, node)
            return
        if kind == "failpoint-crash":
            self.trace.log(f"fault {kind} armed at node.after_sliver_write for {duration_s:.3f}s")
            await self._failpoint_crash(duration_s)
            return
        self.faulty_until[host] = float("inf")
        settle_s = SETTLE_S
        self.trace.log(f"fault {kind} {host} for {duration_s:.3f}s")
        if kind in {"crash", "wipe"}:
            before = await self._inventory(node)
            await self.cluster.stop(node, crash=True)
            await asyncio.sleep(duration_s)
            if kind == "wipe":
                await self.cluster.wipe(node)
                self.cursors.forget(host)
                before = set()
            await self._restart(node, before)
        elif kind in PROXY_LIES:
            before = await self._inventory(node)
            await self.cluster.stop(node, crash=True)
            await self.cluster.start_lying(node, PROXY_LIES[kind])
            await asyncio.sleep(duration_s)
            await self.cluster.stop_lying(node)
            await self._restart(node, before)
        elif kind == "partition":
            others = [n.host for n in self.cluster.nodes if n is not node]
            self.cluster.net.partition([host], [*others, CHAIN_HOST, CLIENT_HOST])
            await asyncio.sleep(duration_s)
            self.cluster.net.heal()
        elif kind == "lossy-links":
            for other in [*(n.host for n in self.cluster.nodes if n is not node), CLIENT_HOST]:
                for a, b in ((host, other), (other, host)):
                    self.cluster.net.set_link(a, b, latency_s=0.05, jitter_s=0.1, loss=0.2)
            await asyncio.sleep(duration_s)
            for other in [*(n.host for n in self.cluster.nodes if n is not node), CLIENT_HOST]:
                for a, b in ((host, other), (other, host)):
                    default = self.cluster.settings.link
                    self.cluster.net.set_link(
                        a, b, latency_s=default.latency_s, jitter_s=default.jitter_s
                    )
        elif kind == "byzantine-discard":
            fault_file = node.config.fault_file
            assert fault_file is not None
            await asyncio.to_thread(write_fault, fault_file, FaultMode.DISCARD)
            await asyncio.sleep(duration_s)
            await asyncio.to_thread(write_fault, fault_file, FaultMode.NONE)
            # Honest again, but its slivers are gone and nothing tells it so: the node finds
            # them missing at its next periodic scan, and recovers them then.
            settle_s += node.config.blob_recovery.rescan_interval_s
        self.faulty_until[host] = now() + settle_s
        self.trace.log(f"heal {kind} {host}")

    async def _inventory(self, node: SimNode) -> Inventory:
        store = node.node.store if node.node is not None else None
        if store is None:
            return set()
        return set(await asyncio.to_thread(sliver_inventory, store))

    async def _restart(self, node: SimNode, before: Inventory) -> None:
        await self.cluster.start(node)
        after = await self._inventory(node)
        epoch = await self._epoch()
        live = {b.blob_raw for b in self.blobs if b.live(epoch)}
        check_slivers_survived(node.host, before, after, live)
        self.trace.log(f"restart {node.host} slivers={len(after)} kept={len(before & after)}")

    async def _failpoint_crash(self, duration_s: float) -> None:
        """Arm `node.after_sliver_write` for `duration_s` at most; the node that hits it first
        crashes just after committing slivers it has not acknowledged, and restarts
        `duration_s` later. While it is armed every node counts as faulty (any may hit it).

        Until the crash, which follows on the next turn of the loop, the writers waiting on that
        commit see what a failing disk gives them, a `StoreError`: whatever they do with it in
        that window must not end the node (a store failure of held slivers in the event
        processor did: seed 2202360623 of mixed)."""
        hit: asyncio.Future[SimNode] = asyncio.get_running_loop().create_future()

        def action(name: str) -> None:
            node = self._node_of_writer()
            failpoints.disarm(name)
            if node is not None and not hit.done():
                hit.set_result(node)
            raise StoreError(f"{name}: the node crashes here")

        for node in self.cluster.nodes:
            self.faulty_until[node.host] = float("inf")  # whichever hits it is faulty
        failpoints.arm("node.after_sliver_write", action)
        try:
            async with asyncio.timeout(duration_s):
                node = await hit
        except TimeoutError:
            for other in self.cluster.nodes:
                self.faulty_until[other.host] = now()
            self.trace.log("failpoint node.after_sliver_write not hit: disarmed")
            return
        finally:
            failpoints.disarm("node.after_sliver_write")
        for other in self.cluster.nodes:
            if other is not node:
                self.faulty_until[other.host] = now()
        self.trace.log(f"failpoint node.after_sliver_write hit by {node.host}")
        before = await self._inventory(node)
        await self.cluster.stop(node, crash=True)
        await asyncio.sleep(duration_s)
        await self._restart(node, before)
        self.faulty_until[node.host] = now() + SETTLE_S
        self.trace.log(f"heal failpoint-crash {node.host}")

    def _node_of_writer(self) -> SimNode | None:
        """The node whose sliver writer is on the stack (the fail point's caller)."""
        frame = sys._getframe(1)
        while frame is not None:
            writer = frame.f_locals.get("self")
            if isinstance(writer, SliverWriter):
                for node in self.cluster.nodes:
                    if node.node is not None and node.node.store is writer.store:
                        return node
                return None
            frame = frame.f_back  # type: ignore[assignment]
        return None

    async def _heal_all(self) -> None:
        self.cluster.net.heal()
        for node in self.cluster.nodes:
            if node.config.fault_file is not None:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(write_fault, node.config.fault_file, FaultMode.NONE)
            if not node.running:
                await self.cluster.start(node)


class AggregatorError(WalrusError):
    """The aggregator answered a read with an error status."""


def _counts(counts: dict[str, int]) -> str:
    return ",".join(f"{k}:{v}" for k, v in sorted(counts.items())) or "-"
