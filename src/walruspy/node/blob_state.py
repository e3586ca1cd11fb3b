"""The blob lifecycle as pure rules: chain event + current records -> new records + actions.

Theory of operation (spec/walrus-system.md 1.4, 1.5, 3.3 and 3.7; Walrus `node/storage/
blob_info.rs`, `blob_info/blob_info_v1.rs`, `blob_info/perm_blob_info.rs`, `blob_event_processor.rs`
and `garbage_collector.rs`). This is the "decide" half of the node's event handling: `decide`
takes one chain event, the aggregate `BlobInfo` of its blob ID and the `PerObjectBlobInfo` of its
`Blob` object, and returns a `Transition`: the records to write (None = delete), the blobs whose
data goes in the same store transaction, and the actions the driver performs afterwards. Nothing
here reads a clock, a store or the network.

The rules, per event (Walrus's merge operands, in order):

- BlobRegistered: the object gets a fresh per-object record; the aggregate counts one more
  deletable object (and raises the latest deletable registered end epoch), or adds to
  `permanent_total` (count + 1, end epoch = max, status event = the event with that max).
  Action `NotifyRegistered`, which wakes confirmation long-polls.
- BlobCertified (not an extension): the object's `certified_epoch` is set; the aggregate counts
  one more certified deletable object, or adds to `permanent_certified`; `initial_certified_epoch`
  becomes the event's epoch if the blob was not certified before, else the minimum.
- BlobCertified (extension): the object's end epoch moves; the aggregate's end epochs rise.
  Either way, if the blob is certified in the current epoch: action `StartSync` (the syncer first
  checks whether anything is missing).
- BlobDeleted: the object is marked deleted; the aggregate counts one deletable object (and one
  certified one if it was) less, unsetting the latest-seen end epoch of a count that reaches 0 and
  `initial_certified_epoch` once nothing is certified. If the blob is no longer certified: action
  `CancelSync`. With immediate deletion on and no registration left at the event's epoch, the
  data goes too.
- InvalidBlobID: the aggregate becomes `Invalid{epoch, event}` for good (later events never
  change it), its data is deleted in the same transaction, and any sync is cancelled.
- EpochChangeStart / EpochChangeDone: actions `BeginEpoch` / `EpochDone` for the epoch driver.

Garbage collection (`expire_object`): at the start of epoch e, every per-object record that is
deleted or whose end epoch is <= e goes; an expired (not deleted) one also lowers the aggregate
counts (Walrus's `DeletableExpired` / `PermanentExpired`). Counts change only on events and GC, so
between them the aggregate always equals what the per-object records imply; the property tests
check exactly that after every step.

Anomalies. Walrus logs an event that contradicts its records (certifying an unknown object,
registering an object twice, deleting a permanent blob) and ignores it. So do we, but completely:
an anomalous event changes no record at all, so the aggregate and the per-object records never
drift apart; the transition carries a description for the log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from walruspy.chain.events import (
    BlobCertified,
    BlobDeleted,
    BlobRegistered,
    ChainEvent,
    ChallengeCertified,
    ChallengeScheduled,
    ChallengeStart,
    EpochChangeDone,
    EpochChangeStart,
    EventId,
    InvalidBlobId,
)
from walruspy.node.store_records import (
    BlobInfo,
    InvalidBlobInfo,
    PermanentBlobInfo,
    PerObjectBlobInfo,
    ValidBlobInfo,
)
from walruspy.node_api import schemas

# --- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartSync:
    """The blob is certified: recover whatever metadata or slivers this node lacks."""

    blob_id: bytes


@dataclass(frozen=True, slots=True)
class CancelSync:
    """The blob is no longer certified (deleted or invalid): stop recovering it."""

    blob_id: bytes


@dataclass(frozen=True, slots=True)
class NotifyRegistered:
    """The blob became registered: wake requests waiting for its registration."""

    blob_id: bytes


@dataclass(frozen=True, slots=True)
class BeginEpoch:
    """Epoch `epoch` started: refresh the committee and collect garbage."""

    epoch: int


@dataclass(frozen=True, slots=True)
class EpochDone:
    """Epoch `epoch`'s committee holds all its shards."""

    epoch: int


