"""The scrubber: walks the whole store at a bounded rate, checks every record, repairs what rots.

Theory of operation (spec/walrus-system.md 3.2 storage layout, 3.4 blob sync, 5 fault model;
`store_integrity.py` for the checksums). Reads check the records they return, but a sliver nobody
reads could rot unseen until the day it is needed, and by then its peers may have lost theirs
too. So the scrubber reads every metadata and sliver record in a fixed order (metadata, then each
shard's tables, keys in byte order), a batch at a time, and

1. decides where to go next (`advance`, pure): the rest of the table, else the next table, else
   a new pass from the start;
2. lets the store check the batch (`NodeStore.scrub_batch`: no copy of the values); the store
   deletes each record that fails and reports it, exactly as a read that meets one does;
3. takes every report (from its own batches and from reads alike), counts it, and queues the
   blob in blob sync (`BlobSyncer.start_sync`), which recovers the missing part from the peers
   like any other missing part (spec 3.4); it then watches the part and counts it repaired once it
   is stored again;
4. pauses so that it checks at most `ScrubConfig.bytes_per_second`, and saves its position every
   `save_interval_s`, so a restart resumes near where it stopped.

Bounds: one batch holds at most `batch_records` records and about one second's worth of bytes;
at most `MAX_TRACKED_REPAIRS` parts are watched for the repaired count (more are still recovered,
only not counted), each for at most `REPAIR_WATCH_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from walruspy import clock
from walruspy.core.types import SliverType
from walruspy.logs import get_logger
from walruspy.node.config import ScrubConfig
from walruspy.node.metrics import NodeMetrics
from walruspy.node.store import MAX_BATCH_BYTES, NodeStore, ScrubBatch
from walruspy.node.store_integrity import CorruptRecord, RecordKind
from walruspy.node.store_records import StoreCorruptionError

log = get_logger("walruspy.node.scrub")

#: Seconds of checking (at the configured rate) one batch may hold: the pause after a batch
#: stays short, so reports are handled promptly and the rate is smooth.
BATCH_SECONDS = 1.0
#: Corrupt parts watched until blob sync stores them again (for `scrub_repaired_total`).
MAX_TRACKED_REPAIRS = 10_000
#: How long a part is watched: blob sync gives up after its retries and the periodic scan
#: tries again; a day covers both, and a part never repaired (its blob expired) is forgotten.
REPAIR_WATCH_S = 86_400.0
#: Watched parts checked per step (each a point lookup of microseconds).
REPAIR_CHECKS_PER_STEP = 100
#: A watched part still missing after this long is queued again: a sync of its blob that was
#: already running when the part was discarded did not know it was missing.
REPAIR_RETRY_S = 60.0
#: With the scan disabled, how often reports and watched parts are looked at anyway.
IDLE_CHECK_S = 10.0
#: Longest table name and key in a saved position (shard tables are "shard-65535/secondary").
_MAX_NAME = 64


@dataclass(frozen=True, slots=True)
class ScrubPosition:
    """Where the scrubber is: its pass, the table, and the first key not yet checked."""

    passes: int
    table: bytes
    start: bytes | None

    def encode(self) -> bytes:
        """`passes` u32 LE, table length u8, table, then the key (if any)."""
        return (
            self.passes.to_bytes(4, "little")
            + bytes([len(self.table)])
            + self.table
            + (self.start or b"")
        )

    @classmethod
    def decode(cls, raw: bytes) -> ScrubPosition:
        """Parse a saved position; `StoreCorruptionError` if it does not parse."""
        if len(raw) < 5 or not 0 < raw[4] <= _MAX_NAME or len(raw) < 5 + raw[4]:
            raise StoreCorruptionError("corrupt scrub position record")
        table, start = raw[5 : 5 + raw[4]], raw[5 + raw[4] :]
        return cls(int.from_bytes(raw[:4], "little"), table, start or None)


def advance(tables: Sequence[bytes], position: ScrubPosition, batch: ScrubBatch) -> ScrubPosition:
    """Where to go after `batch` (pure): on in the table, else the next table, else a new pass."""
    if batch.next_start is not None:
        return ScrubPosition(position.passes, position.table, batch.next_start)
    later = [name for name in tables if name > position.table]
    if later:
        return ScrubPosition(position.passes, min(later), None)
    return ScrubPosition(position.passes + 1, min(tables), None)


_Part = tuple[bytes, RecordKind, int | None]


def _part(record: CorruptRecord) -> _Part:
    return (record.blob_id, record.kind, record.shard)


class Scrubber:
    """Checks the store in the background and repairs what fails (module docstring)."""

    def __init__(
        self,
        store: NodeStore,
        metrics: NodeMetrics,
        config: ScrubConfig,
        repair: Callable[[bytes], Awaitable[None]],
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._config = config
        self._repair = repair
        self._reported = asyncio.Event()
        #: Part -> (when it was found, when its repair was last asked for).
        self._watched: OrderedDict[_Part, tuple[float, float]] = OrderedDict()
        self._passes = asyncio.Condition()
        self.passes_done = 0

    async def wait_pass(self) -> None:
        """Wait until a complete pass ends that started after this call (tests, devnet)."""
        async with self._passes:
            target = self.passes_done + 2
            await self._passes.wait_for(lambda: self.passes_done >= target)

    @property
    def repairs_pending(self) -> int:
        """Corrupt parts found and not yet stored again."""
        return len(self._watched)

    async def run(self) -> None:
        """Scrub until cancelled."""
        loop = asyncio.get_running_loop()

        def wake() -> None:  # called from the store's worker threads
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._reported.set)

        self._store.corruption.set_listener(wake)
        try:
            await self._run()
        finally:
            self._store.corruption.set_listener(None)

    async def _run(self) -> None:
        position = await self._load_position()
        saved_at = clock.now()
        rate = self._config.bytes_per_second
        while True:
            await self._handle_reports()
            if rate == 0:
                await self._pause(IDLE_CHECK_S)
                continue
            batch = await asyncio.to_thread(
                self._store.scrub_batch,
                position.table,
                position.start,
                self._config.batch_records,
                min(MAX_BATCH_BYTES, max(1, int(rate * BATCH_SECONDS))),
            )
            self._metrics.scrub_records_scanned.inc(batch.records)
            self._metrics.scrub_bytes_scanned.inc(batch.size_bytes)
            tables = await asyncio.to_thread(self._store.scrub_tables)
            previous, position = position, advance(tables, position, batch)
            if position.passes > previous.passes:
                await self._pass_done(position)
                saved_at = clock.now()
                await self._pause(self._config.pass_interval_s)
                continue
            if clock.now() - saved_at >= self._config.save_interval_s:
                await asyncio.to_thread(self._store.set_scrub_progress, position.encode())
                saved_at = clock.now()
            await self._pause(batch.size_bytes / rate)

    async def _load_position(self) -> ScrubPosition:
        raw = await asyncio.to_thread(self._store.scrub_progress)
        tables = await asyncio.to_thread(self._store.scrub_tables)
        if raw is not None:
            try:
                return ScrubPosition.decode(raw)
            except StoreCorruptionError:
                log.warning("the saved scrub position is corrupt; starting from the beginning")
        return ScrubPosition(0, min(tables), None)

    async def _pass_done(self, position: ScrubPosition) -> None:
        await asyncio.to_thread(self._store.set_scrub_progress, position.encode())
        self._metrics.scrub_passes.inc()
        async with self._passes:
            self.passes_done += 1
            self._passes.notify_all()
        log.debug("scrub pass done", passes=position.passes, repairs_pending=self.repairs_pending)

    async def _pause(self, seconds: float) -> None:
        """Sleep `seconds`, handling corruption reports as they arrive."""
        deadline = clock.now() + seconds
        while (remaining := deadline - clock.now()) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._reported.wait()
            await self._handle_reports()

    async def _handle_reports(self) -> None:
        """Count and repair every reported record, then look at watched parts."""
        self._reported.clear()
        for record in self._store.corruption.drain():
            self._metrics.scrub_corrupt_records.labels(record.kind.value).inc()
            log.warning(
                "stored record failed its check; discarded, recovering it from the peers",
                blob_id="0x" + record.blob_id.hex(),
                kind=record.kind.value,
                shard=record.shard,
            )
            now = clock.now()
            if len(self._watched) < MAX_TRACKED_REPAIRS:
                self._watched[_part(record)] = (now, now)
            await self._repair(record.blob_id)
        await self._check_watched()

    async def _check_watched(self) -> None:
        """Count watched parts stored again; ask again for those still missing a while."""
        now = clock.now()
        parts = list(self._watched.items())[:REPAIR_CHECKS_PER_STEP]
        if not parts:
            return
        stored = await asyncio.to_thread(lambda: [self._is_stored(part) for part, _ in parts])
        for (part, (found, asked)), present in zip(parts, stored, strict=True):
            if present:
                del self._watched[part]
                self._metrics.scrub_repaired.inc()
            elif now - found > REPAIR_WATCH_S:
                del self._watched[part]
            else:
                self._watched.move_to_end(part)  # look at the others first next time
                if now - asked > REPAIR_RETRY_S:
                    self._watched[part] = (found, now)
                    await self._repair(part[0])

    def _is_stored(self, part: _Part) -> bool:
        blob_id, kind, shard = part
        if kind is RecordKind.METADATA:
            return self._store.has_metadata(blob_id)
        assert shard is not None
        return self._store.has_sliver(shard, SliverType(kind.value), blob_id)
