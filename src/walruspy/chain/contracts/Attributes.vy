# pragma version ~=0.4.3
"""
@title Blob attributes: key-value pairs an owner attaches to a blob object
@notice Port of Move `walrus::metadata` and the metadata functions of `walrus::blob`
    (spec/walrus-system.md 1.2, 4.1: Walrus's "blob attributes"; `add_metadata`,
    `take_metadata`, `insert_or_update_metadata_pair`, `remove_metadata_pair`). In Walrus
    the attribute is a dynamic field of the Blob object holding a `VecMap<String, String>`:
    an ordered list of unique keys, where an update removes the key and appends it again.
    Here it is a record keyed by the blob's object ID in a contract of its own (System is
    close to the 24 KiB code limit). System names this contract from its constructor
    (`attributes()`, so a client that knows System finds it) and it learns System once, from
    its deployer (`attach`).
    Only the owner of a live blob object (System's `owner_of` and `kind_of`) may change its
    attribute; anyone may read it. A blob that is deleted or burnt has no attribute any
    more: `attribute` answers absent for it, as Sui drops the dynamic field with the object,
    and the stale record is never reachable again (object IDs are never reused). A transfer
    keeps the attribute with the object, as on Sui.
    Bounds (Sui bounds an object's size instead): at most MAX_PAIRS pairs, keys of at most
    MAX_KEY bytes and values of at most MAX_VALUE bytes; empty keys are refused.
"""

interface SystemView:
    def attributes() -> address: view
    def owner_of(object_id: bytes32) -> address: view
    def kind_of(object_id: bytes32) -> uint8: view


# objects.vy KIND_BLOB.
KIND_BLOB: constant(uint8) = 2
MAX_PAIRS: constant(uint256) = 32
MAX_KEY: constant(uint256) = 128
MAX_VALUE: constant(uint256) = 1024


struct Pair:
    key: String[MAX_KEY]
    value: String[MAX_VALUE]


event BlobAttributeChanged:
    object_id: indexed(bytes32)
    # The number of pairs afterwards (0 after the attribute was removed).
    n_pairs: uint256
    removed: bool


# The deployer, who attaches this contract to its System once.
installer: public(address)
# The System whose blob objects carry attributes (empty until attached).
system: public(address)

# Whether the blob has an attribute (Move: the dynamic field exists), and its pairs in order.
_present: HashMap[bytes32, bool]
_pairs: HashMap[bytes32, DynArray[Pair, MAX_PAIRS]]


@deploy
def __init__():
    self.installer = msg.sender


@external
def attach(system_contract: address):
    """
    @notice Names the System whose blobs carry attributes (installer only, once). That
        System must have been deployed with this contract's address.
    """
    assert msg.sender == self.installer, "not the installer"
    assert self.system == empty(address), "already attached"
    assert system_contract.is_contract, "system is not a contract"
    assert staticcall SystemView(system_contract).attributes() == self, "system does not name this contract"
    self.system = system_contract


@internal
@view
def _live_blob(object_id: bytes32) -> bool:
    system_contract: address = self.system
    assert system_contract != empty(address), "not attached"
    return staticcall SystemView(system_contract).kind_of(object_id) == KIND_BLOB


@internal
@view
def _assert_owner(object_id: bytes32):
    assert self._live_blob(object_id), "unknown blob"
    assert staticcall SystemView(self.system).owner_of(object_id) == msg.sender, "not the owner"


@internal
@pure
def _position(pairs: DynArray[Pair, MAX_PAIRS], key: String[MAX_KEY]) -> uint256:
    """
    @notice Index of `key` in `pairs`, or MAX_PAIRS when absent.
    """
    for i: uint256 in range(len(pairs), bound=MAX_PAIRS):
        if pairs[i].key == key:
            return i
    return MAX_PAIRS