#: What the driver does after the transition is persisted.
Action = StartSync | CancelSync | NotifyRegistered | BeginEpoch | EpochDone


@dataclass(frozen=True, slots=True)
class Transition:
    """The effects of one event: record writes (None deletes), data deletions, actions."""

    blob_infos: Mapping[bytes, BlobInfo | None] = field(default_factory=dict)
    per_object_blob_infos: Mapping[bytes, PerObjectBlobInfo | None] = field(default_factory=dict)
    delete_data_of: tuple[bytes, ...] = ()
    actions: tuple[Action, ...] = ()
    anomaly: str | None = None


def _ignored(reason: str) -> Transition:
    return Transition(anomaly=reason)


# --- queries on the aggregate record (Walrus's BlobInfoApi) ------------------------------------


def is_registered(info: BlobInfo | None, epoch: int) -> bool:
    """Some permanent or (probably) some deletable object is live in `epoch`."""
    if not isinstance(info, ValidBlobInfo):
        return False
    permanent = info.permanent_total is not None and info.permanent_total.end_epoch > epoch
    latest = info.latest_seen_deletable_registered_end_epoch
    deletable = info.count_deletable_total > 0 and latest is not None and latest > epoch
    return permanent or deletable


def is_certified(info: BlobInfo | None, epoch: int) -> bool:
    """Some certified object is live in `epoch` and the first certification is not in the future."""
    if not isinstance(info, ValidBlobInfo) or info.initial_certified_epoch is None:
        return False
    if info.initial_certified_epoch > epoch:
        return False
    certified = info.permanent_certified
    permanent = certified is not None and certified.end_epoch > epoch
    latest = info.latest_seen_deletable_certified_end_epoch
    deletable = info.count_deletable_certified > 0 and latest is not None and latest > epoch
    return permanent or deletable


def is_certified_before(info: BlobInfo | None, epoch: int) -> bool:
    """First certified before `epoch` and still certified in it: what shard sync transfers.

    Walrus's `BlobInfoIter`: a blob certified in `epoch` itself is left out, its slivers reach the
    new owner through the upload or blob sync of that epoch.
    """
    if not is_certified(info, epoch):
        return False
    assert isinstance(info, ValidBlobInfo) and info.initial_certified_epoch is not None
    return info.initial_certified_epoch < epoch


def can_data_be_deleted(info: BlobInfo | None, epoch: int) -> bool:
    """No registration is live in `epoch` (an invalid blob's data went when it turned invalid)."""
    return not is_registered(info, epoch)


def can_blob_info_be_deleted(info: BlobInfo | None, epoch: int) -> bool:
    """The aggregate record itself may go: no object refers to it (an invalid one is kept)."""
    if not isinstance(info, ValidBlobInfo):
        return False
    return (
        info.count_deletable_total == 0
        and info.permanent_total is None
        and can_data_be_deleted(info, epoch)
    )


def status_event(event_id: EventId) -> schemas.EventId:
    """The event as blob status JSON names it: transaction hash and log index."""
    return schemas.EventId(event_id.tx_hash, event_id.log_index)


# --- permanent-info helpers (perm_blob_info.rs) ------------------------------------------------


def _permanent_added(
    info: PermanentBlobInfo | None, end_epoch: int, event: schemas.EventId
) -> PermanentBlobInfo:
    if info is None:
        return PermanentBlobInfo(1, end_epoch, event)
    return _permanent_raised(dataclasses.replace(info, count=info.count + 1), end_epoch, event)


def _permanent_raised(
    info: PermanentBlobInfo, end_epoch: int, event: schemas.EventId
) -> PermanentBlobInfo:
    if end_epoch > info.end_epoch:
        return PermanentBlobInfo(info.count, end_epoch, event)
    return info


def _permanent_decremented(info: PermanentBlobInfo | None) -> PermanentBlobInfo | None:
    if info is None or info.count == 1:
        return None
    return dataclasses.replace(info, count=info.count - 1)


