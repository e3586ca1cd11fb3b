# pragma version ~=0.4.3
"""
@title Owned objects: IDs and per-owner indexes of Storage and Blob records
@notice EVM stand-in for Sui's owned objects (spec/walrus-system.md 2.9, item 5).
    A Walrus `Storage` or `Blob` is a Sui object with a 32-byte ID that its owner passes
    to calls. Here each is a record keyed by a bytes32 object ID with an owner address,
    and every owner has an enumerable index of its storage resources and of its blobs
    (the ERC-721 "enumerable" pattern: an append-only list with swap-remove).
    Object IDs are keccak256(abi_encode(this contract, nonce)) for a nonce counting from 1:
    32 bytes like Sui IDs (a deletable blob's ID is signed in BLOB_CERT messages), never
    zero, unique per deployment and chain-wide across deployments.
    Sui reports created, transferred, wrapped and deleted objects in transaction effects;
    here ObjectTransferred says the same: from the zero address when an object is created
    (or a wrapped storage resource comes back out of a deleted blob), to the zero address
    when it is destroyed or wrapped into a blob. A client learns the ID of a storage
    resource it just bought from this event.
"""

KIND_NONE: constant(uint8) = 0
KIND_STORAGE: constant(uint8) = 1
KIND_BLOB: constant(uint8) = 2

# Longest page of IDs a listing view returns; bounds the memory of one eth_call.
MAX_PAGE: constant(uint256) = 256


event ObjectTransferred:
    object_id: indexed(bytes32)
    from_owner: indexed(address)
    to_owner: indexed(address)


# Number of object IDs handed out so far.
object_nonce: public(uint256)
# Owner of each live object (zero address: no such object).
owner_of: public(HashMap[bytes32, address])
# KIND_STORAGE or KIND_BLOB for a live object, KIND_NONE otherwise.
kind_of: public(HashMap[bytes32, uint8])

_owned: HashMap[uint8, HashMap[address, HashMap[uint256, bytes32]]]
_owned_count: HashMap[uint8, HashMap[address, uint256]]
_position: HashMap[bytes32, uint256]


@internal
def _new_id() -> bytes32:
    """
    @notice A fresh object ID (Sui `object::new`).
    """
    self.object_nonce += 1
    return keccak256(abi_encode(self, self.object_nonce))


@internal
def _link(kind: uint8, owner: address, object_id: bytes32):
    """
    @notice Appends `object_id` to `owner`'s index of `kind` objects.
    """
    position: uint256 = self._owned_count[kind][owner]
    self._owned[kind][owner][position] = object_id
    self._owned_count[kind][owner] = position + 1
    self._position[object_id] = position


@internal
def _unlink(kind: uint8, owner: address, object_id: bytes32):
    """
    @notice Swap-removes `object_id` from `owner`'s index of `kind` objects.
    """
    last: uint256 = self._owned_count[kind][owner] - 1
    position: uint256 = self._position[object_id]
    if position != last:
        moved: bytes32 = self._owned[kind][owner][last]
        self._owned[kind][owner][position] = moved
        self._position[moved] = position
    self._owned[kind][owner][last] = empty(bytes32)
    self._owned_count[kind][owner] = last
    self._position[object_id] = 0


@internal
def _add(object_id: bytes32, kind: uint8, owner: address):
    """
    @notice Makes `object_id` a live object of `kind` owned by `owner`.
    """
    assert owner != empty(address), "zero address"
    assert self.kind_of[object_id] == KIND_NONE, "object exists"
    self._link(kind, owner, object_id)
    self.owner_of[object_id] = owner
    self.kind_of[object_id] = kind
    log ObjectTransferred(object_id=object_id, from_owner=empty(address), to_owner=owner)


@internal
def _remove(object_id: bytes32):
    """
    @notice Ends the life of a live object (destroyed, or wrapped into a blob).
    """
    owner: address = self.owner_of[object_id]
    self._unlink(self.kind_of[object_id], owner, object_id)
    self.owner_of[object_id] = empty(address)
    self.kind_of[object_id] = KIND_NONE
    log ObjectTransferred(object_id=object_id, from_owner=owner, to_owner=empty(address))


@internal
def _transfer(object_id: bytes32, to: address):
    """
    @notice Moves a live object to a new owner (Sui `transfer::public_transfer`).
    """
    assert to != empty(address), "zero address"
    kind: uint8 = self.kind_of[object_id]
    owner: address = self.owner_of[object_id]
    self._unlink(kind, owner, object_id)
    self._link(kind, to, object_id)
    self.owner_of[object_id] = to
    log ObjectTransferred(object_id=object_id, from_owner=owner, to_owner=to)


@internal
@view
def _assert_owned(object_id: bytes32, kind: uint8, caller: address):
    """
    @notice Reverts unless `object_id` is a live object of `kind` owned by `caller`
        (what Sui checks when an owned object is passed to a transaction).
    """
    self._assert_exists(object_id, kind)
    assert self.owner_of[object_id] == caller, "not the owner"


@internal
@view
def _assert_exists(object_id: bytes32, kind: uint8):
    """
    @notice Reverts unless `object_id` is a live object of `kind`.
    """
    if kind == KIND_STORAGE:
        assert self.kind_of[object_id] == KIND_STORAGE, "unknown storage"
    else:
        assert self.kind_of[object_id] == KIND_BLOB, "unknown blob"


@internal
@view
def _page(kind: uint8, owner: address, start: uint256, count: uint256) -> DynArray[bytes32, MAX_PAGE]:
    """
    @notice IDs of `owner`'s objects of `kind` at positions [start, start + count),
        clipped to what exists and to MAX_PAGE.
    """
    ids: DynArray[bytes32, MAX_PAGE] = []
    total: uint256 = self._owned_count[kind][owner]
    if start >= total:
        return ids
    end: uint256 = min(total, start + min(count, MAX_PAGE))
    for position: uint256 in range(start, end, bound=MAX_PAGE):
        ids.append(self._owned[kind][owner][position])
    return ids


@external
@view
def storage_count_of(owner: address) -> uint256:
    """
    @notice Number of storage resources `owner` holds (not counting those inside blobs).
    """
    return self._owned_count[KIND_STORAGE][owner]


@external
@view
def storage_ids_of(owner: address, start: uint256, count: uint256) -> DynArray[bytes32, MAX_PAGE]:
    """
    @notice A page of the storage resource IDs `owner` holds; order changes on removal.
    """
    return self._page(KIND_STORAGE, owner, start, count)


@external
@view
def blob_count_of(owner: address) -> uint256:
    """
    @notice Number of blob objects `owner` holds (expired ones included until burnt).
    """
    return self._owned_count[KIND_BLOB][owner]


@external
@view
def blob_ids_of(owner: address, start: uint256, count: uint256) -> DynArray[bytes32, MAX_PAGE]:
    """
    @notice A page of the blob object IDs `owner` holds; order changes on removal.
    """
    return self._page(KIND_BLOB, owner, start, count)
