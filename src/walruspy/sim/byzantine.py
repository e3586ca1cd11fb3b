"""The simulator's Byzantine parts: what lying nodes tell, and a malicious writer.

Theory of operation (issue #16; spec/walrus-system.md 5, "Byzantine nodes" and "Inconsistent
encoding by a malicious writer"). Two kinds of adversary, each within what the protocol
tolerates, so that every invariant stays owed:

- **Lying nodes** (`PROXY_LIES`): a fault of the schedule puts one node behind the devnet's
  lying proxy (`SimCluster.start_lying`) with one lie: `byzantine-corrupt` serves corrupted
  slivers and recovery symbols, `byzantine-signatures` signs its confirmations and invalid-blob
  attestations with a key that is not its own (a writer that kept one would post a certificate
  the chain refuses), `byzantine-status` turns every blob status around (certified blobs are
  "nonexistent", unknown ones "certified" under a made-up event). At most f nodes lie at once,
  so stores must still certify with the honest confirmations and reads still return the
  stored bytes (`readable`, `liveness`, `read-bytes`).
- **A malicious writer** (`MaliciousWriter`): the workload's `forge` operation stores, with
  the client's own store pipeline and wallet, a blob whose metadata commits to a forged data
  row (`walruspy.sim.forgery.InconsistentEncoder`). The node holding that row refuses the
  honest one, the others confirm, and the blob is certified (unless a faulty node denies the
  quorum: then nothing is owed). The writer reads it back at once, and the workload's reads and
  every full check read it again, through the client or the aggregator: it must never read as
  data (`inconsistent-blob`). The node missing the row recovers it, finds it inconsistent and
  has the blob marked invalid on chain; after the faults heal, every forged blob certified at
  least `INVALIDATION_S` earlier and still live must have a verified status "invalid"
  (`invalidated`).

`skip_consistency_check` plants a bug for the simulator's own test: the writer's reads skip
the consistency check (`ConsistencyCheck.SKIP`), so a forged blob decodes to data.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import aiohttp

from walruspy.client.store import store_blob
from walruspy.clock import now
from walruspy.core.decoding import ConsistencyCheck
from walruspy.core.errors import WalrusError
from walruspy.devnet.proxy import Lie
from walruspy.sim.cluster import derive_rng
from walruspy.sim.forgery import InconsistentEncoder
from walruspy.sim.invariants import ForgedBlob, check_forged_read, check_invalidated

if TYPE_CHECKING:
    from walruspy.sim.workload import Simulation

__all__ = ["INVALIDATION_S", "PROXY_LIES", "MaliciousWriter"]

#: The schedule's lying-node faults and the lie each tells.
PROXY_LIES: Final[dict[str, tuple[Lie, ...]]] = {
    "byzantine-corrupt": (Lie.SLIVERS,),
    "byzantine-signatures": (Lie.SIGNATURES,),
    "byzantine-status": (Lie.STATUS,),
}
#: A forged blob must be invalid on chain this long after its certification (virtual
#: seconds): the node's recovery deferral (5 s), its recovery, f+1 attestations and a
#: transaction take seconds; a fault of the node that must prove it (up to 300 s) comes on top.
INVALIDATION_S: Final = 600.0
#: Share of the writer's reads made through the aggregator.
AGGREGATOR_READS: Final = 0.4
#: Epochs a forged blob is stored for: long enough to see it invalidated.
FORGED_EPOCHS: Final = 3
#: Forgeries a run attempts at most: each costs the network a recovery, a proof, f+1
#: attestations and a transaction, and a few show the flow as well as many.
MAX_FORGERIES: Final = 3
#: The aggregator's error codes for a blob that is inconsistent or marked invalid.
_AGGREGATOR_CODE: Final = re.compile(rb'"(INCONSISTENT_BLOB|INVALID_BLOB)"')


class MaliciousWriter:
    """The workload's malicious writer and what it owes the model (module docstring)."""

    def __init__(self, simulation: Simulation, *, skip_consistency_check: bool = False) -> None:
        self.sim = simulation
        seed = simulation.cluster.seed
        self.encoder = InconsistentEncoder(derive_rng(seed, "forger"))
        self._rng = derive_rng(seed, "forger/reads")
        #: A deliberate bug for the simulator's own test (module docstring).
        self.skip_consistency_check = skip_consistency_check
        self.forged: list[ForgedBlob] = []
        self.attempts = 0

    async def forge(self, draw: Callable[[], tuple[str, bytes, int, bool]]) -> None:
        """Store an inconsistently encoded blob of the workload's next draw; if certified,
        keep it in the model and read it back at once. At most `MAX_FORGERIES` a run."""
        if self.attempts >= MAX_FORGERIES:
            return
        self.attempts += 1
        name, data, _, _ = draw()
        name = f"forged-{name}"
        client = self.sim.client
        env = dataclasses.replace(client.env, encoder=self.encoder)
        try:
            result = await store_blob(
                env,
                data,
                epochs=FORGED_EPOCHS,
                deletable=False,
                force=False,
                ignore_resources=True,
                progress=None,
            )
        except WalrusError as exc:  # a faulty node may deny the quorum: nothing is owed
            self.sim.trace.log(f"forge {name} failed: {type(exc).__name__}")
            return
        pair = self.encoder.forged_pairs[result.blob_id.raw]
        blob = ForgedBlob(name, str(result.blob_id), result.end_epoch, now(), pair)
        self.forged.append(blob)
        self.sim.trace.log(
            f"forge {name} size={len(data)} blob={blob.blob_id} pair={pair}"
            f" end_epoch={blob.end_epoch}"
        )
        await self.read(blob, "forged-read")

    def choose(self) -> ForgedBlob | None:
        """A forged blob to read, if there is one."""
        return self._rng.choice(self.forged) if self.forged else None

    async def read(self, blob: ForgedBlob, what: str) -> None:
        """Read `blob` through the client or the aggregator: `inconsistent-blob`."""
        faulty = self.sim.faulty()
        through_aggregator = self._rng.random() < AGGREGATOR_READS
        if through_aggregator:
            got, error = await self._aggregator_read(blob)
        else:
            got, error = await self._client_read(blob)
        epoch = await self.sim.epoch()
        within_f = len({*faulty, *self.sim.faulty()}) <= self.sim.cluster.settings.max_faulty
        owed = within_f and epoch < blob.end_epoch
        via = "aggregator" if through_aggregator else "client"
        self.sim.trace.log(f"{what} {blob.name} via {via} refused: {error} owed={owed}")
        check_forged_read(blob, got, error, owed_error=owed)

    async def _client_read(self, blob: ForgedBlob) -> tuple[bytes | None, str | None]:
        check = ConsistencyCheck.SKIP if self.skip_consistency_check else ConsistencyCheck.DEFAULT
        try:
            return await self.sim.client.read(blob.blob_id, consistency=check), None
        except WalrusError as exc:
            return None, type(exc).__name__

    async def _aggregator_read(self, blob: ForgedBlob) -> tuple[bytes | None, str | None]:
        """The aggregator's answer: its bytes on 200, else its error code (or status). A stream
        cut short after its first verified rows (how the aggregator reports a row that fails
        later, `walruspy.daemon.aggregator`) is "truncated": the body is incomplete."""
        session = self.sim.cluster.user_session
        assert session is not None
        url = f"{self.sim.cluster.publisher_url}/v1/blobs/{blob.blob_id}"
        try:
            async with session.get(url) as answer:
                body = await answer.read()
                status = answer.status
        except aiohttp.ClientPayloadError:
            return None, "truncated"
        if status == 200:
            return body, None
        code = _AGGREGATOR_CODE.search(body)
        return None, code.group(1).decode() if code else f"HTTP {status} {body[:300]!r}"

    async def check_invalidated(self) -> None:
        """`invalidated`, for every forged blob certified `INVALIDATION_S` ago and still live."""
        epoch = await self.sim.epoch()
        for blob in self.forged:
            if epoch >= blob.end_epoch or now() - blob.certified_at_s < INVALIDATION_S:
                continue
            try:
                verified = await self.sim.client.blob_status(blob.blob_id)
            except WalrusError as exc:
                check_invalidated(blob, f"unknown ({type(exc).__name__})")
                continue
            tag = type(verified.status).__name__.lower()  # nonexistent, permanent, invalid...
            self.sim.trace.log(f"status {blob.name} {tag}")
            check_invalidated(blob, tag)