def _max_epoch(current: int | None, new: int) -> int:
    return new if current is None else max(current, new)


def _replace(info: ValidBlobInfo, **changes: object) -> ValidBlobInfo:
    """`info` with `changes`, unsetting `initial_certified_epoch` once nothing is certified.

    Built in one step: applying the changes one at a time could break an invariant in between.
    """
    fields = {f.name: getattr(info, f.name) for f in dataclasses.fields(info)}
    fields.update(changes)
    if fields["count_deletable_certified"] == 0 and fields["permanent_certified"] is None:
        fields["initial_certified_epoch"] = None
    return ValidBlobInfo(**fields)


def _deletable_decremented(info: ValidBlobInfo, was_certified: bool) -> ValidBlobInfo:
    total = info.count_deletable_total - 1
    changes: dict[str, object] = {"count_deletable_total": total}
    if total == 0:
        changes["latest_seen_deletable_registered_end_epoch"] = None
    if was_certified:
        certified = info.count_deletable_certified - 1
        changes["count_deletable_certified"] = certified
        if certified == 0:
            changes["latest_seen_deletable_certified_end_epoch"] = None
    return _replace(info, **changes)


# --- aggregate updates (ValidBlobInfoV1::update_status) ----------------------------------------


def _registered(
    info: ValidBlobInfo | None, event: BlobRegistered, ev: schemas.EventId
) -> ValidBlobInfo:
    base = info or ValidBlobInfo()
    if event.deletable:
        return dataclasses.replace(
            base,
            count_deletable_total=base.count_deletable_total + 1,
            latest_seen_deletable_registered_end_epoch=_max_epoch(
                base.latest_seen_deletable_registered_end_epoch, event.end_epoch
            ),
        )
    return dataclasses.replace(
        base, permanent_total=_permanent_added(base.permanent_total, event.end_epoch, ev)
    )


def _certified(info: ValidBlobInfo, event: BlobCertified, ev: schemas.EventId) -> ValidBlobInfo:
    was_certified = is_certified(info, event.epoch)
    if event.deletable:
        updated = dataclasses.replace(
            info,
            count_deletable_certified=info.count_deletable_certified + 1,
            latest_seen_deletable_certified_end_epoch=_max_epoch(
                info.latest_seen_deletable_certified_end_epoch, event.end_epoch
            ),
            initial_certified_epoch=event.epoch,  # provisional; fixed just below
        )
    else:
        updated = dataclasses.replace(
            info,
            permanent_certified=_permanent_added(info.permanent_certified, event.end_epoch, ev),
            initial_certified_epoch=event.epoch,
        )
    initial = info.initial_certified_epoch
    if not was_certified or initial is None or initial > event.epoch:
        return updated
    return dataclasses.replace(updated, initial_certified_epoch=initial)


def _extended(info: ValidBlobInfo, event: BlobCertified, ev: schemas.EventId) -> ValidBlobInfo:
    if event.deletable:
        return dataclasses.replace(
            info,
            latest_seen_deletable_registered_end_epoch=_max_epoch(
                info.latest_seen_deletable_registered_end_epoch, event.end_epoch
            ),
            latest_seen_deletable_certified_end_epoch=_max_epoch(
                info.latest_seen_deletable_certified_end_epoch, event.end_epoch
            ),
        )
    total, certified = info.permanent_total, info.permanent_certified
    assert total is not None and certified is not None, "checked by the caller"
    return dataclasses.replace(
        info,
        permanent_total=_permanent_raised(total, event.end_epoch, ev),
        permanent_certified=_permanent_raised(certified, event.end_epoch, ev),
    )


# --- decide -----------------------------------------------------------------------------------


