"""Tests of the pure blob lifecycle rules (walruspy.node.blob_state).

Unit tests walk each event through Walrus's merge rules; a Hypothesis state machine then applies
random event sequences (valid ones and contradictory ones) with garbage collection at epoch
changes, and checks after every step that the aggregate record says exactly what the per-object
records imply, which is the invariant Walrus's node relies on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from walruspy.chain.events import (
    BlobCertified,
    BlobDeleted,
    BlobRegistered,
    ChainEvent,
    EpochChangeDone,
    EpochChangeStart,
    EventId,
    InvalidBlobId,
)
from walruspy.core.blob_id import BlobId
from walruspy.node import blob_state as bs
from walruspy.node.store_records import (
    BlobInfo,
    InvalidBlobInfo,
    PerObjectBlobInfo,
    ValidBlobInfo,
)
from walruspy.node_api.schemas import Deletable, DeletableCounts, Invalid, Nonexistent, Permanent


def oid(i: int) -> bytes:
    return hashlib.blake2b(b"object" + bytes([i]), digest_size=32).digest()


BLOB = BlobId(hashlib.blake2b(b"blob", digest_size=32).digest())
OTHER_BLOB = BlobId(hashlib.blake2b(b"other", digest_size=32).digest())


@dataclass
class Ledger:
    """Records as the store would hold them; applies transitions and runs GC."""

    infos: dict[bytes, BlobInfo] = field(default_factory=dict)
    objects: dict[bytes, PerObjectBlobInfo] = field(default_factory=dict)
    deleted_data: list[bytes] = field(default_factory=list)
    epoch: int = 1
    next_event: int = 0

    def event_id(self) -> EventId:
        self.next_event += 1
        tx = hashlib.blake2b(self.next_event.to_bytes(8, "little"), digest_size=32).digest()
        return EventId(self.next_event, 0, tx)

    def apply(self, event: ChainEvent, immediate: bool = False) -> bs.Transition:
        blob = getattr(event, "blob_id", None)
        info = self.infos.get(blob.raw) if blob is not None else None
        obj = getattr(event, "object_id", None)
        record = self.objects.get(obj) if obj is not None else None
        transition = bs.decide(event, info, record, self.epoch, immediate)
        for key, value in transition.blob_infos.items():
            self._put(self.infos, key, value)
        for key, value in transition.per_object_blob_infos.items():
            self._put(self.objects, key, value)
        self.deleted_data.extend(transition.delete_data_of)
        return transition

    @staticmethod
    def _put(table: dict, key: bytes, value: object) -> None:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value

    def register(self, i: int, deletable: bool, end: int, blob: BlobId = BLOB) -> bs.Transition:
        return self.apply(
            BlobRegistered(self.event_id(), self.epoch, blob, 100, 1, end, deletable, oid(i))
        )

    def certify(self, i: int, deletable: bool, end: int, blob: BlobId = BLOB) -> bs.Transition:
        return self.apply(
            BlobCertified(self.event_id(), self.epoch, blob, end, deletable, oid(i), False)
        )

    def extend(self, i: int, deletable: bool, end: int, blob: BlobId = BLOB) -> bs.Transition:
        return self.apply(
            BlobCertified(self.event_id(), self.epoch, blob, end, deletable, oid(i), True)
        )

    def delete(
        self, i: int, was_certified: bool, blob: BlobId = BLOB, immediate: bool = False
    ) -> bs.Transition:
        return self.apply(
            BlobDeleted(self.event_id(), self.epoch, blob, 0, oid(i), was_certified), immediate
        )

    def invalidate(self, blob: BlobId = BLOB) -> bs.Transition:
        return self.apply(InvalidBlobId(self.event_id(), self.epoch, blob))

    def gc(self, epoch: int) -> None:
        """Phase 1 of garbage collection at the start of `epoch`, in object-ID order."""
        self.epoch = epoch
        for object_id in sorted(self.objects):
            record = self.objects[object_id]
            expiry = bs.expire_object(record, self.infos.get(record.blob_id), epoch)
            if expiry.drop_record:
                del self.objects[object_id]
            if expiry.blob_info_changed:
                assert expiry.blob_info is not None
                self.infos[record.blob_id] = expiry.blob_info

    def status(self, blob: BlobId = BLOB):
        info = self.infos.get(blob.raw)
        return Nonexistent() if info is None else info.blob_status(self.epoch)


def check_aggregate_matches_objects(ledger: Ledger) -> None:
    """The aggregate of each valid blob ID is what its per-object records imply."""
    for blob_id, info in ledger.infos.items():
        if not isinstance(info, ValidBlobInfo):
            continue
        live = [r for r in ledger.objects.values() if r.blob_id == blob_id and not r.deleted]
        deletable = [r for r in live if r.deletable]
        permanent = [r for r in live if not r.deletable]
        assert info.count_deletable_total == len(deletable)
        assert info.count_deletable_certified == sum(
            r.certified_epoch is not None for r in deletable
        )
        certified_permanent = [r for r in permanent if r.certified_epoch is not None]
        for aggregate, records in (
            (info.permanent_total, permanent),
            (info.permanent_certified, certified_permanent),
        ):
            if not records:
                assert aggregate is None
            else:
                assert aggregate is not None
                assert aggregate.count == len(records)
                assert aggregate.end_epoch == max(r.end_epoch for r in records)
        any_certified = any(r.certified_epoch is not None for r in live)
        assert (info.initial_certified_epoch is not None) == any_certified
        if any_certified:
            # Walrus unsets it only once nothing is certified: an expired certified object
            # leaves the earlier epoch in place (`maybe_unset_initial_certified_epoch`).
            assert info.initial_certified_epoch is not None
            assert info.initial_certified_epoch <= min(
                r.certified_epoch for r in live if r.certified_epoch is not None
            )
        registered_end = info.latest_seen_deletable_registered_end_epoch
        assert (registered_end is None) == (not deletable)
        if deletable:
            assert registered_end >= max(r.end_epoch for r in deletable)


# --- unit tests -------------------------------------------------------------------------------


def test_permanent_blob_lifecycle() -> None:
    ledger = Ledger()
    t = ledger.register(0, deletable=False, end=5)
    assert t.actions == (bs.NotifyRegistered(BLOB.raw),)
    status = ledger.status()
    assert isinstance(status, Permanent) and not status.is_certified and status.end_epoch == 5
    assert bs.is_registered(ledger.infos[BLOB.raw], 4)
    assert not bs.is_registered(ledger.infos[BLOB.raw], 5)
    t = ledger.certify(0, deletable=False, end=5)
    assert t.actions == (bs.StartSync(BLOB.raw),)
    status = ledger.status()
    assert isinstance(status, Permanent) and status.is_certified
    assert status.initial_certified_epoch == 1
    t = ledger.extend(0, deletable=False, end=9)
    assert t.actions == (bs.StartSync(BLOB.raw),)
    assert ledger.objects[oid(0)].end_epoch == 9
    status = ledger.status()
    assert isinstance(status, Permanent) and status.end_epoch == 9
    assert status.status_event == bs.status_event(EventId(3, 0, status.status_event.tx_hash))
    check_aggregate_matches_objects(ledger)
    ledger.gc(9)
    assert oid(0) not in ledger.objects
    assert isinstance(ledger.status(), Nonexistent)
    assert bs.can_blob_info_be_deleted(ledger.infos[BLOB.raw], 9)


def test_deletable_blob_lifecycle_and_immediate_deletion() -> None:
    ledger = Ledger()
    ledger.register(0, deletable=True, end=5)
    assert ledger.status() == Deletable(None, DeletableCounts(1, 0))
    ledger.certify(0, deletable=True, end=5)
    assert ledger.status() == Deletable(1, DeletableCounts(1, 1))
    t = ledger.delete(0, was_certified=True, immediate=True)
    assert t.actions == (bs.CancelSync(BLOB.raw),)
    assert t.delete_data_of == (BLOB.raw,)
    assert ledger.objects[oid(0)].deleted
    assert isinstance(ledger.status(), Nonexistent)
    check_aggregate_matches_objects(ledger)
    ledger.gc(2)
    assert not ledger.objects


def test_deleting_one_of_two_keeps_the_blob_certified() -> None:
    ledger = Ledger()
    for i in (0, 1):
        ledger.register(i, deletable=True, end=5)
        ledger.certify(i, deletable=True, end=5)
    t = ledger.delete(0, was_certified=True, immediate=True)
    assert t.actions == () and t.delete_data_of == ()
    assert ledger.status() == Deletable(1, DeletableCounts(1, 1))


def test_permanent_and_deletable_together() -> None:
    ledger = Ledger()
    ledger.register(0, deletable=True, end=8)
    ledger.certify(0, deletable=True, end=8)
    ledger.register(1, deletable=False, end=4)
    status = ledger.status()
    assert isinstance(status, Permanent) and not status.is_certified
    assert status.deletable_counts == DeletableCounts(1, 1)
    ledger.gc(4)  # the permanent object expires, the deletable one lives on
    assert ledger.status() == Deletable(1, DeletableCounts(1, 1))
    check_aggregate_matches_objects(ledger)


def test_invalid_is_final_and_deletes_data() -> None:
    ledger = Ledger()
    ledger.register(0, deletable=False, end=5)
    t = ledger.invalidate()
    assert t.delete_data_of == (BLOB.raw,)
    assert t.actions == (bs.CancelSync(BLOB.raw),)
    info = ledger.infos[BLOB.raw]
    assert isinstance(info, InvalidBlobInfo)
    assert isinstance(ledger.status(), Invalid)
    # Later events update the object but never the invalid aggregate.
    t = ledger.certify(0, deletable=False, end=5)
    assert t.anomaly is None and ledger.infos[BLOB.raw] == info
    assert ledger.objects[oid(0)].certified_epoch == 1
    ledger.register(1, deletable=True, end=5)
    assert ledger.infos[BLOB.raw] == info
    assert ledger.invalidate().blob_infos == {}
    assert not bs.is_registered(info, 0) and not bs.is_certified(info, 0)
    assert not bs.can_blob_info_be_deleted(info, 100)


def test_initial_certified_epoch_is_the_earliest() -> None:
    ledger = Ledger()
    ledger.register(0, deletable=True, end=9)
    ledger.register(1, deletable=True, end=9)
    ledger.epoch = 3
    ledger.certify(0, deletable=True, end=9)
    ledger.epoch = 5
    ledger.certify(1, deletable=True, end=9)
    assert ledger.infos[BLOB.raw].initial_certified_epoch == 3
    ledger.delete(0, was_certified=True)
    # Walrus keeps the first epoch while anything stays certified.
    assert ledger.infos[BLOB.raw].initial_certified_epoch == 3


def test_certification_in_the_future_is_not_certified_yet() -> None:
    info = ValidBlobInfo(
        count_deletable_total=1,
        count_deletable_certified=1,
        initial_certified_epoch=7,
        latest_seen_deletable_registered_end_epoch=9,
        latest_seen_deletable_certified_end_epoch=9,
    )
    assert not bs.is_certified(info, 6)
    assert bs.is_certified(info, 7)
    assert not bs.is_certified(info, 9)


def test_anomalies_change_nothing() -> None:
    ledger = Ledger()
    cases = [
        lambda: ledger.certify(0, deletable=False, end=5),  # unknown object
        lambda: ledger.delete(0, was_certified=False),  # unknown object
    ]
    for case in cases:
        assert case().anomaly is not None
    ledger.register(0, deletable=False, end=5)
    ledger.register(1, deletable=True, end=5)
    before = (dict(ledger.infos), dict(ledger.objects))
    anomalous = [
        lambda: ledger.register(0, deletable=False, end=5),  # registered twice
        lambda: ledger.delete(0, was_certified=False),  # permanent
        lambda: ledger.delete(1, was_certified=True),  # was not certified
        lambda: ledger.certify(0, deletable=True, end=5),  # flips deletable
        lambda: ledger.extend(0, deletable=False, end=9),  # not certified
        lambda: ledger.certify(0, deletable=False, end=5, blob=OTHER_BLOB),  # other blob
        lambda: ledger.certify(0, deletable=False, end=6),  # beyond the registered end
    ]
    for case in anomalous:
        t = case()
        assert t.anomaly is not None, case
        assert (dict(ledger.infos), dict(ledger.objects)) == before
    ledger.delete(1, was_certified=False)
    assert ledger.certify(1, deletable=True, end=5).anomaly is not None  # deleted


def test_epoch_events_become_actions() -> None:
    start = bs.decide(EpochChangeStart(EventId(1, 0, bytes(32)), 4), None, None, 3)
    assert start.actions == (bs.BeginEpoch(4),) and not start.blob_infos
    done = bs.decide(EpochChangeDone(EventId(1, 1, bytes(32)), 4), None, None, 4)
    assert done.actions == (bs.EpochDone(4),)


def test_expiry_of_a_deleted_object_leaves_the_aggregate() -> None:
    ledger = Ledger()
    ledger.register(0, deletable=True, end=5)
    ledger.register(1, deletable=True, end=5)
    ledger.delete(0, was_certified=False)
    info = ledger.infos[BLOB.raw]
    expiry = bs.expire_object(ledger.objects[oid(0)], info, 2)
    assert expiry.drop_record and not expiry.blob_info_changed
    live = bs.expire_object(ledger.objects[oid(1)], info, 2)
    assert not live.drop_record


def test_sync_starts_only_for_blobs_certified_now() -> None:
    ledger = Ledger()
    ledger.register(0, deletable=False, end=3)
    ledger.epoch = 4  # the node is already past the blob's end (replaying old events)
    t = ledger.certify(0, deletable=False, end=3)
    assert t.anomaly is None and t.actions == ()


# --- property test ----------------------------------------------------------------------------

N_OBJECTS = 5
OBJECT_BLOBS = [BLOB, BLOB, BLOB, OTHER_BLOB, OTHER_BLOB]


class BlobLifecycle(RuleBasedStateMachine):
    """Random event sequences, valid and contradictory, with GC at epoch changes."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger()
        self.invalid: set[bytes] = set()

    objects = st.integers(0, N_OBJECTS - 1)

    @rule(i=objects, deletable=st.booleans(), lifetime=st.integers(1, 4))
    def register(self, i: int, deletable: bool, lifetime: int) -> None:
        self.ledger.register(i, deletable, self.ledger.epoch + lifetime, OBJECT_BLOBS[i])

    @rule(i=objects, deletable=st.booleans())
    def certify(self, i: int, deletable: bool) -> None:
        record = self.ledger.objects.get(oid(i))
        end = record.end_epoch if record is not None else self.ledger.epoch + 1
        t = self.ledger.certify(i, deletable, end, OBJECT_BLOBS[i])
        info = self.ledger.infos.get(OBJECT_BLOBS[i].raw)
        assert (bs.StartSync(OBJECT_BLOBS[i].raw) in t.actions) == (
            t.anomaly is None
            and isinstance(info, ValidBlobInfo)
            and bs.is_certified(info, self.ledger.epoch)
        )

    @rule(i=objects, extra=st.integers(0, 3), deletable=st.booleans())
    def extend(self, i: int, extra: int, deletable: bool) -> None:
        record = self.ledger.objects.get(oid(i))
        end = (record.end_epoch if record is not None else self.ledger.epoch) + extra
        self.ledger.extend(i, deletable, end, OBJECT_BLOBS[i])

    @rule(i=objects, was_certified=st.booleans(), immediate=st.booleans())
    def delete(self, i: int, was_certified: bool, immediate: bool) -> None:
        t = self.ledger.delete(i, was_certified, OBJECT_BLOBS[i], immediate)
        info = self.ledger.infos.get(OBJECT_BLOBS[i].raw)
        if t.anomaly is None and isinstance(info, ValidBlobInfo):
            assert (bs.CancelSync(OBJECT_BLOBS[i].raw) in t.actions) == (
                not bs.is_certified(info, self.ledger.epoch)
            )

    @rule(which=st.sampled_from([BLOB, OTHER_BLOB]))
    def invalidate(self, which: BlobId) -> None:
        self.ledger.invalidate(which)
        self.invalid.add(which.raw)

    @rule(steps=st.integers(1, 3))
    def next_epoch(self, steps: int) -> None:
        self.ledger.gc(self.ledger.epoch + steps)

    @invariant()
    def aggregate_matches_objects(self) -> None:
        check_aggregate_matches_objects(self.ledger)

    @invariant()
    def invalid_stays_invalid(self) -> None:
        for blob_id in self.invalid:
            assert isinstance(self.ledger.infos[blob_id], InvalidBlobInfo)

    @invariant()
    def status_agrees_with_live_objects(self) -> None:
        epoch = self.ledger.epoch
        for blob in (BLOB, OTHER_BLOB):
            info = self.ledger.infos.get(blob.raw)
            if info is None or isinstance(info, InvalidBlobInfo):
                continue
            live = [
                r
                for r in self.ledger.objects.values()
                if r.blob_id == blob.raw and r.is_registered(epoch)
            ]
            status = info.blob_status(epoch)
            has_live_permanent = any(not r.deletable for r in live)
            assert isinstance(status, Permanent) == has_live_permanent
            if live:  # the converse fails by design: a deleted deletable may keep it "probable"
                assert bs.is_registered(info, epoch)


BlobLifecycle.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestBlobLifecycle = BlobLifecycle.TestCase
