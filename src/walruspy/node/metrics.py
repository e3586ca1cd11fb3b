"""Prometheus metrics of one storage node, in a registry of its own (spec/walrus-system.md 3.8).

Theory of operation: each `StorageNode` owns a `NodeMetrics`, whose `CollectorRegistry` is not the
process-global one, so several nodes in one process (the tests, an in-process cluster) keep
separate figures. Names follow Walrus's namespace `walrus` and its counters where one exists
(`metadata_stored_total`, `slivers_stored_total{type}`, `storage_confirmations_issued_total`,
`recover_blob_backlog`, ...). The API serves `render()` at `/metrics`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

NAMESPACE = "walrus"
#: The media type of `render()`.
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


class NodeMetrics:
    """The node's counters and gauges, registered in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, namespace=NAMESPACE, registry=r)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, namespace=NAMESPACE, registry=r)

        self.metadata_stored = counter("metadata_stored", "Metadata newly stored")
        self.metadata_retrieved = counter("metadata_retrieved", "Metadata served")
        self.slivers_stored = counter("slivers_stored", "Slivers newly stored", ("type",))
        self.sliver_bytes_stored = counter(
            "sliver_bytes_stored", "Bytes of slivers newly stored", ("type",)
        )
        self.slivers_retrieved = counter("slivers_retrieved", "Slivers served", ("type",))
        self.sliver_bytes_served = counter(
            "sliver_bytes_served", "Bytes of slivers served", ("type",)
        )
        self.confirmations_issued = counter(
            "storage_confirmations_issued", "Signed storage confirmations"
        )
        self.recovery_symbols_served = counter(
            "recovery_symbols_served", "Recovery symbols served to other nodes"
        )
        self.rejected_requests = counter(
            "rejected_requests", "Requests answered with an error", ("reason",)
        )
        self.blob_syncs = counter("recover_blob", "Finished blob syncs", ("outcome",))
        self.slivers_recovered = counter(
            "slivers_recovered", "Slivers rebuilt from other nodes' symbols", ("type",)
        )
        self.recovery_bytes_downloaded = counter(
            "recovery_bytes_downloaded", "Bytes of symbol answers downloaded by blob syncs"
        )
        self.faulty_responses = counter(
            "recovery_faulty_responses",
            "Answers from other nodes that failed verification, by what failed",
            ("kind",),
        )
        self.recover_blob_backlog = gauge("recover_blob_backlog", "Blob syncs queued or running")
        self.invalidations = counter(
            "blob_invalidations",
            "Finished invalidation flows, by outcome "
            "(posted, lost_race, already_invalid, skipped, failed, ...)",
            ("outcome",),
        )
        self.invalidity_attestation_failures = counter(
            "invalid_blob_attestation_failures",
            "Members that gave no valid invalid-blob attestation, by what failed",
            ("kind",),
        )
        self.invalidation_backlog = gauge(
            "invalidation_backlog", "Invalidation flows queued or running"
        )
        self.events_processed = counter("events_processed", "Chain events applied", ("event",))
        self.challenge_proof_pages = counter(
            "challenge_proof_pages", "Storage-challenge proof pages answered to verifiers"
        )
        self.challenge_proof_bytes = counter(
            "challenge_proof_bytes", "Bytes of storage-challenge proofs sent to verifiers"
        )
        self.challenge_attestations = counter(
            "challenge_attestations",
            "Storage-challenge attestations given to, or refused, other nodes",
            ("outcome",),
        )
        self.challenges_passed = counter(
            "challenges_passed", "Storage challenges this node passed (certificate posted)"
        )
        self.challenge_symbols_refused = counter(
            "challenge_symbols_refused", "Symbol requests refused during a storage challenge"
        )
        self.events_undone = counter(
            "events_undone", "Applied chain events taken back after a reorganisation"
        )
        self.reorg_too_deep = counter(
            "reorg_too_deep", "Reorganisations deeper than the node's undo window"
        )
        self.event_process_seconds = Histogram(
            "event_process_duration_seconds",
            "Time to apply one chain event",
            namespace=NAMESPACE,
            registry=r,
        )
        self.event_lag_seconds = gauge(
            "event_lag_seconds", "Time since the event processor last saw the end of the stream"
        )
        self.event_cursor_progress = gauge("event_cursor_progress", "Events applied in total")
        self.current_epoch = gauge("current_epoch", "The node's committee epoch")
        self.gc_deleted_blobs = counter(
            "garbage_collection_deleted_blobs", "Blobs whose data garbage collection deleted"
        )
        self.gc_expired_objects = counter(
            "garbage_collection_expired_blob_objects", "Per-object records removed by GC"
        )
        self.epoch_advances = counter(
            "epoch_change_calls", "advance_epoch() calls by this node", ("outcome",)
        )
        self.epoch_sync_reports = counter(
            "epoch_sync_done_reports",
            "Epochs whose shards this node reported holding",
            ("outcome",),
        )
        self.shard_sync_slivers = counter(
            "shard_sync_slivers", "Slivers fetched by shard sync and stored", ("type",)
        )
        self.shard_sync_bytes = counter(
            "shard_sync_bytes", "Bytes of slivers fetched by shard sync and stored"
        )
        self.shard_syncs = counter(
            "shard_syncs",
            "Finished shard syncs, by outcome (synced, fell_back, stopped)",
            ("outcome",),
        )
        self.shard_sync_failures = counter(
            "shard_sync_request_failures", "Failed sync-shard requests, by kind", ("kind",)
        )
        self.shards_syncing = gauge("shards_syncing", "Gained shards being synced now")
        self.scrub_records_scanned = counter(
            "scrub_records_scanned", "Metadata and sliver records the scrubber checked"
        )
        self.scrub_bytes_scanned = counter(
            "scrub_bytes_scanned", "Bytes of metadata and sliver records the scrubber checked"
        )
        self.scrub_corrupt_records = counter(
            "scrub_corrupt_records",
            "Records that failed their check (found by the scrubber or a read), discarded",
            ("kind",),
        )
        self.scrub_repaired = counter(
            "scrub_repaired", "Discarded corrupt records stored again by blob sync"
        )
        self.scrub_passes = counter("scrub_passes", "Complete passes of the scrubber")

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)