def decide(
    event: ChainEvent,
    blob_info: BlobInfo | None,
    per_object: PerObjectBlobInfo | None,
    current_epoch: int,
    immediate_deletion: bool = False,
) -> Transition:
    """The transition for `event`, given the current records of its blob ID and object.

    `current_epoch` is the node's committee epoch (it decides whether a sync is still needed);
    `immediate_deletion` is Walrus's `enable_immediate_data_deletion`.
    """
    if isinstance(event, BlobRegistered):
        return _on_registered(event, blob_info, per_object)
    if isinstance(event, BlobCertified):
        return _on_certified(event, blob_info, per_object, current_epoch)
    if isinstance(event, BlobDeleted):
        return _on_deleted(event, blob_info, per_object, current_epoch, immediate_deletion)
    if isinstance(event, InvalidBlobId):
        return _on_invalid(event, blob_info)
    if isinstance(event, EpochChangeStart):
        return Transition(actions=(BeginEpoch(event.epoch),))
    return _not_a_blob_event(event)


def _not_a_blob_event(event: ChainEvent) -> Transition:
    if isinstance(event, ChallengeScheduled | ChallengeStart | ChallengeCertified):
        return Transition()  # no blob record changes (node/events.py handles challenges)
    assert isinstance(event, EpochChangeDone)
    return Transition(actions=(EpochDone(event.epoch),))


def _on_registered(
    event: BlobRegistered, info: BlobInfo | None, per_object: PerObjectBlobInfo | None
) -> Transition:
    blob_id = event.blob_id.raw
    if per_object is not None:
        return _ignored(f"object {event.object_id.hex()} registered twice")
    ev = status_event(event.event_id)
    record = PerObjectBlobInfo(
        blob_id=blob_id,
        registered_epoch=event.epoch,
        certified_epoch=None,
        end_epoch=event.end_epoch,
        deletable=event.deletable,
        event=ev,
        deleted=False,
    )
    updates: dict[bytes, BlobInfo | None] = {}
    if not isinstance(info, InvalidBlobInfo):
        updates[blob_id] = _registered(info, event, ev)
    return Transition(
        blob_infos=updates,
        per_object_blob_infos={event.object_id: record},
        actions=(NotifyRegistered(blob_id),),
    )


def _check_object(
    per_object: PerObjectBlobInfo | None, blob_id: bytes, object_id: bytes, what: str
) -> str | None:
    if per_object is None:
        return f"{what} of unknown object {object_id.hex()}"
    if per_object.blob_id != blob_id:
        return f"{what} of object {object_id.hex()} names another blob ID"
    if per_object.deleted:
        return f"{what} of deleted object {object_id.hex()}"
    return None


def _on_certified(
    event: BlobCertified,
    info: BlobInfo | None,
    per_object: PerObjectBlobInfo | None,
    current_epoch: int,
) -> Transition:
    blob_id = event.blob_id.raw
    problem = _certified_object_problem(event, per_object)
    if problem is not None:
        return _ignored(problem)
    assert per_object is not None
    ev = status_event(event.event_id)
    if event.is_extension:
        record = dataclasses.replace(per_object, end_epoch=event.end_epoch, event=ev)
    else:
        record = dataclasses.replace(per_object, certified_epoch=event.epoch, event=ev)
    if isinstance(info, InvalidBlobInfo):
        return Transition(per_object_blob_infos={event.object_id: record})
    problem = _aggregate_problem(info, event)
    if problem is not None:
        return _ignored(problem)
    assert info is not None
    updated = _extended(info, event, ev) if event.is_extension else _certified(info, event, ev)
    actions: tuple[Action, ...] = ()
    if is_certified(updated, current_epoch):
        actions = (StartSync(blob_id),)
    return Transition({blob_id: updated}, {event.object_id: record}, actions=actions)


def _certified_object_problem(
    event: BlobCertified, per_object: PerObjectBlobInfo | None
) -> str | None:
    what = "extension" if event.is_extension else "certification"
    problem = _check_object(per_object, event.blob_id.raw, event.object_id, what)
    if problem is not None or per_object is None:
        return problem
    if per_object.deletable != event.deletable:
        return f"{what} of object {event.object_id.hex()} flips its deletable flag"
    if (per_object.certified_epoch is not None) != event.is_extension:
        return f"{what} of an object that is {'not ' * event.is_extension}certified"
    return None


