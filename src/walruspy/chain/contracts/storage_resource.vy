# pragma version ~=0.4.3
"""
@title Storage resources
@notice Port of Move `walrus::storage_resource` (spec/walrus-system.md 1.2, 2.1).
    A storage resource reserves `storage_size` bytes of encoded capacity for the epochs
    [start_epoch, end_epoch) (start inclusive, end exclusive). It is owned and
    transferable, can be split in time or in size and fused back, and is wrapped into a
    blob at registration (leaving its owner's index until the blob is deleted).
"""

import objects

uses: objects


struct Storage:
    # Move `storage_resource::Storage` without its ID (the ID is the record's key).
    start_epoch: uint32
    end_epoch: uint32
    storage_size: uint64


_storages: HashMap[bytes32, Storage]


@internal
def _create(owner: address, start_epoch: uint32, end_epoch: uint32, storage_size: uint64) -> bytes32:
    """
    @notice Port of Move `storage_resource::create_storage`: a new record owned by `owner`.
    """
    assert start_epoch < end_epoch, "invalid epoch range"
    storage_id: bytes32 = objects._new_id()
    self._storages[storage_id] = Storage(
        start_epoch=start_epoch, end_epoch=end_epoch, storage_size=storage_size
    )
    objects._add(storage_id, objects.KIND_STORAGE, owner)
    return storage_id


@internal
def _take(storage_id: bytes32, owner: address) -> Storage:
    """
    @notice Removes `owner`'s storage resource from the registry and returns it, for
        wrapping into a blob or destruction (Move passes a `Storage` by value).
    """
    objects._assert_owned(storage_id, objects.KIND_STORAGE, owner)
    storage: Storage = self._storages[storage_id]
    self._storages[storage_id] = empty(Storage)
    objects._remove(storage_id)
    return storage


@internal
def _restore(storage_id: bytes32, owner: address, storage: Storage):
    """
    @notice Puts a storage resource that was wrapped in a blob back into the registry
        under its old ID, owned by `owner` (Move `delete_blob` returns the same object).
    """
    self._storages[storage_id] = storage
    objects._add(storage_id, objects.KIND_STORAGE, owner)


@internal
@pure
def _fused_periods(first: Storage, second: Storage) -> Storage:
    """
    @notice Port of Move `storage_resource::fuse_periods`: joins two resources of equal
        size whose periods touch, in either order.
    """
    assert first.storage_size == second.storage_size, "incompatible sizes"
    if first.end_epoch == second.start_epoch:
        return Storage(
            start_epoch=first.start_epoch, end_epoch=second.end_epoch, storage_size=first.storage_size
        )
    assert first.start_epoch == second.end_epoch, "incompatible epochs"
    return Storage(
        start_epoch=second.start_epoch, end_epoch=first.end_epoch, storage_size=first.storage_size
    )


@internal
@pure
def _fused_amount(first: Storage, second: Storage) -> Storage:
    """
    @notice Port of Move `storage_resource::fuse_amount`: adds the sizes of two resources
        covering the same period.
    """
    assert first.start_epoch == second.start_epoch and first.end_epoch == second.end_epoch, "incompatible epochs"
    return Storage(
        start_epoch=first.start_epoch,
        end_epoch=first.end_epoch,
        storage_size=first.storage_size + second.storage_size,
    )


@internal
def _fuse_with(first_id: bytes32, second_id: bytes32, by_period: bool):
    """
    @notice Fuses the caller's `second_id` into `first_id`, destroying `second_id`.
    """
    assert first_id != second_id, "cannot fuse a storage with itself"
    objects._assert_owned(first_id, objects.KIND_STORAGE, msg.sender)
    second: Storage = self._take(second_id, msg.sender)
    if by_period:
        self._storages[first_id] = self._fused_periods(self._storages[first_id], second)
    else:
        self._storages[first_id] = self._fused_amount(self._storages[first_id], second)


@external
def split_by_epoch(storage_id: bytes32, split_epoch: uint32) -> bytes32:
    """
    @notice Port of Move `storage_resource::split_by_epoch`: `storage_id` keeps
        [start, split_epoch) and a new resource, returned, covers [split_epoch, end).
    """
    objects._assert_owned(storage_id, objects.KIND_STORAGE, msg.sender)
    storage: Storage = self._storages[storage_id]
    assert split_epoch > storage.start_epoch and split_epoch < storage.end_epoch, "invalid split epoch"
    self._storages[storage_id].end_epoch = split_epoch
    return self._create(msg.sender, split_epoch, storage.end_epoch, storage.storage_size)


@external
def split_by_size(storage_id: bytes32, split_size: uint64) -> bytes32:
    """
    @notice Port of Move `storage_resource::split_by_size`: `storage_id` keeps
        `split_size` bytes and a new resource, returned, gets the rest.
    """
    objects._assert_owned(storage_id, objects.KIND_STORAGE, msg.sender)
    storage: Storage = self._storages[storage_id]
    assert storage.storage_size >= split_size, "invalid split size"
    self._storages[storage_id].storage_size = split_size
    return self._create(
        msg.sender, storage.start_epoch, storage.end_epoch, storage.storage_size - split_size
    )


@external
def fuse_periods(first_id: bytes32, second_id: bytes32):
    """
    @notice Port of Move `storage_resource::fuse_periods`: `first_id` absorbs the
        adjacent period of `second_id` (same size), which is destroyed.
    """
    self._fuse_with(first_id, second_id, True)


@external
def fuse_amount(first_id: bytes32, second_id: bytes32):
    """
    @notice Port of Move `storage_resource::fuse_amount`: `first_id` absorbs the size of
        `second_id` (same period), which is destroyed.
    """
    self._fuse_with(first_id, second_id, False)


@external
def fuse(first_id: bytes32, second_id: bytes32):
    """
    @notice Port of Move `storage_resource::fuse`: by amount if both start in the same
        epoch, otherwise by period.
    """
    objects._assert_exists(second_id, objects.KIND_STORAGE)
    by_period: bool = self._storages[first_id].start_epoch != self._storages[second_id].start_epoch
    self._fuse_with(first_id, second_id, by_period)


@external
def transfer_storage(storage_id: bytes32, to: address):
    """
    @notice Gives a storage resource to `to` (Sui `transfer::public_transfer`).
    """
    objects._assert_owned(storage_id, objects.KIND_STORAGE, msg.sender)
    objects._transfer(storage_id, to)


@external
def destroy_storage(storage_id: bytes32):
    """
    @notice Port of Move `storage_resource::destroy`: drops a resource. The capacity it
        reserved stays reserved and paid for until its end epoch, as in Walrus.
    """
    self._take(storage_id, msg.sender)


@external
@view
def storage(storage_id: bytes32) -> Storage:
    """
    @notice The record of a live storage resource; its owner is `owner_of(storage_id)`.
    """
    objects._assert_exists(storage_id, objects.KIND_STORAGE)
    return self._storages[storage_id]