@internal
@pure
def _without(pairs: DynArray[Pair, MAX_PAIRS], index: uint256) -> DynArray[Pair, MAX_PAIRS]:
    """
    @notice `pairs` without the pair at `index`, the others in order (VecMap::remove).
    """
    kept: DynArray[Pair, MAX_PAIRS] = []
    for i: uint256 in range(len(pairs), bound=MAX_PAIRS):
        if i != index:
            kept.append(pairs[i])
    return kept


@external
def insert_or_update_pairs(
    object_id: bytes32,
    keys: DynArray[String[MAX_KEY], MAX_PAIRS],
    values: DynArray[String[MAX_VALUE], MAX_PAIRS],
):
    """
    @notice Move `blob::insert_or_update_metadata_pair`, for each pair in turn: the
        attribute is created if absent; a key already present is removed and appended
        again with its new value.
    """
    self._assert_owner(object_id)
    assert len(keys) == len(values), "keys and values differ in number"
    if not self._present[object_id]:
        self._pairs[object_id] = []
        self._present[object_id] = True
    self._pairs[object_id] = self._inserted(self._pairs[object_id], keys, values)
    log BlobAttributeChanged(object_id=object_id, n_pairs=len(self._pairs[object_id]), removed=False)


@internal
@pure
def _inserted(
    pairs: DynArray[Pair, MAX_PAIRS],
    keys: DynArray[String[MAX_KEY], MAX_PAIRS],
    values: DynArray[String[MAX_VALUE], MAX_PAIRS],
) -> DynArray[Pair, MAX_PAIRS]:
    """
    @notice `pairs` with each key set to its value in turn: a key already there is removed
        and appended again (VecMap::remove, then insert).
    """
    result: DynArray[Pair, MAX_PAIRS] = pairs
    for i: uint256 in range(len(keys), bound=MAX_PAIRS):
        assert len(keys[i]) > 0, "empty key"
        at: uint256 = self._position(result, keys[i])
        if at != MAX_PAIRS:
            result = self._without(result, at)
        assert len(result) < MAX_PAIRS, "too many pairs"
        result.append(Pair(key=keys[i], value=values[i]))
    return result


@external
def remove_pairs(object_id: bytes32, keys: DynArray[String[MAX_KEY], MAX_PAIRS]):
    """
    @notice Move `blob::remove_metadata_pair`, for each key in turn: the attribute must
        exist and hold the key.
    """
    self._assert_owner(object_id)
    assert self._present[object_id], "no attribute"
    self._pairs[object_id] = self._removed(self._pairs[object_id], keys)
    log BlobAttributeChanged(object_id=object_id, n_pairs=len(self._pairs[object_id]), removed=False)


@internal
@pure
def _removed(
    pairs: DynArray[Pair, MAX_PAIRS], keys: DynArray[String[MAX_KEY], MAX_PAIRS]
) -> DynArray[Pair, MAX_PAIRS]:
    """
    @notice `pairs` without each of `keys`, every one of which must be there.
    """
    kept: DynArray[Pair, MAX_PAIRS] = pairs
    for i: uint256 in range(len(keys), bound=MAX_PAIRS):
        at: uint256 = self._position(kept, keys[i])
        assert at != MAX_PAIRS, "unknown key"
        kept = self._without(kept, at)
    return kept


@external
def remove_attribute(object_id: bytes32):
    """
    @notice Move `blob::take_metadata`: the attribute must exist; it is gone afterwards.
    """
    self._assert_owner(object_id)
    assert self._present[object_id], "no attribute"
    self._present[object_id] = False
    self._pairs[object_id] = []
    log BlobAttributeChanged(object_id=object_id, n_pairs=0, removed=True)


@external
@view
def attribute(object_id: bytes32) -> (bool, DynArray[Pair, MAX_PAIRS]):
    """
    @notice Whether the live blob `object_id` has an attribute, and its pairs in order
        (absent for an unknown, deleted or burnt blob).
    """
    if not self._present[object_id] or not self._live_blob(object_id):
        return False, []
    return True, self._pairs[object_id]