def _aggregate_problem(info: ValidBlobInfo | None, event: BlobCertified) -> str | None:
    """Walrus's checks of `update_status` for a certification or an extension."""
    if info is None:
        return f"certification of blob {event.blob_id} without an aggregate record"
    if event.deletable:
        early = not event.is_extension and (
            info.count_deletable_total <= info.count_deletable_certified
        )
        return "certification of a deletable blob before its registration" if early else None
    total, certified = info.permanent_total, info.permanent_certified
    if total is None:
        return "certification of a permanent blob when none is tracked"
    if event.is_extension:
        return None if certified is not None else "extension of an uncertified permanent blob"
    too_late = event.end_epoch > total.end_epoch
    too_many = total.count <= (0 if certified is None else certified.count)
    if too_late or too_many:
        return "certification of a permanent blob that does not match its registrations"
    return None


def _on_deleted(
    event: BlobDeleted,
    info: BlobInfo | None,
    per_object: PerObjectBlobInfo | None,
    current_epoch: int,
    immediate_deletion: bool,
) -> Transition:
    blob_id = event.blob_id.raw
    problem = _check_object(per_object, blob_id, event.object_id, "deletion")
    if problem is not None:
        return _ignored(problem)
    assert per_object is not None
    if not per_object.deletable:
        return _ignored(f"deletion of permanent object {event.object_id.hex()}")
    if (per_object.certified_epoch is not None) != event.was_certified:
        return _ignored(f"deletion of object {event.object_id.hex()} with a wrong was_certified")
    record = dataclasses.replace(per_object, deleted=True, event=status_event(event.event_id))
    if isinstance(info, InvalidBlobInfo):
        return Transition(per_object_blob_infos={event.object_id: record})
    if info is None:
        return _ignored(f"deletion for blob {event.blob_id} without an aggregate record")
    updated = _deletable_decremented(info, event.was_certified)
    actions: tuple[Action, ...] = ()
    if not is_certified(updated, current_epoch):
        actions = (CancelSync(blob_id),)
    # The event's epoch, not the current one: later events may register the blob again.
    delete = immediate_deletion and can_data_be_deleted(updated, event.epoch)
    return Transition(
        {blob_id: updated},
        {event.object_id: record},
        delete_data_of=(blob_id,) if delete else (),
        actions=actions,
    )


def _on_invalid(event: InvalidBlobId, info: BlobInfo | None) -> Transition:
    blob_id = event.blob_id.raw
    updates: dict[bytes, BlobInfo | None] = {}
    if not isinstance(info, InvalidBlobInfo):
        updates[blob_id] = InvalidBlobInfo(event.epoch, status_event(event.event_id))
    return Transition(updates, delete_data_of=(blob_id,), actions=(CancelSync(blob_id),))


# --- garbage collection, phase 1 (process_maybe_expired_blob_object) ---------------------------


@dataclass(frozen=True, slots=True)
class Expiry:
    """What GC does with one per-object record: drop it, and maybe the new aggregate."""

    drop_record: bool
    blob_info: BlobInfo | None
    blob_info_changed: bool


def expire_object(record: PerObjectBlobInfo, info: BlobInfo | None, epoch: int) -> Expiry:
    """GC of one object at the start of `epoch`: keep it if live, else drop it.

    An expired (not deleted) object lowers the aggregate counts; a deleted one already did.
    """
    if record.is_registered(epoch):
        return Expiry(False, info, False)
    if record.deleted or not isinstance(info, ValidBlobInfo):
        return Expiry(True, info, False)
    was_certified = record.certified_epoch is not None
    if record.deletable:
        if info.count_deletable_total == 0 or (
            was_certified and info.count_deletable_certified == 0
        ):
            return Expiry(True, info, False)  # counts already below the records: never lower
        updated = _deletable_decremented(info, was_certified)
    else:
        if info.permanent_total is None or (was_certified and info.permanent_certified is None):
            return Expiry(True, info, False)
        updated = _replace(
            info,
            permanent_total=_permanent_decremented(info.permanent_total),
            permanent_certified=(
                _permanent_decremented(info.permanent_certified)
                if was_certified
                else info.permanent_certified
            ),
        )
    return Expiry(True, updated, True)
