# pragma version ~=0.4.3
"""
@title Blob objects
@notice Port of Move `walrus::blob` (spec/walrus-system.md 1.2, 1.5, 2.1). A blob object is
    one registration of a blob ID: its unencoded size and encoding type, whether and when
    it was certified, whether it is deletable, and the storage resource it wraps, whose
    end epoch (exclusive) is the blob's. Several blob objects may share one blob ID.
    This module keeps the records and emits the blob events; System decides who may act
    and handles payments and the committee. As in Move, functions that depend on time
    take the current epoch as an argument.
"""

import objects
import storage_resource
import blake2b
import redstuff
import messages

uses: objects


struct Blob:
    # Move `blob::Blob`; `storage` is the wrapped storage resource, `storage_id` its ID,
    # and `certified_epoch` is meaningful only when `is_certified` (Move `Option<u32>`).
    registered_epoch: uint32
    blob_id: bytes32
    size: uint64
    encoding_type: uint8
    is_certified: bool
    certified_epoch: uint32
    storage_id: bytes32
    storage: storage_resource.Storage
    deletable: bool


event BlobRegistered:
    epoch: uint32
    blob_id: indexed(bytes32)
    size: uint64
    encoding_type: uint8
    end_epoch: uint32
    deletable: bool
    object_id: indexed(bytes32)


event BlobCertified:
    epoch: uint32
    blob_id: indexed(bytes32)
    end_epoch: uint32
    deletable: bool
    object_id: indexed(bytes32)
    is_extension: bool


event BlobDeleted:
    epoch: uint32
    blob_id: indexed(bytes32)
    end_epoch: uint32
    object_id: indexed(bytes32)
    was_certified: bool


_blobs: HashMap[bytes32, Blob]


@internal
def _new(
    owner: address,
    storage_id: bytes32,
    storage: storage_resource.Storage,
    blob_id: bytes32,
    root_hash: bytes32,
    size: uint64,
    encoding_type: uint8,
    deletable: bool,
    registered_epoch: uint32,
    n_shards: uint16,
) -> (bytes32, uint64):
    """
    @notice Port of Move `blob::new`: checks that `storage` is current and covers the
        encoded length and that the blob ID derives from (root hash, type, size); creates
        the blob owned by `owner` and emits BlobRegistered. Returns its object ID and its
        encoded size.
    """
    assert storage.start_epoch <= registered_epoch and registered_epoch < storage.end_epoch, "storage not current"
    encoded_size: uint64 = redstuff._encoded_blob_length(size, encoding_type, n_shards)
    assert encoded_size <= storage.storage_size, "storage too small"
    # The blob ID authenticates size and encoding type, and so the storage paid for.
    assert blake2b._derive_blob_id(root_hash, encoding_type, size) == blob_id, "wrong blob id"
    object_id: bytes32 = objects._new_id()
    self._blobs[object_id] = Blob(
        registered_epoch=registered_epoch,
        blob_id=blob_id,
        size=size,
        encoding_type=encoding_type,
        is_certified=False,
        certified_epoch=0,
        storage_id=storage_id,
        storage=storage,
        deletable=deletable,
    )
    objects._add(object_id, objects.KIND_BLOB, owner)
    log BlobRegistered(
        epoch=registered_epoch,
        blob_id=blob_id,
        size=size,
        encoding_type=encoding_type,
        end_epoch=storage.end_epoch,
        deletable=deletable,
        object_id=object_id,
    )
    return object_id, encoded_size


@internal
@view
def _get(object_id: bytes32) -> Blob:
    """
    @notice The record of a live blob ("unknown blob" otherwise).
    """
    objects._assert_exists(object_id, objects.KIND_BLOB)
    return self._blobs[object_id]


@internal
@view
def _check_certified_msg(object_id: bytes32, current_epoch: uint32, message: messages.CertifiedBlobMessage):
    """
    @notice The checks of Move `blob::certify_with_certified_msg`: the message names this
        blob (ID, persistence type, and object ID if deletable), which is neither
        certified already nor expired.
    """
    blob: Blob = self._get(object_id)
    assert message.blob_id == blob.blob_id, "wrong blob id"
    assert not blob.is_certified, "already certified"
    assert current_epoch < blob.storage.end_epoch, "expired"
    assert message.deletable == blob.deletable, "wrong persistence type"
    if blob.deletable:
        assert message.object_id == object_id, "wrong object id"


@internal
def _certify(object_id: bytes32, current_epoch: uint32):
    """
    @notice The effect of Move `blob::certify_with_certified_msg` once checked: marks
        the blob certified in `current_epoch` and emits BlobCertified(is_extension=false).
    """
    self._blobs[object_id].is_certified = True
    self._blobs[object_id].certified_epoch = current_epoch
    self._emit_certified(object_id, False)


@internal
def _emit_certified(object_id: bytes32, is_extension: bool):
    """
    @notice Port of Move `blob::emit_certified`: extensions report the epoch of the first
        certification too (its committee holds the data).
    """
    blob: Blob = self._blobs[object_id]
    log BlobCertified(
        epoch=blob.certified_epoch,
        blob_id=blob.blob_id,
        end_epoch=blob.storage.end_epoch,
        deletable=blob.deletable,
        object_id=object_id,
        is_extension=is_extension,
    )


@internal
@pure
def _assert_certified_not_expired(blob: Blob, current_epoch: uint32):
    """
    @notice Port of Move `blob::assert_certified_not_expired`.
    """
    assert blob.is_certified, "not certified"
    assert current_epoch < blob.storage.end_epoch, "expired"


@internal
def _extend_end_epoch(object_id: bytes32, extended_epochs: uint32):
    """
    @notice Port of Move `storage_resource::extend_end_epoch` on the wrapped storage, then
        `emit_certified(true)` (the paid half of Move `system_state_inner::extend_blob`).
    """
    self._blobs[object_id].storage.end_epoch += extended_epochs
    self._emit_certified(object_id, True)


@internal
def _extend_with_resource(object_id: bytes32, extension: storage_resource.Storage, current_epoch: uint32):
    """
    @notice Port of Move `blob::extend_with_resource`: fuses a storage resource of the
        same size that starts at the blob's end epoch into the blob.
    """
    blob: Blob = self._get(object_id)
    self._assert_certified_not_expired(blob, current_epoch)
    assert extension.end_epoch > blob.storage.end_epoch, "extension ends too early"
    self._blobs[object_id].storage = storage_resource._fused_periods(blob.storage, extension)
    self._emit_certified(object_id, True)


@internal
def _delete(object_id: bytes32, current_epoch: uint32) -> Blob:
    """
    @notice Port of Move `blob::delete`: destroys a deletable, unexpired blob, emits
        BlobDeleted and returns the record (whose storage the caller hands back).
    """
    blob: Blob = self._get(object_id)
    assert blob.deletable, "not deletable"
    assert blob.storage.end_epoch > current_epoch, "expired"
    self._blobs[object_id] = empty(Blob)
    objects._remove(object_id)
    log BlobDeleted(
        epoch=current_epoch,
        blob_id=blob.blob_id,
        end_epoch=blob.storage.end_epoch,
        object_id=object_id,
        was_certified=blob.is_certified,
    )
    return blob


@internal
def _burn(object_id: bytes32):
    """
    @notice Port of Move `blob::burn`: drops the blob and its storage without an event.
    """
    self._blobs[object_id] = empty(Blob)
    objects._remove(object_id)


@external
@view
def blob(blob_object_id: bytes32) -> Blob:
    """
    @notice The record of a live blob object; its owner is `owner_of(blob_object_id)`.
    """
    return self._get(blob_object_id)
